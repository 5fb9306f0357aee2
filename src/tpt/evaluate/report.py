"""The side-by-side table: one column per model, differences against the first model."""

from __future__ import annotations


def _cell(task: dict | None) -> str:
    if not task or task.get("score") is None:
        return "–"
    text = f"{100 * task['score']:.1f}"
    return text + (f" ± {100 * task['stderr']:.1f}" if task.get("stderr") is not None else "")


def _delta(task: dict | None, reference: dict | None) -> str:
    if not task or not reference or task.get("score") is None or reference.get("score") is None:
        return "–"
    return f"{100 * (task['score'] - reference['score']):+.1f}"


def metric_label(key: str) -> str:
    """lm-eval's "exact_match,flexible-extract" -> "exact_match (flexible-extract)"; "acc,none" -> "acc"."""
    metric, _, filt = key.partition(",")
    return metric if filt in ("", "none", "all_samples") else f"{metric} ({filt})"


def reference_label(task: dict) -> str:
    ref = task.get("reference") or {}
    if ref.get("lm_eval_task"):
        return f"lm-eval {ref['lm_eval_task']} v{ref['version']:g}"
    return "tpt protocol" if ref else ""


def compare(results: list[dict]) -> str:
    """A Markdown table (readable as-is in a terminal) of every task's headline score, in percent.

    With several models, a "Δ <model>" column gives each later model minus the first.
    """
    if not results:
        return "(no results)"
    names = [r["model"] for r in results]
    header = ["task", "reproduces", "metric", "n"] + names + [f"Δ {n} − {names[0]}" for n in names[1:]]
    rows = []
    task_names = list(dict.fromkeys(t for r in results for t in r["tasks"]))
    for task in task_names:
        cells = [r["tasks"].get(task) for r in results]
        first = next((c for c in cells if c), {})
        row = [task, reference_label(first), metric_label(first.get("metric", "")), str(first.get("n", ""))]
        row += [_cell(c) for c in cells]
        rows.append(row + [_delta(c, cells[0]) for c in cells[1:]])
    averages = [r.get("averages", {}).get("paper_base_5") for r in results]
    if any(a and a.get("score") is not None for a in averages):
        row = ["**5-task average**", "paper-base", "mean of the headlines above", ""] + [_cell(a) for a in averages]
        rows.append(row + [_delta(a, averages[0]) for a in averages[1:]])
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    limit = results[0].get("limit")
    note = (
        f"\n\nScores in percent (± standard error). --limit {limit}: a quick check, not a benchmark."
        if limit
        else "\n\nScores in percent (± standard error)."
    )
    return "\n".join(lines) + note
