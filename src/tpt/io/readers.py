"""Corpus readers: JSONL (plain, .gz, .zst), Parquet, HF ``save_to_disk`` folders, globs, folders, fsspec URLs.

Reading is split in two so that nothing is lost and a worker reads only its own part:

* ``iter_range(unit, start, stop)`` yields the rows of one *piece* of one file without parsing them:
  a Parquet or HF file's rows ``[start, stop)``, a plain JSONL file's lines that *begin* in bytes
  ``[start, stop)`` (a line belongs to the byte range holding its first byte, so byte ranges that
  tile a file give each line exactly once), a compressed JSONL file whole. ``iter_raw_rows(files)``
  is every row of every file in order (what ``tpt prepare`` reads).
* ``parse_row(raw, text_field, id_field)`` turns one into a ``Document`` or a ``Rejection`` (file,
  line, field, reason): malformed JSON, invalid UTF-8, lone surrogates (which no UTF-8 writer or
  tokenizer accepts), a missing / non-string / empty text, a bad id. A UTF-8 byte-order mark at the
  start of a file is the encoding mark it is, not part of the first row.

A file that cannot be read (a truncated ``.gz``, a Parquet file with a broken footer) becomes one
row whose ``payload`` is a ``ReadError``; ``parse_row`` makes it a rejection naming the file, and
the rows read before the break are kept.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from tpt.io import fs
from tpt.io.fs import AnyPath
from tpt.records import Document

JSONL_SUFFIXES = (".jsonl", ".jsonl.gz", ".jsonl.zst", ".ndjson", ".ndjson.gz", ".ndjson.zst")
PARQUET_SUFFIXES = (".parquet",)
BOM = b"\xef\xbb\xbf"
READ_ERRORS = (OSError, EOFError, ValueError, pa.ArrowException)  # zstd, gzip, pyarrow: all subclasses


class InputError(ValueError):
    """An input that cannot be used at all (named in the message)."""


@dataclass
class ReadError:
    """The payload of the row that stands for the unreadable rest of a file."""

    message: str


class RawRow:
    """One input row, unparsed. ``line`` is 1-based; for a JSONL byte range it is counted lazily (only
    when a rejection needs it), so a worker never reads the part of a file before its own range."""

    __slots__ = ("source", "payload", "_line", "_base")

    def __init__(
        self, source: str, line: int, payload: bytes | dict | ReadError, base: Callable[[], int] | None = None
    ):
        self.source, self.payload, self._line, self._base = source, payload, line, base

    @property
    def line(self) -> int:
        return self._line + self._base() if self._base is not None else self._line

    @property
    def line_is_known(self) -> bool:
        return self._base is None

    def __repr__(self) -> str:
        return f"RawRow({self.source!r}, {self.line}, {self.payload!r})"


@dataclass
class Rejection:
    file: str
    line: int
    field: str
    reason: str
    raw: str = ""

    def to_row(self) -> dict[str, Any]:
        raw = self.raw[:2000].encode("utf-8", "replace").decode("utf-8")  # a rejected row may hold surrogates
        return {"file": self.file, "line": self.line, "field": self.field, "reason": self.reason, "raw": raw}


# ---------------------------------------------------------------------------------------- inputs
def file_kind(path: AnyPath) -> str:
    """parquet | jsonl (seekable: byte ranges) | jsonl-stream (compressed: read whole) | hf."""
    name = fs.name(path)
    if name.endswith(PARQUET_SUFFIXES):
        return "parquet"
    if name.endswith((".gz", ".zst")) and name.endswith(JSONL_SUFFIXES):
        return "jsonl-stream"
    if name.endswith(JSONL_SUFFIXES):
        return "jsonl"
    if is_hf_dataset_dir(path):
        return "hf"
    raise InputError(f"{path}: unsupported input (expected .jsonl[.gz|.zst], .parquet or an HF dataset folder)")


def is_hf_dataset_dir(path: AnyPath) -> bool:
    return fs.is_dir(path) and all(fs.is_file(fs.join(path, n)) for n in ("state.json", "dataset_info.json"))


def resolve_inputs(specs: list[str]) -> list[AnyPath]:
    """Expand files, globs and folders (local or URLs) into a sorted, de-duplicated list of inputs."""
    found: list[AnyPath] = []
    for spec in specs:
        matches = fs.glob_paths(spec) if any(c in spec for c in "*?[") else [fs.as_path(spec)]
        if not matches or not all(fs.exists(m) for m in matches):
            raise FileNotFoundError(f"input {spec!r}: no such file, folder or glob match")
        for path in matches:
            found.extend(_expand(path))
    unique = list(dict.fromkeys(found))
    if not unique:
        raise FileNotFoundError(f"inputs {specs}: no JSONL / Parquet / HF dataset files found")
    return unique


def _expand(path: AnyPath) -> list[AnyPath]:
    if fs.is_file(path) or is_hf_dataset_dir(path):
        return [path]
    if fs.is_dir(path):
        files = fs.walk_files(path)
        datasets = [fs.as_path(str(p)[: -len("/state.json")]) for p in files if fs.name(p) == "state.json"]
        datasets = [d for d in datasets if is_hf_dataset_dir(d)]
        inner = [p for p in files if fs.name(p).endswith(JSONL_SUFFIXES + PARQUET_SUFFIXES)]
        inner = [p for p in inner if not any(fs.is_inside(p, d) for d in datasets)]
        return sorted(inner + datasets, key=str)
    return []


# ---------------------------------------------------------------------------------------- rows
def iter_raw_rows(files: list[AnyPath], skip: int = 0) -> Iterator[RawRow]:
    """Every row of every file, in order; the first ``skip`` rows are passed over. An unreadable file
    raises ``InputError`` naming it (whole-corpus readers have no table to set it aside in)."""
    for path in files:
        if skip and file_kind(path) == "parquet":
            n_rows = _parquet(path).metadata.num_rows  # whole files are skipped without reading
            if skip >= n_rows:
                skip -= n_rows
                continue
        for row in iter_range(path, file_kind(path), 0, -1):
            if isinstance(row.payload, ReadError):
                raise InputError(f"{row.source}: {row.payload.message}")
            if skip:
                skip -= 1
                continue
            yield row


def iter_range(path: AnyPath, kind: str, start: int, stop: int) -> Iterator[RawRow]:
    """The rows of one piece of a file (``stop=-1``: to the end). A read error ends the piece with one
    ``ReadError`` row naming the file; the rows before it were yielded and are kept."""
    readers = {"parquet": _parquet_rows, "hf": _hf_rows, "jsonl": _jsonl_range, "jsonl-stream": _jsonl_stream}
    line = 0
    try:
        for row in readers[kind](path, start, stop):
            line = row._line
            yield row
    except READ_ERRORS as exc:
        message = f"unreadable file ({type(exc).__name__}: {exc}); rows before this point were kept"
        yield RawRow(str(path), line + 1, ReadError(message))


def _parquet(path: AnyPath) -> pq.ParquetFile:
    return pq.ParquetFile(fs.open_binary(path) if isinstance(path, str) else path)


def _parquet_rows(path: AnyPath, start: int, stop: int) -> Iterator[RawRow]:
    """Rows [start, stop) of a Parquet file, reading only the row groups that overlap them."""
    pf = _parquet(path)
    stop = pf.metadata.num_rows if stop < 0 else stop
    first = 0
    for group in range(pf.metadata.num_row_groups):
        n = pf.metadata.row_group(group).num_rows
        lo, hi = max(start, first), min(stop, first + n)
        if lo < hi:
            table = pf.read_row_group(group).slice(lo - first, hi - lo)
            for offset, item in enumerate(table.to_pylist()):
                yield RawRow(str(path), lo + offset + 1, item)
        first += n
        if first >= stop:
            break


def hf_stream_files(path: AnyPath) -> list[AnyPath]:
    state = json.loads(fs.read_text(fs.join(path, "state.json")))
    return [fs.join(path, entry["filename"]) for entry in state.get("_data_files", [])]


def _hf_batches(path: AnyPath) -> Iterator[pa.RecordBatch]:
    """``datasets.Dataset.save_to_disk`` folders: Arrow IPC *streams* listed in state.json."""
    for file in hf_stream_files(path):
        source = pa.memory_map(str(file)) if isinstance(file, Path) else fs.open_binary(file)
        with source:
            yield from pa.ipc.open_stream(source)


def hf_num_rows(path: AnyPath) -> int:
    return sum(batch.num_rows for batch in _hf_batches(path))  # memory-mapped: headers only, no copy


def _hf_rows(path: AnyPath, start: int, stop: int) -> Iterator[RawRow]:
    first = 0
    for batch in _hf_batches(path):
        lo, hi = max(start, first), batch.num_rows + first if stop < 0 else min(stop, first + batch.num_rows)
        if lo < hi:
            for offset, item in enumerate(batch.slice(lo - first, hi - lo).to_pylist()):
                yield RawRow(str(path), lo + offset + 1, item)
        first += batch.num_rows
        if 0 <= stop <= first:
            break


def _jsonl_stream(path: AnyPath, start: int, stop: int) -> Iterator[RawRow]:
    with _open_compressed(path) as fh:
        for i, line in enumerate(fh, start=1):
            if i == 1 and line.startswith(BOM):
                line = line[len(BOM) :]
            if line.strip():
                yield RawRow(str(path), i, line)


def _open_compressed(path: AnyPath):
    raw = fs.open_binary(path)
    if fs.name(path).endswith(".gz"):
        return gzip.open(raw, "rb")
    import zstandard

    return io.BufferedReader(zstandard.ZstdDecompressor().stream_reader(raw, closefd=True))


class _LineBase:
    """Lines before byte ``start`` of a file, counted once, on first use."""

    def __init__(self, path: AnyPath, start: int):
        self.path, self.start, self.value = path, start, None

    def __call__(self) -> int:
        if self.value is None:
            count, left = 0, self.start
            with fs.open_binary(self.path) as fh:
                while left > 0:
                    block = fh.read(min(left, 1 << 22))
                    if not block:
                        break
                    count, left = count + block.count(b"\n"), left - len(block)
            self.value = count
        return self.value


def _jsonl_range(path: AnyPath, start: int, stop: int) -> Iterator[RawRow]:
    """Lines whose first byte lies in [start, stop); ``line`` counts from the range's first line."""
    base = _LineBase(path, start) if start > 0 else None
    with fs.open_binary(path) as fh:
        position, i = start, 0  # i: lines passed since the last newline before ``start``
        if start > 0:
            fh.seek(start - 1)
            if fh.read(1) != b"\n":  # mid-line: that line belongs to the previous range
                position, i = start + len(fh.readline()), 1
        else:
            fh.seek(0)
        while stop < 0 or position < stop:
            line = fh.readline()
            if not line:
                break
            i += 1
            position += len(line)
            if i == 1 and start == 0 and line.startswith(BOM):
                line = line[len(BOM) :]
            if line.strip():
                yield RawRow(str(path), i, line, base)


# ---------------------------------------------------------------------------------------- parsing
def content_id(text: str) -> str:
    return hashlib.sha1(text.encode("utf-8")).hexdigest()[:20]


def json_object(raw: RawRow) -> dict | Rejection:
    """The row as a JSON object, or a ``Rejection`` saying why it is not one (its file could not be
    read, invalid UTF-8, malformed JSON, another JSON value): for stages that read their own fields."""
    item = raw.payload
    if isinstance(item, ReadError):
        return Rejection(raw.source, raw.line, "", item.message)
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
        return Rejection(raw.source, raw.line, "", f"expected a JSON object, got {type(item).__name__}", str(item))
    return item


def parse_row(raw: RawRow, text_field: str = "text", id_field: str | None = None) -> Document | Rejection:
    """A ``Document``, or a ``Rejection`` saying which file, line and field was wrong and why."""
    item = raw.payload
    if isinstance(item, ReadError):
        return Rejection(raw.source, raw.line, "", item.message)
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
        # A lone surrogate in decoded JSON can only come from a \\u escape: a line without one skips the walk.
        return _document(item, raw, text_field, id_field, check_unicode="\\u" in decoded)
    return _document(item, raw, text_field, id_field)


def _document(
    item: dict, raw: RawRow, text_field: str, id_field: str | None, check_unicode: bool = True
) -> Document | Rejection:
    text = item.get(text_field)
    if text_field not in item:
        return Rejection(raw.source, raw.line, text_field, "missing text field", _preview(item))
    if not isinstance(text, str):
        reason = f"text is {type(text).__name__}, not a string"
        return Rejection(raw.source, raw.line, text_field, reason, _preview(item))
    if not text.strip():
        return Rejection(raw.source, raw.line, text_field, "empty document", _preview(item))
    bad = unstorable_field(item) if check_unicode else None
    if bad is not None:
        return Rejection(raw.source, raw.line, bad[0], bad[1], _preview(item))
    key = id_field or ("id" if "id" in item else None)
    if key is None:
        doc_id = content_id(text)
    elif item.get(key) is None or isinstance(item.get(key), (dict, list)):
        return Rejection(raw.source, raw.line, key, "missing or non-scalar id", _preview(item))
    else:
        doc_id = str(item[key])
    meta = {k: v for k, v in item.items() if k not in (text_field, key)}
    line = raw.line if raw.line_is_known else 0  # a byte range's line numbers are counted only for rejections
    return Document(id=doc_id, text=text, meta=meta, source=raw.source, line=line)


def unstorable_field(item: dict) -> tuple[str, str] | None:
    """(field, reason) for the first value no UTF-8 writer can store (a lone surrogate, which JSON's
    ``"\\ud800"`` escapes produce and tokenizers and Parquet reject), else None."""
    for key, value in item.items():
        for text in _strings(key, value):
            try:
                text.encode("utf-8")
            except UnicodeEncodeError as exc:
                name = str(key).encode("utf-8", "backslashreplace").decode()
                return name, (
                    f"lone surrogate {ascii(text[exc.start])} at position {exc.start}: not valid Unicode "
                    "text, cannot be stored or tokenized"
                )
    return None


def _strings(key: Any, value: Any) -> Iterator[str]:
    if isinstance(key, str):
        yield key
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for k, v in value.items():
            yield from _strings(k, v)
    elif isinstance(value, (list, tuple)):
        for v in value:
            yield from _strings(None, v)


def _preview(item: Any) -> str:
    return json.dumps(item, ensure_ascii=False, default=str)[:2000]
