"""``--executor ray``: the same shards as a local run, on the workers of a Ray cluster.

Each worker is a Ray actor that opens its backend once (the in-process model on the GPU Ray gave
it, or a client of the listed OpenAI-compatible servers) and runs whole shards through
``run_shard``, so outputs, manifest and stats are those of a local run.  The driver only hands out
shard specs (file, range); each worker reads its shard's own range of its own file (local, shared
or fsspec storage) and writes into the run folder, which must be on storage every node sees.

A worker that dies mid-shard (killed, OOM, node lost) costs only that shard's in-flight chunk:
the shard goes back to the front of the queue and a fresh worker resumes it from the chunk files
already written (``run_shard`` is idempotent and exactly-once), so nothing is lost or duplicated.
"""

from __future__ import annotations

import os
import sys
import uuid
from collections import Counter, deque
from dataclasses import replace
from pathlib import Path

from tpt.augment.backends.base import load_backend_factory
from tpt.augment.config import AugmentConfig, BackendConfig
from tpt.augment.prompts import PromptStrategy
from tpt.augment.shards import ShardContext, ShardResult, ShardSpec, run_shard, split_done
from tpt.progress import Throughput, progress_bar

INSTALL_HINT = (
    "--executor ray needs Ray, an optional extra: pip install 'tpt[ray]'  (or: pip install 'ray[default]>=2.40')"
)
MAX_ATTEMPTS = 3  # per shard: a shard whose workers keep dying is a problem to report, not to retry forever
WORKER_PREFIX = "tpt-augment-worker"  # actor names: {prefix}-{run id}-{i}, in NAMESPACE
NAMESPACE = "tpt-augment"
IN_PROCESS_BACKENDS = ("transformers", "vllm")  # the model on the worker: one GPU each
# Environment the workers need to behave like the driver (never the API key: set it on the nodes).
FORWARDED_ENV = ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE", "HF_HOME", "HF_DATASETS_OFFLINE", "TOKENIZERS_PARALLELISM")


class RayNotInstalled(ValueError):
    """``--executor ray`` without Ray (a ValueError so the CLI reports it as a usage error)."""


def require_ray():
    try:
        import ray
    except ImportError:
        raise RayNotInstalled(INSTALL_HINT) from None
    return ray


class ShardWorker:
    """One Ray actor: a backend opened once, then shard after shard.  Threaded (2 slots) so that
    ``status`` answers while ``run`` is busy generating."""

    def __init__(self, config: AugmentConfig, strategy: PromptStrategy):
        backend = load_backend_factory(config.backend.name)(backend_config(config), config.sampling)
        # the driver's strategy: a worker has no file to find
        self.ctx = ShardContext(config=config, backend=backend, strategy=strategy)
        self.current: str | None = None

    def status(self) -> dict:
        import ray

        return {"pid": os.getpid(), "node": ray.util.get_node_ip_address(), "shard": self.current}

    def run(self, spec: ShardSpec) -> ShardResult:
        self.current = spec.name
        try:
            return run_shard(spec, self.ctx)
        finally:
            self.current = None

    def close(self) -> None:
        self.ctx.backend.close()


def backend_config(config: AugmentConfig) -> BackendConfig:
    """The config a worker opens its backend with: local model/tokenizer folders made absolute (workers
    do not share the driver's working directory).  Records keep the run's own ``--model`` text."""

    def resolve(path):
        return str(Path(path).resolve()) if path and Path(path).exists() else path

    own = config.backend_config()
    return replace(own, model=resolve(own.model), tokenizer=resolve(own.tokenizer_path()))


class RayExecutor:
    builds_own_backends = True  # run_augment opens no backend in the driver (only --serve servers)

    def __init__(self) -> None:
        self.ray = require_ray()
        self._worker_class = None  # ShardWorker as a Ray actor class, made once
        self.retried: list[str] = []  # shard names re-queued after a worker died (for logs and tests)

    def run(self, specs: list[ShardSpec], ctx: ShardContext, total_rows: int | None) -> list[ShardResult]:
        results, todo = split_done(specs, ctx)
        if not todo:
            return results
        started_ray = self._connect(ctx.config)
        try:
            results += self._run_all(todo, replace(ctx, config=replace(ctx.config, out=Path(ctx.config.out).resolve())))
        finally:
            if started_ray:
                self.ray.shutdown()
        return results

    # ---- cluster
    def _connect(self, config: AugmentConfig) -> bool:
        """Join the cluster (--ray-address, else $RAY_ADDRESS, else a local Ray); True if we must shut it down."""
        if self.ray.is_initialized():
            return False
        env = {k: os.environ[k] for k in FORWARDED_ENV if k in os.environ}
        self.ray.init(
            address=config.executor.ray_address,
            namespace=NAMESPACE,
            runtime_env={"env_vars": env} if env else None,
            log_to_driver=True,
        )
        return True

    def _worker_plan(self, config: AugmentConfig, n_shards: int) -> tuple[int, dict]:
        """How many workers, and what each one reserves."""
        resources = self.ray.cluster_resources()
        gpus, cpus = int(resources.get("GPU", 0)), int(resources.get("CPU", 1))
        on_gpu = config.backend.name in IN_PROCESS_BACKENDS and gpus > 0 and config.backend.local.device != "cpu"
        wanted = config.executor.ray_workers or (gpus if on_gpu else cpus)
        options = {"num_cpus": 1, "num_gpus": 1 if on_gpu else 0, "max_concurrency": 2, "max_restarts": 0}
        return max(1, min(wanted, n_shards)), options

    def _start_worker(self, ctx: ShardContext, options: dict, name: str):
        if self._worker_class is None:
            self._worker_class = self.ray.remote(ShardWorker)
        return self._worker_class.options(name=name, **options).remote(ctx.config, ctx.strategy)

    # ---- scheduling
    def _run_all(self, todo: list[ShardSpec], ctx: ShardContext) -> list[ShardResult]:
        ray, config = self.ray, ctx.config
        n_workers, options = self._worker_plan(config, len(todo))
        run_id = uuid.uuid4().hex[:8]
        names = [f"{WORKER_PREFIX}-{run_id}-{i}" for i in range(n_workers)]
        idle = deque((name, self._start_worker(ctx, options, name)) for name in names)
        print(
            f"tpt augment: {len(todo)} shards on {n_workers} Ray workers ({options['num_gpus']} GPU each)",
            file=sys.stderr,
        )
        queue, running = deque(todo), {}  # ObjectRef -> (spec, name, actor)
        attempts, results = Counter(), []
        bar = _ProgressBar(config, sum(max(0, s.rows) for s in todo))
        try:
            while queue or running:
                while queue and idle:
                    spec, (name, actor) = queue.popleft(), idle.popleft()
                    running[actor.run.remote(spec)] = (spec, name, actor)
                done, _ = ray.wait(list(running), num_returns=1, timeout=5.0)
                for ref in done:
                    spec, name, actor = running.pop(ref)
                    try:
                        result = ray.get(ref)
                    except _worker_lost_errors(ray) as exc:
                        attempts[spec.index] += 1
                        self._requeue(spec, name, exc, attempts[spec.index], queue)
                        ray.kill(actor, no_restart=True)  # it is dead or unusable: never reuse it
                        idle.append((name, self._start_worker(ctx, options, f"{name}-r{attempts[spec.index]}")))
                        continue
                    results.append(result)
                    bar.update(spec, result, config.sampling.samples)
                    idle.append((name, actor))
        finally:
            bar.close()
            self._stop_workers([a for _, a in idle] + [a for _, _, a in running.values()])
        return results

    def _requeue(self, spec: ShardSpec, name: str, exc: Exception, attempt: int, queue: deque) -> None:
        cause = str(exc).strip().splitlines()[0][:300] if str(exc).strip() else ""
        if attempt >= MAX_ATTEMPTS:
            raise RuntimeError(
                f"{spec.name}: its Ray worker died {attempt} times ({type(exc).__name__}: {cause}); "
                "the shard's finished chunks are kept: rerun the same command to resume"
            ) from exc
        print(
            f"tpt augment: Ray worker {name} died running {spec.name} ({type(exc).__name__}); "
            f"retrying {spec.name} on a fresh worker (attempt {attempt + 1}/{MAX_ATTEMPTS}), resuming from its chunks",
            file=sys.stderr,
        )
        self.retried.append(spec.name)
        queue.appendleft(spec)  # first in line: its finished chunks are on disk

    def _stop_workers(self, actors: list) -> None:
        for actor in actors:
            try:
                self.ray.get(actor.close.remote(), timeout=30)
            except Exception:  # already dead, or stuck: killing it below is all that is left
                pass
            self.ray.kill(actor, no_restart=True)


def _worker_lost_errors(ray) -> tuple[type[BaseException], ...]:
    """Exceptions that mean "the worker is gone", not "the shard is bad" (those propagate)."""
    names = ("RayActorError", "ActorUnavailableError", "WorkerCrashedError", "NodeDiedError", "ObjectLostError")
    return tuple(getattr(ray.exceptions, n) for n in names if hasattr(ray.exceptions, n))


class _ProgressBar:
    """Per-shard progress in the driver (documents or trajectories, and generated tokens/s)."""

    def __init__(self, config: AugmentConfig, rows: int):
        unit = "doc" if config.sampling.samples == 1 else "traj"
        self.bar = progress_bar(rows * config.sampling.samples, "augment (ray)", unit, config.progress)
        self.rate = Throughput(self.bar)

    def update(self, spec: ShardSpec, result: ShardResult, samples: int) -> None:
        self.rate.add(max(0, spec.rows) * samples, result.completion_tokens)

    def close(self) -> None:
        self.bar.close()
