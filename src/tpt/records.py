"""Typed records that flow between stages, and their Arrow schemas.

A thinking record is keyed by (id, sample) and is unique in a run.  Later stages and users'
own tools read these columns, so they are a stable contract (see ../shared/DESIGN.md).
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from typing import Any

import pyarrow as pa


@dataclass
class Document:
    """One input row: its text, its id, and every other field as ``meta``."""

    id: str
    text: str
    meta: dict[str, Any] = field(default_factory=dict)
    source: str = ""  # file it came from
    line: int = 0  # 1-based line (JSONL) or row (Parquet / HF) number in that file


@dataclass
class ThinkingRecord:
    id: str
    sample: int
    text: str
    thinking: str
    finish_reason: str  # "stop" | "length"
    doc_tokens: int
    thinking_tokens: int
    doc_truncated: bool
    strategy: str
    model: str
    backend: str
    meta: dict[str, Any] = field(default_factory=dict)
    # the generator saw text[:doc_cut_chars]; None when it saw the whole text (or its cut was not a
    # prefix of the text, or the record predates this column)
    doc_cut_chars: int | None = None

    def to_row(self) -> dict[str, Any]:
        row = asdict(self)
        row["meta"] = json.dumps(self.meta, ensure_ascii=False, default=str)
        return row

    @classmethod
    def from_row(cls, row: dict[str, Any]) -> ThinkingRecord:
        row = dict(row)
        meta = row.get("meta") or "{}"
        row["meta"] = json.loads(meta) if isinstance(meta, str) else dict(meta)
        return cls(**{k: row[k] for k in cls.__dataclass_fields__ if k in row or k not in OPTIONAL_COLUMNS})


# meta is stored as a JSON string: input metadata is heterogeneous across corpora, and a
# struct column would force one schema on every shard of every run.
THINKING_SCHEMA = pa.schema(
    [
        ("id", pa.string()),
        ("sample", pa.int32()),
        ("text", pa.string()),
        ("thinking", pa.string()),
        ("finish_reason", pa.string()),
        ("doc_tokens", pa.int32()),
        ("thinking_tokens", pa.int32()),
        ("doc_truncated", pa.bool_()),
        ("strategy", pa.string()),
        ("model", pa.string()),
        ("backend", pa.string()),
        ("meta", pa.string()),
        ("doc_cut_chars", pa.int64()),
    ]
)
# Columns added after the first runs were written: a shard without them is still a valid run, read
# as if they were null (``conform``).
OPTIONAL_COLUMNS = ("doc_cut_chars",)
REQUIRED_COLUMNS = [name for name in THINKING_SCHEMA.names if name not in OPTIONAL_COLUMNS]


def conform(batch: pa.RecordBatch | pa.Table) -> pa.Table:
    """A batch of thinking records as a THINKING_SCHEMA table: optional columns it lacks are nulls."""
    table = pa.Table.from_batches([batch]) if isinstance(batch, pa.RecordBatch) else batch
    for name in OPTIONAL_COLUMNS:
        if name not in table.column_names:
            table = table.append_column(
                THINKING_SCHEMA.field(name), pa.nulls(table.num_rows, THINKING_SCHEMA.field(name).type)
            )
    return table.select(THINKING_SCHEMA.names).cast(THINKING_SCHEMA)


# Rows that could not be read: nothing disappears without a row saying why.
REJECTED_SCHEMA = pa.schema(
    [("file", pa.string()), ("line", pa.int64()), ("field", pa.string()), ("reason", pa.string()), ("raw", pa.string())]
)

# Documents whose generation failed after retries; retried on the next run.
FAILED_SCHEMA = pa.schema(
    [("id", pa.string()), ("sample", pa.int32()), ("error", pa.string()), ("attempts", pa.int32())]
)
