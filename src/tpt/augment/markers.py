"""Done markers: a shard is finished when ``RUN/state/shard-k.done`` exists.

The marker carries the shard's sums (records, documents, tokens, rates' counts), so ``stats.json``
is recomputed from the markers without re-reading finished shards' data (at corpus scale, reading
every shard's columns at the end of each array task would be a bottleneck of its own).
"""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow.parquet as pq

from tpt.io.writers import touch_marker


def is_done(run_dir: Path, spec) -> bool:
    return (run_dir / "state" / f"{spec.name}.done").exists()


SUM_COLUMNS = ["id", "thinking_tokens", "doc_tokens", "doc_truncated", "finish_reason"]


def record_sums(rows: list[dict]) -> dict:
    """What stats.json adds up, for one shard's records (a document id lives in one shard)."""
    return {
        "records": len(rows),
        "documents": len({r["id"] for r in rows}),
        "thinking_tokens": sum(r["thinking_tokens"] for r in rows),
        "doc_tokens": sum(r["doc_tokens"] for r in rows),
        "truncated": sum(1 for r in rows if r["doc_truncated"]),
        "length": sum(1 for r in rows if r["finish_reason"] == "length"),
    }


def file_sums(path: Path) -> dict:
    return record_sums(pq.read_table(path, columns=SUM_COLUMNS).to_pylist() if path.exists() else [])


def write_done_marker(run_dir: Path, name: str, sums: dict) -> None:
    touch_marker(run_dir / "state" / f"{name}.done", json.dumps({"records": sums["records"], "sums": sums}))


def marker_sums(run_dir: Path, name: str) -> dict | None:
    """The sums a done marker carries (None: no marker, or one written by an older tpt)."""
    try:
        return json.loads((run_dir / "state" / f"{name}.done").read_text()).get("sums")
    except (FileNotFoundError, ValueError):
        return None
