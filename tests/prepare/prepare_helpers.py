"""Builders for `tpt prepare` tests: augment-run folders and raw JSONL written here."""

from __future__ import annotations

import json
import random
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from tpt.records import THINKING_SCHEMA, ThinkingRecord
from tpt.tiny import SAMPLE_TEXTS

WORDS = " ".join(SAMPLE_TEXTS).split()


def sentence(rng: random.Random, n: int) -> str:
    return " ".join(rng.choice(WORDS) for _ in range(n)) + "."


def write_run(folder: Path, records: list[dict], shard: str = "part-00000") -> Path:
    """An augment run folder: ``folder/data/<shard>.parquet`` of thinking records."""
    (folder / "data").mkdir(parents=True, exist_ok=True)
    rows = [ThinkingRecord(**{**RECORD_DEFAULTS, **r}).to_row() for r in records]
    pq.write_table(pa.Table.from_pylist(rows, schema=THINKING_SCHEMA), folder / "data" / f"{shard}.parquet")
    return folder


RECORD_DEFAULTS = dict(
    sample=0,
    finish_reason="stop",
    doc_tokens=0,
    thinking_tokens=0,
    doc_truncated=False,
    strategy="s",
    model="m",
    backend="b",
)


def random_records(n: int, seed: int = 0, prefix: str = "d") -> list[dict]:
    rng = random.Random(seed)
    return [
        {"id": f"{prefix}{i}", "text": sentence(rng, rng.randint(5, 40)), "thinking": sentence(rng, rng.randint(5, 60))}
        for i in range(n)
    ]


def write_jsonl(path: Path, rows: list) -> Path:
    with open(path, "w") as f:
        for row in rows:
            f.write(row if isinstance(row, str) else json.dumps(row))
            f.write("\n")
    return path
