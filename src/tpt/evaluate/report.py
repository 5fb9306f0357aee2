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


def compare(results: list[dict]) -> str:
    """A Markdown table (readable as-is in a terminal) of every task's headline score, in percent.

    With several models, a "Δ <model>" column gives each later model minus the first.
    """
    if not results:
        return "(no results)"
    names = [r["model"] for r in results]
    header = ["task", "metric", "n"] + names + [f"Δ {n} − {names[0]}" for n in names[1:]]
    rows = []
    task_names = list(dict.fromkeys(t for r in results for t in r["tasks"]))
    for task in task_names:
        cells = [r["tasks"].get(task) for r in results]
        first = next((c for c in cells if c), {})
        metric = first.get("metric", "").replace(",none", "").replace(",all_samples", "")
        row = [task, metric, str(first.get("n", ""))] + [_cell(c) for c in cells]
        rows.append(row + [_delta(c, cells[0]) for c in cells[1:]])
    averages = [r.get("averages", {}).get("paper_base_5") for r in results]
    if any(a and a.get("score") is not None for a in averages):
        row = ["**5-task average**", "paper-base", ""] + [_cell(a) for a in averages]
        rows.append(row + [_delta(a, averages[0]) for a in averages[1:]])
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    limit = results[0].get("limit")
    note = f"\n\nScores in percent (± standard error). --limit {limit}: a quick check, not a benchmark." if limit else \
        "\n\nScores in percent (± standard error)."
    return "\n".join(lines) + note
