"""Spearman's rank correlation between an ordinal field and thinking length, exactly, in bounded memory.

Spearman's rho is Pearson's correlation of the two variables' ranks (ties get their average
rank).  The ordinal field has few levels, and each level keeps an exact histogram of thinking
lengths (histograms.CountHistogram), so every record's rank is known without keeping records:

  x-rank of level l      = (records in lower levels) + (n_l + 1) / 2
  y-rank of length v     = (records shorter than v, all levels) + (c_v + 1) / 2
  sum over records rx*ry = sum_l  rx_l * sum_v count_l(v) * ry_v

Memory is O(levels x distinct lengths) and the result equals rho over the raw records (lengths
beyond histograms.EXACT_CAP are tied within their 1 % bin).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from tpt.analyze.histograms import CountHistogram


def average_ranks(counts: np.ndarray) -> np.ndarray:
    """Average 1-based rank of each tie group, given group sizes in ascending value order."""
    before = np.cumsum(counts) - counts
    return before + (counts + 1) / 2.0


def spearman_from_histograms(levels: Sequence[float], hists: Sequence[CountHistogram]) -> dict[str, float]:
    """rho between level value (ascending ``levels``) and the values in each level's histogram."""
    keys = sorted({k for h in hists for k in h.keys()})
    index = {k: i for i, k in enumerate(keys)}
    table = np.zeros((len(hists), len(keys)), dtype=np.float64)  # (levels, distinct lengths)
    for row, hist in enumerate(hists):
        for k in hist.keys():
            table[row, index[k]] = hist.count_of(k)
    n = float(table.sum())
    if n < 2 or len(keys) == 0:
        return {"rho": math.nan, "records": int(n)}
    level_counts, value_counts = table.sum(axis=1), table.sum(axis=0)
    # levels with equal values would be one tie group; the caller gives distinct values
    assert list(levels) == sorted(set(levels)), "levels must be distinct and ascending"
    rx, ry = average_ranks(level_counts), average_ranks(value_counts)
    mean = (n + 1) / 2.0
    cov = float(rx @ table @ ry) - n * mean * mean
    var_x = float(level_counts @ (rx * rx)) - n * mean * mean
    var_y = float(value_counts @ (ry * ry)) - n * mean * mean
    rho = cov / math.sqrt(var_x * var_y) if var_x > 0 and var_y > 0 else math.nan
    return {"rho": rho, "records": int(n)}
