"""tpt augment through vLLM against vLLM's own throughput on the same prompts, in one run.

Workload shaped like TPT's: GSM8K training problems (``../shared/data/eval/gsm8k/train.jsonl``) in
the paper's prompt, cut to --max-doc-tokens, each request with its own seed, thinking up to
--max-thinking-tokens at temperature 0.6 / top-p 0.9, stopped at ``</think>`` (the tiny model
closes its thinking after a spread of lengths, as real thinking does).  Every method sends exactly
the user prompts tpt builds, in the model's chat template, with tpt's per-request seeds, to one
engine with the same settings (``tpt.vllm_launch``).  Generated tokens/s, and what each window holds:

  engine       vLLM offline, ``LLM.chat`` on all prompts at once: chat template, tokenisation, the
               engine's scheduling and generation, the outputs.  The user prompts are given.
  engine-text  the same with the chat template applied beforehand, outside the window:
               ``LLM.generate`` on the finished prompt texts (the strictest reference).
  tpt-vllm     ``tpt augment --backend vllm`` on that same ``LLM``, its whole ``run_augment`` call:
               plan and read the corpus, truncate, build prompts, generate, write the records
               (Parquet, atomic), merge, stats.json.  Only the engine's start is outside.
  server       ``vllm serve`` driven by a bare asyncio HTTP client at --concurrency, prompts already
               templated: first request sent to last answer (vLLM's own server throughput).
  tpt-serve    ``tpt augment --backend openai`` on that server at --concurrency (``--server-sampling
               auto``, as users run it), its whole run as above plus its pre-flight requests (model
               list, /tokenize; vLLM is not probed for sampling).  Its window is also split into
               pre-flight (start to first generation request), generation (first request to last
               answer: what the bare client's window holds) and wrap-up (records merged, stats).

For the served methods the CPU seconds of this process (the client) and of the server's processes
are counted too, per 1,000 generated tokens: on a small machine the client's CPU is taken from the
server; CPU per token moves far less with load from other processes than tok/s do.
``--with-probe`` adds tpt-serve-probed: tpt-serve with the start-up it had before vLLM was exempted
from the sampling probe, in the same rounds (old against new).

Each method runs --rounds times, the order rotating from round to round, with the prefix cache
emptied before every run, so load from other processes on a shared machine hits all alike; ratios
are taken within a round, then the median and range over rounds are printed, with a last line
``SUMMARY engine_overhead: ...`` (goal: tpt >= 0.95 of the engine).  For the in-process methods
the time inside the engine's ``step``/``add_request`` calls is measured too: the rest of a run's
window ("outside engine s") is that method's own work.  Engine start-ups are timed apart.

    python bench/engine_overhead.py                    # CPU: tiny model built here, ~3-4 min
    python bench/engine_overhead.py --model /models/r1-distill-qwen-1.5b --docs 4000 \\
        --max-thinking-tokens 8192 --concurrency 512 --rounds 2    # one GPU (the recipe)
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
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
    p.add_argument("--rounds", type=int, default=3, help="runs of each method, interleaved")
    p.add_argument(
        "--think-close-weight", type=float, default=1.5, help="tiny model only: how soon it closes its thinking"
    )
    p.add_argument("--concurrency", type=int, default=64, help="requests in flight (server methods)")
    p.add_argument(
        "--with-probe",
        action="store_true",
        help="also run tpt-serve-probed: tpt-serve with the sampling probe vLLM no longer gets (the old start-up)",
    )
    p.add_argument("--skip", default="", help="comma-separated: offline (engine+tpt-vllm), served (server+tpt-serve)")
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
    """tpt's defaults otherwise (one 64 MiB JSONL shard, checkpoints every 64 records / 10 s): what users run."""
    from tpt.augment.config import AugmentConfig
    from tpt.config import build

    values = dict(
        inputs=[str(corpus)],
        out=out,
        model=args.model,
        max_doc_tokens=args.max_doc_tokens,
        max_thinking_tokens=args.max_thinking_tokens,
        progress=False,
    )
    values.update(kw)
    return build(AugmentConfig, **values)


def tpt_requests(cfg, backend) -> list:
    """Exactly the requests (user prompt, seed) tpt sends: its own reading, truncation and prompts."""
    from tpt.augment.run import prepare_run, shard_context
    from tpt.augment.shards import _prepare, load_rows, parse_shard_rows

    ctx = shard_context(cfg, backend)
    docs = [doc for spec in prepare_run(cfg) for doc in parse_shard_rows(load_rows(spec), spec)[0]]
    return [req for req, _, _ in _prepare([(d, s) for d in docs for s in range(cfg.sampling.samples)], ctx)]


def measured(tokens: int, started: float) -> dict:
    wall = time.monotonic() - started
    return {"tokens": tokens, "seconds": round(wall, 3), "tok_s": tokens / wall}


def run_tpt(cfg, backend=None) -> dict:
    from tpt.augment.run import run_augment

    started = time.monotonic()
    summary = run_augment(cfg, backend=backend)
    result = measured(summary.stats["this_run"]["completion_tokens"], started)
    assert summary.failed == 0 and summary.records == summary.stats["records"], summary.stats
    return result


class EngineClock:
    """Seconds spent inside the in-process engine's ``step`` and ``add_request`` calls: what a run
    spends outside them is its own work (reading, prompts, records), measured rather than guessed."""

    def __init__(self, engine):
        self.inside = {"step": 0.0, "add_request": 0.0}
        for name in self.inside:
            setattr(engine, name, self._timed(name, getattr(engine, name)))

    def _timed(self, name, call):
        def timed(*a, **kw):
            started = time.monotonic()
            try:
                return call(*a, **kw)
            finally:
                self.inside[name] += time.monotonic() - started

        return timed

    def around(self, run):
        def measured_run(r: int) -> dict:
            before = dict(self.inside)
            result = run(r)
            step, add = (self.inside[k] - before[k] for k in ("step", "add_request"))
            result.update(
                step_s=round(step, 3), add_s=round(add, 3), outside_s=round(result["seconds"] - step - add, 3)
            )
            return result

        return measured_run


def group_cpu_seconds(session: int) -> float | None:
    """CPU seconds (user + system) of every live process in session ``session`` (the server's: it is
    started in a session of its own), from /proc; None where there is no /proc."""
    total, tick = 0.0, os.sysconf("SC_CLK_TCK")
    try:
        pids = [p for p in os.listdir("/proc") if p.isdigit()]
    except OSError:
        return None
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:  # gone meanwhile
            continue
        if int(fields[3]) == session:  # fields after the name: state, ppid, pgrp, session, ...
            total += (int(fields[11]) + int(fields[12])) / tick
    return total


class ServedClock:
    """For the served methods: CPU seconds of this process (the client) and of the server per run, and
    for tpt-serve when its first generation request went out and its last answer came back (wrapping
    ``OpenAIBackend._post``, as ``EngineClock`` wraps the engine)."""

    def __init__(self, server_pid: int):
        from tpt.augment.backends.openai import PROBE_PROMPT, OpenAIBackend

        self.server_pid, self.marks = server_pid, {}
        post, marks = OpenAIBackend._post, self.marks

        async def timed_post(backend, path, body):
            prompt = body.get("prompt") or body["messages"][-1]["content"]
            if PROBE_PROMPT not in prompt:  # the sampling probe (tpt-serve-probed) is pre-flight
                marks.setdefault("first", time.monotonic())
            try:
                return await post(backend, path, body)
            finally:
                marks["last"] = time.monotonic()

        OpenAIBackend._post = timed_post

    def around(self, run):
        def measured_run(r: int) -> dict:
            self.marks.clear()
            cpu, server = sum(os.times()[:2]), group_cpu_seconds(self.server_pid)
            started = time.monotonic()
            result = run(r)
            client_cpu = sum(os.times()[:2]) - cpu
            result["client_ms_per_ktok"] = round(1e6 * client_cpu / result["tokens"], 1)
            if server is not None:
                server = group_cpu_seconds(self.server_pid) - server
                result["server_ms_per_ktok"] = round(1e6 * server / result["tokens"], 1)
            if self.marks:  # tpt-serve: where its window went
                first, last = self.marks["first"] - started, self.marks["last"] - started
                wrap_up = result["seconds"] - last
                result.update(pre_s=round(first, 3), gen_s=round(last - first, 3), post_s=round(wrap_up, 3))
            result["load"] = round(os.getloadavg()[0], 1)
            return result

        return measured_run


def interleaved(rounds: int, methods: dict, reset) -> list[dict]:
    """``rounds`` runs of every method, the order rotating from round to round; the prefix cache
    emptied before each run.  Returns one {method: result} per round."""
    names, out = list(methods), []
    for r in range(rounds):
        done = {}
        for name in names[r % len(names) :] + names[: r % len(names)]:
            reset()
            done[name] = methods[name](r)
            print(f"  round {r + 1} {name}: {done[name]}", flush=True)
        out.append(done)
    return out


def offline(args, corpus: Path, work: Path) -> dict:
    from tpt.augment.backends.vllm import VLLMBackend
    from vllm import SamplingParams

    cfg = augment_config(args, corpus, work / "tpt-vllm-plan", backend="vllm")
    started = time.monotonic()
    backend = VLLMBackend(cfg.backend_config(), cfg.sampling)
    startup = round(time.monotonic() - started, 1)
    try:
        requests = tpt_requests(cfg, backend)
        conversations = [[{"role": "user", "content": r.prompt}] for r in requests]
        prompts = [backend.chat_prompt(r.prompt) for r in requests]  # for engine-text, built outside its window
        s = cfg.sampling.params()
        params = [
            SamplingParams(temperature=s.temperature, top_p=s.top_p, max_tokens=s.max_tokens, stop=s.stop, seed=r.seed)
            for r in requests
        ]
        llm = backend.llm
        llm.chat(conversations[:8], params[:8], use_tqdm=False)  # warm-up (first-call costs)

        def engine(_r: int) -> dict:
            started = time.monotonic()
            outputs = llm.chat(conversations, params, use_tqdm=False)
            return measured(sum(len(o.outputs[0].token_ids) for o in outputs), started)

        def engine_text(_r: int) -> dict:
            started = time.monotonic()
            outputs = llm.generate(prompts, params, use_tqdm=False)
            return measured(sum(len(o.outputs[0].token_ids) for o in outputs), started)

        def tpt(r: int) -> dict:
            return run_tpt(augment_config(args, corpus, work / f"tpt-vllm-{r}", backend="vllm"), backend)

        clock = EngineClock(llm.llm_engine)
        methods = {"engine": engine, "tpt-vllm": tpt, "engine-text": engine_text}
        rounds = interleaved(args.rounds, {k: clock.around(v) for k, v in methods.items()}, llm.reset_prefix_cache)
    finally:
        backend.close()
    return {"startup_s": startup, "rounds": rounds}


async def bare_client(base_url: str, model: str, prompts: list[str], seeds: list[int], sampling, concurrency: int):
    import httpx

    gate = asyncio.Semaphore(concurrency)
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(timeout=3600, limits=limits) as client:

        async def one(prompt: str, seed: int) -> int:
            body = {"model": model, "prompt": prompt, "max_tokens": sampling.max_tokens, "seed": seed}
            body.update(temperature=sampling.temperature, top_p=sampling.top_p, stop=sampling.stop)
            async with gate:
                response = await client.post(f"{base_url}/completions", json=body)
            response.raise_for_status()
            return response.json()["usage"]["completion_tokens"]

        started = time.monotonic()
        tokens = sum(await asyncio.gather(*(one(p, s) for p, s in zip(prompts, seeds))))
    return measured(tokens, started)


def served(args, corpus: Path, work: Path) -> dict:
    import httpx

    from tpt.augment.backends.openai import OpenAIBackend
    from tpt.augment.serve import ServedModel
    from tpt.vllm_launch import cpu_environment, on_cpu, serve_command

    kw = dict(backend="openai", api="completions", concurrency=args.concurrency)
    cfg = augment_config(args, corpus, work / "tpt-serve-plan", **kw)
    env = cpu_environment(str(work / "vllm-cache")) if on_cpu() else {}
    env["VLLM_SERVER_DEV_MODE"] = "1"  # for POST /reset_prefix_cache between runs
    started = time.monotonic()
    command = serve_command(max_model_len=cfg.context_length())
    with ServedModel(command, args.model, timeout=1800, env=env, log_dir=work) as server:
        startup = round(time.monotonic() - started, 1)
        cfg.backend.openai.base_url = [server.base_url]
        client = OpenAIBackend(cfg.backend, cfg.sampling)
        requests = tpt_requests(cfg, client)
        prompts = [client.chat_prompt(r.prompt) for r in requests]
        client.close()
        seeds, sampling = [r.seed for r in requests], cfg.sampling.params()
        asyncio.run(bare_client(server.base_url, args.model, prompts[:8], seeds[:8], sampling, 8))  # warm-up

        def bare(_r: int) -> dict:
            return asyncio.run(bare_client(server.base_url, args.model, prompts, seeds, sampling, args.concurrency))

        def tpt(r: int) -> dict:
            return run_tpt(augment_config(args, corpus, work / f"tpt-serve-{r}", base_url=server.base_url, **kw))

        def reset() -> None:
            root = server.base_url.removesuffix("/v1")
            httpx.post(f"{root}/reset_prefix_cache", timeout=60).raise_for_status()

        clock = ServedClock(server.process.pid)  # after the requests above: only the timed runs are marked

        def probed(r: int) -> dict:
            from tpt.augment.backends import openai

            kinds, openai.SAMPLING_SERVERS = openai.SAMPLING_SERVERS, ()  # vLLM probed, as any server
            try:
                return tpt(r + 100)  # its own run folders
            finally:
                openai.SAMPLING_SERVERS = kinds

        methods = {"server": bare, "tpt-serve": tpt} | ({"tpt-serve-probed": probed} if args.with_probe else {})
        rounds = interleaved(args.rounds, {k: clock.around(v) for k, v in methods.items()}, reset)
    return {"startup_s": startup, "rounds": rounds}


# (tpt method, reference): each ratio is taken within one round, then the median over rounds.
RATIOS = (
    ("tpt-vllm", "engine"),
    ("tpt-vllm", "engine-text"),
    ("tpt-serve", "server"),
    ("tpt-serve-probed", "server"),
    ("tpt-serve", "engine"),
)


def spread(values: list[float]) -> str:
    return f"{statistics.median(values):.3f} (range {min(values):.3f}-{max(values):.3f}, n={len(values)})"


def busy(run: dict) -> float:
    """The share of a run's window the engine spent in ``step``.  With the same prompts and tokens on the
    same engine, tpt's share over the engine's own is the throughput ratio with the steps' own speed
    taken out: load from other processes stretches a run's steps and its other work alike, so the
    shares hardly move while tok/s swing with the load of a shared machine."""
    return run["step_s"] / run["seconds"]


def report(results: dict) -> None:
    phases = [results[p]["rounds"] for p in ("offline", "served") if p in results]
    rounds = [
        {k: v for phase in phases if r < len(phase) for k, v in phase[r].items()} for r in range(max(map(len, phases)))
    ]
    print(f"\n{'method':<16} {'round':>5} {'tokens':>8} {'seconds':>8} {'tok/s':>8} {'outside engine s':>17}")
    for r, runs in enumerate(rounds):
        for name, m in runs.items():
            outside = f"{m['outside_s']:>17.2f}" if "outside_s" in m else ""
            print(f"{name:<16} {r + 1:>5} {m['tokens']:>8} {m['seconds']:>8.2f} {m['tok_s']:>8.0f} {outside}")
    tokens = {m["tokens"] for runs in rounds for m in runs.values()}
    print("every run generated the same tokens" if len(tokens) == 1 else f"TOKEN COUNTS DIFFER: {sorted(tokens)}")
    for name in dict.fromkeys(k for runs in rounds for k in runs):
        median = statistics.median(runs[name]["tok_s"] for runs in rounds if name in runs)
        print(f"  {name:<16} median {median:.0f} tok/s")
    summary = []
    for tpt, ref in RATIOS:
        values = [runs[tpt]["tok_s"] / runs[ref]["tok_s"] for runs in rounds if tpt in runs and ref in runs]
        if values:
            print(f"  {tpt} / {ref}: {spread(values)}")
            summary.append(f"{tpt}/{ref} {statistics.median(values):.3f}")
    for tpt, ref in RATIOS:  # the same ratio from the engine's busy share: load from others cancels out
        pairs = [(runs[tpt], runs[ref]) for runs in rounds if tpt in runs and ref in runs]
        values = [busy(a) / busy(b) for a, b in pairs if "step_s" in a and "step_s" in b]
        if values:
            print(f"  {tpt} / {ref} by the engine's busy share (step time / window): {spread(values)}")
            summary.append(f"{tpt}/{ref} busy-share {statistics.median(values):.3f}")
    summary += served_report(rounds)
    starts = {p: results[p]["startup_s"] for p in ("offline", "served") if p in results}
    print(json.dumps(results))
    print(f"SUMMARY engine_overhead: {'; '.join(summary)} (medians over rounds; goal >= 0.95; start-ups {starts} s)")


def served_report(rounds: list[dict]) -> list[str]:
    """Where tpt-serve's window goes, and its ratio over the generation window alone (first request to
    last answer, as the bare client's window is): what the whole-run ratio tends to on a run long
    enough for the fixed start-up and wrap-up to be amortised.  Client and server CPU per 1k tokens."""
    pairs = [(runs["tpt-serve"], runs["server"]) for runs in rounds if "gen_s" in runs.get("tpt-serve", {})]
    if not pairs:
        return []
    for runs in rounds:
        for name in ("tpt-serve", "tpt-serve-probed"):
            tpt, bare = runs.get(name, {}), runs["server"]
            if "gen_s" not in tpt:
                continue
            split = f"pre-flight {tpt['pre_s']:.2f} + generation {tpt['gen_s']:.2f} + wrap-up {tpt['post_s']:.2f}"
            cpu = f"client {tpt['client_ms_per_ktok']} vs bare {bare['client_ms_per_ktok']}"
            cpu += f", server {tpt.get('server_ms_per_ktok')} vs {bare.get('server_ms_per_ktok')}"
            print(f"  {name} window {tpt['seconds']:.2f} s = {split} (load {tpt['load']}); CPU ms/1k tokens: {cpu}")
    gen = [(t["tokens"] / t["gen_s"]) / b["tok_s"] for t, b in pairs]
    client = [t["client_ms_per_ktok"] / b["client_ms_per_ktok"] for t, b in pairs]
    print(f"  tpt-serve / server over the generation window only: {spread(gen)}")
    print(f"  client CPU per token, tpt-serve / bare client: {spread(client)}")
    fixed = statistics.median(t["pre_s"] + t["post_s"] for t, _ in pairs)
    return [
        f"tpt-serve/server generation-window {statistics.median(gen):.3f}",
        f"tpt-serve fixed pre-flight+wrap-up {fixed:.2f} s",
        f"client CPU/token tpt-serve/bare {statistics.median(client):.2f}",
    ]


def main() -> None:
    args = parse_args()
    skip = set(filter(None, args.skip.split(",")))
    work = Path(args.work or tempfile.mkdtemp(prefix="tpt-engine-bench-"))
    work.mkdir(parents=True, exist_ok=True)
    if args.model is None:
        from tpt.tiny import build_reasoning_tiny_model

        # A weaker pull to </think> than the tests' model: thinking of tens of tokens, spread out.
        args.model = str(build_reasoning_tiny_model(work / "model", think_close_weight=args.think_close_weight))
    corpus = write_corpus(args.data, args.docs, work / "corpus.jsonl")
    results: dict = {"docs": args.docs, "max_thinking_tokens": args.max_thinking_tokens, "rounds": args.rounds}
    if "offline" not in skip:
        results["offline"] = offline(args, corpus, work)
    if "served" not in skip:
        results["served"] = served(args, corpus, work)
    report(results)
    print(f"work folder: {work}", file=sys.stderr)


if __name__ == "__main__":
    main()
