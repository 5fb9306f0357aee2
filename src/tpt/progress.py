"""One progress reporter for every stage: a tqdm bar, or nothing.

A bar is drawn only when the stage's progress flag is on AND stderr is a terminal: a log file (a
Slurm job, CI, a pipe) gets the stage's summary lines, not thousands of carriage-return updates.
Callers use the same three methods either way, so no call site tests whether a bar exists.
"""

from __future__ import annotations

import time
from typing import Any


class NoProgress:
    """The bar when there is none: every method does nothing."""

    def update(self, n: int = 1) -> None:
        pass

    def set_postfix_str(self, text: str, refresh: bool = True) -> None:
        pass

    def set_postfix(self, **values: Any) -> None:
        pass

    def close(self) -> None:
        pass

    def __enter__(self) -> NoProgress:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def progress_bar(total: int | None = None, desc: str = "", unit: str = "it", enabled: bool = True, **options: Any):
    """A tqdm bar (``disable=None``: off when stderr is not a terminal), or ``NoProgress`` when disabled."""
    if not enabled:
        return NoProgress()
    from tqdm import tqdm  # imported here: a quiet run never pays for it

    return tqdm(total=total, desc=desc, unit=unit, dynamic_ncols=True, disable=None, **options)


class Throughput:
    """A postfix of tokens per second since the bar started (augment's generated tokens, say)."""

    def __init__(self, bar, unit: str = "tok/s") -> None:
        self.bar, self.unit = bar, unit
        self.started, self.count = time.monotonic(), 0

    def add(self, done: int, count: int) -> None:
        self.count += count
        self.bar.update(done)
        rate = self.count / max(1e-9, time.monotonic() - self.started)
        self.bar.set_postfix_str(f"{rate:.0f} {self.unit}", refresh=False)
