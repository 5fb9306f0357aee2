"""The augment run: check the folder and manifest -> plan shards (from file structure) -> check the
inputs (checks.py) -> run the shards (executor) -> merge duplicates across shards -> finalize.

``run_augment(config)`` is the importable entry point the CLI wraps. Run-level files (manifest,
plan, stats, the duplicate merge) are written under the run lock ``RUN/state/run.lock``, held only
for those short steps; shards run under their own locks, so array tasks stay parallel.
"""

from __future__ import annotations

import json
import sys
import time
from contextlib import ExitStack
from dataclasses import dataclass, replace
from pathlib import Path

from tpt.augment.backends.base import Backend, EngineDied, load_backend_factory
from tpt.augment.checks import check_inputs, check_out_folder, has_output, validate
from tpt.augment.config import FINGERPRINT_FIELDS, AugmentConfig
from tpt.augment.duplicates import merge_duplicates
from tpt.augment.executors import make_executor
from tpt.augment.markers import is_done
from tpt.augment.planning import (
    PlanMismatch,
    ShardSpec,
    load_or_create_plan,
    read_plan,
    specs_of,
)
from tpt.augment.prompts import load_strategy
from tpt.augment.shards import (
    ShardContext,
    ShardResult,
    reopen_length_records,
)
from tpt.augment.specs import manifest_fingerprint
from tpt.augment.stats import folder_stats, stats_of, total_sums
from tpt.config import flat_values, to_dict
from tpt.formats import AUGMENT_MANIFEST
from tpt.io import fs
from tpt.io.atomic import remove_stale_temps
from tpt.io.lock import FileLock, LockHeld
from tpt.io.writers import write_json

RUN_LOCK_WAIT_S = 600.0  # run-level steps are short; a holder for longer than this is stuck


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
    flat = flat_values(config)  # flat names: manifests written before the nested configs still match
    values = {name: to_dict(flat[name]) for name in FINGERPRINT_FIELDS}
    values["prompt_template"] = template
    return values


def check_manifest(config: AugmentConfig, template: str) -> None:
    """Refuse to mix configs in one folder; write the manifest on a fresh run."""
    path = Path(config.out) / "manifest.json"
    old = manifest_fingerprint(json.loads(path.read_text()), str(path)) if path.exists() else None
    write_json(path, checked_manifest(config, template, old))  # operational fields (concurrency...) are updated


def checked_manifest(config: AugmentConfig, template: str, old: dict | None) -> dict:
    """The manifest of this run, after checking it against the run's fingerprint ``old`` (None: a
    fresh run).  With ``--regenerate-length`` the thinking budget may grow (the run then holds
    records of both budgets, each with its own ``thinking_tokens`` and ``finish_reason``)."""
    wanted = fingerprint(config, template)
    if old is not None:
        diff = [k for k in sorted(set(old) | set(wanted)) if old.get(k) != wanted.get(k)]
        if (
            config.regenerate_length
            and diff == ["max_thinking_tokens"]
            and wanted["max_thinking_tokens"] > old["max_thinking_tokens"]
        ):
            diff = []
        if diff and not has_output(Path(config.out)):  # a failed start: nothing of it to protect
            print(f"tpt augment: {config.out} holds only a start that generated nothing; replacing its manifest and "
                  "plan", file=sys.stderr)  # fmt: skip
            (Path(config.out) / "plan.json").unlink(missing_ok=True)
            diff = []
        if diff:
            lines = [f"  {k}: run has {old.get(k)!r}, now {wanted.get(k)!r}" for k in diff]
            raise ConfigMismatch(
                f"{config.out} holds a run made with a different config; refusing to mix outputs.\n"
                + "\n".join(lines)
                + "\nUse another --out, or rerun with the original settings to resume."
            )
    return AUGMENT_MANIFEST.stamp({"stage": "augment", "fingerprint": wanted, "config": to_dict(config)})


def run_lock(out: Path) -> FileLock:
    return FileLock(out / "state" / "run.lock", what=f"run folder {out}", wait=RUN_LOCK_WAIT_S)


def prepare_run(config: AugmentConfig) -> list[ShardSpec]:
    """Folder checks, manifest and plan (under the run lock); this process's shards."""
    validate(config)
    if fs.is_url(config.out):  # object storage: no run lock; write-once plan and manifest (augment/remote.py)
        from tpt.augment.remote import prepare_remote

        template = load_strategy(config.prompt.strategy, config.sampling.seed).template
        return prepare_remote(config, template, lambda old: checked_manifest(config, template, old))
    check_out_folder(config)
    out = Path(config.out)
    out.mkdir(parents=True, exist_ok=True)
    with run_lock(out):
        remove_stale_temps(out)
        if (out / "plan.json").exists():
            read_plan(out / "plan.json")  # an old run: say so before the manifest lists every changed field
        check_manifest(config, load_strategy(config.prompt.strategy, config.sampling.seed).template)
        plan = load_or_create_plan(config)
    return specs_of(plan, config.executor.shard_range)


def load_backend(config: AugmentConfig) -> Backend:
    return load_backend_factory(config.backend.name)(config.backend_config(), config.sampling)


def run_augment(config: AugmentConfig, backend: Backend | None = None) -> RunSummary:
    specs = prepare_run(config)
    out = Path(config.out)
    if config.regenerate_length:
        reopened = sum(reopen_length_records(out, s, config.sampling.max_thinking_tokens) for s in specs)
        print(
            f"tpt augment: --regenerate-length: {reopened} records that hit a smaller thinking budget are "
            f"generated again with --max-thinking-tokens {config.sampling.max_thinking_tokens}.",
            file=sys.stderr,
        )
    todo = _pending(config, specs)
    started = time.monotonic()
    if not todo:
        return finalize(config, [], started, nothing_to_do=True)
    check_inputs(config, todo)  # before any model or server starts: a wrong field fails in seconds
    executor = make_executor(config.executor.name)  # before any server starts: a missing Ray fails fast
    results: list[ShardResult] = []
    for restart in range(config.serve.restarts + 1):
        try:
            results = _run_once(config, executor, specs, todo, backend)
            break
        except EngineDied as exc:
            if backend is not None or not config.serve.command or restart == config.serve.restarts:
                raise EngineStopped(f"{exc}\n{_stop_advice(config, restart)}") from None
            print(
                f"tpt augment: {exc}\ntpt augment: restarting the server ({restart + 1} of at most "
                f"{config.serve.restarts} restarts); finished records are kept.",
                file=sys.stderr,
            )
            todo = _pending(config, specs)
    return finalize(config, results, started, nothing_to_do=False)


def _pending(config: AugmentConfig, specs: list[ShardSpec]) -> list[ShardSpec]:
    if fs.is_url(config.out):
        from tpt.augment.remote import done_names

        done = done_names(str(config.out))  # one listing of the markers
        return [s for s in specs if s.name not in done]
    return [s for s in specs if not is_done(Path(config.out), s)]


def _run_once(config: AugmentConfig, executor, specs, todo, backend: Backend | None) -> list[ShardResult]:
    with ExitStack() as stack:
        if backend is None:
            # Executors whose workers open their own backends (Ray) need only the --serve servers here.
            build = not getattr(executor, "builds_own_backends", False)
            backend = _open_backend(_local_view(config), stack, build=build)
        ctx = shard_context(config, backend)
        known = [s.rows for s in todo]
        return executor.run(specs, ctx, total_rows=None if min(known) < 0 else sum(known))


def _local_view(config: AugmentConfig) -> AugmentConfig:
    """With a remote --out, servers' logs and caches go to a local folder (printed when a server dies)."""
    if not fs.is_url(config.out):
        return config
    import hashlib

    from tpt.augment.remote import stage_base

    digest = hashlib.sha1(str(config.out).encode()).hexdigest()[:12]
    return replace(config, out=stage_base() / f"logs-{digest}")


def _stop_advice(config: AugmentConfig, restarts: int) -> str:
    if config.serve.command:
        return (
            f"tpt augment: stopping after {restarts} restart(s) of the server (--serve-restarts "
            f"{config.serve.restarts}); finished records are kept: fix the server and rerun the same command."
        )
    return "tpt augment: stopping; finished records are kept: restart the server and rerun the same command."


def shard_context(config: AugmentConfig, backend: Backend | None) -> ShardContext:
    """Everything ``run_shard`` needs besides its rows; an executor's worker builds one per process."""
    return ShardContext(
        config=config, backend=backend, strategy=load_strategy(config.prompt.strategy, config.sampling.seed)
    )


def _open_backend(config: AugmentConfig, stack: ExitStack, build: bool = True) -> Backend | None:
    servers: list = []
    if config.serve.command:
        from tpt.augment.endpoints import serve_replicas

        # One server, or --serve-replicas of them (one per GPU): base_url becomes their list.
        config.backend.openai.base_url = stack.enter_context(serve_replicas(config, started=servers))
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
    template = load_strategy(config.prompt.strategy, config.sampling.seed).build("preflight", "")
    overhead = backend.count_tokens(template if config.backend.raw_prompt else backend.chat_prompt(template))
    need = config.prompt.max_doc_tokens + overhead + config.sampling.max_thinking_tokens
    if need > limit:
        raise ValueError(
            f"the engine's context (max_model_len {limit} tokens) cannot hold the longest request: up to "
            f"{config.prompt.max_doc_tokens} document tokens (--max-doc-tokens) + {overhead} of prompt + "
            f"{config.sampling.max_thinking_tokens} thinking tokens (--max-thinking-tokens) = {need}. Serve the model "
            f"with a larger context (vLLM: --max-model-len {need}; tpt: --max-model-len for --serve vllm / "
            "--backend vllm), or lower --max-doc-tokens / --max-thinking-tokens."
        )


def finalize(config: AugmentConfig, results: list[ShardResult], started: float, nothing_to_do: bool) -> RunSummary:
    """Merge duplicates once every shard is done; stats.json recomputed from the files (reruns agree)."""
    if fs.is_url(config.out):
        from tpt.augment.remote import finalize_remote

        def make_stats(data, rejected, failed, complete):
            return stats_of(total_sums(data), rejected, failed, results, time.monotonic() - started, complete)

        stats, _ = finalize_remote(config, RUN_LOCK_WAIT_S, make_stats)
    else:
        stats = _finalize_local(config, results, started)
    return RunSummary(
        stats["records"], stats["rejected"], stats["failed"], stats["this_run"]["new_records"], nothing_to_do, stats
    )


def _finalize_local(config: AugmentConfig, results: list[ShardResult], started: float) -> dict:
    out = Path(config.out)
    lock = run_lock(out)
    locked = False
    try:
        locked = bool(lock.acquire())
    except LockHeld as exc:  # another process is merging (a long step at scale): it writes stats.json
        print(f"tpt augment: {exc}; reporting without writing stats.json", file=sys.stderr)
    try:
        all_specs = specs_of(read_plan(out / "plan.json"))
        complete = all(is_done(out, s) for s in all_specs)
        if complete and locked:
            merge_duplicates(out, all_specs)
        stats = folder_stats(out, results, time.monotonic() - started, complete)
        if locked:
            write_json(out / "stats.json", stats)
    finally:
        lock.release()
    return stats


def print_summary(config: AugmentConfig, summary: RunSummary, stream=None) -> None:
    stream = stream or sys.stderr
    out = str(config.out).rstrip("/")
    if summary.nothing_to_do:
        print(
            f"tpt augment: {out} is already complete; nothing to do."
            if summary.stats.get("complete")
            else f"tpt augment: this process's shards of {out} are done; nothing to do.",
            file=stream,
        )
    s = summary.stats
    print(
        f"tpt augment: {summary.records} records ({summary.new_records} new) in {out}/data; "
        f"{summary.rejected} rejected ({out}/rejected), {summary.failed} failed ({out}/failed); "
        f"truncated {s['truncated_rate']:.1%}, finish=length {s['length_finish_rate']:.1%}; "
        f"{s['this_run']['completion_tokens_per_second']} tok/s",
        file=stream,
    )
    if summary.rejected:
        reasons = ", ".join(f"{n} {k}" for k, n in list(s["rejected_by_reason"].items())[:8])
        files = ", ".join(f"{n} in {f}" for f, n in list(s["rejected_by_file"].items())[:5])
        print(f"tpt augment: rejected by reason: {reasons}; by file: {files}", file=stream)
    if summary.failed:
        print("tpt augment: failed generations are retried when you run the same command again.", file=stream)
    if not s.get("complete", True):
        print("tpt augment: other shards of the run are not done yet (other array tasks, or failures).", file=stream)


__all__ = ["ConfigMismatch", "PlanMismatch", "RunSummary", "check_manifest", "prepare_run", "run_augment"]
