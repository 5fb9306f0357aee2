"""The exactly-once guarantee: a real `tpt augment` process killed with SIGKILL mid-run, then rerun."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pyarrow.parquet as pq
from augment_helpers import corpus_rows, write_jsonl

from tpt.io.runs import iter_records


def saved_records(out: Path) -> int:
    """Records on disk (monotonic while a run goes on): a finished shard's data file, else its parts."""
    total = 0
    names = {p.stem for p in out.glob("state/shard-*.done")} | {p.name for p in out.glob("data/.parts/shard-*")}
    for name in names:
        files = (
            [out / "data" / f"{name}.parquet"]
            if (out / "state" / f"{name}.done").exists()
            else list(out.glob(f"data/.parts/{name}/chunk-*.parquet"))
        )
        for path in files:
            try:
                total += pq.ParquetFile(path).metadata.num_rows
            except (FileNotFoundError, OSError):  # consolidated and deleted under our feet
                pass
    return total


def start(argv: list[str]) -> subprocess.Popen:
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    return subprocess.Popen(
        [sys.executable, "-m", "tpt", "augment", *argv],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


def kill_after(proc: subprocess.Popen, out: Path, at_least: int, timeout: float = 120) -> bool:
    """SIGKILL ``proc`` once ``at_least`` records are saved; False if it finished first."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and proc.poll() is None:
        if saved_records(out) >= at_least:
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait()
            return True
        time.sleep(0.02)
    proc.wait()
    return False


def test_kill_9_then_rerun_gives_exactly_one_record_per_key(tmp_path, openai_server):
    corpus = write_jsonl(tmp_path / "corpus.jsonl", corpus_rows(16))
    out = tmp_path / "run"
    argv = [
        str(corpus),
        "--out",
        str(out),
        "--backend",
        "openai",
        "--base-url",
        openai_server.base_url,
        "--model",
        openai_server.model,
        "--tokenizer",
        openai_server.model,
        "--samples",
        "2",
        "--max-thinking-tokens",
        "8",
        "--shard-bytes",
        "300",
        "--checkpoint-records",
        "4",
        "--concurrency",
        "2",
        "--server-sampling",
        "native",
        "--no-progress",
    ]
    killed = [kill_after(start(argv), out, at_least=n) for n in (4, 16)]
    assert killed == [True, True], "the run finished before it could be killed; make the corpus larger"
    assert 16 <= saved_records(out) < 32

    final = start(argv)
    log, _ = final.communicate(timeout=300)
    assert final.returncode == 0, log
    counts = Counter((r.id, r.sample) for r in iter_records(out))
    assert set(counts) == {(f"doc-{i}", s) for i in range(16) for s in range(2)}
    assert set(counts.values()) == {1}
    assert "32 records" in log and "(32 new)" not in log  # the killed runs' work was kept
    assert not list(out.glob("data/.parts/*/*"))
    assert not [p for p in out.rglob("*.tmp") if p.parent != out]  # shard temp files of killed writes are cleaned

    again = start(argv)
    log, _ = again.communicate(timeout=120)
    assert again.returncode == 0 and "already complete; nothing to do" in log
