"""Several OpenAI-compatible servers used as one: load-balanced requests, multi-replica ``--serve``.

* ``--base-url URL1,URL2,...`` -> ``BalancedOpenAIBackend``: every request *attempt* goes to the
  server with the fewest requests in flight from this process (ties broken round-robin).  A server
  that just failed (connection refused, timeout, 429/5xx) sits out a short, growing cool-down, so
  the retry of a failed request lands on another replica and a dead replica stops costing time.
* ``--serve CMD --serve-replicas N`` -> ``serve_replicas``: N servers on this node, replica i
  seeing only its own GPU(s) through ``CUDA_VISIBLE_DEVICES``, started in parallel, all stopped
  on exit; the run's ``base_url`` becomes their list (so the above applies).
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Any

import httpx

from tpt.augment.backends.openai import OpenAIBackend

# A response with one of these means "this server is struggling": try another one for a while.
UNHEALTHY_STATUS = {429, 500, 502, 503, 504}


class EndpointPool:
    """Which server gets the next request.  Used from one asyncio loop, so no locks are needed."""

    def __init__(self, urls: list[str], cooldown: float = 2.0, start: int = 0):
        self.urls = urls
        self.in_flight = [0] * len(urls)
        self.sent = [0] * len(urls)  # attempts sent, per server (for logs and tests)
        self.failures = [0] * len(urls)  # consecutive failures
        self.down_until = [0.0] * len(urls)
        self.cooldown = cooldown
        self._turn = start % len(urls)  # processes start at different servers (pid-based)

    def pick(self) -> int:
        n = len(self.urls)
        now = time.monotonic()
        healthy = [i for i in range(n) if self.down_until[i] <= now] or list(range(n))
        turn, self._turn = self._turn, (self._turn + 1) % n
        return min(healthy, key=lambda i: (self.in_flight[i], (i - turn) % n))

    def succeeded(self, i: int) -> None:
        self.failures[i] = 0
        self.down_until[i] = 0.0

    def failed(self, i: int) -> None:
        self.failures[i] += 1
        delay = min(60.0, self.cooldown * 2 ** (self.failures[i] - 1))
        self.down_until[i] = time.monotonic() + delay

    def summary(self) -> str:
        return ", ".join(f"{u}: {s} requests" for u, s in zip(self.urls, self.sent))


class BalancedOpenAIBackend(OpenAIBackend):
    """The ``openai`` backend over several servers of the same model (replicas)."""

    def __init__(self, config, sampling=None):
        # The pool must exist before OpenAIBackend.__init__: its sampling probe already sends requests.
        self.pool = EndpointPool(config.openai.base_url, start=os.getpid())
        super().__init__(config, sampling)
        # --concurrency is per server when several are listed: N replicas take N times the load.
        self.concurrency = self.parallelism = max(1, config.openai.concurrency) * len(self.pool.urls)
        if self._client is not None:  # made by the probe with the smaller connection limit
            self._loop.run_until_complete(self._client.aclose())
            self._client = None

    def server_urls(self) -> list[str]:
        return self.pool.urls  # the run's engine is dead only when none of them answers

    async def _post(self, path: str, body: dict[str, Any]) -> httpx.Response:
        i = self.pool.pick()
        self.pool.in_flight[i] += 1
        self.pool.sent[i] += 1
        try:
            response = await self._client.post(f"{self.pool.urls[i]}/{path}", json=body)
        except (httpx.TimeoutException, httpx.TransportError):
            self.pool.failed(i)
            raise
        finally:
            self.pool.in_flight[i] -= 1
        if response.status_code in UNHEALTHY_STATUS:
            self.pool.failed(i)
        else:
            self.pool.succeeded(i)
        return response


# ---------------------------------------------------------------- multi-replica --serve


def visible_gpus() -> list[str]:
    """GPU ids this process may use: $CUDA_VISIBLE_DEVICES when set, else what nvidia-smi lists."""
    env = os.environ.get("CUDA_VISIBLE_DEVICES")
    if env is not None:
        return [g.strip() for g in env.split(",") if g.strip() and g.strip() != "-1"]
    if shutil.which("nvidia-smi") is None:
        return []
    try:
        listing = subprocess.run(["nvidia-smi", "-L"], capture_output=True, text=True, timeout=30).stdout
    except (OSError, subprocess.SubprocessError):
        return []
    return [str(i) for i, line in enumerate(line for line in listing.splitlines() if line.startswith("GPU "))]


def gpu_groups(replicas: int, gpus: list[str]) -> list[str | None]:
    """CUDA_VISIBLE_DEVICES per replica (None: leave the environment alone).

    0 replicas = one per GPU.  With fewer replicas than GPUs each gets an equal contiguous group
    (for tensor parallelism, e.g. 8 GPUs / 4 replicas -> "0,1", "2,3", ...); with more, replicas
    share GPUs round-robin (small models: several servers per GPU).  No GPU: CPU servers.
    """
    if replicas < 0:
        raise ValueError("--serve-replicas must be >= 0 (0 = one per GPU)")
    if replicas == 0:
        if not gpus:
            raise ValueError("--serve-replicas 0 means one server per GPU, but no GPU is visible")
        replicas = len(gpus)
    if replicas == 1 or not gpus:
        return [None] * replicas
    if replicas > len(gpus):
        return [gpus[i % len(gpus)] for i in range(replicas)]
    per = len(gpus) // replicas
    return [",".join(gpus[i * per : (i + 1) * per]) for i in range(replicas)]


def replica_command(command: str, gpus: str | None) -> str:
    # `env VAR=... cmd` execs cmd, so ServedModel's process-group stop still reaches the server.
    return command if gpus is None else f"env CUDA_VISIBLE_DEVICES={gpus} {command}"


@contextmanager
def serve_replicas(config, started: list | None = None) -> Iterator[str]:
    """Start ``--serve-replicas`` servers from the ``--serve`` template; yield their URLs, comma-separated.
    ``started`` (a list) receives the ``ServedModel``s, for the run to watch them."""
    from tpt.augment.serve import ServedModel, expand_preset

    context = config.context_length()
    command, env = expand_preset(config.serve.command, context), None
    log_dir = Path(config.out) / "logs"
    if command != config.serve.command:  # tpt's own vLLM command: its caches go in the run folder too
        from tpt.vllm_launch import cpu_environment, on_cpu

        env = cpu_environment(str(Path(config.out).resolve() / "logs" / "vllm-cache")) if on_cpu() else None
    groups = gpu_groups(config.serve.replicas, visible_gpus())
    model, timeout = config.backend.model, config.serve.timeout
    servers = [
        ServedModel(replica_command(command, g), model, timeout=timeout, env=env, log_dir=log_dir) for g in groups
    ]
    if started is not None:
        started.extend(servers)
    if len(servers) == 1:
        with servers[0] as served:
            yield [served.base_url]
        return
    with ExitStack() as stack:
        stack.callback(_stop_all, servers)
        stack.enter_context(_sigterm_as_interrupt())
        # Start all at once (model loading dominates); ServedModel.stop is safe on any of them.
        with ThreadPoolExecutor(max_workers=len(servers)) as pool:
            errors = [e for e in pool.map(_enter, servers) if e is not None]
        if errors:
            raise RuntimeError(f"--serve: {len(errors)} of {len(servers)} replicas failed: {errors[0]}")
        print(f"tpt augment: {len(servers)} servers up: {', '.join(s.base_url for s in servers)}", file=sys.stderr)
        yield [s.base_url for s in servers]


def _enter(server) -> BaseException | None:
    try:
        server.__enter__()  # in a worker thread ServedModel leaves signal handling to us
        return None
    except BaseException as exc:  # reported together after all replicas tried
        return exc


def _stop_all(servers) -> None:
    for server in servers:
        server.stop()


@contextmanager
def _sigterm_as_interrupt() -> Iterator[None]:
    """SIGTERM becomes KeyboardInterrupt, so the servers are stopped by the ExitStack."""
    try:
        old = signal.signal(signal.SIGTERM, _raise_interrupt)
    except ValueError:  # not the main thread: the caller owns signal handling
        yield
        return
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, old)


def _raise_interrupt(signum, frame):
    raise KeyboardInterrupt(f"signal {signum}")
