"""Planning cost and worker memory vs corpus size: does a single array task's cost grow with its
shard, not with the corpus?  Measured in one run, each measurement in a fresh process (peak RSS).

For corpora of tiny documents (default 100k, 1M, 10M rows, generated locally as Parquet files of up
to 1M rows in row groups of 10k, or as plain JSONL with --format jsonl):

* task:       what one ``--shard-range 0/N`` array task does before generating: plan the corpus
              (list files, read sizes and Parquet footers) and read + parse + dedupe its first
              shard (``--shard-size`` rows), writing the shard's id file.
* reference:  what every task did before (``make_plan`` of tpt <= 0.1): scan every row of the
              corpus, parse it and hold every id in one dict for duplicate detection.

    python bench/augment_planning.py [--sizes 100000,1000000,10000000] [--format parquet|jsonl]
                                     [--reference-max 1000000] [--json]

The reference is skipped above --reference-max rows (at 10M it needs minutes and GBs on 2 cores).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

FILE_ROWS, GROUP_ROWS = 1_000_000, 10_000


def make_corpus(folder: Path, rows: int, fmt: str) -> Path:
    """``rows`` tiny documents in files of up to FILE_ROWS rows (generated with pyarrow compute: fast)."""
    import pyarrow as pa
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    folder.mkdir(parents=True, exist_ok=True)
    for n, start in enumerate(range(0, rows, FILE_ROWS)):
        index = pa.array(range(start, min(start + FILE_ROWS, rows)), pa.int64())
        digits = pc.cast(index, pa.string())
        table = pa.table(
            {
                "id": pc.binary_join_element_wise("doc-", digits, ""),
                "text": pc.binary_join_element_wise("Document ", digits, " explains one small fact.", ""),
            }
        )
        if fmt == "parquet":
            pq.write_table(table, folder / f"part-{n:04d}.parquet", row_group_size=GROUP_ROWS)
        else:
            with open(folder / f"part-{n:04d}.jsonl", "wb") as fh:
                for batch in table.to_batches(max_chunksize=100_000):
                    ids, texts = batch.column(0).to_pylist(), batch.column(1).to_pylist()
                    fh.write("".join(f'{{"id": "{i}", "text": "{t}"}}\n' for i, t in zip(ids, texts)).encode())
    return folder


TASK = r"""
import json, sys, time
from pathlib import Path
from tpt.augment.config import AugmentConfig
from tpt.config import build
from tpt.augment.duplicates import write_ids
from tpt.augment.planning import load_or_create_plan, specs_of
from tpt.augment.shards import load_rows, parse_shard_rows
corpus, out, shard_size, shard_bytes = sys.argv[1], Path(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
cfg = build(AugmentConfig, inputs=[corpus], out=out, backend="lab-expert", shard_size=shard_size,
            shard_bytes=shard_bytes, shard_range="0/1000000")
out.mkdir(parents=True, exist_ok=True)
t0 = time.perf_counter()
specs = specs_of(load_or_create_plan(cfg), cfg.executor.shard_range)
t1 = time.perf_counter()
rows = load_rows(specs[0])
docs, doc_rows, rejected = parse_shard_rows(rows, specs[0])
write_ids(out, specs[0], docs, doc_rows)
t2 = time.perf_counter()
print(json.dumps({"plan_s": t1 - t0, "shard_s": t2 - t1, "shard_rows": len(rows),
                  "shards": len(specs_of(json.loads((out / "plan.json").read_text()))),
                  "peak_rss_mb": peak_mb()}))
"""

REFERENCE = r"""
import json, sys, time
from tpt.io.readers import Document, iter_raw_rows, parse_row, resolve_inputs
t0 = time.perf_counter()
first_seen, n = {}, 0
for raw in iter_raw_rows(resolve_inputs([sys.argv[1]])):
    n += 1
    doc = parse_row(raw)
    if isinstance(doc, Document):
        first_seen.setdefault(doc.id, f"{raw.source}:{raw.line}")
print(json.dumps({"scan_s": time.perf_counter() - t0, "rows": n, "peak_rss_mb": peak_mb()}))
"""

# VmHWM: this process's own peak (ru_maxrss would carry the parent's peak across fork+exec).
PEAK = r"""
def peak_mb():
    for line in open("/proc/self/status"):
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
"""


def measure(script: str, *args: str) -> dict:
    argv = [sys.executable, "-c", PEAK + script, *map(str, args)]
    proc = subprocess.run(argv, capture_output=True, text=True, check=False)
    if proc.returncode:
        raise SystemExit(f"measurement failed:\n{proc.stderr[-3000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def run(sizes: list[int], fmt: str, shard_size: int, reference_max: int) -> list[dict]:
    shard_bytes = shard_size * 56  # about shard_size tiny JSONL rows
    rows = []
    with tempfile.TemporaryDirectory(prefix="tpt-bench-plan-") as tmp:
        for size in sizes:
            t0 = time.perf_counter()
            corpus = make_corpus(Path(tmp) / f"corpus-{size}", size, fmt)
            made = time.perf_counter() - t0
            task = measure(TASK, corpus, Path(tmp) / f"run-{size}", shard_size, shard_bytes)
            ref = measure(REFERENCE, corpus) if size <= reference_max else None
            rows.append({"documents": size, "format": fmt, "generate_s": round(made, 1), **task, "reference": ref})
            print(_line(rows[-1]), flush=True)
    return rows


def _line(r: dict) -> str:
    ref = r["reference"]
    text = (
        f"{r['documents']:>11,} docs: task plan {r['plan_s']:.2f}s + its shard ({r['shard_rows']:,} rows) "
        f"{r['shard_s']:.2f}s, peak RSS {r['peak_rss_mb']:.0f} MB, {r['shards']:,} shards"
    )
    if ref:
        task_s = r["plan_s"] + r["shard_s"]
        text += (
            f" | reference global scan {ref['scan_s']:.1f}s, {ref['peak_rss_mb']:.0f} MB"
            f" -> time ratio {task_s / ref['scan_s']:.3f}, "
            f"memory ratio {r['peak_rss_mb'] / ref['peak_rss_mb']:.2f}"
        )
    return text


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", default="100000,1000000,10000000")
    parser.add_argument("--format", choices=["parquet", "jsonl"], default="parquet")
    parser.add_argument("--shard-size", type=int, default=10_000)
    parser.add_argument("--reference-max", type=int, default=1_000_000)
    parser.add_argument("--json", action="store_true", help="also print all figures as one JSON line")
    args = parser.parse_args()
    rows = run([int(s) for s in args.sizes.split(",")], args.format, args.shard_size, args.reference_max)
    if args.json:
        print(json.dumps(rows))


if __name__ == "__main__":
    main()
