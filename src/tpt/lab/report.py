"""The lab report: DIR/results.json, DIR/report.md and DIR/plots/*.png.

Accuracy is held-out accuracy in the one prompt mode fixed in advance ("reflect", see
tpt.lab.evaluate), per family; "overall" is the mean over families.  Every accuracy, difference
and multiplier carries a 95% interval from the paired two-level bootstrap over seeds x problems
(tpt.lab.stats), and every accuracy is compared with its family's majority baseline.
"""

from __future__ import annotations

import json
import math
import platform
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np

from tpt.config import to_dict
from tpt.lab import corpus, stats
from tpt.lab.evaluate import HEADLINE_MODE
from tpt.lab.families import load_family
from tpt.lab.sft import is_sft_arm, sft_summary

ARM_STYLE = {
    "vanilla": ("tab:blue", "vanilla (d)"),
    "tpt": ("tab:red", "TPT ([d; t])"),
    "vanilla-pool": ("tab:green", "vanilla, TPT's pool repeated"),
}
TARGET_STEPS = (
    0.5,
    1.0,
)  # targets: these fractions of the way from the chance interval's top to the better arm's accuracy at B
VERSIONED = ("torch", "transformers", "tokenizers", "numpy", "pyarrow", "matplotlib", "tpt")


def versions() -> dict[str, str]:
    from importlib.metadata import PackageNotFoundError, version

    out = {"python": platform.python_version()}
    for name in VERSIONED:
        try:
            out[name] = version(name)
        except PackageNotFoundError:
            out[name] = "not installed"
    return out


class Evidence:
    """Per family: the held-out problems of every seed, concatenated, and their 0/1 outcomes."""

    def __init__(self, out: Path, seeds: list[int], families: list[str], curves: dict):
        self.families, self.seeds = families, seeds
        self.index: dict[str, list[tuple[int, int]]] = {
            f: [] for f in families
        }  # family -> [(seed position, problem position)]
        self.answers: dict[str, list[str]] = {f: [] for f in families}
        self.levels: dict[str, list[int]] = {f: [] for f in families}
        self.training_answers: dict[str, dict[int, Counter]] = {f: {} for f in families}
        for s_pos, seed in enumerate(seeds):
            fams = {f: load_family(f, seed) for f in families}
            for p_pos, h in enumerate(corpus.read_heldout(out / f"seed-{seed}" / "heldout.jsonl")):
                self.index[h.family].append((s_pos, p_pos))
                self.answers[h.family].append(fams[h.family].answer(h.problem))
                self.levels[h.family].append(h.difficulty)
            with (out / f"seed-{seed}" / "corpus.jsonl").open(encoding="utf-8") as f:
                for _, line in zip(range(20_000), f):  # a large sample of the training answers
                    row = json.loads(line)
                    counts = self.training_answers[row["family"]].setdefault(row["difficulty"], Counter())
                    counts[fams[row["family"]].answer(row["problem"])] += 1
        self.curves = curves
        self.sizes = {f: [sum(1 for s, _ in self.index[f] if s == k) for k in range(len(seeds))] for f in families}
        self.resamplers = stats.resamplers(self.sizes)

    def correct(self, arm: str, point: int, family: str, mode: str = HEADLINE_MODE) -> np.ndarray:
        """0/1 per held-out problem of ``family`` (all seeds), at curve point ``point`` of ``arm``."""
        strings = [self.curves[(seed, arm)][point]["eval"][mode]["correct"] for seed in self.seeds]
        return np.array([float(strings[s][p]) for s, p in self.index[family]])

    def majority(self, family: str) -> np.ndarray:
        return stats.majority_correct(self.answers[family], self.levels[family], self.training_answers[family])


def accuracy_table(ev: Evidence, arm: str, point: int, chance: dict[str, dict]) -> dict[str, Any]:
    row: dict[str, Any] = {}
    replicates = []
    for fam in ev.families:
        c = ev.correct(arm, point, fam)
        est = stats.estimate(c, ev.resamplers[fam])
        est["at_chance"] = stats.at_chance(est["acc"], chance[fam]["ci"])
        row[fam] = est
        replicates.append(ev.resamplers[fam].accuracy(c))
    row["overall"] = {
        "acc": float(np.mean([row[f]["acc"] for f in ev.families])),
        "ci": stats.interval(np.mean(replicates, axis=0)),
    }
    return row


def difference(ev: Evidence, a: tuple[str, int], b: tuple[str, int], family: str) -> dict:
    """Paired difference of accuracies (arm, point) a - b, with its bootstrap interval."""
    return stats.paired_difference(ev.correct(*a, family), ev.correct(*b, family), ev.resamplers[family])


def efficiency(ev: Evidence, family: str, chance_hi: float) -> list[dict]:
    """The multiplier at targets above the chance interval, with intervals."""
    points = {arm: ev.curves[(ev.seeds[0], arm)] for arm in ("vanilla", "tpt")}
    tokens = {arm: [p["tokens"] for p in pts] for arm, pts in points.items()}
    correct = {arm: [ev.correct(arm, i, family) for i in range(len(pts))] for arm, pts in points.items()}
    budget = tokens["tpt"][-1]
    # the better arm at B, and only if its interval clears chance's: a target read off noise
    # (e.g. 0.015 [0.000, 0.040] against a chance interval of [0, 0]) would be a multiplier of noise
    at_b = [(c.mean(), stats.interval(ev.resamplers[family].accuracy(c))[0])
            for arm in ("vanilla", "tpt") for t, c in zip(tokens[arm], correct[arm]) if t == budget]  # fmt: skip
    at_b = max((acc for acc, lo in at_b if lo > chance_hi), default=0.0)
    if at_b <= chance_hi:
        return []
    out = []
    for step in TARGET_STEPS:
        target = math.floor((chance_hi + step * (at_b - chance_hi)) * 1e4) / 1e4
        curve = {arm: list(zip(tokens[arm], [c.mean() for c in correct[arm]])) for arm in tokens}
        kind, value = stats.multiplier(curve["vanilla"], curve["tpt"], target)
        spread = stats.multiplier_interval(
            tokens["vanilla"], correct["vanilla"], tokens["tpt"], correct["tpt"], target, ev.resamplers[family]
        )
        out.append(
            {
                "target": target,
                "kind": kind,
                "multiplier": value,
                "ci": spread["ci"],
                "censored": spread["censored"],
                "vanilla_tokens": _reach(curve["vanilla"], target),
                "tpt_tokens": _reach(curve["tpt"], target),
            }
        )
    return out


def _reach(curve, target):
    from tpt.analyze.curves import tokens_to_reach

    return tokens_to_reach([x for x, _ in curve], [y for _, y in curve], target)


def write_report(
    out: Path, lab, prof, seeds: list[int], curves: dict, leakage: dict, wall: float, timing: dict
) -> dict[str, Any]:
    families = list(prof.families)
    ev = Evidence(out, seeds, families, curves)
    chance = {f: stats.estimate(ev.majority(f), ev.resamplers[f]) for f in families}
    arms = {}
    for arm in ("vanilla", "tpt"):
        arms[arm] = []
        for i, point in enumerate(curves[(seeds[0], arm)]):
            row = {
                "tokens": point["tokens"],
                "unique_docs": float(np.mean([curves[(s, arm)][i]["unique_docs"] for s in seeds])),
            }
            arms[arm].append(row | accuracy_table(ev, arm, i, chance))
    for arm in sorted({a for _, a in curves} - set(arms)):  # ablation arms, when run
        arms[arm] = []
        for i, point in enumerate(curves[(seeds[0], arm)]):
            row = {
                "tokens": point["tokens"],
                "unique_docs": float(np.mean([curves[(s, arm)][i]["unique_docs"] for s in seeds])),
            }
            arms[arm].append(row | accuracy_table(ev, arm, i, chance))
    b_index = {arm: max(i for i, p in enumerate(curves[(seeds[0], arm)]) if p["tokens"] <= prof.tokens) for arm in arms}
    comparisons = {
        f: {
            "tpt_minus_vanilla_at_B": difference(ev, ("tpt", b_index["tpt"]), ("vanilla", b_index["vanilla"]), f),
            "tpt_at_B_minus_vanilla_at_end": difference(
                ev, ("tpt", b_index["tpt"]), ("vanilla", len(arms["vanilla"]) - 1), f
            ),
        }
        for f in families
    }
    ablations = {arm: {f: difference(ev, (arm, b_index[arm]), ("tpt", b_index["tpt"]), f) for f in families}
                 for arm in arms if arm not in ("vanilla", "tpt") and not is_sft_arm(arm)}  # fmt: skip
    prepared = {s: json.loads((out / f"seed-{s}" / "prepared.json").read_text()) for s in seeds}
    results: dict[str, Any] = {
        "split": "dev" if lab.dev else "test",
        "dev_seed": prof.dev_seed,
        "test_seeds": [] if lab.dev else seeds,
        "seeds": seeds,
        "mode": {arm: HEADLINE_MODE for arm in arms},
        "families": families,
        "config": to_dict(lab),
        "profile": to_dict(prof),
        "versions": versions(),
        "wall_seconds": round(wall, 1),
        "timing": timing,
        "chance": chance,
        "curves": arms,
        "comparisons": comparisons,
        "ablations_vs_tpt_at_B": ablations,
        "sft": sft_summary(ev, b_index),
        "data_efficiency": {f: efficiency(ev, f, chance[f]["ci"][1]) for f in families},
        "leakage": {
            str(s): {
                "patterns": r["patterns"],
                "texts": r["texts"],
                "sources": r["sources"],
                "hits": r["hits"][:50],
                "hit_count": len(r["hits"]),
            }
            for s, r in leakage.items()
        },
        "throughput": {
            f"seed-{s}/{arm}": {
                k: curves[(s, arm)][-1].get(k) for k in ("train_seconds", "tokens_per_second", "eval_seconds")
            }
            for s, arm in curves
            if curves[(s, arm)] and "train_seconds" in curves[(s, arm)][-1]
        },
        "trajectory_lengths": prepared[seeds[0]]["trajectory_lengths"],
        "data": {str(s): p["data"] for s, p in prepared.items()},
        "per_seed": {
            f"seed-{s}/{arm}": [{"tokens": p["tokens"], "eval": p["eval"]} for p in c] for (s, arm), c in curves.items()
        },
    }
    out.mkdir(parents=True, exist_ok=True)
    (out / "results.json").write_text(json.dumps(results, indent=1, default=str) + "\n")
    from tpt.lab.plots import write_plots
    from tpt.lab.report_md import render_markdown

    plots = write_plots(out / "plots", results, families)
    (out / "report.md").write_text(render_markdown(results, plots))
    return results
