"""Learning curves of several training runs and the data-efficiency multiplier between them.

A run is a name plus sources: metrics JSONL files (loss, val_loss, maybe score, against tokens)
and eval JSON files (benchmark scores per checkpoint).  Its *score curve* is one number per
checkpoint: ``--task`` if given, else the mean over the tasks every checkpoint of the run has.
The multiplier itself is curves.data_efficiency (shared with the lab's report).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path

from tpt.analyze.curves import Efficiency, data_efficiency
from tpt.analyze.results import Point, Problem, place_by_step, read_eval, read_metrics

EVAL_KEYS = ('"scores"', '"results"')


@dataclass
class RunCurves:
    name: str
    metrics: list[Point] = field(default_factory=list)  # one per logged training step
    evals: list[Point] = field(default_factory=list)  # one per evaluated checkpoint
    sources: list[str] = field(default_factory=list)

    def series(self, key: str, x: str = "tokens") -> list[tuple[float, float]]:
        """(x, value) pairs of a metrics field (loss, val_loss, score), x = tokens | docs."""
        return sorted(
            (getattr(p, x), p.values[key]) for p in self.metrics if key in p.values and getattr(p, x) is not None
        )

    def score_curve(self, task: str | None, score_field: str = "score", x: str = "tokens") -> list[tuple[float, float]]:
        if not self.evals:
            return self.series(score_field, x)
        tasks = [task] if task else sorted(set.intersection(*(set(p.values) for p in self.evals)))
        points = []
        for p in self.evals:
            if getattr(p, x) is None or not tasks or any(t not in p.values for t in tasks):
                continue
            points.append((getattr(p, x), sum(p.values[t] for t in tasks) / len(tasks)))
        return sorted(points)


def source_files(path: Path) -> tuple[list[Path], list[Path]]:
    """(metrics files, eval files) named by one --run path: a .jsonl, a .json, or a folder of them."""
    if path.is_file():
        return ([path], []) if path.suffix == ".jsonl" else ([], [path])
    if not path.is_dir():
        raise FileNotFoundError(f"{path}: no such file or folder")
    metrics = sorted(path.glob("*.jsonl"))
    # a training folder also holds config.json & co: only JSON files with scores are eval results
    evals = [p for p in sorted([*path.glob("*.json"), *path.glob("eval/*.json")]) if _looks_like_eval(p)]
    return metrics, evals


def _looks_like_eval(path: Path) -> bool:
    try:
        head = path.read_text(encoding="utf-8", errors="replace")[:1_000_000]
    except OSError:
        return False
    return any(key in head for key in EVAL_KEYS)


@dataclass(frozen=True)
class RunSource:
    """``--run NAME=PATH``: one source (metrics JSONL, eval JSON or a folder of them) of a named run."""

    name: str
    path: Path


def parse_run_source(spec: str | dict | RunSource) -> RunSource:
    if isinstance(spec, RunSource):
        return spec
    if isinstance(spec, dict):
        return RunSource(str(spec["name"]), Path(spec["path"]))
    name, eq, path = str(spec).partition("=")
    if not eq or not name or not path:
        raise ValueError(f"{spec!r}: expected NAME=PATH")
    return RunSource(name, Path(path))


parse_run_source.typed_as = RunSource  # type: ignore[attr-defined]  # tpt.config: a RunSource passes as it is


def load_runs(sources: list[RunSource], metric: str | None, problems: list[Problem]) -> list[RunCurves]:
    """Runs from their sources (a name may repeat to add sources), in first-seen order."""
    runs: dict[str, RunCurves] = {}
    pending: dict[str, list[tuple[str, Point]]] = {}
    for source in sources:
        name = source.name
        run = runs.setdefault(name, RunCurves(name))
        metrics, evals = source_files(source.path)
        if not metrics and not evals:
            raise FileNotFoundError(
                f"{source.path}: no metrics (*.jsonl) or eval results (*.json with scores) for run {name!r}"
            )
        for m in metrics:
            run.metrics += read_metrics(m, problems)
            run.sources.append(str(m))
        for e in evals:
            point = read_eval(e, problems, metric)
            run.sources.append(str(e))
            if point is not None:
                pending.setdefault(name, []).append((str(e), point))
    for name, run in runs.items():
        run.metrics.sort(key=lambda p: p.tokens)
        run.evals = sorted(place_by_step(pending.get(name, []), run.metrics, problems), key=lambda p: p.tokens)
    return list(runs.values())


def default_targets(curve: list[tuple[float, float]], fractions: list[float]) -> list[float]:
    """Scores at ``fractions`` of the way from the curve's first score to its best."""
    if not curve:
        return []
    first, best = curve[0][1], max(y for _, y in curve)
    return [first + f * (best - first) for f in fractions]


@dataclass
class Comparison:
    method: str
    baseline: str
    x: str
    efficiencies: list[Efficiency]
    note: str = ""  # why there is no number, when there is none

    def to_dict(self) -> dict:
        return {
            "method": self.method,
            "baseline": self.baseline,
            "x": self.x,
            "note": self.note,
            "targets": [e.to_dict() for e in self.efficiencies],
        }


def compare(
    runs: list[RunCurves],
    baseline: str,
    task: str | None,
    targets: list[float] | None,
    fractions: list[float],
    x: str = "tokens",
    score_field: str = "score",
) -> list[Comparison]:
    """The multiplier of every run against ``baseline`` at explicit targets or default fractions."""
    by_name = {r.name: r for r in runs}
    if baseline not in by_name:
        raise ValueError(f"--baseline {baseline!r}: no such run (have: {', '.join(by_name)})")
    base_curve = by_name[baseline].score_curve(task, score_field, x)
    out = []
    for run in runs:
        if run.name == baseline:
            continue
        curve = run.score_curve(task, score_field, x)
        levels = targets if targets else default_targets(curve, fractions)
        empty = [name for name, c in ((run.name, curve), (baseline, base_curve)) if not c]
        note = (
            (
                f"no score curve against {x} for {', '.join(empty)} (needs eval results, or a {score_field!r} field in "
                f"the metrics{', and unique_docs' if x == 'docs' else ''})"
            )
            if empty
            else ""
        )
        out.append(Comparison(run.name, baseline, x, data_efficiency(base_curve, curve, levels), note))
    return out


def format_multiplier(e: Efficiency) -> str:
    if e.multiplier is not None:
        return f"{e.multiplier:.2f}x"
    if e.method_tokens is None:
        return "method never reaches it"
    if e.method_tokens == 0:
        return "undefined (the method starts at it)"
    if e.lower_bound is not None and math.isfinite(e.lower_bound):
        return f"not reached (> {e.lower_bound:.2f}x)"
    return "not reached"
