"""Atomic writers: a reader never sees a half-written file (temp file in the same folder + rename)."""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq


def _atomic(path: Path, write) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    # The temp name starts with '.' and ends in '.tmp' so globs like data/*.parquet never match it.
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        write(tmp)
        with open(tmp, "rb+") as fh:
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def write_table(path: str | Path, rows: list[dict[str, Any]], schema: pa.Schema) -> Path:
    """Write ``rows`` as one zstd Parquet file, atomically."""
    table = pa.Table.from_pylist(rows, schema=schema)
    return _atomic(Path(path), lambda tmp: pq.write_table(table, tmp, compression="zstd"))


def read_table_rows(path: str | Path) -> list[dict[str, Any]]:
    return pq.read_table(path).to_pylist()


def write_json(path: str | Path, obj: Any) -> Path:
    text = json.dumps(obj, indent=2, ensure_ascii=False, default=str) + "\n"

    def write(tmp: str) -> None:
        Path(tmp).write_text(text, encoding="utf-8")

    return _atomic(Path(path), write)


def touch_marker(path: str | Path, content: str = "") -> Path:
    return _atomic(Path(path), lambda tmp: Path(tmp).write_text(content))
