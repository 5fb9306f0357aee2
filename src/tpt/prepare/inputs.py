"""Checks of an augment run as an input to `tpt prepare`, done before any tokenization.

* completeness: a run whose shards are not all done (or whose generations failed) is a part of
  the corpus; packing it silently trains on whatever finished first.
* duplicate (id, sample) keys: the same record twice (runs concatenated by hand, a copied
  shard) would be trained on twice.
* the document cut: with ``--doc-cut prefix`` a TPT sample's ``d`` is exactly the prefix the
  generator saw, recomputed with the generator's own tokenizer and the run's ``max_doc_tokens``
  through the very function augment cut it with.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pyarrow.compute as pc
import pyarrow.parquet as pq

from tpt.io import runs
from tpt.prepare.config import PrepareError, SourceSpec
from tpt.prepare.sources import CUT_COLUMN, Sample, is_run_folder


def check_complete(spec: SourceSpec, allow: bool) -> dict | None:
    """Refuse (or, with ``allow``, warn about) a run with shards not done; warn about failed rows."""
    if not is_run_folder(spec.path):
        return None
    state = runs.completion(spec.path)
    if state is None:
        return None
    if state["missing"]:
        shown = ", ".join(state["missing"][:5]) + (" ..." if len(state["missing"]) > 5 else "")
        message = (
            f"source {spec.describe()}: the augment run is incomplete: {state['done']} of {state['shards']} shards "
            f"done (missing {shown})"
        )
        if not allow:
            raise PrepareError(
                f"{message}. Finish it (rerun the same `tpt augment` command) or pass --allow-incomplete"
            )
        warn(message + "; packing it anyway (--allow-incomplete)")
    if state["failed"]:
        warn(
            f"source {spec.describe()}: {state['failed']} generation(s) failed and are not in the run "
            f"({spec.path / 'failed'}); rerun `tpt augment` to retry them"
        )
    return state


def duplicate_keys(spec: SourceSpec, allow: bool) -> frozenset:
    """Hashes of (id, sample) keys found more than once in a TPT run (empty when there are none).

    Only 8 bytes per record are held (a hash), never the ids themselves; a repeat is refused
    unless ``allow``, which sets every occurrence after the first aside (sources.py)."""
    if spec.kind != "tpt" or not is_run_folder(spec.path):
        return frozenset()
    hashes = []
    for path in runs.data_files(spec.path):
        table = pq.read_table(path, columns=["id", "sample"])
        keys = zip(table.column("id").to_pylist(), table.column("sample").to_pylist())
        hashes.append(np.fromiter((hash(k) for k in keys), dtype=np.int64, count=table.num_rows))
    values, counts = np.unique(np.concatenate(hashes) if hashes else np.zeros(0, np.int64), return_counts=True)
    repeated = values[counts > 1]
    if not len(repeated):
        return frozenset()
    extra = int(counts[counts > 1].sum() - len(repeated))
    message = f"source {spec.describe()}: {extra} record(s) repeat an (id, sample) key of another record"
    if not allow:
        raise PrepareError(
            f"{message}; pass --allow-duplicates to keep the first of each and set the rest aside "
            "(listed in OUT/rejected.parquet)"
        )
    warn(message + "; keeping the first of each (--allow-duplicates)")
    return frozenset(int(v) for v in repeated)


class DocCutter:
    """``--doc-cut prefix``: replace each truncated record's text by the prefix its generator saw.

    A record written by this tpt's augment says where that prefix ends (``doc_cut_chars``): the cut
    is a slice, no tokenizer needed.  Records of older runs (or a backend whose cut is not a prefix)
    say only ``doc_truncated``: their prefix is recomputed with the generator's own tokenizer and
    the run's ``max_doc_tokens``, through the very function augment cut with; that tokenizer is
    checked here, before any compute, but only when some truncated record lacks its offset."""

    def __init__(self, spec: SourceSpec, tokenizer: str):
        self.ops, self.path, self.cut, self.max_tokens = None, tokenizer, 0, None
        if _records_without_offsets(spec):
            self._open_tokenizer(spec, tokenizer)

    def _open_tokenizer(self, spec: SourceSpec, tokenizer: str) -> None:
        from tpt.augment.backends.tokenize import TokenizerOps  # the function augment cut with

        config = runs.run_settings(spec.path)
        self.max_tokens = config.get("max_doc_tokens")
        path = tokenizer or config.get("tokenizer") or config.get("model") or ""
        if not self.max_tokens:
            raise PrepareError(
                f"--doc-cut prefix: {spec.path / 'manifest.json'} has no config.max_doc_tokens "
                "(not a run written by `tpt augment`); use --doc-cut full"
            )
        if not Path(path).is_dir():
            raise PrepareError(
                f"--doc-cut prefix: the generator's tokenizer {path!r} (from {spec.path / 'manifest.json'}) "
                "is not a local folder; pass --doc-cut-tokenizer PATH"
            )
        self.ops, self.path = TokenizerOps(str(path)), path

    def __call__(self, samples: list[Sample]) -> list[Sample]:
        todo = []
        for s in samples:
            if s.doc_truncated and s.doc_cut_chars is not None:
                s.text = s.text[: s.doc_cut_chars]
                self.cut += 1
            elif s.doc_truncated:
                todo.append(s)
        if not todo:
            return samples
        for s, (prefix, n, was_cut) in zip(todo, self.ops.truncate_batch([s.text for s in todo], self.max_tokens)):
            if not was_cut or (s.doc_tokens and n != s.doc_tokens):
                raise PrepareError(
                    f"--doc-cut prefix: {s.where}: the record says the generator saw {s.doc_tokens} document "
                    "tokens, cut "
                    f"to {self.max_tokens}; tokenizer {self.path} counts {n}: not the generator's tokenizer "
                    "(pass the right one with --doc-cut-tokenizer)"
                )
            s.text = prefix
        self.cut += len(todo)
        return samples


def _records_without_offsets(spec: SourceSpec) -> bool:
    """Whether a truncated record of the run lacks ``doc_cut_chars`` (two small columns read per shard;
    a shard of an older tpt has no such column at all)."""
    for path in runs.data_files(spec.path):
        has_offsets = CUT_COLUMN in pq.ParquetFile(path).schema_arrow.names
        table = pq.read_table(path, columns=["doc_truncated"] + [CUT_COLUMN] * has_offsets)
        lacking = pc.fill_null(table.column("doc_truncated"), False)
        if has_offsets:
            lacking = pc.and_(lacking, pc.is_null(table.column(CUT_COLUMN)))
        if pc.any(lacking).as_py():
            return True
    return False


def warn(message: str) -> None:
    print(f"tpt prepare: warning: {message}", file=sys.stderr, flush=True)
