"""Issue 17: a worker's memory is bounded by its shard, not the corpus (measured on >= 1M documents).

Runs what one array task does before generating (plan the corpus, read + parse + dedupe its first
shard, write its id file) in a fresh process on corpora of 100k and 1M tiny documents, and compares
the peak RSS (the process's own VmHWM). Timings are printed, never asserted.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[2] / "bench" / "augment_planning.py"


def load_bench():
    spec = importlib.util.spec_from_file_location("augment_planning_bench", BENCH)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.timeout(600)
def test_task_memory_does_not_grow_with_the_corpus(tmp_path):
    if not Path("/proc/self/status").exists():
        pytest.skip("peak RSS is read from /proc (Linux)")
    bench = load_bench()
    peaks = {}
    for size in (100_000, 1_000_000):
        corpus = bench.make_corpus(tmp_path / f"c{size}", size, "parquet")
        task = bench.measure(bench.TASK, corpus, tmp_path / f"run{size}", 10_000, 560_000)
        print(
            f"{size:>9,} documents: peak RSS {task['peak_rss_mb']:.0f} MB, plan {task['plan_s']:.2f}s, "
            f"shard {task['shard_s']:.2f}s ({task['shard_rows']} rows), {task['shards']} shards"
        )
        assert task["shard_rows"] == 10_000 and task["shards"] == size // 10_000
        peaks[size] = task["peak_rss_mb"]
    assert peaks[1_000_000] - peaks[100_000] < 32, peaks  # 10x the corpus, the same shard: the same memory
