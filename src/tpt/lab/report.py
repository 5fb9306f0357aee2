"""The lab report: DIR/results.json, DIR/report.md and DIR/plots/*.png.

Accuracy is the held-out accuracy under the best of the three prompt modes (direct,
think-first, reflect: see tpt.lab.evaluate), chosen per family
(macro-averaged over families for "overall").  Across seeds: mean and standard deviation.
The data-efficiency multiplier comes from the shared implementation in tpt.analyze.curves.
"""

from __future__ import annotations

import json
import math
import statistics
from pathlib import Path
from typing import Any, Sequence

from tpt.analyze.curves import data_efficiency
from tpt.config import to_dict

NEAR_CHANCE = 0.15  # below this a family-averaged accuracy is within guessing range (chain_mod10 guesses 0.1)
TARGET_FRACTIONS = (0.5, 0.75, 1.0)  # targets = these fractions of vanilla's final accuracy
ARM_STYLE = {"vanilla": ("tab:blue", "vanilla (d)"), "tpt": ("tab:red", "TPT ([d; t])"), "vanilla-pool": ("tab:green", "vanilla, TPT's pool repeated")}


def mean_std(values: Sequence[float]) -> tuple[float, float]:
    return statistics.fmean(values), statistics.pstdev(values) if len(values) > 1 else 0.0


def accuracy(result: dict, family: str | None) -> float:
    best = result["best"]
    return best["accuracy"] if family is None else best["by_family"][family]["accuracy"]


def aggregate_curves(runs, families: list[str]) -> dict[str, list[dict]]:
    """arm -> points with mean/std accuracy over seeds, overall and per family."""
    out: dict[str, list[dict]] = {}
    for arm in runs[0].curves:
        points = []
        for i, point in enumerate(runs[0].curves[arm]):
            evals = [r.curves[arm][i]["eval"] for r in runs]
            row = {"tokens": point["tokens"], "unique_docs": statistics.fmean(r.curves[arm][i]["unique_docs"] for r in runs)}
            for fam in [None, *families]:
                m, s = mean_std([accuracy(e, fam) for e in evals])
                row[fam or "overall"] = {"mean": m, "std": s}
            row["mode"] = {fam: evals[0]["best"]["by_family"][fam]["mode"] for fam in families}
            points.append(row)
        out[arm] = points
    return out


def efficiency(curves: dict[str, list[dict]], key: str, baseline: str = "vanilla", method: str = "tpt") -> list[dict]:
    """Tokens the baseline needs / tokens TPT needs, at fractions of the baseline's final accuracy."""
    base = [(p["tokens"], p[key]["mean"]) for p in curves[baseline]]
    meth = [(p["tokens"], p[key]["mean"]) for p in curves[method]]
    final = base[-1][1]
    # rounded *down*: rounding 100% of the final accuracy up would put the target above the very
    # point it was read from, and the baseline would "never reach" its own final accuracy
    targets = sorted({math.floor(final * f * 1e4) / 1e4 for f in TARGET_FRACTIONS if final * f > 0})
    return [e.to_dict() for e in data_efficiency(base, meth, targets)]


def difficulty_table(runs, arm: str, index: int | None, family: str) -> dict[str, float]:
    """Accuracy by difficulty (mean over seeds) at one curve point (None: after SFT), in the family's best mode."""
    levels: dict[str, list[float]] = {}
    for r in runs:
        ev = r.sft[arm] if index is None else r.curves[arm][index]["eval"]
        mode = ev["best"]["by_family"][family]["mode"]
        for level, acc in ev[mode]["by_family"][family]["by_difficulty"].items():
            levels.setdefault(level, []).append(acc)
    return {k: statistics.fmean(v) for k, v in levels.items()}


def steps_table(runs, arm: str, families: list[str]) -> dict[str, float]:
    """Share of the expert's steps reproduced at the final checkpoint, in the better thinking mode
    (think-first or reflect), mean over seeds."""
    def share(ev: dict, f: str) -> float:
        return max(ev.get(m, {}).get("steps_reproduced", {}).get(f, 0.0) for m in ("think", "reflect"))

    evals = [r.curves[arm][-1]["eval"] for r in runs]
    return {f: statistics.fmean(share(e, f) for e in evals) for f in families}


def write_report(out: Path, lab, prof, runs, wall: float) -> dict[str, Any]:
    families = list(lab.families)
    curves = aggregate_curves(runs, families)
    results: dict[str, Any] = {
        "config": to_dict(lab), "profile": to_dict(prof), "wall_seconds": round(wall, 1), "seeds": len(runs),
        "curves": curves,
        "data_efficiency": {key: efficiency(curves, key) for key in ["overall", *families]},
        "constrained": {"pool": [r.data.get("vanilla-pool") for r in runs], "tpt": [r.data.get("tpt") for r in runs]},
        "sft": sft_summary(runs, families) if runs[0].sft else {},
        "trajectory_lengths": runs[0].trajectory_lengths,
        "accuracy_by_difficulty": {arm: {f: difficulty_table(runs, arm, -1, f) for f in families} for arm in curves},
        "steps_reproduced": {arm: steps_table(runs, arm, families) for arm in curves},
        "seconds": {k: round(sum(r.seconds.get(k, 0) for r in runs), 1) for k in runs[0].seconds},
        "per_seed": [{"seed": r.seed, "curves": r.curves, "sft": r.sft, "data": r.data} for r in runs],
    }  # fmt: skip
    out.mkdir(parents=True, exist_ok=True)
    (out / "results.json").write_text(json.dumps(results, indent=1, default=str) + "\n")
    from tpt.lab.plots import write_plots

    plots = write_plots(out / "plots", results, families)
    (out / "report.md").write_text(render_markdown(results, families, plots))
    return results


def sft_summary(runs, families: list[str]) -> dict[str, Any]:
    out = {}
    for arm in runs[0].sft:
        row = {}
        for fam in [None, *families]:
            m, s = mean_std([accuracy(r.sft[arm], fam) for r in runs])
            row[fam or "overall"] = {"mean": m, "std": s}
        out[arm] = row
    return out


def _fmt(cell: dict) -> str:
    return f"{cell['mean']:.3f}" + (f" ± {cell['std']:.3f}" if cell["std"] else "")


def _mult(e: dict) -> str:
    if e["multiplier"] is not None:
        return f"{e['multiplier']:.2f}x"
    if e["lower_bound"] is not None:
        return f">= {e['lower_bound']:.2f}x (vanilla never reached it)"
    return "n/a (TPT never reached it)"


def render_markdown(results: dict, families: list[str], plots: list[str]) -> str:
    curves = results["curves"]
    keys = ["overall", *families]
    lines = [
        "# tpt lab report", "",
        f"Profile: model preset `{results['profile']['model_preset']}`, {results['profile']['tokens']:,} training tokens per arm, "
        f"seq_len {results['profile']['seq_len']}, {results['seeds']} seed(s); wall time {results['wall_seconds']:.0f} s "
        f"(stage seconds: {results['seconds']}).", "",
        "Accuracy = held-out problems answered correctly, best of the direct, think-first and reflect prompts (per family); "
        "'overall' is the mean over families.", "",
        "## Learning curves (accuracy vs training tokens)", "",
        "| arm | tokens | unique docs | " + " | ".join(keys) + " |", "|---|---:|---:|" + "---:|" * len(keys),
    ]  # fmt: skip
    for arm, points in curves.items():
        for p in points:
            lines.append(f"| {arm} | {p['tokens']:,} | {p['unique_docs']:,.0f} | " + " | ".join(_fmt(p[k]) for k in keys) + " |")
    lines += ["", "## Data-efficiency multiplier (vanilla tokens / TPT tokens to reach a target accuracy)", "",
              "| scope | target | vanilla tokens | TPT tokens | multiplier |", "|---|---:|---:|---:|---:|"]  # fmt: skip
    for key, effs in results["data_efficiency"].items():
        for e in effs:
            vt = f"{e['baseline_tokens']:,.0f}" if e["baseline_tokens"] else "-"
            mt = f"{e['method_tokens']:,.0f}" if e["method_tokens"] else "-"
            lines.append(f"| {key} | {e['target']:.3f} | {vt} | {mt} | {_mult(e)} |")
    if not any(results["data_efficiency"].values()):
        lines.append("| - | vanilla's final accuracy is 0: no target to read a multiplier at | | | |")
    final = curves["vanilla"][-1]["overall"]["mean"]
    if final < NEAR_CHANCE:  # after the table: a paragraph inside it would cut the table in two
        lines += ["", f"**Caution:** vanilla's final overall accuracy ({final:.3f}) is near chance level; multipliers read at "
                  "such targets compare noise, not learning. Train longer or on fewer families (see docs/lab.md)."]
    lines += ["", "## Accuracy by difficulty at the final checkpoint", ""]
    for fam in families:
        levels = sorted(next(iter(results["accuracy_by_difficulty"].values()))[fam], key=int)
        lines += [f"**{fam}**", "", "| arm | " + " | ".join(f"d={lv}" for lv in levels) + " |", "|---|" + "---:|" * len(levels)]
        for arm, table in results["accuracy_by_difficulty"].items():
            lines.append(f"| {arm} | " + " | ".join(f"{table[fam].get(lv, 0):.2f}" for lv in levels) + " |")
        lines.append("")
    lines += ["## Think-first diagnostic: share of the expert's steps reproduced (final checkpoint)", "",
              "Leading steps of the generated trajectory that match the expert's exactly, as a share of its steps. "
              "0 = not even the first step (a copy of the question's first operand) is right.", "",
              "| arm | " + " | ".join(families) + " |", "|---|" + "---:|" * len(families)]  # fmt: skip
    for arm, table in results["steps_reproduced"].items():
        lines.append(f"| {arm} | " + " | ".join(f"{table[f]:.2f}" for f in families) + " |")
    lines += ["", "## Trajectory length vs difficulty (mean thinking tokens)", "", "| family | " + " | ".join(["d", "tokens"]) + " |", "|---|---|---|"]
    for fam, table in results["trajectory_lengths"].items():
        lines.append(f"| {fam} | {', '.join(table)} | {', '.join(f'{v:.1f}' for v in table.values())} |")
    if results["sft"]:
        lines += ["", "## After SFT on the same think-then-answer set", "", "| arm | " + " | ".join(keys) + " |", "|---|" + "---:|" * len(keys)]
        for arm, row in results["sft"].items():
            lines.append(f"| {arm}+sft | " + " | ".join(_fmt(row[k]) for k in keys) + " |")
    lines += ["", "## Plots", ""] + [f"![{Path(p).stem}](plots/{Path(p).name})" for p in plots] + [""]
    return "\n".join(lines)
