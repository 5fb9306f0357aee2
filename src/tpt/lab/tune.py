"""`tpt lab tune`: the dev-seed sweeps behind the default profile's lrs (docs/lab.md, "lr sweep").

Pre-training: one dev run (`tpt lab run --dev --lr X`) per lr in ``--lrs``, each training both
arms at that lr, so vanilla gets exactly the sweep TPT gets.  Each arm's lr is the one with the
highest *mean accuracy over its learning curve* (overall, every checkpoint: vanilla's to 4 x B,
TPT's to B), i.e. the area under the curve the multiplier is read from; a tie goes to the smaller lr.
When a dev run was interrupted (`--evaluate-saved`), every lr is compared on the checkpoints all reached.

SFT (``--sft``): from each arm's checkpoint at B of the dev run at the arm's chosen lr, one SFT
run per (form, lr in ``--sft-lrs``) (tpt.lab.sft).  Rule: among the lrs whose reflect accuracy
after SFT is at least the one before minus ``KEEP`` (SFT must not destroy what the arm knew), the
one with the best chat accuracy after SFT; if none keeps it, the one with the best reflect after.

``--sft-only``: no pre-training sweep; the SFT sweep runs from one dev run at the profile's own
``arm_lr`` (the choices an earlier sweep made and config.PROFILES records), under OUT/profile.

Writes OUT/tune.md and OUT/tune.json; the choices go into config.PROFILES by hand (a deliberate,
reviewed change), and only the dev seed is ever looked at.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from tpt.config import field
from tpt.lab.config import LabConfig
from tpt.lab.sft import BASE_ARMS, FORMS, SftJob, run_jobs

KEEP = 0.05  # the largest drop of the pre-training-format accuracy an SFT lr may cause


@dataclass
class TuneConfig:
    """Dev-seed lr sweeps for both arms (pre-training, and with --sft the SFT lr per arm and form)."""

    out: Path = field(Path("runs/lab-tune"), help="one dev run per lr under OUT/lr-X; tune.md and tune.json")
    lrs: list[float] = field(
        default_factory=lambda: [0.002, 0.004, 0.008], help="pre-training lrs, each run for both arms"
    )
    sft: bool = field(False, help="also sweep the SFT lr per (arm, form) from each arm's chosen pre-training lr")
    sft_lrs: list[float] = field(
        default_factory=lambda: [0.0001, 0.0005, 0.002], help="SFT lrs tried for every (arm, form)"
    )
    sft_only: bool = field(
        False,
        help="skip the pre-training sweep: sweep the SFT lr from one dev run at the profile's arm lrs (OUT/profile)",
    )
    quick: bool = field(False, help="smoke-test sizes (numbers are noise)")
    evaluate_saved: bool = field(
        False,
        help="no training: report what the dev runs (and SFT runs) finished or saved; an interrupted run's curve "
        "is compared on the checkpoints every lr reached",
    )
    dev_saved: bool = field(
        False,
        help="the dev run was stopped once every arm had saved its checkpoint at B (all the SFT sweep needs): "
        "evaluate its saved checkpoints instead of training on; the SFT runs still train",
    )
    workers: int | None = field(None, help="training runs in parallel (default: the profile's)")


def dev_config(tune: TuneConfig, lr: float | None) -> LabConfig:
    """The dev run at ``lr`` for both arms, or (None) at the profile's own per-arm lrs."""
    out = tune.out / ("profile" if lr is None else f"lr-{lr:g}")
    return LabConfig(out=out, dev=True, lr=lr, quick=tune.quick, workers=tune.workers,
                     evaluate_saved=tune.evaluate_saved or tune.dev_saved)  # fmt: skip


def curve_mean(points: list[dict]) -> float:
    return sum(p["overall"]["acc"] for p in points) / len(points)


def pretrain_table(tune: TuneConfig) -> dict:
    """{arm: {"rows": [{lr, mean, at_B, final, by family at the end}], "chosen": lr}} from the dev runs."""
    runs = {lr: json.loads((tune.out / f"lr-{lr:g}" / "results.json").read_text()) for lr in tune.lrs}
    table = {}
    for arm in BASE_ARMS:
        # an interrupted dev run (--evaluate-saved) has a shorter curve: compare the points every lr reached
        common = set.intersection(*({p["tokens"] for p in res["curves"][arm]} for res in runs.values()))
        rows = []
        for lr, res in runs.items():
            pts, budget = [p for p in res["curves"][arm] if p["tokens"] in common], res["profile"]["tokens"]
            at_b = next(p for p in pts if p["tokens"] == budget)
            rows.append({"lr": lr, "curve_mean": curve_mean(pts), "at_B": at_b["overall"],
                         "final": pts[-1]["overall"], "final_tokens": pts[-1]["tokens"],
                         "final_by_family": {f: pts[-1][f] for f in res["families"]}})  # fmt: skip
        table[arm] = {"rows": rows, "chosen": choose_lr(rows), "points": sorted(common)}
    return table


def choose_lr(rows: list[dict]) -> float:
    """The highest mean accuracy over the curve; a tie goes to the smaller lr."""
    return max(rows, key=lambda r: (round(r["curve_mean"], 6), -r["lr"]))["lr"]


def family_mean(evaluation: dict) -> float:
    by = evaluation["by_family"]
    return sum(v["accuracy"] for v in by.values()) / len(by)


def sft_table(tune: TuneConfig, chosen: dict[str, float | None]) -> dict:
    """Run (or reuse) every dev SFT job; {"arm-form": {"rows": [...], "chosen": lr}}.  ``chosen``:
    arm -> its pre-training lr (None: the profile's, from the one dev run under OUT/profile)."""
    jobs, lab_of = [], {}
    for arm in BASE_ARMS:
        lab = dev_config(tune, chosen[arm])
        prof = lab.profile()
        root = Path(lab.out) / f"seed-{prof.dev_seed}"
        think = json.loads((root / "prepared.json").read_text())["jobs"][0]["think_budget"]
        for form in FORMS:
            for lr in tune.sft_lrs:
                jobs.append(SftJob(prof.dev_seed, root, arm, form, lr, prof.tokens, think))
                lab_of[id(jobs[-1])] = lab
    if tune.evaluate_saved:  # report the SFT runs that finished, train none
        jobs = [j for j in jobs if (j.out / "result.json").exists()]
    # every job of one arm shares that arm's dev run (profile and folder); run them arm by arm
    results = []
    for arm in BASE_ARMS:
        arm_jobs = [j for j in jobs if j.arm == arm]
        if not arm_jobs:
            continue
        lab = lab_of[id(arm_jobs[0])]
        results += run_jobs(arm_jobs, lab.profile(), lab)
    table: dict[str, dict] = {}
    for job, res in zip(jobs, results):
        curve = arm_curve(job.root / "train" / job.arm)
        before = next(p for p in curve if p["tokens"] == job.budget)["eval"]["reflect"]
        row = {"lr": job.lr, "reflect_before": family_mean(before), "reflect_after": family_mean(res["reflect"]),
               "chat_before": family_mean(res["chat_before"]), "chat_after": family_mean(res["chat"])}  # fmt: skip
        table.setdefault(f"{job.arm}-{job.form}", {"rows": []})["rows"].append(row)
    for entry in table.values():
        entry["chosen"], entry["kept"] = choose_sft_lr(entry["rows"])
    return table


def arm_curve(folder: Path) -> list[dict]:
    """An arm's evaluated curve: the finished run's, else the saved checkpoints' (--dev-saved)."""
    finished = folder / "curve.json"
    return json.loads((finished if finished.exists() else folder / "curve-saved.json").read_text())


def choose_sft_lr(rows: list[dict]) -> tuple[float, bool]:
    """(lr, whether it keeps the pre-training accuracy): the module docstring's rule."""
    kept = [r for r in rows if r["reflect_after"] >= r["reflect_before"] - KEEP]
    pool, key = (kept, "chat_after") if kept else (rows, "reflect_after")
    return max(pool, key=lambda r: r[key])["lr"], bool(kept)


def render(pre: dict, sft: dict | None) -> str:
    def cell(c: dict) -> str:
        return f"{c['acc']:.3f} [{c['ci'][0]:.3f}, {c['ci'][1]:.3f}]"

    lines = ["# tpt lab tune — DEV SEED only (choices for the default profile; not a result)", ""]
    if pre:
        lines += ["## Pre-training lr (both arms swept alike)", "",
                  "Chosen per arm: highest mean overall accuracy over the arm's learning curve (ties: the smaller lr), "
                  "over the checkpoints every lr's run reached.", "",
                  "| arm | lr | mean over the curve | overall at B | overall at its last point | chosen |",
                  "|---|---:|---:|---:|---:|---|"]  # fmt: skip
    for arm, entry in pre.items():
        for r in entry["rows"]:
            mark = "**yes**" if r["lr"] == entry["chosen"] else ""
            lines.append(f"| {arm} | {r['lr']:g} | {r['curve_mean']:.3f} | {cell(r['at_B'])} | "
                         f"{cell(r['final'])} @ {r['final_tokens']:,} | {mark} |")  # fmt: skip
    if sft:
        lines += [""] * bool(pre) + ["## SFT lr per (arm, form), from the arm's pre-training lr", "",
                  f"Rule: reflect after ≥ reflect before − {KEEP}, then the best chat accuracy after SFT.", "",
                  "| arm-form | lr | reflect before -> after | chat before -> after | chosen |",
                  "|---|---:|---|---|---|"]  # fmt: skip
        for key, entry in sft.items():
            for r in entry["rows"]:
                mark = "**yes**" if r["lr"] == entry["chosen"] else ""
                lines.append(f"| {key} | {r['lr']:g} | {r['reflect_before']:.3f} -> {r['reflect_after']:.3f} | "
                             f"{r['chat_before']:.3f} -> {r['chat_after']:.3f} | {mark} |")  # fmt: skip
    return "\n".join(lines) + "\n"


def run_tune(tune: TuneConfig) -> dict:
    from tpt.lab.experiment import log, run_lab

    if tune.sft_only:
        log("tune: one dev run at the profile's arm lrs, then the SFT sweep")
        run_lab(dev_config(tune, None))
        pre, sft = {}, sft_table(tune, dict.fromkeys(BASE_ARMS))
    else:
        for lr in tune.lrs:
            log(f"tune: dev run at lr {lr:g}")
            run_lab(dev_config(tune, lr))  # reuses a finished run
        pre = pretrain_table(tune)
        sft = sft_table(tune, {arm: e["chosen"] for arm, e in pre.items()}) if tune.sft else None
    out = {"pretrain": pre, "sft": sft}
    (tune.out / "tune.json").write_text(json.dumps(out, indent=1))
    (tune.out / "tune.md").write_text(render(pre, sft))
    log(f"tune: {tune.out / 'tune.md'}")
    return out
