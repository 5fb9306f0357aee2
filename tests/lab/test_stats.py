"""The report's statistics: bootstrap intervals against a known case, the majority baseline,
and every path of the multiplier (finite, lower bound, upper bound)."""

from __future__ import annotations

import math
from collections import Counter

import numpy as np
import pytest

from tpt.lab import stats


def test_one_seed_interval_matches_the_normal_approximation():
    # 400 problems, 120 right: p = 0.3, standard error sqrt(0.3 * 0.7 / 400) = 0.0229
    correct = np.array([1.0] * 120 + [0.0] * 280)
    est = stats.estimate(correct, stats.resamplers({"f": [400]}, replicates=4000)["f"])
    assert est["acc"] == pytest.approx(0.3)
    half = 1.96 * math.sqrt(0.3 * 0.7 / 400)
    assert est["ci"][0] == pytest.approx(0.3 - half, abs=0.01) and est["ci"][1] == pytest.approx(0.3 + half, abs=0.01)


def test_seed_resampling_widens_the_interval_when_seeds_disagree():
    agree = np.array([1.0, 0.0] * 30 * 3)  # three seeds of 60 problems, each at 0.5
    disagree = np.array([1.0] * 60 + [0.0] * 60 + [1.0, 0.0] * 30)  # seeds at 1.0, 0.0, 0.5
    r = stats.resamplers({"f": [60, 60, 60]})["f"]
    width = [np.diff(stats.estimate(c, r)["ci"])[0] for c in (agree, disagree)]
    assert width[1] > 3 * width[0]


def test_majority_baseline_uses_each_levels_commonest_training_answer():
    training = {2: Counter({"0": 5, "3": 2}), 3: Counter({"7": 4})}
    got = stats.majority_correct(["0", "3", "7", "0"], [2, 2, 3, 3], training)
    assert got.tolist() == [1.0, 0.0, 1.0, 0.0]
    assert stats.at_chance(0.2, [0.1, 0.25]) and not stats.at_chance(0.3, [0.1, 0.25])


def test_multiplier_paths():
    tpt = [(100, 0.1), (200, 0.5), (400, 0.9)]
    vanilla = [(100, 0.1), (400, 0.3), (800, 0.5), (1600, 0.6)]
    assert stats.multiplier(vanilla, tpt, 0.5) == ("finite", 4.0)  # 800 / 200
    kind, value = stats.multiplier(vanilla, tpt, 0.9)  # vanilla never gets there within its 1600
    assert kind == "lower_bound" and value == pytest.approx(1600 / 400)
    kind, value = stats.multiplier(tpt, vanilla, 0.7)  # roles swapped: the method never reaches it
    assert kind == "upper_bound" and value == pytest.approx(300 / 1600)
    assert stats.multiplier(vanilla, tpt, 0.95)[0] == "none"


def test_multiplier_interval_is_infinite_when_vanilla_may_never_reach():
    r = stats.resamplers({"f": [50, 50]}, replicates=300)["f"]
    ones, zeros = np.ones(100), np.zeros(100)
    half = np.array([1.0, 0.0] * 50)
    # TPT is perfect from its first point; vanilla at 0 until 200, perfect at 400: reaches 0.9 at 380
    lo, hi = stats.multiplier_interval([100, 200, 400], [zeros, zeros, ones], [50, 100], [ones, ones], 0.9, r)
    assert lo == pytest.approx(380 / 50) and hi == pytest.approx(380 / 50)
    lo, hi = stats.multiplier_interval([100, 400], [half, half], [50, 100], [ones, ones], 0.9, r)
    assert math.isinf(lo) and math.isinf(hi)  # the lower-bound path in every replicate
