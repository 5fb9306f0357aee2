"""Fixed-memory distributions for streaming statistics.

Token counts are integers with a bounded range in practice (the thinking budget, the document
cap), so ``CountHistogram`` keeps them *exactly* below ``EXACT_CAP`` (a dense bincount, at most
512 KiB) and in 1 % geometric bins above it.  Quantiles and ranks computed from it are therefore
exact for every realistic thinking length and within 1 % beyond.  Ratios are floats and go to
``LogHistogram`` (1 % geometric bins), whose quantiles are within 0.5 % of the true value.
"""

from __future__ import annotations

import math

import numpy as np

EXACT_CAP = 1 << 16  # counts below this are kept exactly
LOG_STEP = 1.01  # relative width of a geometric bin


def nearest_rank(values: np.ndarray, counts: np.ndarray, q: float) -> float:
    """Lower nearest-rank quantile: the smallest value whose cumulative count reaches q * n."""
    total = int(counts.sum())
    if total == 0:
        return math.nan
    rank = max(1, math.ceil(q * total))
    return float(values[int(np.searchsorted(np.cumsum(counts), rank))])


class CountHistogram:
    """Distribution of non-negative integers: exact below EXACT_CAP, geometric bins above."""

    def __init__(self) -> None:
        self.exact = np.zeros(0, dtype=np.int64)
        self.above: dict[int, int] = {}  # geometric bin index -> count (values >= EXACT_CAP)

    def add(self, values: np.ndarray) -> None:
        values = np.asarray(values, dtype=np.int64)
        small = values[values < EXACT_CAP]
        if small.size:
            counts = np.bincount(small)
            if counts.size > self.exact.size:
                self.exact = np.pad(self.exact, (0, counts.size - self.exact.size))
            self.exact[: counts.size] += counts
        big = values[values >= EXACT_CAP]
        if big.size:
            bins = np.floor(np.log(big / EXACT_CAP) / math.log(LOG_STEP)).astype(np.int64)
            for b, c in zip(*np.unique(bins, return_counts=True)):
                self.above[int(b)] = self.above.get(int(b), 0) + int(c)

    def merge(self, other: CountHistogram) -> None:
        if other.exact.size > self.exact.size:
            self.exact = np.pad(self.exact, (0, other.exact.size - self.exact.size))
        self.exact[: other.exact.size] += other.exact
        for b, c in other.above.items():
            self.above[b] = self.above.get(b, 0) + c

    def keys(self) -> list[tuple[int, int]]:
        """Sorted distinct keys: ("exact", value) as (0, v) and geometric bins as (1, bin)."""
        return [(0, int(v)) for v in np.flatnonzero(self.exact)] + [(1, b) for b in sorted(self.above)]

    def value_counts(self) -> tuple[np.ndarray, np.ndarray]:
        """(values ascending, counts); a geometric bin is represented by its geometric centre."""
        nz = np.flatnonzero(self.exact)
        bins = sorted(self.above)
        values = np.concatenate([nz.astype(float), [EXACT_CAP * LOG_STEP ** (b + 0.5) for b in bins]])
        counts = np.concatenate([self.exact[nz], np.array([self.above[b] for b in bins], dtype=np.int64)])
        return values, counts.astype(np.int64)

    def count_of(self, key: tuple[int, int]) -> int:
        kind, k = key
        if kind == 0:
            return int(self.exact[k]) if k < self.exact.size else 0
        return self.above.get(k, 0)

    def quantile(self, q: float) -> float:
        return nearest_rank(*self.value_counts(), q)

    @property
    def total(self) -> int:
        return int(self.exact.sum()) + sum(self.above.values())


class LogHistogram:
    """Distribution of non-negative floats: exact zeros, 1 % geometric bins over [1e-4, 1e4] (clipped beyond)."""

    LO, HI = 1e-4, 1e4

    def __init__(self) -> None:
        self.nbins = int(math.ceil(math.log(self.HI / self.LO) / math.log(LOG_STEP)))
        self.counts = np.zeros(self.nbins, dtype=np.int64)
        self.zeros = 0

    def add(self, values: np.ndarray) -> None:
        values = np.asarray(values, dtype=np.float64)
        positive = values[values > 0]
        self.zeros += int(values.size - positive.size)
        bins = np.floor(np.log(positive / self.LO) / math.log(LOG_STEP)).astype(np.int64)
        self.counts += np.bincount(np.clip(bins, 0, self.nbins - 1), minlength=self.nbins)

    def merge(self, other: LogHistogram) -> None:
        self.counts += other.counts
        self.zeros += other.zeros

    def centres(self) -> np.ndarray:
        return self.LO * LOG_STEP ** (np.arange(self.nbins) + 0.5)

    def quantile(self, q: float) -> float:
        values = np.concatenate([[0.0], self.centres()])
        return nearest_rank(values, np.concatenate([[self.zeros], self.counts]), q)

    @property
    def total(self) -> int:
        return int(self.counts.sum()) + self.zeros
