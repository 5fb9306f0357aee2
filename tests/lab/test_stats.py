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


def test_multiplier_interval_censors_replicates_that_never_reach_the_target():
    r = stats.resamplers({"f": [50, 50]}, replicates=300)["f"]
    ones, zeros = np.ones(100), np.zeros(100)
    half = np.array([1.0, 0.0] * 50)
    # TPT is perfect from its first point; vanilla at 0 until 200, perfect at 400: reaches 0.9 at 380
    got = stats.multiplier_interval([100, 200, 400], [zeros, zeros, ones], [50, 100], [ones, ones], 0.9, r)
    assert got["ci"] == pytest.approx([380 / 50, 380 / 50])
    assert got["censored"] == {"vanilla_never": 0.0, "tpt_never": 0.0, "neither": 0.0}
    # the lower-bound path: vanilla never reaches 0.9 within its 400 tokens, TPT does at 50, in every
    # replicate: ">= 8x", so the interval is [8, inf] (8 is known; nothing above it is)
    got = stats.multiplier_interval([100, 400], [half, half], [50, 100], [ones, ones], 0.9, r)
    assert stats.multiplier([(100, 0.5), (400, 0.5)], [(50, 1.0), (100, 1.0)], 0.9) == ("lower_bound", 8.0)
    assert got["ci"][0] == pytest.approx(8.0) and math.isinf(got["ci"][1])
    assert got["censored"]["vanilla_never"] == 1.0


def test_multiplier_interval_contains_an_upper_bound_estimate():
    # the case that once gave "<= 1.00x [0.00, 0.38]": TPT mostly never reaches the target, vanilla does.
    # vanilla: 0 at 100 tokens, 0.6 at 200 (reaches 0.5 at ~183); TPT at 0.45 on its last point (100)
    r = stats.resamplers({"f": [50, 50]}, replicates=400)["f"]
    zeros, ones = np.zeros(100), np.ones(100)
    vanilla_200 = np.random.default_rng(1).permutation([1.0] * 60 + [0.0] * 40)
    tpt_100 = np.random.default_rng(2).permutation([1.0] * 45 + [0.0] * 55)
    vanilla = ([100, 200, 400], [zeros, vanilla_200, ones])
    kind, point = stats.multiplier(list(zip(vanilla[0], [c.mean() for c in vanilla[1]])), [(50, 0.0), (100, 0.45)], 0.5)
    assert kind == "upper_bound" and point == pytest.approx((100 + 100 * 0.5 / 0.6) / 100)
    got = stats.multiplier_interval(*vanilla, [50, 100], [zeros, tpt_100], 0.5, r)
    lo, hi = got["ci"]
    assert lo == 0.0 and lo <= point <= hi and math.isfinite(hi)  # "<= U": below unknown, above bounded
    assert 0.5 < got["censored"]["tpt_never"] < 1.0 and got["censored"]["vanilla_never"] == 0.0


def test_report_cell_shows_a_censored_interval_and_its_shares():
    from tpt.lab.report_md import mult_cell

    cell = {"kind": "upper_bound", "multiplier": 1.0, "ci": [0.0, 1.5],
            "censored": {"vanilla_never": 0.0, "tpt_never": 0.8, "neither": 0.05}}  # fmt: skip
    text = mult_cell(cell)
    assert text.startswith("≤ 1.00x") and "[0.00, 1.50]" in text
    assert "TPT never 80%" in text and "neither 5%" in text and "vanilla never" not in text
    lower = mult_cell({"kind": "lower_bound", "multiplier": 8.0, "ci": [8.0, math.inf], "censored": {}})
    assert lower.startswith("≥ 8.00x") and lower.endswith("[8.00, ∞]")  # no shares when none were censored
