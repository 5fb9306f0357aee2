"""Benchmark: `tpt filter` records/s, against the per-record Python checks it replaced, same run.

Writes N thinking records (default 200,000; document ~80 words, thinking ~250 words of a 5,000-word
vocabulary, 2% planted loops, 2% copies, 1% Cyrillic thinking, 1% leftovers of the prompt) as
Parquet shards of 50,000 (--shard-records), then times, best of --repeats:

  read        pyarrow: read the text columns batch by batch (the I/O floor)
  reference   quality.flag_record on every record (what `tpt filter` ran before; on --reference-records)
  tpt filter  filter_run with the default checks and workers (one process per core; reads, flags,
              writes the clean run and removed table)
  --compression none   the same, the clean run's data files written uncompressed (zstd is the default)

and prints records/s, wall-clock and per CPU-second (workers' CPU included), and the ratios.
Goal (issue 15): >= 50,000 records/s on 2 cores (pyarrow's pool is set to 2 threads).  The
machine may be shared: compare the ratios, measured in the same run.

    python bench/filter_throughput.py [--records 200000] [--reference-records 5000] [--repeats 2]
        [--shard-records 50000] [--row-group N]   (one 200,000-record file: --shard-records 200000 --row-group 8192)
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from tpt.analyze.filter import FilterConfig, filter_run
from tpt.analyze.quality import QualityConfig, flag_record, template_patterns
from tpt.records import THINKING_SCHEMA

SHARD = 50_000
RUSSIAN = "мы внимательно анализируем этот документ и объясняем каждую идею простыми словами".split()


def thinking_of(rng: np.random.Generator, vocab: np.ndarray, doc: list[str]) -> str:
    kind = rng.random()
    if kind < 0.02:  # a repetition loop
        return " ".join(list(vocab[rng.integers(0, 5000, 40)]) + list(vocab[rng.integers(0, 5000, 10)]) * 20)
    if kind < 0.04:  # mostly a copy of the document
        return " ".join(doc + list(vocab[rng.integers(0, 5000, 20)]))
    if kind < 0.05:  # another script
        return " ".join(rng.choice(RUSSIAN, 250))
    words = list(vocab[rng.integers(0, 5000, 250)])
    if kind < 0.06:  # prompt leftover
        words.insert(100, "## End of the context")
    return " ".join(words) + "."


def write_run(run: Path, n: int, seed: int = 0, shard: int = SHARD, row_group: int | None = None) -> None:
    rng = np.random.default_rng(seed)
    vocab = np.array([f"w{i}" for i in range(5000)])
    (run / "data").mkdir(parents=True)
    for k, start in enumerate(range(0, n, shard)):
        m = min(shard, n - start)
        docs = [list(vocab[rng.integers(0, 5000, 80)]) for _ in range(m)]
        table = pa.table({
            "id": [f"doc-{i}" for i in range(start, start + m)], "sample": np.zeros(m, np.int32),
            "text": [" ".join(d) + "." for d in docs], "thinking": [thinking_of(rng, vocab, d) for d in docs],
            "finish_reason": np.where(rng.random(m) < 0.03, "length", "stop"),
            "doc_tokens": np.full(m, 80, np.int32), "thinking_tokens": np.full(m, 250, np.int32),
            "doc_truncated": np.zeros(m, bool), "strategy": ["s"] * m, "model": ["m"] * m, "backend": ["b"] * m,
            "meta": ["{}"] * m, "doc_cut_chars": pa.nulls(m, pa.int64()),
        }, schema=THINKING_SCHEMA)  # fmt: skip
        pq.write_table(table, run / "data" / f"part-{k:05d}.parquet", compression="zstd", row_group_size=row_group)


def read_floor(run: Path) -> int:
    n = 0
    for path in sorted((run / "data").glob("*.parquet")):
        for batch in pq.ParquetFile(path).iter_batches(batch_size=4096, columns=["text", "thinking", "finish_reason"]):
            n += batch.num_rows
    return n


def reference(run: Path, limit: int) -> int:
    """The per-record Python checks on the first ``limit`` records."""
    cfg, patterns = QualityConfig(), template_patterns(QualityConfig())
    table = pq.ParquetFile(sorted((run / "data").glob("*.parquet"))[0]).read_row_group(
        0, columns=["text", "thinking", "finish_reason"]
    )
    cols = table.slice(0, limit).to_pydict()
    for t, th, fr in zip(cols["text"], cols["thinking"], cols["finish_reason"]):
        flag_record(t, th, fr, cfg, patterns)
    return min(limit, table.num_rows)


def cpu_seconds() -> float:
    """CPU time of this process's threads and of its finished child processes (the fork pool's workers)."""
    t = os.times()
    return t.user + t.system + t.children_user + t.children_system


def best_of(repeats: int, fn) -> tuple[float, float, object]:
    """-> (wall seconds, CPU seconds of all threads and worker processes, value), the fastest wall-clock run."""
    runs = []
    for _ in range(repeats):
        t0, c0 = time.perf_counter(), cpu_seconds()
        value = fn()
        runs.append((time.perf_counter() - t0, cpu_seconds() - c0, value))
    return min(runs, key=lambda r: r[0])


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--records", type=int, default=200_000)
    ap.add_argument("--reference-records", type=int, default=5000)
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--shard-records", type=int, default=SHARD, help="records per file (one file: split by row groups)")
    ap.add_argument("--row-group", type=int, default=None, help="records per row group (default: pyarrow's)")
    args = ap.parse_args()
    pa.set_cpu_count(2)
    with tempfile.TemporaryDirectory() as tmp:
        run, out = Path(tmp) / "run", Path(tmp) / "clean"
        write_run(run, args.records, shard=args.shard_records, row_group=args.row_group)

        def filtered(**options):
            shutil.rmtree(out, ignore_errors=True)
            return filter_run(FilterConfig(run=run, out=out, **options))

        read_s, read_cpu, _ = best_of(args.repeats, lambda: read_floor(run))
        ref_s, ref_cpu, ref_n = best_of(args.repeats, lambda: reference(run, args.reference_records))
        filter_s, filter_cpu, result = best_of(args.repeats, filtered)
        plain_s, plain_cpu, _ = best_of(args.repeats, lambda: filtered(compression="none"))
        n = args.records
        print(f"{n:,} records (best of {args.repeats}); removed {result.removed:,}: {result.removed_by}")
        rows = (
            ("read (pyarrow, text columns)", read_s, read_cpu, n),
            (f"reference (flag_record, {ref_n:,} records)", ref_s, ref_cpu, ref_n),
            ("tpt filter (read + flag + write)", filter_s, filter_cpu, n),
            ("tpt filter --compression none", plain_s, plain_cpu, n),
        )
        for name, wall, cpu, count in rows:
            rates = f"{count / wall:>9,.0f} rec/s  {cpu:7.3f} s CPU {count / cpu:>9,.0f} rec/CPU-s"
            print(f"  {name:<40} {wall:7.3f} s wall {rates}")
        wall_ratio, cpu_ratio = (n / filter_s) / (ref_n / ref_s), (n / filter_cpu) / (ref_n / ref_cpu)
        print(f"ratio tpt filter / reference: {wall_ratio:.1f}x wall-clock, {cpu_ratio:.1f}x per CPU-second")
        for name, wall, cpu in (("default (zstd)", filter_s, filter_cpu), ("--compression none", plain_s, plain_cpu)):
            print(
                f"goal >= 50,000 records/s on 2 cores (25,000 per CPU-second), {name}: {n / wall:,.0f}/s wall, "
                f"{n / cpu:,.0f} per CPU-second: {'met' if n / cpu >= 25_000 else 'NOT met'}"
            )
        per_cpu = n / filter_cpu
        print(
            f"idle 2-core estimate, default: {2 * per_cpu:,.0f}/s (2 workers x {per_cpu:,.0f} per CPU-second; "
            f"load average now {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs inflates both figures)"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
