"""Exports for the trainers people use at scale (see docs/exports.md).

* ``--format megatron``: one Megatron-LM indexed dataset per source, ``OUT/<name>.bin`` +
  ``OUT/<name>.idx``: one sequence per document (``[d; t]`` or ``d``) with EOS appended, no
  packing (Megatron's GPTDataset packs, splits and blends itself: ``--data-path W1 OUT/src0 ...``).
  The ``.bin`` is exactly pass 1's token cache, so the export costs one tokenization; the
  ``.idx`` is written here (layout of megatron.core.datasets.indexed_dataset, version 1), so
  megatron-core is needed only to read it.
* ``--format text``: ``OUT/text-*.parquet`` with the rendered sample in ``text`` (no EOS: the
  trainer's tokenizer adds its own) and provenance columns, for HF datasets, torchtitan,
  nanotron and litdata, which tokenize themselves.  No tokenizer is needed.
"""

from __future__ import annotations

import re
import shutil
import struct
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from tpt.io.readers import Rejection
from tpt.prepare.config import SourceSpec
from tpt.prepare.formatting import FIELDS, LengthStats, apply_length_policy
from tpt.prepare.sources import Sample, iter_sample_batches

MEGATRON_INDEX_HEADER = b"MMIDIDX\x00\x00"
# megatron.core.datasets.indexed_dataset.DType codes; uint32 ids are stored as int32 (the same
# bytes for every id below 2**31), Megatron's own choice for vocabularies over 65,535.
MEGATRON_DTYPE_CODES = {np.dtype(np.uint16): 8, np.dtype(np.uint32): 4, np.dtype(np.int32): 4}

TEXT_SCHEMA = pa.schema([
    ("text", pa.string()), ("id", pa.string()), ("sample", pa.int32()), ("source", pa.string()), ("kind", pa.string()),
    ("doc_truncated", pa.bool_()), ("thinking_tokens", pa.int32()), ("finish_reason", pa.string()),
])  # fmt: skip
TEXT_ROWS_PER_FILE = 100_000


def megatron_prefix(index: int, spec: SourceSpec) -> str:
    """File prefix of a source's dataset: its order and a readable name (``source-0-aug1-tpt``)."""
    name = re.sub(r"[^\w.-]+", "-", f"{spec.path.name}-{spec.kind}").strip("-")
    return f"source-{index}-{name}"


def write_megatron_index(path: Path, lengths: np.ndarray, dtype: np.dtype) -> Path:
    """``PREFIX.idx`` for documents of ``lengths`` tokens stored back to back in ``PREFIX.bin``."""
    dtype = np.dtype(dtype)
    lengths = np.asarray(lengths, dtype=np.int32)
    pointers = np.zeros(len(lengths), dtype=np.int64)
    np.cumsum(lengths[:-1].astype(np.int64) * dtype.itemsize, out=pointers[1:])
    documents = np.arange(len(lengths) + 1, dtype=np.int64)  # one sequence per document
    with open(path, "wb") as f:
        f.write(MEGATRON_INDEX_HEADER)
        f.write(struct.pack("<Q", 1))  # version
        f.write(struct.pack("<B", MEGATRON_DTYPE_CODES[dtype]))
        f.write(struct.pack("<Q", len(lengths)))
        f.write(struct.pack("<Q", len(documents)))
        f.write(lengths.tobytes(order="C"))
        f.write(pointers.tobytes(order="C"))
        f.write(documents.tobytes(order="C"))
    return path


def export_megatron(tmp: Path, specs: list[SourceSpec], caches: list, dtype: np.dtype) -> list[dict]:
    """Move each source's token cache to ``PREFIX.bin`` and write its ``PREFIX.idx``."""
    out = []
    for i, (spec, cache) in enumerate(zip(specs, caches)):
        prefix = megatron_prefix(i, spec)
        shutil.move(tmp / "_cache" / f"source-{i}.bin", tmp / f"{prefix}.bin")
        write_megatron_index(tmp / f"{prefix}.idx", cache.lengths, dtype)
        out.append(
            {
                "source": spec.describe(),
                "prefix": prefix,
                "documents": cache.num_docs,
                "tokens": int(cache.offsets[-1]),
                "rejected_rows": cache.rejected,
                "length_dropped": cache.length.dropped,
                "length_cut": cache.length.cut,
            }
        )
    return out


def megatron_data_path(specs: list[SourceSpec], exported: list[dict]) -> str:
    """The ``--data-path`` value for Megatron-LM: each source's weight, then its prefix."""
    return " ".join(f"{spec.weight:g} {e['prefix']}" for spec, e in zip(specs, exported))


class TemplateRenderer:
    """``[d; t]`` as text through the template (fields substituted once: a document holding
    "{thinking}" stays as it is)."""

    def __init__(self, template: str):
        self.parts = [p for p in re.split(r"(\{text\}|\{thinking\})", template) if p]

    def __call__(self, sample: Sample) -> str:
        if sample.thinking is None:
            return sample.text
        return "".join(sample.text if p == FIELDS[0] else sample.thinking if p == FIELDS[1] else p for p in self.parts)


def export_text(
    tmp: Path,
    specs: list[SourceSpec],
    rejected: list[Rejection],
    template: str,
    options: dict,
    cutters: list,
    duplicates: list,
) -> list[dict]:
    """Every usable record of each source, once, rendered, into ``text-NNNNN.parquet`` files."""
    render, files, out = TemplateRenderer(template), _TextFiles(tmp), []
    for spec, cutter, dups in zip(specs, cutters, duplicates):
        stats, rows, before = LengthStats(), 0, len(rejected)
        for batch in _batches(spec, rejected, options, cutter, dups):
            kept = [k for s in batch if (k := apply_length_policy(s, options["on_length"], stats)) is not None]
            files.write(_text_table(kept, render, spec))
            rows += len(kept)
        out.append(
            {
                "source": spec.describe(),
                "path": str(spec.path),
                "kind": spec.kind,
                "weight": spec.weight,
                "documents": rows,
                "rejected_rows": len(rejected) - before,
                "length_dropped": stats.dropped,
                "length_cut": stats.cut,
            }
        )
    files.close()
    return out


def _batches(spec, rejected, options: dict, cutter, dups) -> Iterator[list[Sample]]:
    batches = iter_sample_batches(
        spec, rejected, options["batch_docs"], options["text_field"], options["id_field"], dups
    )
    return map(cutter, batches) if cutter else batches


def _text_table(samples: list[Sample], render: TemplateRenderer, spec: SourceSpec) -> pa.Table:
    return pa.table({
        "text": [render(s) for s in samples], "id": [s.id for s in samples], "sample": [s.sample for s in samples],
        "source": [spec.describe()] * len(samples), "kind": [spec.kind] * len(samples),
        "doc_truncated": [s.doc_truncated for s in samples], "thinking_tokens": [s.thinking_tokens for s in samples],
        "finish_reason": [s.finish_reason for s in samples],
    }, schema=TEXT_SCHEMA)  # fmt: skip


class _TextFiles:
    """Parquet files of at most TEXT_ROWS_PER_FILE rows: bounded memory, files a loader can shard."""

    def __init__(self, root: Path):
        self.root, self.count, self.rows = root, 0, 0
        self.writer: pq.ParquetWriter | None = None

    def write(self, table: pa.Table) -> None:
        while table.num_rows:
            if self.writer is None:
                self.writer = pq.ParquetWriter(
                    self.root / f"text-{self.count:05d}.parquet", TEXT_SCHEMA, compression="zstd"
                )
            take = min(table.num_rows, TEXT_ROWS_PER_FILE - self.rows)
            self.writer.write_table(table.slice(0, take))
            table, self.rows = table.slice(take), self.rows + take
            if self.rows == TEXT_ROWS_PER_FILE:
                self._next()

    def _next(self) -> None:
        self.writer.close()
        self.writer, self.count, self.rows = None, self.count + 1, 0

    def close(self) -> None:
        if self.writer is not None:
            self._next()
        if self.count == 0:  # an empty export is still a readable dataset
            pq.write_table(TEXT_SCHEMA.empty_table(), self.root / "text-00000.parquet")
