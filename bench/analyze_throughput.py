"""Throughput of `tpt analyze stats` against a raw pyarrow read of the same columns (same run).

Writes N synthetic thinking records (default 200,000) as Parquet shards, then times:
  reference   pyarrow: read the columns stats needs, batch by batch, into Arrow (the I/O floor)
  stats       tpt.analyze.stats.compute_stats with no grouping
  stats --by  grouped by domain, reasoning_intensity and audience (parses every record's meta;
              each meta is unique, as with real corpora that carry a url, so no parse is shared),
              in this process (the default) and with --workers 2 (shard files in 2 processes)
and prints records/s and the ratio to the reference.  Goal (issue 7): >= 50,000 records/s on 2 cores.
Then `tpt filter` (all quality flags, vectorised per batch: quality_batch.py) on --filter-records records with
varied text, against reading the same text columns into Python strings.

    python bench/analyze_throughput.py [--records 200000] [--filter-records 5000] [--keep DIR]
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from tpt.analyze.filter import FilterConfig, filter_run
from tpt.analyze.stats import compute_stats
from tpt.records import THINKING_SCHEMA

DOMAINS = ["math", "physics", "biology", "history", "code", "law"]
AUDIENCES = ["general", "undergraduate", "expert"]
SHARD = 50_000


def synthetic_run(run: Path, n: int, seed: int = 0) -> None:
    rng = np.random.default_rng(seed)
    (run / "data").mkdir(parents=True, exist_ok=True)
    for k, start in enumerate(range(0, n, SHARD)):
        m = min(SHARD, n - start)
        intensity = rng.integers(0, 4, m)
        doc = rng.lognormal(6.5, 0.8, m).astype(np.int32) + 1
        thinking = (rng.lognormal(7.0, 0.5, m) * (1 + 0.15 * intensity)).astype(np.int32)
        meta = [
            json.dumps(
                {
                    "domain": DOMAINS[i % 6],
                    "reasoning_intensity": int(intensity[j]),
                    "audience": AUDIENCES[i % 3],
                    "url": f"https://example.org/{i}",
                }
            )
            for j, i in enumerate(range(start, start + m))
        ]
        table = pa.table(
            {
                "id": [f"doc-{i}" for i in range(start, start + m)],
                "sample": np.zeros(m, np.int32),
                "text": ["A document of moderate length about a topic. " * 8] * m,
                "thinking": ["An expert's analysis of the document, step by step. " * 20] * m,
                "finish_reason": np.where(rng.random(m) < 0.03, "length", "stop"),
                "doc_tokens": doc,
                "thinking_tokens": thinking,
                "doc_truncated": np.zeros(m, bool),
                "strategy": ["default"] * m,
                "model": ["bench"] * m,
                "backend": ["bench"] * m,
                "meta": meta,
                "doc_cut_chars": pa.nulls(m, pa.int64()),
            },
            schema=THINKING_SCHEMA,
        )
        pq.write_table(table, run / "data" / f"part-{k:05d}.parquet", compression="zstd")


def varied_run(run: Path, n: int, seed: int = 1) -> None:
    """Records whose text and thinking are random word sequences (mostly clean for the flags)."""
    rng = np.random.default_rng(seed)
    vocab = np.array([f"w{i}" for i in range(5000)])
    texts = [" ".join(vocab[rng.integers(0, 5000, 80)]) for _ in range(n)]
    thinkings = [" ".join(vocab[rng.integers(0, 5000, 250)]) for _ in range(n)]
    (run / "data").mkdir(parents=True, exist_ok=True)
    rows = {name: [] for name in THINKING_SCHEMA.names}
    for i in range(n):
        for name, value in (
            ("id", f"doc-{i}"),
            ("sample", 0),
            ("text", texts[i]),
            ("thinking", thinkings[i]),
            ("finish_reason", "stop"),
            ("doc_tokens", 80),
            ("thinking_tokens", 250),
            ("doc_truncated", False),
            ("strategy", "default"),
            ("model", "bench"),
            ("backend", "bench"),
            ("meta", "{}"),
            ("doc_cut_chars", None),
        ):
            rows[name].append(value)
    pq.write_table(pa.table(rows, schema=THINKING_SCHEMA), run / "data" / "part-00000.parquet", compression="zstd")


def reference_read(run: Path, columns: list[str]) -> int:
    n = 0
    for path in sorted((run / "data").glob("*.parquet")):
        for batch in pq.ParquetFile(path).iter_batches(batch_size=65536, columns=columns):
            n += batch.num_rows  # decompressed and decoded into Arrow: the floor any reader pays
    return n


def best_of(repeats: int, fn) -> float:
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return min(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--records", type=int, default=200_000)
    parser.add_argument("--repeats", type=int, default=3, help="best of this many timings")
    parser.add_argument("--filter-records", type=int, default=5000, help="records for the filter timing")
    parser.add_argument("--keep", type=Path, default=None, help="write the run here (default: a temporary folder)")
    args = parser.parse_args()
    pa.set_cpu_count(2)  # the budget: 2 cores
    with tempfile.TemporaryDirectory() as tmp:
        run = args.keep or Path(tmp) / "run"
        synthetic_run(run, args.records)
        n = args.records
        plain = ["doc_tokens", "finish_reason", "thinking_tokens"]
        cases = {
            "reference (pyarrow read, no meta)": lambda: reference_read(run, plain),
            "reference (pyarrow read, with meta)": lambda: reference_read(run, plain + ["meta"]),
            "tpt analyze stats": lambda: compute_stats([run]),
            "tpt analyze stats --by domain,reasoning_intensity,audience": lambda: compute_stats(
                [run], by=["domain", "reasoning_intensity", "audience"]
            ),
            "tpt analyze stats --by domain,reasoning_intensity,audience --workers 2": lambda: compute_stats(
                [run], by=["domain", "reasoning_intensity", "audience"], workers=2
            ),
        }
        secs = {name: best_of(args.repeats, fn) for name, fn in cases.items()}
        print(f"{n:,} records, best of {args.repeats}")
        for name, s in secs.items():
            ref = secs["reference (pyarrow read, with meta)" if "--by" in name else "reference (pyarrow read, no meta)"]
            print(f"  {name:<60} {s:7.3f} s  {n / s:>12,.0f} records/s  ({s / ref:5.1f}x the reference time)")
        grouped = n / min(secs[k] for k in secs if "--by" in k)
        print(f"goal >= 50,000 records/s grouped: {'met' if grouped >= 50_000 else 'NOT met'} ({grouped:,.0f}/s)")
        bench_filter(Path(tmp), args.filter_records)


def bench_filter(tmp: Path, n: int) -> None:
    run = tmp / "varied"
    varied_run(run, n)
    t0 = time.perf_counter()
    for batch in pq.ParquetFile(run / "data" / "part-00000.parquet").iter_batches(
        columns=["text", "thinking", "finish_reason"]
    ):
        batch.to_pydict()
    ref = time.perf_counter() - t0
    t0 = time.perf_counter()
    result = filter_run(FilterConfig(run=run, out=tmp / "clean"))
    secs = time.perf_counter() - t0
    print(
        f"{n:,} varied records: tpt filter {secs:.3f} s = {n / secs:,.0f} records/s "
        f"({secs / ref:.0f}x reading the text columns into Python, {ref:.3f} s); kept {result.kept:,}"
    )


if __name__ == "__main__":
    main()
