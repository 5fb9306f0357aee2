"""Helpers shared by the augment tests (a uniquely named module: tests/ has no packages)."""

from __future__ import annotations

import json
from pathlib import Path

from tpt.augment.config import AugmentConfig
from tpt.augment.specs import InputSpec
from tpt.config import build

TOPICS = ["derivatives", "primes", "photosynthesis", "boiling water", "mitochondria", "long multiplication"]


def corpus_rows(n: int) -> list[dict]:
    return [
        {"id": f"doc-{i}", "text": f"Document {i} explains {TOPICS[i % len(TOPICS)]} in a few words.", "n": i}
        for i in range(n)
    ]


def write_jsonl(path: Path, rows: list) -> Path:
    """Rows may be dicts (serialised) or raw bytes/str lines (written as they are)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "wb") as fh:
        for row in rows:
            if isinstance(row, dict):
                row = json.dumps(row)
            fh.write((row.encode() if isinstance(row, str) else row) + b"\n")
    return path


def make_config(tmp_path: Path, inputs: list[Path | str | InputSpec], **overrides) -> AugmentConfig:
    values = dict(
        inputs=[p if isinstance(p, InputSpec) else InputSpec(p) for p in inputs],
        out=tmp_path / "run",
        backend="transformers",
        model="",
        max_thinking_tokens=8,
        shard_size=4,
        shard_bytes=300,
        progress=False,
        device="cpu",
        checkpoint_records=4,
    )
    values.update(overrides)
    return build(AugmentConfig, **values)


def lab_rows(n: int, seed: int = 3) -> list[dict]:
    """Rows the lab-expert backend can think about (fast, no model): for whole-run tests."""
    from tpt.lab import corpus
    from tpt.lab.families import BUILTIN, load_family

    families = {name: load_family(name, seed=seed) for name in BUILTIN}
    return list(corpus.corpus_rows(families, [], n, seed=seed))


def run_cli(argv: list[str], timeout: float = 300, env: dict | None = None):
    """`python -m tpt augment ARGV` in a subprocess; returns the CompletedProcess (text)."""
    import os
    import subprocess
    import sys

    full_env = dict(os.environ, PYTHONUNBUFFERED="1", **(env or {}))
    return subprocess.run(
        [sys.executable, "-m", "tpt", "augment", *argv], capture_output=True, text=True, timeout=timeout, env=full_env
    )


def start_cli(argv: list[str]):
    import os
    import subprocess
    import sys

    return subprocess.Popen(
        [sys.executable, "-m", "tpt", "augment", *argv],
        env=dict(os.environ, PYTHONUNBUFFERED="1"),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


def record_keys(out: Path) -> list[tuple[str, int]]:
    import pyarrow.parquet as pq

    return [
        (r["id"], r["sample"])
        for p in sorted((out / "data").glob("*.parquet"))
        for r in pq.read_table(p, columns=["id", "sample"]).to_pylist()
    ]
