"""Benchmark: `tpt prepare` throughput vs raw `tokenizers` batch encoding of the same text, same run.

Two references, both ``Tokenizer.encode_batch_fast`` on text already in memory, reading each
encoding's ids (what any use of them needs) -- no reading, no packing, no writing:

  pieces     exactly the texts prepare encodes: each document and each thinking as its own text,
             plain (``encode_special_tokens``), ``--batch`` samples (2x texts) per call, the same
             tokenizer file and the same Rust thread pool (TOKENIZERS_PARALLELISM) -- the goal's reference
  formatted  the rendered samples ("doc <think> thinking </think>"), ``--batch`` texts per call

`prepare` does all of it: reads the Parquet run, formats, tokenizes, plans the mix, packs and
writes shards.  Goal (issue 15): prepare >= 0.95x the reference's tokens/s.

This 2-core machine's speed drifts by 10-30% within minutes, so a single pair of runs says
little: the methods run in rounds (order rotating), and each prepare run is compared with the
reference runs just before and after it; the median of those ratios is given with a bootstrap
interval.  Each row's CPU time is also split by thread (Linux): the main thread (Python: ids out
of the encodings, packing, writing), live pools (the tokenizer's Rust pool -- equal work in
prepare and the reference -- plus, in prepare, Arrow's Parquet decoding threads), and threads
that ended (prepare's reader).

    python bench/prepare_throughput.py [--docs 5000] [--repeats 15] [--tokenizer DIR]
"""

from __future__ import annotations

import argparse
import os
import random
import shutil
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

os.environ.setdefault("TOKENIZERS_PARALLELISM", "true")
os.environ.setdefault("HF_HUB_OFFLINE", "1")

import pyarrow as pa  # noqa: E402
import pyarrow.parquet as pq  # noqa: E402
from tqdm import tqdm  # noqa: E402

from tpt.prepare.config import PrepareConfig  # noqa: E402
from tpt.prepare.run import prepare  # noqa: E402
from tpt.prepare.tokenizer import load_tokenizer, train_tokenizer  # noqa: E402
from tpt.records import THINKING_SCHEMA, ThinkingRecord  # noqa: E402

SYLLABLES = ["ka", "to", "ri", "mon", "sel", "ph", "ion", "ex", "ter", "al", "qu", "ist", "ing", "de", "ra", "nu"]


def synthetic_words(rng: random.Random, n: int = 6000) -> list[str]:
    return ["".join(rng.choice(SYLLABLES) for _ in range(rng.randint(1, 4))) for _ in range(n)]


def paragraph(rng: random.Random, words: list[str], n: int) -> str:
    # Zipf-like: low indices are frequent, as in natural text
    picks = [words[min(int(rng.paretovariate(1.1)) - 1, len(words) - 1)] for _ in range(n)]
    return " ".join(picks).capitalize() + "."


def build_run(folder: Path, docs: int, seed: int = 0) -> list[tuple[str, str]]:
    rng = random.Random(seed)
    words = synthetic_words(rng)
    pairs = [
        (paragraph(rng, words, rng.randint(80, 400)), paragraph(rng, words, rng.randint(150, 700))) for _ in range(docs)
    ]
    (folder / "data").mkdir(parents=True)
    rows = [
        ThinkingRecord(f"d{i}", 0, t, th, "stop", 0, 0, False, "s", "m", "b").to_row()
        for i, (t, th) in enumerate(pairs)
    ]
    pq.write_table(pa.Table.from_pylist(rows, schema=THINKING_SCHEMA), folder / "data" / "part-00000.parquet")
    return pairs


def thread_cpu() -> dict[int, float]:
    """CPU seconds of each live thread of this process (Linux /proc; {} elsewhere)."""
    tick, out = os.sysconf("SC_CLK_TCK"), {}
    for tid in os.listdir("/proc/self/task") if os.path.isdir("/proc/self/task") else []:
        try:
            fields = Path(f"/proc/self/task/{tid}/stat").read_text().rsplit(")", 1)[1].split()
        except FileNotFoundError:  # ended meanwhile
            continue
        out[int(tid)] = (int(fields[11]) + int(fields[12])) / tick
    return out


def timed(fn) -> tuple[float, float, object, tuple[float, float, float]]:
    """-> (wall seconds, CPU seconds of all threads, fn's value, (main thread, other live threads -- the
    tokenizer's Rust pool, Arrow's --, threads that ended meanwhile -- prepare's reader) CPU seconds)."""
    before, wall, cpu = thread_cpu(), time.perf_counter(), time.process_time()
    value = fn()
    wall, cpu, after = time.perf_counter() - wall, time.process_time() - cpu, thread_cpu()
    used = {tid: seconds - before.get(tid, 0.0) for tid, seconds in after.items()}
    main = used.pop(threading.get_native_id(), 0.0)
    pool = sum(used.values())
    return wall, cpu, value, (main, pool, max(cpu - main - pool, 0.0))


def reference_seconds(tokenizer, texts: list[str], batch: int, plain: bool):
    """Encode ``texts`` ``batch`` at a time -> timed(...) with the tokens as value."""
    from tokenizers import Tokenizer

    backend = Tokenizer.from_str(tokenizer.backend_tokenizer.to_str())
    backend.encode_special_tokens = plain  # as prepare's SampleEncoder encodes documents and thinking

    def encode() -> int:
        tokens = 0
        for i in range(0, len(texts), batch):
            encoded = backend.encode_batch_fast(texts[i : i + batch], add_special_tokens=False)
            tokens += sum(len(e.ids) for e in encoded)
        return tokens

    return timed(encode)


def prepare_seconds(run: Path, tok_dir: Path, out: Path, batch: int):
    """Run `tpt prepare` -> timed(...) with the manifest as value."""
    shutil.rmtree(out, ignore_errors=True)
    cfg = PrepareConfig(
        source=[f"{run}:tpt:1"], tokenizer=str(tok_dir), out=out, seq_len=2048, val_sequences=2, batch_docs=batch
    )
    return timed(lambda: prepare(cfg))


def neighbour_ratios(sequence: list[tuple[str, tuple]], ref: str) -> list[float]:
    """For each prepare run, the reference's wall time next to it (the mean of the nearest
    reference run before and after it, in time order) / prepare's: a slow drift of the machine's
    speed then moves both sides of a ratio alike."""
    ratios = []
    for k, (name, run) in enumerate(sequence):
        if name != "prepare":
            continue
        before = [r[0] for n, r in sequence[:k] if n == ref][-1:]
        after = [r[0] for n, r in sequence[k + 1 :] if n == ref][:1]
        ratios.append(statistics.mean(before + after) / run[0])
    return ratios


def median_interval(values: list[float], draws: int = 2000) -> tuple[float, float, float]:
    """-> (median, 95% bootstrap interval of the median) over the rounds."""
    import numpy as np

    from tpt.lab.stats import interval

    rng = np.random.default_rng(0)
    return statistics.median(values), *interval(np.median(rng.choice(values, size=(draws, len(values))), axis=1))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--docs", type=int, default=5000)
    ap.add_argument("--repeats", type=int, default=15, help="rounds of every method, order rotating")
    ap.add_argument("--batch", type=int, default=1024)
    ap.add_argument("--tokenizer", type=Path, default=None, help="a tokenizer folder (default: train an 8192 BPE here)")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        pairs = build_run(root / "run", args.docs)
        tok_dir = args.tokenizer or train_tokenizer((t for p in pairs[:2000] for t in p), root / "tok", vocab_size=8192)
        tok = load_tokenizer(tok_dir)
        formatted = [f"{t} <think> {th} </think>" for t, th in pairs]
        pieces = [text for pair in pairs for text in pair]  # what SampleEncoder.encode_texts encodes
        mb = sum(len(t.encode()) for t in formatted) / 1e6
        methods = {
            "pieces": lambda: reference_seconds(tok, pieces, 2 * args.batch, plain=True),
            "formatted": lambda: reference_seconds(tok, formatted, args.batch, plain=False),
            "prepare": lambda: prepare_seconds(root / "run", tok_dir, root / "out", args.batch),
        }
        names, sequence = list(methods), []
        for r in tqdm(range(args.repeats), desc="rounds", leave=False):
            # The order rotates from round to round: this machine's speed drifts by 10-20% within
            # minutes, and a method always run last (prepare was) took every drift against it.
            for name in names[r % len(names) :] + names[: r % len(names)]:
                sequence.append((name, methods[name]()))
        runs = {name: [run for n, run in sequence if n == name] for name in names}
        report(args, mb, runs, sequence)
    return 0


def report(args, mb: float, runs: dict[str, list], sequence: list) -> None:
    index = runs["prepare"][0][2]
    prep_tokens = sum(s["docs_tokens"] for s in index["sources"])  # every document is tokenized once
    print(f"corpus: {args.docs} docs, {mb:.1f} MB of formatted text; threads: "
          f"TOKENIZERS_PARALLELISM={os.environ['TOKENIZERS_PARALLELISM']}, {os.cpu_count()} CPUs, "
          f"load average {os.getloadavg()[0]:.1f}")  # fmt: skip
    best = {}
    for name, label in (
        ("pieces", "reference: the same pieces"),
        ("formatted", "reference: formatted samples"),
        ("prepare", "tpt prepare (read+tokenize+pack+write)"),
    ):
        walls = [r[0] for r in runs[name]]
        wall, cpu = min(walls), min(r[1] for r in runs[name])
        tokens = prep_tokens if name == "prepare" else runs[name][0][2]  # prepare's: + template and EOS
        best[name] = (wall, cpu)
        main, pool, ended = min((r[3] for r in runs[name]), key=sum)
        print(f"{label:<40} {wall:7.2f} s wall {cpu:7.2f} s CPU  {tokens:>11,} tokens "
              f"{tokens / wall / 1e6:6.3f} M tok/s  {tokens / cpu / 1e6:6.3f} M tok/CPU-s")  # fmt: skip
        print(f"{'':<40} CPU s: main thread {main:6.2f}, pools {pool:6.2f}, ended threads {ended:5.2f}; "
              f"slowest run / fastest {max(walls) / wall:.2f}")  # fmt: skip
        medians = [statistics.median(r[3][k] for r in runs[name]) for k in range(3)]
        print(f"{'':<40} median of {len(walls)} runs: {statistics.median(walls):.2f} s wall; CPU s: main thread "
              f"{medians[0]:6.2f}, pools {medians[1]:6.2f}, ended threads {medians[2]:5.2f}")  # fmt: skip
    for ref in ("pieces", "formatted"):  # the same corpus each way: the ratio of times is the ratio of speeds
        wall_ratio, cpu_ratio = (best[ref][k] / best["prepare"][k] for k in (0, 1))
        median, low, high = median_interval(neighbour_ratios(sequence, ref))
        print(f"ratio prepare / {ref}: next to each other in time, wall-clock: median {median:.3f} "
              f"[95% interval {low:.3f}, {high:.3f}], n={len(runs['prepare'])}; best-of {wall_ratio:.3f} wall-clock, "
              f"{cpu_ratio:.3f} per CPU-second  (goal >= 0.95)")  # fmt: skip
    print("(next to each other: each prepare run against the mean of the reference runs just before and after it; "
          "interval: bootstrap over the rounds; best-of: the fastest run of each method)")  # fmt: skip


if __name__ == "__main__":
    sys.exit(main())
