"""`tpt augment --executor ray` on a real local Ray: a worker killed mid-shard loses nothing.

The run is a real `tpt augment` process joining the session's Ray (--ray-address); the test finds
the worker running a shard that already has a finished chunk and SIGKILLs its process.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from tpt.augment.cli import main as augment_main
from tpt.augment.config import AugmentConfig
from tpt.augment.run import run_augment

DOCS, SAMPLES, SHARD_SIZE = 8, 2, 4  # 2 shards of 8 trajectories, checkpointed 2 at a time: 4 chunks each


def augment_args(corpus: Path, out: Path, model: Path) -> list[str]:
    line = len(corpus.read_bytes().split(b"\n", 1)[0]) + 1  # the corpus's lines are equally long (doc-0..9)
    return [
        str(corpus),
        "--out",
        str(out),
        "--model",
        str(model),
        "--max-thinking-tokens",
        "24",
        "--shard-bytes",
        str(SHARD_SIZE * line),
        "--samples",
        str(SAMPLES),
        "--checkpoint-records",
        "2",
        "--gen-batch",
        "2",
        "--device",
        "cpu",
        "--no-progress",
    ]


def worker_statuses(ray) -> list[dict]:
    """pid / node / current shard of every live augment worker (asked directly: the actors are threaded)."""
    statuses = []
    for entry in ray.util.list_named_actors(all_namespaces=True):
        if entry["namespace"] != "tpt-augment" or not entry["name"].startswith("tpt-augment-worker"):
            continue
        try:
            actor = ray.get_actor(entry["name"], namespace=entry["namespace"])
            statuses.append(ray.get(actor.status.remote(), timeout=10))
        except Exception:  # dying or not yet started: look again on the next poll
            pass
    return statuses


def kill_a_worker_mid_shard(ray, run: Path, proc: subprocess.Popen, timeout: float = 200.0) -> tuple[str, int]:
    """SIGKILL the worker of a shard that has >= 1 finished chunk and is not done; (shard, rows kept)."""
    deadline = time.monotonic() + timeout
    while proc.poll() is None and time.monotonic() < deadline:
        for status in worker_statuses(ray):
            shard = status["shard"]
            chunks = sorted((run / "data" / ".parts" / str(shard)).glob("chunk-*.parquet"))
            if shard and chunks and not (run / "state" / f"{shard}.done").exists():
                kept = sum(pq.ParquetFile(c).metadata.num_rows for c in chunks)
                os.kill(status["pid"], signal.SIGKILL)
                return shard, kept
        time.sleep(0.1)
    raise AssertionError(f"no worker was caught mid-shard (run exited: {proc.poll()})")


def read_records(run: Path, pattern: str = "*.parquet") -> list[dict]:
    return [row for path in sorted((run / "data").glob(pattern)) for row in pq.read_table(path).to_pylist()]


@pytest.mark.ray
@pytest.mark.timeout(420)
def test_killed_worker_costs_only_its_chunk_and_nothing_is_lost(tmp_path, corpus, tiny_model_dir, ray_cluster):
    import ray

    source, run = corpus(DOCS), tmp_path / "run-ray"
    cmd = [
        sys.executable,
        "-c",
        "import sys; from tpt.cli import main; sys.exit(main())",
        "augment",
        *augment_args(source, run, tiny_model_dir),
        "--executor",
        "ray",
        "--ray-address",
        ray_cluster,
    ]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        killed, kept = kill_a_worker_mid_shard(ray, run, proc)
        _, err = proc.communicate(timeout=300)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, err[-3000:]
    assert f"died running {killed}" in err, err[-3000:]

    # Exactly one record per (document, sample); every shard done; no parts left behind.
    records = read_records(run)
    keys = sorted((r["id"], r["sample"]) for r in records)
    assert keys == sorted((f"doc-{i}", s) for i in range(DOCS) for s in range(SAMPLES))
    stats = json.loads((run / "stats.json").read_text())
    assert (stats["records"], stats["documents"], stats["failed"], stats["rejected"]) == (DOCS * SAMPLES, DOCS, 0, 0)
    assert len(list((run / "state").glob("*.done"))) == DOCS // SHARD_SIZE
    assert not list((run / "data" / ".parts").glob("*/chunk-*"))
    # The fresh worker resumed from the dead one's chunks instead of regenerating the shard.
    assert kept >= 2 and stats["this_run"]["new_records"] <= DOCS * SAMPLES - kept

    # The shard nobody killed is byte-for-byte what the local executor writes.
    other = 1 - int(killed.split("-")[1])
    local = tmp_path / "run-local"
    argv = augment_args(source, local, tiny_model_dir) + ["--shard-range", f"{other}/2"]
    from tpt.config import parse

    run_augment(parse(AugmentConfig, argv, prog="tpt augment"))
    name = f"shard-{other:05d}.parquet"
    assert read_records(run, name) == read_records(local, name)
    manifest_ray, manifest_local = (json.loads((d / "manifest.json").read_text()) for d in (run, local))
    assert manifest_ray["fingerprint"] == manifest_local["fingerprint"]


def test_executor_ray_without_ray_says_how_to_install(tmp_path, corpus, tiny_model_dir, monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "ray", None)  # `import ray` now raises ImportError
    rc = augment_main(augment_args(corpus(2), tmp_path / "run", tiny_model_dir) + ["--executor", "ray"])
    assert rc == 2
    assert "pip install 'tpt[ray]'" in capsys.readouterr().err
