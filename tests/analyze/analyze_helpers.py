"""Helpers for tpt analyze / tpt filter tests: thinking records and augment runs as real Parquet shards."""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from tpt.records import THINKING_SCHEMA


def record(
    i: int,
    thinking_tokens: int,
    doc_tokens: int,
    meta: dict | str | None = None,
    *,
    text: str = "doc",
    thinking: str = "thinking",
    finish_reason: str = "stop",
    sample: int = 0,
) -> dict:
    return {
        "id": f"doc-{i}",
        "sample": sample,
        "text": text,
        "thinking": thinking,
        "finish_reason": finish_reason,
        "doc_tokens": doc_tokens,
        "thinking_tokens": thinking_tokens,
        "doc_truncated": False,
        "strategy": "default",
        "model": "test-model",
        "backend": "test",
        "meta": meta if isinstance(meta, str) or meta is None else json.dumps(meta),
    }


def write_run(run: Path, shards: list[list[dict]], manifest: dict | None = None) -> Path:
    (run / "data").mkdir(parents=True, exist_ok=True)
    for k, rows in enumerate(shards):
        pq.write_table(pa.Table.from_pylist(rows, schema=THINKING_SCHEMA), run / "data" / f"part-{k:05d}.parquet")
    (run / "manifest.json").write_text(json.dumps(manifest or {"config": {"model": "test-model"}}))
    return run
