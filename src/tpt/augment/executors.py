"""Executors run shards.  The contract: ``run(specs, ctx, total_rows) -> list[ShardResult]``; every
shard goes through ``run_shard`` (idempotent, resumable), so executors differ only in *where*
shards run.  ``local``: one pass over the input in this process, shards in order.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Protocol

from tpt.augment.shards import ShardContext, ShardResult, ShardSpec, is_done, run_shard
from tpt.io.readers import iter_raw_rows, resolve_inputs


class Executor(Protocol):
    def run(self, specs: list[ShardSpec], ctx: ShardContext, total_rows: int) -> list[ShardResult]: ...


class LocalExecutor:
    def run(self, specs: list[ShardSpec], ctx: ShardContext, total_rows: int) -> list[ShardResult]:
        out = Path(ctx.config.out)
        todo = [s for s in specs if not is_done(out, s)]
        results = [run_shard(s, ctx) for s in specs if is_done(out, s)]  # cleans leftovers, counts records
        if not todo:
            return results
        bar = _progress_bar(ctx, total_rows * ctx.config.samples)
        try:
            rows = iter_raw_rows(resolve_inputs(ctx.config.inputs), skip=todo[0].start)
            position = todo[0].start
            for spec in todo:
                for _ in range(spec.start - position):  # rows of shards another process owns
                    next(rows)
                shard_rows = [row for _, row in zip(range(spec.stop - spec.start), rows)]
                position = spec.stop
                results.append(run_shard(spec, ctx, shard_rows))
        finally:
            if bar is not None:
                bar.close()
        return results


def _progress_bar(ctx: ShardContext, total: int):
    if not ctx.config.progress:
        return None
    from tqdm import tqdm

    unit = "doc" if ctx.config.samples == 1 else "traj"
    bar = tqdm(total=total, unit=unit, desc="augment", dynamic_ncols=True, smoothing=0.1)
    started, tokens = time.monotonic(), [0]

    def update(done: int, new_tokens: int) -> None:
        tokens[0] += new_tokens
        bar.update(done)
        bar.set_postfix_str(f"{tokens[0] / max(1e-9, time.monotonic() - started):.0f} tok/s", refresh=False)

    ctx.on_progress = update
    return bar


def _ray_executor() -> Executor:
    from tpt.augment.ray_executor import RayExecutor  # imported lazily: Ray is an optional extra

    return RayExecutor()


EXECUTORS = {"local": LocalExecutor, "ray": _ray_executor}


def make_executor(name: str) -> Executor:
    if name not in EXECUTORS:
        raise ValueError(f"unknown executor {name!r}; known: {', '.join(EXECUTORS)}")
    return EXECUTORS[name]()
