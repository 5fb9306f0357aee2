"""Read a source as batches of samples (id, text, thinking, finish_reason), setting bad rows aside.

An augment run folder is read with ``tpt.io.runs``; raw JSONL / Parquet corpora with
``tpt.io.readers``.  Every row that cannot become a sample becomes a ``Rejection`` (file, line,
field, reason) in the caller's list: nothing is dropped without a row saying why.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pyarrow.parquet as pq

from tpt.formats import is_run_folder  # noqa: F401 (re-exported for prepare.inputs, tokenizer_cli)
from tpt.io import readers, runs
from tpt.io.readers import Rejection
from tpt.prepare.config import PrepareError, SourceSpec

RUN_COLUMNS = ["id", "sample", "text", "thinking", "finish_reason", "doc_tokens", "thinking_tokens", "doc_truncated"]
CUT_COLUMN = "doc_cut_chars"  # optional: runs of an older tpt lack it (read as null)


@dataclass
class Sample:
    id: str
    text: str
    thinking: str | None = None  # None for vanilla samples
    finish_reason: str | None = None
    sample: int = 0
    doc_tokens: int = 0  # with the generator's tokenizer (thinking records only)
    thinking_tokens: int = 0
    doc_truncated: bool = False  # the generator saw only a prefix of text
    where: str = ""  # FILE:ROW, for error messages
    doc_cut_chars: int | None = None  # that prefix is text[:doc_cut_chars], when the record says


def check_source(spec: SourceSpec, text_field: str = "text") -> list[Path]:
    """Fail fast (before any tokenization) on a missing path or a corrupt / incomplete shard."""
    if not spec.path.exists():
        raise PrepareError(f"source {spec.describe()}: {spec.path} does not exist")
    if is_run_folder(spec.path):
        files, needed = runs.data_files(spec.path), RUN_COLUMNS
        if not files:
            raise PrepareError(f"source {spec.describe()}: {spec.path / 'data'} holds no .parquet shards")
    elif spec.kind == "tpt":
        raise PrepareError(f"source {spec.describe()}: kind 'tpt' needs an augment run folder (with data/*.parquet)")
    else:
        try:
            files = readers.resolve_inputs([str(spec.path)])
        except FileNotFoundError as e:
            raise PrepareError(f"source {spec.describe()}: {e}") from e
        needed = [text_field]
    rows = 0
    for path in files:
        if path.name.endswith(readers.PARQUET_SUFFIXES):
            rows += _check_parquet(path, needed)
        elif not (path.name.endswith(readers.JSONL_SUFFIXES) or readers.is_hf_dataset_dir(path)):
            raise PrepareError(
                f"source {spec.describe()}: {path}: unsupported file (expected .jsonl[.gz|.zst] or .parquet)"
            )
    if is_run_folder(spec.path) and rows == 0:
        raise PrepareError(
            f"source {spec.describe()}: 0 records in {spec.path / 'data'} (filtered to nothing?); drop the source"
        )
    return files


def _check_parquet(path: Path, columns: list[str]) -> int:
    """-> the file's row count (from its footer)."""
    try:
        parquet = pq.ParquetFile(path)
        names = parquet.schema_arrow.names
    except Exception as e:  # pyarrow raises several types for truncated / garbage files
        raise PrepareError(f"{path}: corrupt or unreadable Parquet shard ({e})") from e
    missing = [c for c in columns if c not in names]
    if missing:
        raise PrepareError(f"{path}: missing column(s) {missing} (has {names})")
    return parquet.metadata.num_rows


def iter_sample_batches(
    spec: SourceSpec,
    rejected: list[Rejection],
    batch_size: int = 1024,
    text_field: str = "text",
    id_field: str | None = None,
    duplicates: frozenset = frozenset(),
) -> Iterator[list[Sample]]:
    """Batches of valid samples of one source; bad rows are appended to ``rejected``."""
    if is_run_folder(spec.path):
        rows = _run_samples(spec, rejected, duplicates)
    else:
        rows = _raw_samples(spec, rejected, text_field, id_field)
    batch: list[Sample] = []
    for sample in rows:
        batch.append(sample)
        if len(batch) >= batch_size:
            yield batch
            batch = []
    if batch:
        yield batch


def _run_samples(spec: SourceSpec, rejected: list[Rejection], duplicates: frozenset = frozenset()) -> Iterator[Sample]:
    """Thinking records; for a vanilla source each document once (a run may hold several samples).

    ``duplicates``: hashes of (id, sample) keys that occur more than once (``inputs.duplicate_keys``);
    every occurrence after the first is set aside as a rejected row."""
    tpt = spec.kind == "tpt"
    seen: set = set()
    for path in runs.data_files(spec.path):
        line = 0
        for cols in _column_batches(path):
            cuts = cols.get(CUT_COLUMN) or [None] * len(cols["id"])
            for *row, cut in zip(*(cols[c] for c in RUN_COLUMNS), cuts):
                line += 1
                doc_id, sample = row[0], row[1]
                problem = _record_problem(doc_id, row[2], row[3], tpt)
                if not problem and tpt and hash((doc_id, sample)) in duplicates:
                    problem = _repeated((doc_id, sample), seen)
                if problem:
                    rejected.append(Rejection(str(path), line, problem[0], problem[1], str(doc_id)))
                elif tpt:
                    yield Sample(
                        doc_id,
                        row[2],
                        row[3],
                        row[4],
                        sample or 0,
                        row[5] or 0,
                        row[6] or 0,
                        bool(row[7]),
                        f"{path}:{line}",
                        cut,
                    )
                elif doc_id not in seen:
                    seen.add(doc_id)
                    yield Sample(doc_id, row[2], where=f"{path}:{line}")


def _repeated(key: tuple, seen: set) -> tuple[str, str] | None:
    """The problem of a repeated (id, sample) key: every occurrence after the first is set aside."""
    if key in seen:
        return "id", f"duplicate (id, sample) key {key}: its first record was kept"
    seen.add(key)
    return None


def _column_batches(path: Path) -> Iterator[dict]:
    """A run shard's columns in batches; a shard that breaks mid-read is an error naming the file."""
    parquet = pq.ParquetFile(path)
    columns = RUN_COLUMNS + [CUT_COLUMN] * (CUT_COLUMN in parquet.schema_arrow.names)
    batches = parquet.iter_batches(batch_size=4096, columns=columns)
    while True:
        try:
            batch = next(batches)
        except StopIteration:
            return
        except Exception as e:  # pyarrow raises several types for a corrupt page
            raise PrepareError(f"{path}: corrupt Parquet shard ({e})") from e
        yield batch.to_pydict()


def _record_problem(doc_id, text, thinking, tpt: bool) -> tuple[str, str] | None:
    """(field, reason) when a thinking record cannot become a sample, else None."""
    if doc_id is None or doc_id == "":
        return "id", "missing id"
    if not isinstance(text, str) or not text.strip():
        return "text", "missing or empty text"
    if tpt and (not isinstance(thinking, str) or not thinking.strip()):
        return "thinking", "missing or empty thinking"
    return None


def _raw_samples(
    spec: SourceSpec, rejected: list[Rejection], text_field: str, id_field: str | None
) -> Iterator[Sample]:
    files = readers.resolve_inputs([str(spec.path)])
    for raw in readers.iter_raw_rows(files):
        doc = readers.parse_row(raw, text_field, id_field)
        if isinstance(doc, Rejection):
            rejected.append(doc)
        else:
            yield Sample(doc.id, doc.text)
