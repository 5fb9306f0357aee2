"""Generated tokens/s of in-process `transformers` generation: naive vs static batches vs continuous batching.

Methods: `slots` (tpt's engine, the `transformers-slots` backend: KV-cache slots refilled as
requests finish, torch's flash kernel), `cb` (transformers' continuous batching), `static`
(`generate` on batches, optionally with a compiled StaticCache decode).

The workload is the paper's: prompts of ~2k tokens, thinking up to 8k tokens, temperature 0.6
(top-p 0.9), on a randomly initialised model with the *shape* of DeepSeek-R1-Distill-Qwen-1.5B
(Qwen2Config only; weights do not change the cost of a forward pass).

Lengths are capped so random text cannot run on forever, or stop at once, unrealistically: every
request gets a target thinking length drawn once from a fixed-seed log-normal (mean
--mean-new-tokens, clipped to [--min-new-tokens, --max-new-tokens]); EOS is disabled and each
request generates *exactly* its target (min_new_tokens = max_new_tokens = target for `generate`,
per-request max_new_tokens with eos_token_id=-1 for continuous batching).  A static batch decodes
until its longest member is done, as if the others had hit EOS and sat padded: only the targets
are counted, so the waste of static batching shows up as it would with a real model.

Reference, measured in the same run: naive one-request-at-a-time `generate` on the first
--naive-requests requests.  Printed: tokens/s of each method and its ratio to the reference.

    python bench/generation_throughput.py                     # CPU: tiny shape, a smoke check (~1-3 min)
    python bench/generation_throughput.py --shape r1-distill-qwen-1.5b --device cuda   # one H200
"""

from __future__ import annotations

import argparse
import json
import math
import os
import random
import time

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import torch  # noqa: E402

SHAPES = {
    # DeepSeek-R1-Distill-Qwen-1.5B's config.json (architecture only).
    "r1-distill-qwen-1.5b": dict(vocab_size=151936, hidden_size=1536, intermediate_size=8960, num_hidden_layers=28,
                                 num_attention_heads=12, num_key_value_heads=2, max_position_embeddings=131072,
                                 rope_theta=10000.0, tie_word_embeddings=False),
    "tiny": dict(vocab_size=512, hidden_size=64, intermediate_size=256, num_hidden_layers=2, num_attention_heads=4,
                 num_key_value_heads=2, max_position_embeddings=4096, tie_word_embeddings=True),
}
PAPER = dict(prompt_tokens=2048, max_new_tokens=8192, temperature=0.6, top_p=0.9)


def parse_args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--shape", choices=sorted(SHAPES), default=None, help="default: r1-distill-qwen-1.5b on CUDA, tiny on CPU")
    p.add_argument("--device", default="auto", help="auto | cpu | cuda")
    p.add_argument("--requests", type=int, default=None, help="requests per method (default 512 CUDA, 32 CPU)")
    p.add_argument("--prompt-tokens", type=int, default=None, help="default 2048 CUDA (paper), 64 CPU")
    p.add_argument("--mean-new-tokens", type=int, default=None, help="mean target thinking length (default 2048 CUDA, 48 CPU)")
    p.add_argument("--min-new-tokens", type=int, default=None, help="shortest target (default 256 CUDA, 8 CPU)")
    p.add_argument("--max-new-tokens", type=int, default=None, help="thinking budget (default 8192 CUDA, 128 CPU)")
    p.add_argument("--batch-sizes", default=None, help="static batch sizes to try, comma-separated (default 64,256 CUDA; 8,32 CPU)")
    p.add_argument("--max-batch-tokens", type=int, default=None, help="continuous batching: tokens per step (default: auto)")
    p.add_argument("--cb", action="append", default=None, metavar="KEY=VALUE,...",
                   help="a continuous-batching variant: ContinuousBatchingConfig fields, e.g. "
                        "'use_cuda_graph=true,max_requests_per_batch=512' (repeatable; 'default' = auto-sized)")
    p.add_argument("--static-requests", type=int, default=None, help="static batches run on this many requests (default: all)")
    p.add_argument("--naive-requests", type=int, default=2, help="requests timed one at a time (the reference)")
    p.add_argument("--naive-max-tokens", type=int, default=None, help="cap the reference requests' targets (one-at-a-time decoding is slow)")
    p.add_argument("--static-cache", action="store_true",
                   help="static batches use a StaticCache sized prompt+max-new-tokens: generate() then compiles the decode step "
                        "(CUDA graphs), which removes Python overhead; a warm-up batch pays the compilation outside the timing")
    p.add_argument("--time-limit", type=float, default=None,
                   help="seconds per method: static stops starting batches (and cuts the running one), continuous batching "
                        "stops waiting; only tokens of finished work are counted (a lower bound)")
    p.add_argument("--slots", default=None, help="tpt slot-engine slot counts to try, comma-separated (default 256 CUDA, 8 CPU)")
    p.add_argument("--slot-modes", default="graph", help="slot engine decode modes to try, comma-separated: graph (CUDA graph, "
                                                          "eager on CPU), eager")
    p.add_argument("--skip", default="", help="methods to skip, comma-separated: slots,cb,static")
    p.add_argument("--json", default=None, help="also write the figures to this file")
    args = p.parse_args()
    cuda = args.device == "cuda" or (args.device == "auto" and torch.cuda.is_available())
    args.device = "cuda" if cuda else "cpu"
    defaults = dict(shape="r1-distill-qwen-1.5b", requests=512, prompt_tokens=PAPER["prompt_tokens"], mean_new_tokens=2048,
                    min_new_tokens=256, max_new_tokens=PAPER["max_new_tokens"], batch_sizes="64,256", slots="256") if cuda else dict(
                    shape="tiny", requests=32, prompt_tokens=64, mean_new_tokens=48, min_new_tokens=8, max_new_tokens=128,
                    batch_sizes="8,32", slots="8")
    for key, value in defaults.items():
        if getattr(args, key) is None:
            setattr(args, key, value)
    args.cb = args.cb or ["default"]
    return args


def cb_variant(spec: str) -> dict:
    """'a=1,b=true' -> {'a': 1, 'b': True}; 'default' -> {} (transformers sizes everything itself)."""
    if spec == "default":
        return {}
    out = {}
    for item in spec.split(","):
        key, _, raw = item.partition("=")
        low = raw.lower()
        out[key.strip()] = True if low == "true" else False if low == "false" else float(raw) if "." in raw else int(raw)
    return out


def build_model(shape: str, device: str):
    from transformers import Qwen2Config, Qwen2ForCausalLM

    dtype = torch.bfloat16 if device == "cuda" else torch.float32
    config = Qwen2Config(**SHAPES[shape], bos_token_id=0, eos_token_id=1, pad_token_id=2)
    torch.manual_seed(0)
    with torch.device(device):
        model = Qwen2ForCausalLM(config).to(dtype).eval()
    params = sum(p.numel() for p in model.parameters())
    return model, params


def workload(args, vocab: int) -> tuple[list[list[int]], list[int]]:
    """Random prompts of exactly --prompt-tokens and target lengths from a clipped log-normal."""
    rng = random.Random(0)
    sigma = 0.8  # a wide spread, as real thinking lengths have: what static batching pays for
    mu = math.log(args.mean_new_tokens) - sigma**2 / 2
    targets = [min(args.max_new_tokens, max(args.min_new_tokens, round(rng.lognormvariate(mu, sigma)))) for _ in range(args.requests)]
    prompts = [[rng.randrange(3, vocab) for _ in range(args.prompt_tokens)] for _ in range(args.requests)]
    return prompts, targets


def sampling_kwargs() -> dict:
    return dict(do_sample=True, temperature=PAPER["temperature"], top_p=PAPER["top_p"])


def sync(device: str) -> None:
    if device == "cuda":
        torch.cuda.synchronize()


_CACHES: dict = {}


def static_cache(model, batch_size: int, max_len: int):
    """One StaticCache per (batch size, length), reset and reused: a second 75 GB cache would not fit,
    and one fixed shape means the compiled decode graph is reused."""
    from transformers import StaticCache

    key = (batch_size, max_len)
    if key not in _CACHES:
        _CACHES.clear()
        torch.cuda.empty_cache() if torch.cuda.is_available() else None
        _CACHES[key] = StaticCache(config=model.config, max_cache_len=max_len)
    else:
        _CACHES[key].reset()
    return _CACHES[key]


@torch.no_grad()
def run_static(model, prompts, targets, batch_size: int, device: str, cache_len: int = 0,
               time_limit: float | None = None) -> tuple[int, float]:
    """Left-padded batches in input order (as the backend does); each runs to its longest target.
    cache_len > 0: one StaticCache of that length for every batch (one compiled graph for all)."""
    sync(device)
    started, tokens = time.perf_counter(), 0
    for i in range(0, len(prompts), batch_size):
        left = None if time_limit is None else time_limit - (time.perf_counter() - started)
        if left is not None and left <= 0:
            break
        batch, lengths = prompts[i : i + batch_size], targets[i : i + batch_size]
        ids = torch.tensor(batch, device=device)  # [batch, prompt_tokens]: equal lengths, no padding needed
        longest = max(lengths)
        extra = {"past_key_values": static_cache(model, len(batch), cache_len)} if cache_len else {}
        out = model.generate(input_ids=ids, attention_mask=torch.ones_like(ids), min_new_tokens=longest,
                             max_new_tokens=longest, pad_token_id=2, max_time=left, **extra, **sampling_kwargs())
        made = out.shape[1] - ids.shape[1]
        assert made == longest or left is not None, "generation stopped early: EOS must be suppressed"
        tokens += sum(min(t, made) for t in lengths)
    sync(device)
    return tokens, time.perf_counter() - started


@torch.no_grad()
def run_continuous(model, prompts, targets, device: str, max_batch_tokens, variant: dict,
                   time_limit: float | None = None) -> tuple[int, float]:
    """transformers' continuous batching (paged KV cache): a finished request frees its slot at once.
    A few short warm-up requests go through the same manager first, so CUDA-graph capture or
    compilation is not timed (it is paid once per process, not per request)."""
    from transformers import ContinuousBatchingConfig, GenerationConfig

    gen = GenerationConfig(max_new_tokens=max(targets), eos_token_id=-1, pad_token_id=2, **sampling_kwargs())
    kwargs = {"max_batch_tokens": max_batch_tokens} if max_batch_tokens else {}
    kwargs.update(variant)
    if device == "cpu":  # auto-sizing would take 90% of system RAM for the KV cache: size it for the workload
        pages = sum(math.ceil((len(p) + t) / 256) for p, t in zip(prompts, targets))
        kwargs = {"num_blocks": pages, "max_batch_tokens": max_batch_tokens or 512}
    cb = ContinuousBatchingConfig(**kwargs)
    manager = model.init_continuous_batching(generation_config=gen, continuous_batching_config=cb)
    manager.start()
    try:
        warm = [manager.add_request(p, max_new_tokens=8, eos_token_id=-1) for p in prompts[:4]]
        while warm:
            result = manager.get_result(timeout=1)
            if result is not None and result.is_finished() and result.request_id in warm:
                warm.remove(result.request_id)
            elif result is None and not manager.is_running():
                raise RuntimeError("continuous batching thread died during warm-up")
        sync(device)
        started = time.perf_counter()
        wanted = {manager.add_request(p, max_new_tokens=t, eos_token_id=-1): t for p, t in zip(prompts, targets)}
        tokens, pending = 0, set(wanted)
        while pending and (time_limit is None or time.perf_counter() - started < time_limit):
            result = manager.get_result(timeout=1)
            if result is None:
                if not manager.is_running():
                    raise RuntimeError("continuous batching thread died")
                continue
            if result.is_finished() and result.request_id in pending:
                if result.error:
                    raise RuntimeError(f"request {result.request_id}: {result.error}")
                assert len(result.generated_tokens) == wanted[result.request_id], "length cap not honoured"
                tokens += len(result.generated_tokens)
                pending.discard(result.request_id)
        sync(device)
        return tokens, time.perf_counter() - started
    finally:
        manager.stop(block=True, timeout=30)


@torch.no_grad()
def run_slots(model, prompts, targets, slots: int, max_len: int, device: str,
              time_limit: float | None = None, graph: bool = True) -> tuple[int, float]:
    """tpt's slot engine (the transformers-slots backend): no stop tokens, so each request generates
    exactly its target.  A short warm-up run on the same engine is not timed."""
    from tpt.augment.backends.slot_engine import SlotEngine, SlotRequest

    engine = SlotEngine(model, slots, max_len, PAPER["temperature"], PAPER["top_p"], seed=0, cuda_graph=graph)
    for _ in engine.run([SlotRequest(p, 4) for p in prompts[:4]]):  # warm-up; captures the graph
        pass
    print(f"slot engine: {slots} slots x {max_len} rows, flash kernel: {engine.use_flash}, "
          f"CUDA graph: {engine._graph is not None}", flush=True)
    sync(device)
    started, tokens = time.perf_counter(), 0
    for i, generated, _ in engine.run([SlotRequest(p, t) for p, t in zip(prompts, targets)]):
        assert len(generated) == targets[i], "length cap not honoured"
        tokens += len(generated)
        if time_limit is not None and time.perf_counter() - started > time_limit:
            break
    sync(device)
    secs = time.perf_counter() - started
    del engine
    torch.cuda.empty_cache() if device == "cuda" else None
    return tokens, secs


def main() -> None:
    args = parse_args()
    model, params = build_model(args.shape, args.device)
    prompts, targets = workload(args, model.config.vocab_size)
    print(f"model: random {args.shape} ({params / 1e9:.3f} B params) on {args.device}; {args.requests} requests, "
          f"prompt {args.prompt_tokens} tokens, thinking targets mean {sum(targets) / len(targets):.0f} "
          f"[{min(targets)}..{max(targets)}], temperature {PAPER['temperature']}, top-p {PAPER['top_p']}")
    run_static(model, prompts[:2], [4, 4], 2, args.device)  # warm-up (kernels, allocator)
    figures = {}
    n = args.naive_requests
    capped = [min(t, args.naive_max_tokens or t) for t in targets[:n]]
    tokens, secs = run_static(model, prompts[:n], capped, 1, args.device)
    figures["naive (batch 1)"] = tokens / secs
    reference = figures["naive (batch 1)"]
    report(figures, "naive (batch 1)", reference, tokens, secs)
    skip = set(filter(None, args.skip.split(",")))
    if "slots" not in skip:
        for slots in (int(x) for x in args.slots.split(",")):
            for mode in args.slot_modes.split(","):
                tokens, secs = run_slots(model, prompts, targets, slots, args.prompt_tokens + args.max_new_tokens,
                                         args.device, args.time_limit, graph=mode == "graph")
                name = f"tpt slots {slots} ({mode})"
                figures[name] = tokens / secs
                report(figures, name, reference, tokens, secs)
    if "cb" not in skip:  # first: it is the figure that matters, and the slowest method must not crowd it out
        for spec in args.cb:
            tokens, secs = run_continuous(model, prompts, targets, args.device, args.max_batch_tokens, cb_variant(spec), args.time_limit)
            name = "continuous batching" + ("" if spec == "default" else f" [{spec}]")
            figures[name] = tokens / secs
            report(figures, name, reference, tokens, secs)
    if "static" not in skip:
        m = args.static_requests or len(prompts)
        cache_len = args.prompt_tokens + args.max_new_tokens if args.static_cache else 0
        for size in (int(s) for s in args.batch_sizes.split(",")):
            if cache_len:  # compile + graph capture for this batch shape, untimed
                t0 = time.perf_counter()
                run_static(model, prompts[:size], [16] * size, size, args.device, cache_len)
                print(f"static cache warm-up (compile) for batch {size}: {time.perf_counter() - t0:.1f} s", flush=True)
            tokens, secs = run_static(model, prompts[:m], targets[:m], size, args.device, cache_len, args.time_limit)
            if args.time_limit and secs >= args.time_limit:
                print(f"(static batch {size}: cut at the time limit; its long tails were not paid: an upper bound)")
            name = f"static batch {size}{' static-cache' if cache_len else ''} ({m} requests)"
            figures[name] = tokens / secs
            report(figures, name, reference, tokens, secs)
    if args.json:
        with open(args.json, "w") as fh:
            json.dump({"args": vars(args), "tokens_per_second": figures}, fh, indent=2)
    print("summary:")
    for name, rate in figures.items():
        print(f"{name:>60}: {rate:10.1f} generated tokens/s   x{rate / reference:6.2f} vs naive")
    if args.device == "cuda":
        best = max(figures.values())
        print(f"best: {best:.0f} tokens/s = {best / 930:.1f}x the paper's ~930 tokens/s per A100 (goal >= 10,000 on one H200)")


def report(figures: dict, name: str, reference: float, tokens: int, secs: float) -> None:
    """Print each figure as soon as it exists: a run cut short by a time limit still says something."""
    print(f"{name}: {tokens} tokens in {secs:.1f} s = {figures[name]:.1f} tokens/s (x{figures[name] / reference:.2f} vs naive)", flush=True)


if __name__ == "__main__":
    main()
