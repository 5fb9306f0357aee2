"""Corpus readers: JSONL (plain, .gz, .zst), Parquet, HF ``save_to_disk`` folders, globs, folders.

Reading is split in two so that skipping is cheap and nothing is lost:

* ``iter_raw_rows(files)`` yields every input row in a fixed order (sorted files, file order)
  as ``RawRow(source, line, payload)`` without parsing it; a row's position in this stream is its
  *ordinal*, which decides its shard.
* ``parse_row(raw, text_field, id_field)`` turns one into a ``Document`` or a ``Rejection`` (file,
  line, field, reason): malformed JSON, invalid UTF-8, a missing / non-string / empty text.
"""

from __future__ import annotations

import glob
import gzip
import hashlib
import io
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator, Optional, Union

import pyarrow as pa
import pyarrow.parquet as pq

from tpt.records import Document

JSONL_SUFFIXES = (".jsonl", ".jsonl.gz", ".jsonl.zst", ".ndjson", ".ndjson.gz", ".ndjson.zst")
PARQUET_SUFFIXES = (".parquet",)


@dataclass
class RawRow:
    source: str
    line: int  # 1-based line (JSONL) or row (Parquet / Arrow)
    payload: Union[bytes, dict]  # a JSONL line's bytes, or a table row


@dataclass
class Rejection:
    file: str
    line: int
    field: str
    reason: str
    raw: str = ""

    def to_row(self) -> dict[str, Any]:
        return {"file": self.file, "line": self.line, "field": self.field, "reason": self.reason, "raw": self.raw[:2000]}


def is_hf_dataset_dir(path: Path) -> bool:
    return path.is_dir() and (path / "state.json").is_file() and (path / "dataset_info.json").is_file()


def resolve_inputs(specs: list[str]) -> list[Path]:
    """Expand files, globs and folders into a sorted, de-duplicated list of readable inputs."""
    found: list[Path] = []
    for spec in specs:
        matches = [Path(p) for p in sorted(glob.glob(spec))] if any(c in spec for c in "*?[") else [Path(spec)]
        if not matches or not all(m.exists() for m in matches):
            raise FileNotFoundError(f"input {spec!r}: no such file, folder or glob match")
        for path in matches:
            found.extend(_expand(path))
    unique = list(dict.fromkeys(found))
    if not unique:
        raise FileNotFoundError(f"inputs {specs}: no JSONL / Parquet / HF dataset files found")
    return unique


def _expand(path: Path) -> list[Path]:
    if path.is_file() or is_hf_dataset_dir(path):
        return [path]
    if path.is_dir():
        inner = [p for p in sorted(path.rglob("*")) if p.is_file() and p.name.endswith(JSONL_SUFFIXES + PARQUET_SUFFIXES)]
        datasets = [p for p in sorted(path.rglob("state.json")) if is_hf_dataset_dir(p.parent)]
        inner = [p for p in inner if not any(d.parent in p.parents for d in datasets)]
        return sorted(inner + [d.parent for d in datasets])
    return []


def iter_raw_rows(files: list[Path], skip: int = 0) -> Iterator[RawRow]:
    """Every row of every file, in order; the first ``skip`` rows are passed over cheaply."""
    for path in files:
        if skip and path.name.endswith(PARQUET_SUFFIXES):
            n_rows = pq.ParquetFile(path).metadata.num_rows  # whole files are skipped without reading
            if skip >= n_rows:
                skip -= n_rows
                continue
        for row in _iter_file(path):
            if skip:
                skip -= 1
                continue
            yield row


def _iter_file(path: Path) -> Iterator[RawRow]:
    name = path.name
    if is_hf_dataset_dir(path):
        yield from _iter_hf_dataset(path)
    elif name.endswith(PARQUET_SUFFIXES):
        yield from _iter_table(str(path), pq.ParquetFile(path).iter_batches(batch_size=4096))
    elif name.endswith(JSONL_SUFFIXES):
        with _open_jsonl(path) as fh:
            for i, line in enumerate(fh, start=1):
                if line.strip():
                    yield RawRow(str(path), i, line)
    else:
        raise ValueError(f"{path}: unsupported input (expected .jsonl[.gz|.zst], .parquet or an HF dataset folder)")


def _open_jsonl(path: Path):
    if path.name.endswith(".gz"):
        return gzip.open(path, "rb")
    if path.name.endswith(".zst"):
        import zstandard

        return io.BufferedReader(zstandard.ZstdDecompressor().stream_reader(open(path, "rb"), closefd=True))
    return open(path, "rb")


def _iter_table(source: str, batches) -> Iterator[RawRow]:
    row = 0
    for batch in batches:
        for item in batch.to_pylist():
            row += 1
            yield RawRow(source, row, item)


def _iter_hf_dataset(path: Path) -> Iterator[RawRow]:
    """``datasets.Dataset.save_to_disk`` folders: Arrow IPC *streams* listed in state.json."""
    state = json.loads((path / "state.json").read_text())
    row = 0
    for entry in state.get("_data_files", []):
        with pa.memory_map(str(path / entry["filename"])) as source:
            for batch in pa.ipc.open_stream(source):
                for item in batch.to_pylist():
                    row += 1
                    yield RawRow(str(path), row, item)


def content_id(text: str) -> str:
    return hashlib.sha1(text.encode("utf-8")).hexdigest()[:20]


def parse_row(raw: RawRow, text_field: str = "text", id_field: Optional[str] = None) -> Union[Document, Rejection]:
    """A ``Document``, or a ``Rejection`` saying which file, line and field was wrong and why."""
    item = raw.payload
    if isinstance(item, bytes):
        try:
            decoded = item.decode("utf-8")
        except UnicodeDecodeError as exc:
            return Rejection(raw.source, raw.line, "", f"invalid UTF-8: {exc}", item.decode("utf-8", "replace"))
        try:
            item = json.loads(decoded)
        except json.JSONDecodeError as exc:
            return Rejection(raw.source, raw.line, "", f"malformed JSON: {exc}", decoded)
        if not isinstance(item, dict):
            return Rejection(raw.source, raw.line, "", f"expected a JSON object, got {type(item).__name__}", decoded)
    return _document(item, raw, text_field, id_field)


def _document(item: dict, raw: RawRow, text_field: str, id_field: Optional[str]) -> Union[Document, Rejection]:
    text = item.get(text_field)
    if text_field not in item:
        return Rejection(raw.source, raw.line, text_field, "missing text field", _preview(item))
    if not isinstance(text, str):
        return Rejection(raw.source, raw.line, text_field, f"text is {type(text).__name__}, not a string", _preview(item))
    if not text.strip():
        return Rejection(raw.source, raw.line, text_field, "empty document", _preview(item))
    key = id_field or ("id" if "id" in item else None)
    if key is None:
        doc_id = content_id(text)
    elif item.get(key) is None or isinstance(item.get(key), (dict, list)):
        return Rejection(raw.source, raw.line, key, "missing or non-scalar id", _preview(item))
    else:
        doc_id = str(item[key])
    meta = {k: v for k, v in item.items() if k not in (text_field, key)}
    return Document(id=doc_id, text=text, meta=meta, source=raw.source, line=raw.line)


def _preview(item: Any) -> str:
    return json.dumps(item, ensure_ascii=False, default=str)[:2000]
