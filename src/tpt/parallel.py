"""One worker-pool helper: ``fork_map`` runs a function over jobs in forked processes.

Forked, not spawned: a worker starts with the parent's imports and objects (Arrow, numpy, the
stage's config), so a job is small to send and a worker starts in milliseconds.  Only call it
before the process starts threads that must survive a fork (a Rust tokenizer's pool, say).
"""

from __future__ import annotations

import multiprocessing
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ProcessPoolExecutor
from typing import TypeVar

R = TypeVar("R")


def fork_map(fn: Callable[..., R], jobs: Iterable[tuple], workers: int) -> Iterator[R]:
    """``fn(*job)`` for every job, yielded in job order.  One worker or one job: in this process
    (no pool to start, and exceptions keep their plain tracebacks)."""
    jobs = list(jobs)
    if workers <= 1 or len(jobs) <= 1:
        for job in jobs:
            yield fn(*job)
        return
    with ProcessPoolExecutor(min(workers, len(jobs)), mp_context=multiprocessing.get_context("fork")) as pool:
        yield from pool.map(fn, *zip(*jobs))
