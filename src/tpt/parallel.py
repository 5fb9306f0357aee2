"""The one worker-pool helper: ``fork_map`` / ``spawn_map`` run a function over jobs in processes,
``process_pool`` gives the pool itself to callers that queue jobs as earlier ones finish.

Forked (analyze, filter): a worker starts with the parent's imports and objects (Arrow, numpy, the
stage's config), so a job is small to send and a worker starts in milliseconds.  Only fork before
the process starts threads that must survive a fork (a Rust tokenizer's pool, say).

Spawned (the lab's training jobs): torch's thread pools and OpenMP state do not survive a fork, so
each worker starts a fresh interpreter (~seconds) and sets its own thread count.
"""

from __future__ import annotations

import multiprocessing
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ProcessPoolExecutor
from typing import Literal, TypeVar

R = TypeVar("R")
Start = Literal["fork", "spawn"]


def process_pool(workers: int, start: Start = "fork") -> ProcessPoolExecutor:
    """A pool of ``workers`` processes started by ``start``; use it as a context manager."""
    return ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context(start))


def process_map(fn: Callable[..., R], jobs: Iterable[tuple], workers: int, start: Start = "fork") -> Iterator[R]:
    """``fn(*job)`` for every job, yielded in job order.  One worker or one job: in this process
    (no pool to start, and exceptions keep their plain tracebacks)."""
    jobs = list(jobs)
    if workers <= 1 or len(jobs) <= 1:
        for job in jobs:
            yield fn(*job)
        return
    with process_pool(min(workers, len(jobs)), start) as pool:
        yield from pool.map(fn, *zip(*jobs))


def fork_map(fn: Callable[..., R], jobs: Iterable[tuple], workers: int) -> Iterator[R]:
    return process_map(fn, jobs, workers, "fork")


def spawn_map(fn: Callable[..., R], jobs: Iterable[tuple], workers: int) -> Iterator[R]:
    return process_map(fn, jobs, workers, "spawn")
