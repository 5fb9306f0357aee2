"""report.md of a lab run, rendered from results.json's content (see tpt.lab.report)."""

from __future__ import annotations

import math
from pathlib import Path

from tpt.lab.sft import render_sft


def ci(cell: dict, key: str = "acc") -> str:
    lo, hi = cell["ci"]
    return f"{cell[key]:.3f} [{lo:.3f}, {hi:.3f}]"


def acc_cell(cell: dict) -> str:
    return ci(cell) + (" *chance*" if cell.get("at_chance") else "")


def mult_cell(e: dict) -> str:
    lo, hi = e["ci"]
    hi_s = "∞" if math.isinf(hi) else f"{hi:.2f}"
    interval = (f"[{lo:.2f}, {hi_s}]" if not math.isnan(lo) else "[n/a]") + censored_note(e.get("censored") or {})
    if e["kind"] == "finite":
        return f"{e['multiplier']:.2f}x {interval}"
    if e["kind"] == "lower_bound":
        return f"≥ {e['multiplier']:.2f}x (vanilla does not reach it within its budget) {interval}"
    if e["kind"] == "upper_bound":
        return f"≤ {e['multiplier']:.2f}x (TPT does not reach it; vanilla does) {interval}"
    return "n/a (neither reaches it)"


def censored_note(censored: dict) -> str:
    """The replicates in which an arm never reaches the target (they bound the interval, see stats)."""
    parts = [f"{label} {censored[key]:.0%}" for key, label in
             (("vanilla_never", "vanilla never"), ("tpt_never", "TPT never"), ("neither", "neither"))
             if censored.get(key)]  # fmt: skip
    return f" (replicates where it is not reached: {', '.join(parts)})" if parts else ""


def render_markdown(results: dict, plots: list[str]) -> str:
    fams, prof = results["families"], results["profile"]
    keys = ["overall", *fams]
    dev = results["split"] == "dev"
    lines = ["# tpt lab report" + (" — DEV SEED (for choosing settings; not a result)" if dev else ""), ""]
    planned = {"vanilla": prof["tokens"] * prof["vanilla_multiple"], "tpt": prof["tokens"]}
    short = {arm: t for arm, t in results["timing"].get("last_point", {}).items() if t < planned.get(arm, 0)}
    if short:
        lines += ["**Partial run** (`--evaluate-saved`): training was interrupted; curves stop at " +
                  ", ".join(f"{arm} {t:,} tokens (planned {planned[arm]:,.0f})" for arm, t in short.items()) +
                  ".  Multipliers' lower bounds are relative to those last points.", ""]  # fmt: skip
    seeds_label = (
        "dev seed " + str(results["dev_seed"]) if dev else "test seeds " + ", ".join(map(str, results["test_seeds"]))
    )
    lines += [
        (
            f"Seeds: {seeds_label} (dev seed {results['dev_seed']}: every setting was chosen on it; it is not in "
            f"this report{' — except here' if dev else ''}). Model preset `{prof['model_preset']}`, TPT budget B = "
            f"{prof['tokens']:,} tokens, vanilla to {prof['vanilla_multiple']:g} x B, {_lr_text(prof)}, "
            f"batch {prof['batch_tokens']} tokens, seq_len {prof['seq_len']}, RoPE base "
            f"{prof['rope_theta']:g}. Wall time {results['wall_seconds']:.0f} s ({_timing_text(results['timing'])})."
        ),
        "",
        (
            f"Prompt mode (fixed in advance, the same for both arms): `{results['mode']['tpt']}` — "
            '"<question> The answer is"; the model may open <think> and reason, whose final answer then counts.  '
            "Accuracy [95% interval: bootstrap over seeds x problems]; *chance* = inside or below the family's "
            "majority-baseline interval.  'overall' is the mean over families."
        ),
        "",
        "Versions: " + ", ".join(f"{k} {v}" for k, v in results["versions"].items()) + ".",
        "",
        "## Chance: majority baseline per family",
        "",
        "Each level's most frequent training answer, scored on the held-out problems.",
        "",
        "| family | majority baseline | held-out problems |",
        "|---|---:|---:|",
    ]
    for fam in fams:
        lines.append(f"| {fam} | {ci(results['chance'][fam])} | {results['chance'][fam]['n']} |")
    lines += [
        "",
        "## Learning curves (accuracy vs training tokens)",
        "",
        "| arm | tokens | unique docs | " + " | ".join(keys) + " |",
        "|---|---:|---:|" + "---:|" * len(keys),
    ]
    for arm, points in results["curves"].items():
        for p in points:
            lines.append(
                f"| {arm} | {p['tokens']:,} | {p['unique_docs']:,.0f} | "
                + " | ".join(acc_cell(p[k]) for k in keys)
                + " |"
            )
    lines += [
        "",
        "## TPT vs vanilla (paired differences)",
        "",
        "| family | TPT − vanilla, both at B | TPT at B − vanilla at its last point |",
        "|---|---:|---:|",
    ]
    for fam, comp in results["comparisons"].items():
        lines.append(
            f"| {fam} | {ci(comp['tpt_minus_vanilla_at_B'], 'diff')} | "
            f"{ci(comp['tpt_at_B_minus_vanilla_at_end'], 'diff')} |"
        )
    lines += [
        "",
        "## Data-efficiency multiplier (vanilla tokens / TPT tokens to reach a target accuracy)",
        "",
        (
            "Targets lie above the family's chance interval: halfway from its top to the better arm's accuracy at B, "
            "and at that accuracy, provided that accuracy's interval clears the chance interval.  Read off the "
            "curves by interpolation (tpt.analyze.curves); interval over the bootstrap replicates.  A replicate in "
            "which an arm never reaches the target only bounds the multiplier, so it counts at the interval's wide "
            "end: vanilla never (≥ its budget / TPT's tokens) as that bound below and ∞ above; TPT never (≤) as 0 "
            "below and its bound above; the share of such replicates is given."
        ),
        "",
        "| family | target | vanilla tokens | TPT tokens | multiplier [95%] |",
        "|---|---:|---:|---:|---|",
    ]
    for fam, effs in results["data_efficiency"].items():
        if not effs:
            lines.append(f"| {fam} | — | | | no target: neither arm's interval at B clears chance |")
        for e in effs:
            vt = f"{e['vanilla_tokens']:,.0f}" if e["vanilla_tokens"] else "not reached"
            mt = f"{e['tpt_tokens']:,.0f}" if e["tpt_tokens"] else "not reached"
            lines.append(f"| {fam} | {e['target']:.3f} | {vt} | {mt} | {mult_cell(e)} |")
    if results.get("ablations_vs_tpt_at_B"):
        lines += [
            "",
            "## Ablations: each arm − TPT, both at B (paired; vanilla-pool at its point nearest B)",
            "",
            (
                "vanilla-pool: TPT's raw documents repeated (its later points are more epochs; see the curves "
                "above); tpt-noisy10/30: an expert whose steps are wrong with probability 0.1/0.3 (errors "
                "propagate); tpt-other: [d; another document's trajectory]; tpt-filler: [d; filler of the "
                "trajectory's length]."
            ),
            "",
            "| arm | " + " | ".join(fams) + " |",
            "|---|" + "---:|" * len(fams),
        ]
        for arm, row in results["ablations_vs_tpt_at_B"].items():
            lines.append(f"| {arm} | " + " | ".join(ci(row[f], "diff") for f in fams) + " |")
    lines += render_sft(results)
    lines += [
        "",
        "## Leakage scan",
        "",
        (
            "Every held-out question, trajectory and multi-step sub-result searched verbatim in every text any arm "
            "trained on (tpt.lab.leakage)."
        ),
        "",
        "| seed | strings | training texts | hits |",
        "|---|---:|---:|---:|",
    ]
    for seed, scan in results["leakage"].items():
        lines.append(f"| {seed} | {scan['patterns']:,} | {scan['texts']:,} | {scan['hit_count']} |")
    lines += [
        "",
        "## Trajectory length vs difficulty (mean thinking tokens)",
        "",
        (
            "Longer for harder problems *by construction* (one step per operation or hop); `tpt analyze stats` on "
            "the seed's augment run is the tool for real trajectories."
        ),
        "",
        "| family | difficulty: tokens |",
        "|---|---|",
    ]
    for fam, table in results["trajectory_lengths"].items():
        lines.append(f"| {fam} | " + ", ".join(f"{d}: {v:.1f}" for d, v in table.items()) + " |")
    lines += [
        "",
        "## Training throughput (one CPU thread per run)",
        "",
        "| run | tokens/s | train s | eval s |",
        "|---|---:|---:|---:|",
    ]
    for run, t in results["throughput"].items():
        lines.append(f"| {run} | {t['tokens_per_second']:,.0f} | {t['train_seconds']:.0f} | {t['eval_seconds']:.0f} |")
    lines += ["", "## Plots", ""] + [f"![{Path(p).stem}](plots/{Path(p).name})" for p in plots] + [""]
    return "\n".join(lines)


def _lr_text(prof: dict) -> str:
    """ "lr 0.004 for both arms" or "lr: vanilla 0.008, TPT 0.004 (each chosen on the dev seed)"."""
    per_arm = dict(prof.get("arm_lr") or ())
    if not per_arm or len({per_arm.get(a, prof["lr"]) for a in ("vanilla", "tpt")}) == 1:
        return f"lr {per_arm.get('tpt', prof['lr']):g} for both arms"
    vanilla, tpt = per_arm.get("vanilla", prof["lr"]), per_arm.get("tpt", prof["lr"])
    return f"lr: vanilla {vanilla:g}, TPT {tpt:g} (per arm, chosen on the dev seed)"


def _timing_text(timing: dict) -> str:
    """``prepare_train_eval_seconds 518.6, cpu_seconds 908.2, ...`` (the curve endpoints are reported above)."""
    return ", ".join(f"{k} {v}" for k, v in timing.items() if not isinstance(v, dict))
