"""The learned-generator report: DIR/generators.json and DIR/generators.md (`tpt lab run --generators`).

Per family, with 95% intervals from the lab's paired bootstrap over seeds x held-out problems
(tpt.lab.stats, the same replicates as report.md):
  * the student after TPT at budget B, thinking by the programmatic expert (arm ``tpt``) vs by
    each learned generator (arms ``gen-SIZE-FORM``), and their paired difference;
  * each generator on the held-out problems vs its student's accuracy (can the student surpass it?):
    before SFT, asked as the students are (``reflect``: the like-for-like comparison); after SFT, in
    the prompt form it was trained on (the held-out document), whether its thinking gets every step right;
  * trajectory quality on TPT's corpus: the share of trajectories whose final answer is right,
    the share of the expert's steps reproduced in order from the start
    (tpt.lab.evaluate.steps_reproduced), and thinking length by difficulty as `tpt analyze
    stats --by family,difficulty` measured it on each augment run (not by construction).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from tpt.lab import corpus, stats
from tpt.lab.gen_data import eval_dir, generator_arms, raw_dir
from tpt.lab.report import Evidence, accuracy_table, difference
from tpt.lab.report_md import acc_cell, ci


def heldout_task_correct(lab, seed: int, arm: str, families: dict) -> list[bool]:
    """Per held-out problem (file order): did the generator, given the problem's document in its trained
    prompt form, write thinking with every one of the expert's steps right and the right answer?  (The
    document states the answer, not the steps: the intermediate results are the generator's own.)"""
    from tpt.io.runs import iter_records
    from tpt.lab.evaluate import steps_reproduced

    heldout = corpus.read_heldout(Path(lab.out) / f"seed-{seed}" / "heldout.jsonl")
    by_id = {rec.id: rec.thinking for rec in iter_records(eval_dir(lab, seed) / arm)}
    out = []
    for i, h in enumerate(heldout):
        family, thinking = families[h.family], by_id.get(f"h-{i:05d}", "")
        out.append(steps_reproduced(family, h.problem, thinking) == 1.0 and family.check(h.problem, thinking))
    return out


def pretrained_correct(seed_dir: Path, size: str) -> str:
    """The pre-trained generator's 0/1 string over the held-out problems (lab evaluator, reflect)."""
    path = seed_dir / "generators" / "ckpt" / f"{size}-pretrain-heldout.json"
    return json.loads(path.read_text())["reflect"]


def trajectory_quality(run: Path, families: dict) -> dict[str, dict]:
    """Per family: records, share with the right final answer, mean share of expert steps reproduced."""
    from tpt.io.runs import iter_records
    from tpt.lab.evaluate import steps_reproduced

    acc: dict[str, list[tuple[bool, float, bool]]] = {}
    for rec in iter_records(run):
        fam = families[rec.meta["family"]]
        problem, text = rec.meta["problem"], rec.thinking
        acc.setdefault(fam.name, []).append(
            (fam.check(problem, text), steps_reproduced(fam, problem, text), not text.strip())
        )
    return {
        f: {
            "records": len(v),
            "answer_right": float(np.mean([a for a, _, _ in v])),
            "steps_reproduced": float(np.mean([s for _, s, _ in v])),
            "empty": float(np.mean([e for _, _, e in v])),
        }
        for f, v in sorted(acc.items())
    }


def length_by_difficulty(stats_dir: Path) -> dict[str, Any]:
    """Mean thinking tokens per difficulty level and their Spearman correlation, from `tpt analyze stats`."""
    result = json.loads((stats_dir / "stats.json").read_text())["by"]["difficulty"]
    means = {label: g["thinking_tokens"]["mean"] for label, g in result["groups"].items()}
    return {
        "mean_thinking_tokens": dict(sorted(means.items(), key=lambda kv: float(kv[0]))),
        "spearman": result["spearman_thinking_tokens"],
    }


def write_generator_report(out: Path, lab, prof, seeds: list[int], curves: dict) -> dict[str, Any]:
    from tpt.io.runs import read_manifest
    from tpt.lab.experiment import families_for

    families = list(prof.families)
    arms = [a for a in generator_arms(lab) if all((s, a) in curves for s in seeds)]
    ev = Evidence(out, seeds, families, curves)
    chance = {f: stats.estimate(ev.majority(f), ev.resamplers[f]) for f in families}
    b = {
        arm: max(i for i, p in enumerate(curves[(seeds[0], arm)]) if p["tokens"] <= prof.tokens)
        for arm in ("vanilla", "tpt")
    }
    students = {
        "vanilla": accuracy_table(ev, "vanilla", b["vanilla"], chance),
        "tpt": accuracy_table(ev, "tpt", b["tpt"], chance),
    }
    students |= {arm: accuracy_table(ev, arm, -1, chance) for arm in arms}
    vs_expert = {arm: {f: difference(ev, (arm, -1), ("tpt", b["tpt"]), f) for f in families} for arm in arms}
    fams_by_seed = {s: families_for(prof, s) for s in seeds}
    task = {arm: {s: heldout_task_correct(lab, s, arm, fams_by_seed[s]) for s in seeds} for arm in arms}
    generator, student_minus_gen, pretrained, student_minus_pre = {}, {}, {}, {}
    for arm in arms:
        generator[arm], student_minus_gen[arm], pretrained[arm], student_minus_pre[arm] = {}, {}, {}, {}
        size = arm.split("-")[1]
        before_sft = [pretrained_correct(out / f"seed-{s}", size) for s in seeds]
        for f in families:
            g = np.array([float(task[arm][seeds[s]][p]) for s, p in ev.index[f]])
            pre = np.array([float(before_sft[s][p]) for s, p in ev.index[f]])
            r, st = ev.resamplers[f], ev.correct(arm, -1, f)
            pretrained[arm][f], generator[arm][f] = stats.estimate(pre, r), stats.estimate(g, r)
            student_minus_gen[arm][f] = stats.paired_difference(st, g, r)
            student_minus_pre[arm][f] = stats.paired_difference(st, pre, r)
    quality = {arm: {str(s): trajectory_quality(raw_dir(lab, s) / arm, fams_by_seed[s]) for s in seeds} for arm in arms}
    quality["tpt"] = {str(s): trajectory_quality(out / f"seed-{s}" / "augment", fams_by_seed[s]) for s in seeds}
    lengths = {
        arm: length_by_difficulty(
            out / f"seed-{seeds[0]}" / "analyze-gen" / ("augment" if arm == "tpt" else f"augment-{arm}")
        )
        for arm in ["tpt", *arms]
    }
    set_aside = {
        arm: {str(s): read_manifest(out / f"seed-{s}" / f"augment-{arm}")["leakage_set_aside"] for s in seeds}
        for arm in arms
    }
    prepared = {s: json.loads((out / f"seed-{s}" / "generators.json").read_text()) for s in seeds}
    results = {
        "seeds": seeds,
        "families": families,
        "budget": prof.tokens,
        "chance": chance,
        "students": students,
        "student_minus_expert_tpt": vs_expert,
        "generator_on_heldout": generator,
        "generator_before_sft_on_heldout": pretrained,
        "student_minus_generator": student_minus_gen,
        "student_minus_generator_before_sft": student_minus_pre,
        "trajectory_quality": quality,
        "leakage_set_aside": set_aside,
        "length_by_difficulty": lengths,
        "disjointness": {str(s): p["disjointness"] for s, p in prepared.items()},
        "timing": {str(s): p["timing"] for s, p in prepared.items()},
        "data": {str(s): p["data"] for s, p in prepared.items()},
    }
    (out / "generators.json").write_text(json.dumps(results, indent=1, default=str) + "\n")
    (out / "generators.md").write_text(render(results))
    return results


def render(r: dict) -> str:
    fams, arms = r["families"], list(r["student_minus_expert_tpt"])
    keys = ["overall", *fams]
    lines = [
        "# Learned generators (tpt lab run --generators)",
        "",
        (
            f"Test seeds {', '.join(map(str, r['seeds']))}; every student arm trains on B = {r['budget']:,} tokens "
            "of TPT's corpus, thinking by the programmatic expert (`tpt`) or by a generator tpt trained "
            "(`gen-SIZE-FORM`: forward = the default prompt, back = back-thinking).  Accuracy in the lab's fixed "
            "`reflect` mode [95% interval, bootstrap over seeds x problems]; *chance* = inside the majority "
            "baseline's interval."
        ),
        "",
        "## Students at B",
        "",
        "| arm | " + " | ".join(keys) + " |",
        "|---|" + "---:|" * len(keys),
    ]
    for arm, row in r["students"].items():
        lines.append(f"| {arm} | " + " | ".join(acc_cell(row[k]) for k in keys) + " |")
    lines += [
        "",
        "## Learned generator − expert (student accuracy, paired)",
        "",
        "| arm | " + " | ".join(fams) + " |",
        "|---|" + "---:|" * len(fams),
    ]
    for arm in arms:
        lines.append(f"| {arm} | " + " | ".join(ci(r["student_minus_expert_tpt"][arm][f], "diff") for f in fams) + " |")
    lines += [
        "",
        "## The generator on the task itself vs its student",
        "",
        (
            "Before SFT: the pre-trained generator asked as the students are (`reflect`, the question alone): the "
            "like-for-like comparison.  After SFT: the generator given each held-out problem's document (question "
            "and answer, as TPT's corpus states problems) in the prompt form it was trained on, greedy; the share "
            "whose thinking gets every expert step and the answer right (the answer is in the document, the "
            "intermediate results are not).  Same held-out problems as the students."
        ),
        "",
        "| arm | family | generator before SFT | student | student − generator before SFT "
        "| generator after SFT, all steps right | student − generator after SFT |",
        "|---|---|---:|---:|---:|---:|---:|",
    ]
    for arm in arms:
        for f in fams:
            lines.append(
                f"| {arm} | {f} | {ci(r['generator_before_sft_on_heldout'][arm][f])} | "
                f"{acc_cell(r['students'][arm][f])} | {ci(r['student_minus_generator_before_sft'][arm][f], 'diff')} | "
                f"{ci(r['generator_on_heldout'][arm][f])} | {ci(r['student_minus_generator'][arm][f], 'diff')} |"
            )
    lines += [
        "",
        "## Trajectory quality on TPT's corpus",
        "",
        (
            "Right final answer and share of the expert's steps reproduced in order from the start, per seed; "
            "thinking tokens by difficulty from `tpt analyze stats --by family,difficulty` (first seed)."
        ),
        "",
        "| arm | family | seed: answer right / steps reproduced / empty | thinking tokens by difficulty | Spearman |",
        "|---|---|---|---|---:|",
    ]
    for arm, per_seed in r["trajectory_quality"].items():
        length = r["length_by_difficulty"][arm]
        by_d = ", ".join(f"{d}: {v:.1f}" for d, v in length["mean_thinking_tokens"].items())
        for f in fams:
            cells = "; ".join(
                f"{s}: {q[f]['answer_right']:.3f} / {q[f]['steps_reproduced']:.3f} / {q[f]['empty']:.3f}"
                for s, q in per_seed.items()
                if f in q
            )
            lines.append(f"| {arm} | {f} | {cells} | {by_d} | {rho(length['spearman'])} |")
    lines += [
        "",
        "## Generator records set aside before TPT training (they state a held-out problem)",
        "",
        (
            "The lab's leakage scanner over each generator's run on TPT's corpus: a record whose document or "
            "thinking contains a held-out question, trajectory or multi-step sub-result is not trained on "
            "(`seed-N/augment-ARM/set_aside.jsonl`: id, reason, matched held-out id).  Trajectory quality above "
            "counts every record the generator wrote."
        ),
        "",
        "| arm | " + " | ".join(f"seed {s}" for s in r["seeds"]) + " | total |",
        "|---|" + "---:|" * (len(r["seeds"]) + 1),
    ]
    for arm, per_seed in r["leakage_set_aside"].items():
        cells = [f"{c['set_aside']} / {c['records']:,}" for c in per_seed.values()]
        total = sum(c["set_aside"] for c in per_seed.values()), sum(c["records"] for c in per_seed.values())
        lines.append(f"| {arm} | " + " | ".join(cells) + f" | {total[0]} / {total[1]:,} |")
    lines += ["", "## Disjointness and timing", ""]
    for s, d in r["disjointness"].items():
        lines.append(f"* seed {s}: {d['generator_problems']:,} generator problems; sharing a held-out identity: "
                     f"{d['sharing_heldout_identity']}; sharing a TPT corpus question: {d['sharing_tpt_question']}; "
                     f"seconds: {r['timing'][s]}")  # fmt: skip
    return "\n".join(lines) + "\n"


def rho(spearman: dict) -> str:
    """The rank correlation, or why there is none (e.g. every trajectory has the same length)."""
    value = spearman.get("rho")
    return f"{value:.2f}" if isinstance(value, (int, float)) else "n/a"
