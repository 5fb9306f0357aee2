"""Table, JSON and marker writers; all atomic through ``tpt.io.atomic`` (a reader never sees half a file)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from tpt.io.atomic import atomic_write, atomic_write_text


def write_table(path: str | Path, rows: list[dict[str, Any]], schema: pa.Schema) -> Path:
    """Write ``rows`` as one zstd Parquet file, atomically."""
    table = pa.Table.from_pylist(rows, schema=schema)
    return atomic_write(path, lambda tmp: pq.write_table(table, tmp, compression="zstd"))


def read_table_rows(path: str | Path) -> list[dict[str, Any]]:
    return pq.read_table(path).to_pylist()


def write_json(path: str | Path, obj: Any) -> Path:
    text = json.dumps(obj, indent=2, ensure_ascii=False, default=str) + "\n"
    return atomic_write_text(path, text)


def touch_marker(path: str | Path, content: str = "") -> Path:
    return atomic_write_text(path, content)
