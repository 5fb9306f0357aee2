"""Read the output of an augment run: ``RUN/data/*.parquet`` (+ manifest.json, stats.json).

The folder's layout is a format (``tpt.formats.RunLayout``); this module only reads it.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pyarrow.parquet as pq

from tpt.formats import RunLayout, is_run_folder, shard_name  # noqa: F401  (is_run_folder: re-exported)
from tpt.records import ThinkingRecord


def data_files(run_dir: str | Path) -> list[Path]:
    """The finished thinking-record shards of a run, in shard order."""
    layout = RunLayout(Path(run_dir))
    if not layout.is_run():
        what = "does not exist" if not layout.root.exists() else "not an augment run (no data/ folder)"
        raise FileNotFoundError(f"{layout.root}: {what}")
    return sorted(layout.data.glob("*.parquet"))


def read_manifest(run_dir: str | Path) -> dict:
    path = RunLayout(Path(run_dir)).manifest
    return json.loads(path.read_text()) if path.exists() else {}


def run_settings(run_dir: str | Path) -> dict:
    """An augment run's settings by flat name (``max_doc_tokens``, ``tokenizer``, ``shard_size``, ...),
    whether its manifest holds the nested component configs or the older flat ones."""

    def flat(section: dict) -> dict:
        out: dict = {}
        for key, value in section.items():
            out.update(flat(value) if isinstance(value, dict) and key != "options" else {key: value})
        return out

    return flat(read_manifest(run_dir).get("config", {}))


def _planned_shards(run: Path) -> int:
    """How many shards the run's plan.json cuts its input into (plan v2+: listed; v1: rows / shard size)."""
    plan = json.loads(RunLayout(run).plan.read_text())
    if isinstance(plan.get("shards"), list):
        return len(plan["shards"])
    return -(-int(plan["n_rows"]) // max(1, int(run_settings(run)["shard_size"])))


def iter_record_batches(run_dir: str | Path, columns: list[str] | None = None, batch_size: int = 8192):
    """Arrow record batches over all shards: bounded memory, whatever the run's size."""
    for path in data_files(run_dir):
        yield from pq.ParquetFile(path).iter_batches(batch_size=batch_size, columns=columns)


def iter_records(run_dir: str | Path) -> Iterator[ThinkingRecord]:
    for batch in iter_record_batches(run_dir):
        for row in batch.to_pylist():
            yield ThinkingRecord.from_row(row)


def completion(run_dir: str | Path) -> dict | None:
    """How complete an augment run is, from its own markers: {"shards", "done", "missing", "failed"}.

    ``shards`` = the shards its plan.json cuts the input into (``tpt.formats.shard_name`` names them),
    ``done`` = completion markers in RUN/state, ``missing`` = names of shards without one,
    ``failed`` = rows in RUN/failed (generations to retry).  None when the folder has no plan
    (a filtered copy, or a run written by another tool): completeness is then unknown.
    """
    run = Path(run_dir)
    try:
        names = [shard_name(k) for k in range(_planned_shards(run))]
    except (OSError, ValueError, KeyError, TypeError):
        return None
    missing = [n for n in names if not (run / "state" / f"{n}.done").exists()]
    failed = sum(pq.ParquetFile(p).metadata.num_rows for p in sorted((run / "failed").glob("*.parquet")))
    return {"shards": len(names), "done": len(names) - len(missing), "missing": missing, "failed": failed}
