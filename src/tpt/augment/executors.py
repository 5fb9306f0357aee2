"""Executors run shards.  The contract: ``run(specs, ctx, total_rows) -> list[ShardResult]``; every
shard goes through ``run_shard`` (idempotent, resumable, under the shard's lock), so executors differ
only in *where* shards run.  ``local``: the shards one after the other in this process, each reading
only its own range of its own file.

Several processes on one run folder (a re-queued array task next to a manual rerun) share the work:
a shard whose lock another process holds is passed over, and waited for at the end (the holder
finishes it, or dies and this process takes it over), so every process's summary is complete.
"""

from __future__ import annotations

import sys
from typing import Protocol

from tpt.augment.shards import ShardContext, ShardResult, ShardSpec, run_shard, split_done
from tpt.io.lock import LockHeld
from tpt.progress import Throughput, progress_bar
from tpt.registry import Registry


class Executor(Protocol):
    def run(self, specs: list[ShardSpec], ctx: ShardContext, total_rows: int | None) -> list[ShardResult]: ...


class LocalExecutor:
    def run(self, specs: list[ShardSpec], ctx: ShardContext, total_rows: int | None) -> list[ShardResult]:
        results, todo = split_done(specs, ctx)
        if not todo:
            return results
        bar = _progress_bar(ctx, None if total_rows is None else total_rows * ctx.config.sampling.samples)
        held: list[tuple[ShardSpec, LockHeld]] = []
        try:
            for spec in todo:
                try:
                    results.append(run_shard(spec, ctx, wait=0))
                except LockHeld as exc:
                    held.append((spec, exc))
            for spec, exc in held:
                print(f"tpt augment: {exc.path.stem} is being run by {_who(exc)}; waiting for it", file=sys.stderr)
                results.append(run_shard(spec, ctx, wait=None))
        finally:
            bar.close()
        return results


def _who(exc: LockHeld) -> str:
    holder = exc.holder
    return f"pid {holder.get('pid')} on {holder.get('host')}" if holder else "another process"


def _progress_bar(ctx: ShardContext, total: int | None):
    unit = "doc" if ctx.config.sampling.samples == 1 else "traj"
    bar = progress_bar(total, "augment", unit, ctx.config.progress, smoothing=0.1)
    ctx.on_progress = Throughput(bar).add
    return bar


def _ray_executor() -> Executor:
    from tpt.augment.ray_executor import RayExecutor  # imported lazily: Ray is an optional extra

    return RayExecutor()


# name -> a zero-argument factory returning an Executor; plugins: entry points in group tpt.executors,
# or --executor module.path:factory.
EXECUTORS = Registry("executor", "--executor", {"local": LocalExecutor, "ray": _ray_executor})


def make_executor(name: str) -> Executor:
    return EXECUTORS.load(name)()
