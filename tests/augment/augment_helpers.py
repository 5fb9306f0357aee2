"""Helpers shared by the augment tests (a uniquely named module: tests/ has no packages)."""

from __future__ import annotations

import json
from pathlib import Path

from tpt.augment.config import AugmentConfig

TOPICS = ["derivatives", "primes", "photosynthesis", "boiling water", "mitochondria", "long multiplication"]


def corpus_rows(n: int) -> list[dict]:
    return [{"id": f"doc-{i}", "text": f"Document {i} explains {TOPICS[i % len(TOPICS)]} in a few words.", "n": i} for i in range(n)]


def write_jsonl(path: Path, rows: list) -> Path:
    """Rows may be dicts (serialised) or raw bytes/str lines (written as they are)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "wb") as fh:
        for row in rows:
            if isinstance(row, dict):
                row = json.dumps(row)
            fh.write((row.encode() if isinstance(row, str) else row) + b"\n")
    return path


def make_config(tmp_path: Path, inputs: list[str], **overrides) -> AugmentConfig:
    values = dict(
        inputs=[str(p) for p in inputs], out=tmp_path / "run", backend="transformers", model="",
        max_thinking_tokens=8, shard_size=4, progress=False, device="cpu", checkpoint_records=4,
    )
    values.update(overrides)
    return AugmentConfig(**values)
