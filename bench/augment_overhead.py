"""How much does the augment pipeline cost on top of its backend?  Measured in one run.

1. Instant backend (answers at once, real tokenizer for truncation): the pipeline alone, i.e.
   reading JSONL, planning shards, truncating, prompting, writing Parquet parts and shards.
   Goal: >= 2,000 documents/s on 2 cores.
2. The in-process transformers backend (tiny random model): the same requests timed through
   ``backend.generate`` alone vs. through ``run_augment``.  Goal: pipeline overhead < 5%.

    python bench/augment_overhead.py [--docs 20000] [--gen-docs 256] [--gen-tokens 64]
"""

from __future__ import annotations

import argparse
import json
import os
import random
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "true")  # truncate_batch spreads a batch over the cores

from tpt.augment.backends.base import GenRequest, GenResult, SamplingParams  # noqa: E402
from tpt.augment.backends.tokenize import TokenizerOps  # noqa: E402
from tpt.augment.config import AugmentConfig  # noqa: E402
from tpt.augment.prompts import load_strategy  # noqa: E402
from tpt.augment.run import run_augment  # noqa: E402
from tpt.config import build
from tpt.records import Document  # noqa: E402

WORDS = "the derivative slope prime divisor energy glucose pressure boiling multiply expert context simple".split()


def zipf_words(n: int = 20000, seed: int = 1) -> tuple[list[str], list[float]]:
    """A Zipfian vocabulary of pseudo-words: text whose tokens-per-word ratio resembles real prose
    under a generator-sized BPE (a 13-word corpus under a 512-token BPE is far from it)."""
    rng = random.Random(seed)
    letters = "etaoinshrdlcumwfgypbvkjxqz"
    words = ["".join(rng.choice(letters[: 8 + i % 18]) for _ in range(rng.randint(2, 9))) for i in range(n)]
    return words, [1.0 / (rank + 1) for rank in range(n)]


def realistic_tokenizer(folder: Path, vocab_size: int) -> Path:
    """A byte-level BPE of generator size (tpt's own trainer) on Zipfian text; saved as a model-less folder."""
    from tpt.prepare.tokenizer import train_tokenizer

    words, weights = zipf_words()
    rng = random.Random(2)
    texts = [" ".join(rng.choices(words, weights, k=200)) for _ in range(3000)]
    return train_tokenizer(texts, folder, vocab_size=vocab_size)


class InstantBackend(TokenizerOps):
    """Answers every request at once with a fixed trajectory; real tokenizer for truncation."""

    name = "instant"
    parallelism = 64

    def generate(self, requests, sampling):
        return [
            GenResult(text="<think>An instant thought.</think>", prompt_tokens=0, completion_tokens=5) for _ in requests
        ]

    def close(self):
        pass


def write_corpus(path: Path, n: int, words: int, seed: int = 0, zipf: bool = False) -> Path:
    rng = random.Random(seed)
    vocab, weights = zipf_words() if zipf else (WORDS, None)
    with open(path, "w") as fh:
        for i in range(n):
            text = " ".join(rng.choices(vocab, weights, k=words))
            fh.write(json.dumps({"id": f"d{i}", "text": text, "source": "bench"}) + "\n")
    return path


def config(corpus: Path, out: Path, model: Path, **kw) -> AugmentConfig:
    values = dict(inputs=[str(corpus)], out=out, model=str(model), progress=False, device="cpu")
    values.update(kw)
    return build(AugmentConfig, **values)


def bench_instant(tmp: Path, model: Path, docs: int) -> dict:
    """Pipeline throughput with an instant backend; the tokenizer alone on the same texts as reference.
    ``model`` is the tokenizer folder (a generator-sized BPE: the pipeline's cost is per document)."""
    corpus = write_corpus(tmp / "instant.jsonl", docs, words=300, zipf=True)  # most docs get cut at 256 tokens
    cfg = config(corpus, tmp / "run-instant", model, max_doc_tokens=256, shard_size=5000, checkpoint_records=1000)
    backend = InstantBackend(str(model))
    wall, cpu = time.perf_counter(), time.process_time()
    summary = run_augment(cfg, backend=backend)
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    assert summary.records == docs, summary
    texts = [json.loads(line)["text"] for line in open(corpus)]
    tok_wall, tok_cpu = time.perf_counter(), time.process_time()
    backend.truncate_batch(texts, 256)
    tok_wall, tok_cpu = time.perf_counter() - tok_wall, time.process_time() - tok_cpu
    return {
        "docs_per_s": docs / wall,
        "docs_per_cpu_s": docs / cpu,
        "tokenizer_share": tok_cpu / cpu,
        "tokenizer_docs_per_s": docs / tok_wall,
    }


def bench_generation(tmp: Path, model: Path, docs: int, tokens: int, repeats: int) -> tuple[float, float]:
    """(backend-alone seconds, pipeline seconds), each the best of ``repeats`` (the machine is shared)."""
    from tpt.augment.backends.hf import TransformersBackend

    corpus = write_corpus(tmp / "gen.jsonl", docs, words=40)
    backend = TransformersBackend(str(model), batch_size=16, device="cpu")
    sampling = SamplingParams(max_tokens=tokens)
    strategy = load_strategy("default")
    requests = []
    for i, line in enumerate(open(corpus)):
        row = json.loads(line)
        prompt = strategy.build(row["id"], backend.truncate(row["text"], 2048)[0])
        requests.append(GenRequest(doc=Document(row["id"], row["text"]), sample=0, prompt=prompt, seed=i))
    alone, pipeline = [], []  # (wall s, cpu s) per repeat; CPU time is robust to other load on the machine
    for r in range(repeats):
        wall, cpu = time.perf_counter(), time.process_time()
        for i in range(0, len(requests), 16):  # the pipeline calls generate() on slices of --batch-size
            backend.generate(requests[i : i + 16], sampling)
        alone.append((time.perf_counter() - wall, time.process_time() - cpu))
        cfg = config(corpus, tmp / f"run-gen-{r}", model, max_thinking_tokens=tokens, gen_batch=16, shard_size=docs)
        wall, cpu = time.perf_counter(), time.process_time()
        run_augment(cfg, backend=backend)
        pipeline.append((time.perf_counter() - wall, time.process_time() - cpu))
    return min(alone), min(pipeline)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--docs", type=int, default=20000, help="documents for the instant-backend run")
    parser.add_argument("--gen-docs", type=int, default=256, help="documents for the generation run")
    parser.add_argument("--gen-tokens", type=int, default=64, help="thinking tokens per document")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--vocab", type=int, default=32000, help="vocabulary of the instant run's BPE tokenizer")
    args = parser.parse_args()
    from tpt.tiny import build_tiny_model

    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        model = build_tiny_model(tmp / "model")
        instant = bench_instant(tmp, realistic_tokenizer(tmp / "tokenizer", args.vocab), args.docs)
        alone, pipeline = bench_generation(tmp, model, args.gen_docs, args.gen_tokens, args.repeats)
    print(f"cpu cores available: {len(os.sched_getaffinity(0))}, load average {os.getloadavg()[0]:.1f}")
    print(
        f"instant backend, {args.docs} docs of 300 Zipfian words ({args.vocab}-token BPE), cut to 256 tokens: "
        f"pipeline {instant['docs_per_s']:,.0f} documents/s wall, {instant['docs_per_cpu_s']:,.0f} per CPU-second; "
        f"ratio to the 2,000/s goal {instant['docs_per_s'] / 2000:.2f} (wall). Tokenizing is "
        f"{instant['tokenizer_share']:.0%} of the CPU time (tokenizer alone: {instant['tokenizer_docs_per_s']:,.0f} "
        "documents/s); everything but tokenizing: "
        f"{instant['docs_per_cpu_s'] / max(1e-9, 1 - instant['tokenizer_share']):,.0f} documents per CPU-second"
    )
    print(
        f"transformers backend, {args.gen_docs} docs x {args.gen_tokens} tokens, best of {args.repeats}: "
        f"backend alone {alone[0]:.2f} s wall / {alone[1]:.2f} s CPU; through the pipeline {pipeline[0]:.2f} s wall / "
        f"{pipeline[1]:.2f} s CPU. Pipeline/backend throughput ratio: {alone[0] / pipeline[0]:.3f} wall, "
        f"{alone[1] / pipeline[1]:.3f} CPU (goal >= 0.95, i.e. overhead < 5%)"
    )


if __name__ == "__main__":
    main()
