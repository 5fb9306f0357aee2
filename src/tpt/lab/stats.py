"""Intervals for the lab report: a paired, two-level bootstrap over seeds x problems.

One replicate draws seeds with replacement, then, inside every drawn seed, that seed's held-out
problems with replacement; it is a vector of weights over all (seed, problem) pairs.  The same
replicates are applied to every arm, checkpoint and baseline (paired), so differences and
multipliers get intervals from the same draws.  95% intervals are the 2.5 / 97.5 percentiles.

Chance: the *majority baseline* of a family answers every held-out problem of a difficulty
level with that level's most frequent answer in the training corpus (the best constant a model
can learn, since the level is visible in the question).  An accuracy whose point estimate lies
inside the baseline's 95% interval (or below it) is labelled "at chance".
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from tpt.analyze.curves import tokens_to_reach

REPLICATES = 2000


@dataclass
class Resampler:
    """Bootstrap weights for one family: ``weights[r, i]`` counts how often replicate r drew
    problem i (problems of all seeds concatenated in seed order)."""

    weights: np.ndarray

    def accuracy(self, correct: np.ndarray) -> np.ndarray:
        """Replicate accuracies for a 0/1 vector over the concatenated problems."""
        return self.weights @ correct / self.weights.sum(axis=1)


def resamplers(sizes: dict[str, Sequence[int]], replicates: int = REPLICATES, seed: int = 0) -> dict[str, Resampler]:
    """``sizes[family][s]`` = held-out problems of that family in seed s.  Seeds are drawn once
    per replicate for all families (a replicate is one alternative set of seeds)."""
    rng = np.random.default_rng(seed)
    n_seeds = len(next(iter(sizes.values())))
    seed_draws = rng.integers(0, n_seeds, size=(replicates, n_seeds))
    out = {}
    for fam, per_seed in sizes.items():
        offsets = np.concatenate([[0], np.cumsum(per_seed)])
        weights = np.zeros((replicates, int(offsets[-1])))
        for r in range(replicates):
            for s in seed_draws[r]:
                picks = rng.integers(offsets[s], offsets[s + 1], size=per_seed[s])
                np.add.at(weights[r], picks, 1)
        out[fam] = Resampler(weights)
    return out


def interval(samples: np.ndarray) -> list[float]:
    finite = samples[~np.isnan(samples)]
    if finite.size == 0:
        return [math.nan, math.nan]
    lo, hi = np.percentile(finite, [2.5, 97.5], method="nearest")  # no interpolation: values may be +inf
    return [float(lo), float(hi)]


def estimate(correct: np.ndarray, resampler: Resampler) -> dict:
    return {"acc": float(correct.mean()), "ci": interval(resampler.accuracy(correct)), "n": int(correct.size)}


def paired_difference(a: np.ndarray, b: np.ndarray, resampler: Resampler) -> dict:
    """Accuracy a - b over the same held-out problems, with the paired bootstrap interval."""
    return {"diff": float(a.mean() - b.mean()), "ci": interval(resampler.accuracy(a) - resampler.accuracy(b))}


def majority_correct(answers: Sequence[str], levels: Sequence[int], training: dict[int, Counter]) -> np.ndarray:
    """0/1 per held-out problem: does its level's most frequent training answer match?"""
    best = {level: counts.most_common(1)[0][0] for level, counts in training.items() if counts}
    return np.array([1.0 if best.get(level) == ans else 0.0 for ans, level in zip(answers, levels)])


def at_chance(acc: float, chance_ci: Sequence[float]) -> bool:
    return acc <= chance_ci[1]


# --- the data-efficiency multiplier ------------------------------------------------------------


def multiplier(
    base: Sequence[tuple[float, float]], method: Sequence[tuple[float, float]], target: float
) -> tuple[str, float]:
    """(kind, value) of vanilla tokens / TPT tokens to reach ``target``:

    finite       both reach it
    lower_bound  vanilla never reaches it on its (longer) curve: >= its last budget / TPT's tokens
    upper_bound  TPT never reaches it on its curve: <= vanilla's tokens / TPT's last budget
    none         neither does
    """
    b = tokens_to_reach([x for x, _ in base], [y for _, y in base], target)
    m = tokens_to_reach([x for x, _ in method], [y for _, y in method], target)
    if b is not None and m:
        return "finite", b / m
    if m:
        return "lower_bound", max(x for x, _ in base) / m
    if b is not None:
        return "upper_bound", b / max(x for x, _ in method)
    return "none", math.nan


def multiplier_interval(
    base_tokens, base_correct, meth_tokens, meth_correct, target: float, resampler: Resampler
) -> dict:
    """95% interval of the multiplier over the bootstrap replicates, censored honestly.

    A replicate where one arm never reaches the target only bounds its multiplier: vanilla never
    reaching it gives ">= L" (L = vanilla's last budget / TPT's tokens), TPT never reaching it
    "<= U" (U = vanilla's tokens / TPT's last budget), neither reaching it nothing.  The interval
    takes each censored replicate at the end that makes it widest: the lower percentile reads
    ">= L" as L and "<= U" (and "neither") as 0; the upper percentile reads ">= L" (and "neither")
    as +inf and "<= U" as U.  So a replicate never counts as a number it is not known to be, and the
    interval contains the point estimate's own bound.  Returns {"ci": [lo, hi], "censored": shares of
    replicates in which vanilla / TPT / neither reaches the target}.
    """
    b_acc = np.stack([resampler.accuracy(c) for c in base_correct], axis=1)  # (replicates, points)
    m_acc = np.stack([resampler.accuracy(c) for c in meth_correct], axis=1)
    low_end, high_end, kinds = [], [], []
    for b_row, m_row in zip(b_acc, m_acc):
        kind, value = multiplier(list(zip(base_tokens, b_row)), list(zip(meth_tokens, m_row)), target)
        kinds.append(kind)
        low_end.append({"finite": value, "lower_bound": value}.get(kind, 0.0))
        high_end.append({"finite": value, "upper_bound": value}.get(kind, math.inf))
    return {
        "ci": [interval(np.array(low_end))[0], interval(np.array(high_end))[1]],
        "censored": {
            who: kinds.count(kind) / len(kinds)
            for who, kind in (("vanilla_never", "lower_bound"), ("tpt_never", "upper_bound"), ("neither", "none"))
        },
    }
