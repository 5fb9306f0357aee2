"""tpt augment through vLLM against vLLM's own throughput on the same prompts, in one run.

Workload shaped like TPT's: GSM8K training problems (``../shared/data/eval/gsm8k/train.jsonl``) in
the paper's prompt, cut to --max-doc-tokens, each with its own seed, thinking up to
--max-thinking-tokens at temperature 0.6 / top-p 0.9 and stopped at ``</think>`` (the tiny model
closes its thinking after a spread of lengths, as real thinking does).  Every method sends exactly
the prompts tpt builds, with tpt's per-request seeds.  Generated tokens/s of:

  1. engine     vLLM offline: ``LLM.generate`` on all prompts at once (the reference)
  2. tpt-vllm   ``tpt augment --backend vllm`` (in-process) on the same engine, whole run
  3. server     the same requests sent straight to ``vllm serve`` by a bare asyncio HTTP client
                at --concurrency (what the server path costs, without tpt)
  4. tpt-serve  ``tpt augment --backend openai`` on that server at --concurrency, whole run

Printed: each figure and the ratios tpt-vllm/engine, tpt-serve/engine, tpt-serve/server
(goal: tpt end to end >= 0.95 of the engine).  The model's start-up is timed apart, never inside
a figure.

    python bench/engine_overhead.py                                     # CPU: tiny model, ~5-10 min
    python bench/engine_overhead.py --model /models/r1-distill-qwen-1.5b --docs 4000 \\
        --max-thinking-tokens 8192 --concurrency 512                      # one GPU (the recipe)
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
REPO = Path(__file__).resolve().parents[1]


def parse_args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", default=None, help="model folder (default: a tiny model built here)")
    p.add_argument("--docs", type=int, default=300, help="GSM8K training problems (documents)")
    p.add_argument("--max-doc-tokens", type=int, default=2048)
    p.add_argument("--max-thinking-tokens", type=int, default=128)
    p.add_argument("--max-model-len", type=int, default=None, help="default: what the prompts + thinking need")
    p.add_argument(
        "--think-close-weight", type=float, default=1.5, help="tiny model only: how soon it closes its thinking"
    )
    p.add_argument("--concurrency", type=int, default=64, help="requests in flight (server methods)")
    p.add_argument("--skip", default="", help="comma-separated methods to skip: tpt-vllm,server,tpt-serve")
    p.add_argument("--data", default=str(REPO.parent / "shared" / "data" / "eval" / "gsm8k" / "train.jsonl"))
    p.add_argument("--work", default=None, help="folder for runs and logs (default: a temp folder)")
    return p.parse_args()


def write_corpus(src: str, n: int, out: Path) -> Path:
    with open(src) as fh, open(out, "w") as dst:
        for i, line in zip(range(n), fh):
            row = json.loads(line)
            dst.write(json.dumps({"id": f"gsm8k-{i}", "text": f"{row['question']}\n{row['answer']}"}) + "\n")
    return out


def augment_config(args, corpus: Path, out: Path, **kw):
    from tpt.augment.config import AugmentConfig
    from tpt.config import build

    values = dict(
        inputs=[str(corpus)],
        out=out,
        model=args.model,
        max_doc_tokens=args.max_doc_tokens,
        max_thinking_tokens=args.max_thinking_tokens,
        max_model_len=args.max_model_len,
        progress=False,
        shard_size=max(1000, args.docs),
        checkpoint_records=256,
        checkpoint_seconds=30.0,
    )
    values.update(kw)
    return build(AugmentConfig, **values)


def tpt_requests(cfg, backend):
    """Exactly the prompts and seeds tpt sends (its own prompt building and truncation)."""
    from tpt.augment.run import make_plan, shard_context
    from tpt.augment.shards import _prepare, load_rows, plan_shards

    Path(cfg.out).mkdir(parents=True, exist_ok=True)
    plan = make_plan(cfg)
    ctx = shard_context(cfg, backend, plan)
    docs = []
    for spec in plan_shards(plan["n_rows"], cfg.executor.shard_size):
        from tpt.io.readers import parse_row

        docs += [parse_row(raw, cfg.text_field, cfg.id_field) for raw in load_rows(cfg, spec)]
    return [req for req, _, _ in _prepare([(d, 0) for d in docs], ctx)]


def run_tpt(cfg, backend=None) -> dict:
    from tpt.augment.run import run_augment

    started = time.monotonic()
    summary = run_augment(cfg, backend=backend)
    wall = time.monotonic() - started
    tokens = summary.stats["this_run"]["completion_tokens"]
    assert summary.failed == 0 and summary.records == summary.stats["records"], summary.stats
    return {"tokens": tokens, "seconds": wall, "tok_s": tokens / wall}


def offline(args, corpus: Path, work: Path, results: dict) -> None:
    from tpt.augment.backends.vllm import VLLMBackend
    from vllm import SamplingParams

    cfg = augment_config(args, corpus, work / "tpt-vllm", backend="vllm")
    started = time.monotonic()
    backend = VLLMBackend(cfg.backend_config(), cfg.sampling)
    results["startup_offline_s"] = round(time.monotonic() - started, 1)
    try:
        requests = tpt_requests(augment_config(args, corpus, work / "plan-offline", backend="vllm"), backend)
        prompts = [backend.chat_prompt(r.prompt) for r in requests]
        sampling = cfg.sampling.params()
        params = [
            SamplingParams(
                temperature=sampling.temperature,
                top_p=sampling.top_p,
                max_tokens=sampling.max_tokens,
                stop=list(sampling.stop),
                seed=r.seed,
            )
            for r in requests
        ]
        backend.llm.generate(prompts[:8], params[:8], use_tqdm=False)  # warm-up (first-call costs)
        backend.llm.reset_prefix_cache()  # every method starts cold: the same prompts must not be cached
        started = time.monotonic()
        outputs = backend.llm.generate(prompts, params, use_tqdm=False)
        wall = time.monotonic() - started
        tokens = sum(len(o.outputs[0].token_ids) for o in outputs)
        results["engine"] = {"tokens": tokens, "seconds": wall, "tok_s": tokens / wall}
        print("engine:", results["engine"], flush=True)
        if "tpt-vllm" not in args.skip:
            backend.llm.reset_prefix_cache()
            results["tpt-vllm"] = run_tpt(cfg, backend)
            print("tpt-vllm:", results["tpt-vllm"], flush=True)
    finally:
        backend.close()


async def bare_client(
    base_url: str, model: str, prompts: list[str], seeds: list[int], sampling, concurrency: int
) -> dict:
    import httpx

    gate = asyncio.Semaphore(concurrency)
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(timeout=3600, limits=limits) as client:

        async def one(prompt: str, seed: int) -> int:
            body = {
                "model": model,
                "prompt": prompt,
                "max_tokens": sampling.max_tokens,
                "temperature": sampling.temperature,
                "top_p": sampling.top_p,
                "stop": sampling.stop,
                "seed": seed,
            }
            async with gate:
                response = await client.post(f"{base_url}/completions", json=body)
            response.raise_for_status()
            return response.json()["usage"]["completion_tokens"]

        started = time.monotonic()
        tokens = sum(await asyncio.gather(*(one(p, s) for p, s in zip(prompts, seeds))))
        wall = time.monotonic() - started
    return {"tokens": tokens, "seconds": wall, "tok_s": tokens / wall}


def reset_prefix_cache(base_url: str) -> None:
    import httpx

    httpx.post(f"{base_url.removesuffix('/v1')}/reset_prefix_cache", timeout=60).raise_for_status()


def served(args, corpus: Path, work: Path, results: dict) -> None:
    from tpt.augment.backends.openai import OpenAIBackend
    from tpt.augment.serve import ServedModel
    from tpt.vllm_launch import cpu_environment, on_cpu, serve_command

    cfg = augment_config(
        args,
        corpus,
        work / "tpt-serve",
        backend="openai",
        api="completions",
        concurrency=args.concurrency,
        server_sampling="native",
    )
    env = cpu_environment(str(work / "vllm-cache")) if on_cpu() else {}
    env["VLLM_SERVER_DEV_MODE"] = "1"  # for POST /reset_prefix_cache between methods
    started = time.monotonic()
    with ServedModel(
        serve_command(max_model_len=cfg.context_length()), args.model, timeout=1800, env=env, log_dir=work
    ) as server:
        results["startup_server_s"] = round(time.monotonic() - started, 1)
        cfg.backend.openai.base_url = server.base_url
        probe = OpenAIBackend(cfg.backend, cfg.sampling)
        requests = tpt_requests(
            augment_config(
                args,
                corpus,
                work / "plan-serve",
                backend="openai",
                base_url=server.base_url,
                api="completions",
                server_sampling="native",
            ),
            probe,
        )
        prompts = [probe.chat_prompt(r.prompt) for r in requests]
        probe.close()
        if "server" not in args.skip:
            asyncio.run(
                bare_client(server.base_url, args.model, prompts[:8], [1] * 8, cfg.sampling.params(), 8)
            )  # warm-up
            reset_prefix_cache(server.base_url)
            results["server"] = asyncio.run(
                bare_client(
                    server.base_url,
                    args.model,
                    prompts,
                    [r.seed for r in requests],
                    cfg.sampling.params(),
                    args.concurrency,
                )
            )
            print("server:", results["server"], flush=True)
        if "tpt-serve" not in args.skip:
            reset_prefix_cache(server.base_url)
            results["tpt-serve"] = run_tpt(cfg)


def report(results: dict) -> None:
    print(f"{'method':<10} {'tokens':>9} {'seconds':>8} {'tok/s':>9}  vs engine")
    engine = results.get("engine", {}).get("tok_s")
    for name in ("engine", "tpt-vllm", "server", "tpt-serve"):
        if name in results:
            r = results[name]
            ratio = f"{r['tok_s'] / engine:.2f}" if engine else "-"
            print(f"{name:<10} {r['tokens']:>9} {r['seconds']:>8.1f} {r['tok_s']:>9.0f}  {ratio}")
    if "server" in results and "tpt-serve" in results:
        print(
            f"tpt-serve / server (tpt's own cost on the server path): "
            f"{results['tpt-serve']['tok_s'] / results['server']['tok_s']:.2f}"
        )
    print(json.dumps({k: v for k, v in results.items()}, default=str))


def main() -> None:
    args = parse_args()
    args.skip = set(filter(None, args.skip.split(",")))
    work = Path(args.work or tempfile.mkdtemp(prefix="tpt-engine-bench-"))
    work.mkdir(parents=True, exist_ok=True)
    if args.model is None:
        from tpt.tiny import build_reasoning_tiny_model

        # A weaker pull to </think> than the tests' model: thinking of tens of tokens, spread out.
        args.model = str(build_reasoning_tiny_model(work / "model", think_close_weight=args.think_close_weight))
    corpus = write_corpus(args.data, args.docs, work / "corpus.jsonl")
    results: dict = {
        "docs": args.docs,
        "max_thinking_tokens": args.max_thinking_tokens,
        "concurrency": args.concurrency,
    }
    offline(args, corpus, work, results)
    if not {"server", "tpt-serve"} <= args.skip:
        served(args, corpus, work, results)
    report(results)
    print(f"work folder: {work}", file=sys.stderr)


if __name__ == "__main__":
    main()
