"""The augment run: check the manifest -> plan shards (pure) -> run them (executor) -> finalize.

``run_augment(config)`` is the importable entry point the CLI wraps.
"""

from __future__ import annotations

import json
import sys
import time
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

import pyarrow.parquet as pq

from tpt.augment.backends.base import Backend, EngineDied, load_backend_factory
from tpt.augment.config import FINGERPRINT_FIELDS, AugmentConfig
from tpt.augment.executors import make_executor
from tpt.augment.prompts import load_strategy
from tpt.augment.shards import ShardContext, ShardResult, is_done, plan_shards, reopen_length_records
from tpt.config import to_dict
from tpt.io.readers import Document, iter_raw_rows, parse_row, resolve_inputs
from tpt.io.writers import write_json


class ConfigMismatch(RuntimeError):
    """The output folder holds a run made with a different config."""


class EngineStopped(RuntimeError):
    """The engine died (and, under --serve, kept dying): the run stopped; finished work is kept."""


@dataclass
class RunSummary:
    records: int
    rejected: int
    failed: int
    new_records: int
    nothing_to_do: bool
    stats: dict

    @property
    def exit_code(self) -> int:
        return 1 if (self.rejected or self.failed) else 0


def fingerprint(config: AugmentConfig, template: str) -> dict:
    values = {name: to_dict(getattr(config, name)) for name in FINGERPRINT_FIELDS}
    values["prompt_template"] = template
    return values


def check_manifest(config: AugmentConfig, template: str) -> None:
    """Refuse to mix configs in one folder; write the manifest on a fresh run.  With
    ``--regenerate-length`` the thinking budget may grow (the run then holds records of both budgets,
    each with its own ``thinking_tokens`` and ``finish_reason``)."""
    path = Path(config.out) / "manifest.json"
    wanted = fingerprint(config, template)
    if path.exists():
        old = json.loads(path.read_text()).get("fingerprint", {})
        diff = [k for k in sorted(set(old) | set(wanted)) if old.get(k) != wanted.get(k)]
        if config.regenerate_length and diff == ["max_thinking_tokens"] and \
                wanted["max_thinking_tokens"] > old["max_thinking_tokens"]:
            diff = []
        if diff:
            lines = [f"  {k}: run has {old.get(k)!r}, now {wanted.get(k)!r}" for k in diff]
            raise ConfigMismatch(
                f"{config.out} holds a run made with a different config; refusing to mix outputs.\n"
                + "\n".join(lines)
                + "\nUse another --out, or rerun with the original settings to resume."
            )
    manifest = {"stage": "augment", "fingerprint": wanted, "config": to_dict(config)}
    write_json(path, manifest)  # operational fields (concurrency, timeouts) are updated each run


def make_plan(config: AugmentConfig) -> dict:
    """Count input rows and find duplicate ids (kept in RUN/plan.json so reruns skip the scan)."""
    path = Path(config.out) / "plan.json"
    if path.exists():
        return json.loads(path.read_text())
    first_seen: dict[str, str] = {}
    duplicates: dict[str, str] = {}
    n_rows = 0
    for ordinal, raw in enumerate(iter_raw_rows(resolve_inputs(config.inputs))):
        n_rows += 1
        doc = parse_row(raw, config.text_field, config.id_field)
        if not isinstance(doc, Document):
            continue
        where = f"{raw.source}:{raw.line}"
        if doc.id in first_seen:
            duplicates[str(ordinal)] = f"duplicate id {doc.id!r} (first at {first_seen[doc.id]})"
        else:
            first_seen[doc.id] = where
    plan = {"n_rows": n_rows, "shard_size": config.shard_size, "duplicates": duplicates}
    write_json(path, plan)
    return plan


def remove_old_temp_files(out: Path, older_than_s: float = 600.0) -> None:
    """Run-level temp files (manifest, plan, stats) left by a killed process.  Only old ones: another
    process working on other shards of this run may be writing its own right now."""
    now = time.time()
    for tmp in out.glob(".*.tmp"):
        if now - tmp.stat().st_mtime > older_than_s:
            tmp.unlink(missing_ok=True)


def load_backend(config: AugmentConfig) -> Backend:
    return load_backend_factory(config.backend)(config)


def run_augment(config: AugmentConfig, backend: Optional[Backend] = None) -> RunSummary:
    validate(config)
    out = Path(config.out)
    out.mkdir(parents=True, exist_ok=True)
    remove_old_temp_files(out)
    check_manifest(config, load_strategy(config.strategy, config.seed).template)
    plan = make_plan(config)
    specs = plan_shards(plan["n_rows"], config.shard_size, config.shard_range)
    if config.regenerate_length:
        reopened = sum(reopen_length_records(out, s, config.max_thinking_tokens) for s in specs)
        print(f"tpt augment: --regenerate-length: {reopened} records that hit a smaller thinking budget are "
              f"generated again with --max-thinking-tokens {config.max_thinking_tokens}.", file=sys.stderr)
    todo = [s for s in specs if not is_done(out, s)]
    started = time.monotonic()
    if not todo:
        return finalize(config, [], started, nothing_to_do=True)
    executor = make_executor(config.executor)  # before any server starts: a missing Ray fails fast
    results: list[ShardResult] = []
    for restart in range(config.serve_restarts + 1):
        try:
            results = _run_once(config, executor, specs, todo, plan, backend)
            break
        except EngineDied as exc:
            if backend is not None or not config.serve or restart == config.serve_restarts:
                raise EngineStopped(f"{exc}\n{_stop_advice(config, restart)}") from None
            print(f"tpt augment: {exc}\ntpt augment: restarting the server ({restart + 1} of at most "
                  f"{config.serve_restarts} restarts); finished records are kept.", file=sys.stderr)
            todo = [s for s in specs if not is_done(out, s)]
    return finalize(config, results, started, nothing_to_do=False)


def _run_once(config: AugmentConfig, executor, specs, todo, plan: dict, backend: Optional[Backend]) -> list[ShardResult]:
    with ExitStack() as stack:
        if backend is None:
            # Executors whose workers open their own backends (Ray) need only the --serve servers here.
            backend = _open_backend(config, stack, build=not getattr(executor, "builds_own_backends", False))
        ctx = shard_context(config, backend, plan)
        return executor.run(specs, ctx, total_rows=sum(s.stop - s.start for s in todo))


def _stop_advice(config: AugmentConfig, restarts: int) -> str:
    if config.serve:
        return (f"tpt augment: stopping after {restarts} restart(s) of the server (--serve-restarts "
                f"{config.serve_restarts}); finished records are kept: fix the server and rerun the same command.")
    return "tpt augment: stopping; finished records are kept: restart the server and rerun the same command."


def shard_context(config: AugmentConfig, backend: Backend, plan: Optional[dict] = None) -> ShardContext:
    """Everything ``run_shard`` needs besides its rows; an executor's worker builds one per process
    (after ``run_augment``'s driver has written manifest.json and plan.json)."""
    plan = plan if plan is not None else json.loads((Path(config.out) / "plan.json").read_text())
    duplicates = {int(k): v for k, v in plan["duplicates"].items()}
    return ShardContext(config=config, backend=backend, strategy=load_strategy(config.strategy, config.seed),
                        duplicates=duplicates)


def _open_backend(config: AugmentConfig, stack: ExitStack, build: bool = True) -> Optional[Backend]:
    servers: list = []
    if config.serve:
        from tpt.augment.endpoints import serve_replicas

        # One server, or --serve-replicas of them (one per GPU): base_url becomes their comma-separated list.
        config.base_url = stack.enter_context(serve_replicas(config, started=servers))
    if not build:
        return None
    backend = load_backend(config)
    stack.callback(backend.close)
    preflight(config, backend)
    if servers and hasattr(backend, "server_status"):
        backend.server_status = lambda: next((s.death_report() for s in servers if not s.alive()), None)
    return backend


def preflight(config: AugmentConfig, backend: Backend) -> None:
    """Before any request: does the longest prompt plus the thinking budget fit the engine's context
    (``max_model_len``, when the backend knows it)?  Thousands of requests failing one by one on a
    too-short context is the alternative."""
    limit = getattr(backend, "max_model_len", None)
    if not limit:
        return
    template = load_strategy(config.strategy, config.seed).build("preflight", "")
    overhead = backend.count_tokens(template if config.raw_prompt else backend.chat_prompt(template))
    need = config.max_doc_tokens + overhead + config.max_thinking_tokens
    if need > limit:
        raise ValueError(
            f"the engine's context (max_model_len {limit} tokens) cannot hold the longest request: up to "
            f"{config.max_doc_tokens} document tokens (--max-doc-tokens) + {overhead} of prompt + "
            f"{config.max_thinking_tokens} thinking tokens (--max-thinking-tokens) = {need}. Serve the model with a "
            f"larger context (vLLM: --max-model-len {need}; tpt: --max-model-len for --serve vllm / --backend vllm), "
            "or lower --max-doc-tokens / --max-thinking-tokens."
        )


def validate(config: AugmentConfig) -> None:
    problems = []
    if config.samples < 1:
        problems.append("--samples must be >= 1")
    if config.max_doc_tokens < 1 or config.max_thinking_tokens < 1:
        problems.append("--max-doc-tokens and --max-thinking-tokens must be >= 1")
    if config.shard_size < 1 or config.checkpoint_records < 1:
        problems.append("--shard-size and --checkpoint-records must be >= 1")
    if not config.model and config.backend != "lab-expert":
        problems.append(f"--model is required for the {config.backend} backend")
    if problems:
        raise ValueError("; ".join(problems))


def finalize(config: AugmentConfig, results: list[ShardResult], started: float, nothing_to_do: bool) -> RunSummary:
    """Merge per-shard outputs into stats.json (recomputed from the files, so reruns agree)."""
    out = Path(config.out)
    data = _column_sums(sorted((out / "data").glob("*.parquet")))
    rejected = sum(pq.ParquetFile(p).metadata.num_rows for p in sorted((out / "rejected").glob("*.parquet")))
    failed = sum(pq.ParquetFile(p).metadata.num_rows for p in sorted((out / "failed").glob("*.parquet")))
    wall = time.monotonic() - started
    completion = sum(r.completion_tokens for r in results)
    stats = {
        "records": data["records"],
        "documents": data["documents"],
        "rejected": rejected,
        "failed": failed,
        "thinking_tokens_total": data["thinking_tokens"],
        "doc_tokens_total": data["doc_tokens"],
        "truncated_rate": data["truncated"] / max(1, data["records"]),
        "length_finish_rate": data["length"] / max(1, data["records"]),
        "this_run": {
            "new_records": sum(r.new_records for r in results),
            "shards_run": sum(1 for r in results if not r.skipped),
            "prompt_tokens": sum(r.prompt_tokens for r in results),
            "completion_tokens": completion,
            "wall_seconds": round(wall, 3),
            "completion_tokens_per_second": round(completion / wall, 2) if wall > 0 else 0.0,
            "records_per_second": round(sum(r.new_records for r in results) / wall, 2) if wall > 0 else 0.0,
        },
    }
    write_json(out / "stats.json", stats)
    return RunSummary(data["records"], rejected, failed, stats["this_run"]["new_records"], nothing_to_do, stats)


def _column_sums(files: list[Path]) -> dict:
    sums = {"records": 0, "thinking_tokens": 0, "doc_tokens": 0, "truncated": 0, "length": 0}
    ids: set[str] = set()
    for path in files:
        table = pq.read_table(path, columns=["id", "thinking_tokens", "doc_tokens", "doc_truncated", "finish_reason"])
        sums["records"] += table.num_rows
        sums["thinking_tokens"] += sum(table.column("thinking_tokens").to_pylist())
        sums["doc_tokens"] += sum(table.column("doc_tokens").to_pylist())
        sums["truncated"] += sum(table.column("doc_truncated").to_pylist())
        sums["length"] += table.column("finish_reason").to_pylist().count("length")
        ids.update(table.column("id").to_pylist())
    sums["documents"] = len(ids)
    return sums


def print_summary(config: AugmentConfig, summary: RunSummary, stream=None) -> None:
    stream = stream or sys.stderr
    out = Path(config.out)
    if summary.nothing_to_do:
        print(f"tpt augment: {out} is already complete; nothing to do.", file=stream)
    s = summary.stats
    print(
        f"tpt augment: {summary.records} records ({summary.new_records} new) in {out}/data; "
        f"{summary.rejected} rejected ({out}/rejected), {summary.failed} failed ({out}/failed); "
        f"truncated {s['truncated_rate']:.1%}, finish=length {s['length_finish_rate']:.1%}; "
        f"{s['this_run']['completion_tokens_per_second']} tok/s",
        file=stream,
    )
    if summary.failed:
        print("tpt augment: failed generations are retried when you run the same command again.", file=stream)
