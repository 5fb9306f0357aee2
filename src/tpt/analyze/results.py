"""Readers for training metrics (JSONL) and evaluation results (JSON), for learning curves.

The files tpt writes follow ``tpt.formats`` (metrics rows v1, eval result v1 with the checkpoint's
info): their fields are read by name, never guessed.  lm-evaluation-harness's own results files are
read too (``results: {task: {"acc,none": ...}}``), placed by a top-level ``step`` / ``tokens`` /
``unique_docs`` the user adds (the metrics rows' names).

Metrics JSONL (``tpt.formats`` metrics rows; fields read):
  tokens        REQUIRED  training tokens seen so far
  step          optional  optimizer step (used to place eval results that carry only a step)
  unique_docs   optional  distinct documents seen so far
  any other number        a measurement: loss, val_loss, score (a benchmark score logged by a trainer), ...
A line that is not JSON or lacks ``tokens`` is set aside as a Problem (file, line, field,
reason), counted and reported; it never stops the report.

Eval JSON: a tpt eval result (``scores: {task: number}``, placed by ``checkpoint.step`` /
``checkpoint.tokens_seen``), or an lm-eval results file (the metric is --metric if given, else the
first of acc_norm, acc, exact_match, score, then any number; lm-eval's ",none" filter suffix is
ignored).  A file with only a step is placed via the metrics' tokens.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tpt import formats as F

METRIC_PREFERENCE = ("acc_norm", "acc", "exact_match", "score")
PLACEMENT = (F.METRICS_TOKENS, F.METRICS_STEP, F.METRICS_DOCS)


@dataclass
class Problem:
    file: str
    line: int  # 0 for a whole-file problem
    field: str
    reason: str

    def __str__(self) -> str:
        where = f"{self.file}:{self.line}" if self.line else self.file
        return f"{where}: field {self.field!r}: {self.reason}"


@dataclass
class Point:
    """One measurement on a run's curves."""

    tokens: float | None
    step: int | None = None
    docs: float | None = None
    values: dict[str, float] = field(default_factory=dict)  # loss, val_loss, score, task scores


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return float(value) if math.isfinite(value) else None


def read_metrics(path: str | Path, problems: list[Problem]) -> list[Point]:
    """Points of a metrics JSONL file; unusable lines are appended to ``problems``."""
    points = []
    with open(path, encoding="utf-8") as f:
        for lineno, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError as e:
                problems.append(Problem(str(path), lineno, "-", f"not JSON ({e.msg})"))
                continue
            if not isinstance(row, dict):
                problems.append(Problem(str(path), lineno, "-", "not a JSON object"))
                continue
            tokens = row.get(F.METRICS_TOKENS)
            if _number(tokens) is None:
                why = "missing" if tokens is None else f"not a number ({tokens!r})"
                problems.append(Problem(str(path), lineno, F.METRICS_TOKENS, why))
                continue
            values = {k: float(v) for k, v in row.items() if k not in PLACEMENT and _number(v) is not None}
            points.append(_placed(row, values))
    return points


def pick_metric(task_result: Any, metric: str | None) -> float | None:
    """One number out of an lm-eval style task result ({"acc,none": 0.5, "acc_stderr,none": ...})."""
    if _number(task_result) is not None:
        return float(task_result)
    if not isinstance(task_result, dict):
        return None
    plain = {k.split(",")[0]: v for k, v in task_result.items() if _number(v) is not None and "stderr" not in k}
    for name in [metric] if metric else list(METRIC_PREFERENCE):
        if name in plain:
            return float(plain[name])
    return None if metric else (float(next(iter(plain.values()))) if plain else None)


def _placed(where: dict, values: dict[str, float]) -> Point:
    step = where.get(F.METRICS_STEP)
    step = int(step) if _number(step) is not None else None
    return Point(_number(where.get(F.METRICS_TOKENS)), step, _number(where.get(F.METRICS_DOCS)), values)


def read_eval(path: str | Path, problems: list[Problem], metric: str | None = None) -> Point | None:
    """One checkpoint's scores; None (with a Problem) if the file has no usable score."""
    try:
        obj = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as e:
        problems.append(Problem(str(path), 0, "-", f"unreadable ({e})"))
        return None
    if F.is_eval_result(obj):
        return _tpt_eval(path, obj, problems)
    if not isinstance(obj, dict) or not isinstance(obj.get("results"), dict):
        problems.append(
            Problem(
                str(path), 0, F.EVAL_SCORES, "missing (expected a tpt eval result, or lm-eval's 'results': {task: ...})"
            )
        )
        return None
    scores = {task: s for task, r in obj["results"].items() if (s := pick_metric(r, metric)) is not None}
    if not scores:
        problems.append(Problem(str(path), 0, "results", f"no task has a numeric {metric or 'score'}"))
        return None
    return _placed(obj, scores)


def _tpt_eval(path: str | Path, obj: dict, problems: list[Problem]) -> Point | None:
    try:
        F.EVAL_RESULT.check(obj, path)
    except F.FormatError as err:
        problems.append(Problem(str(path), 0, F.FORMAT_KEY, str(err)))
        return None
    scores = {task: float(v) for task, v in obj[F.EVAL_SCORES].items() if _number(v) is not None}
    if not scores:
        problems.append(Problem(str(path), 0, F.EVAL_SCORES, "no task has a numeric score"))
        return None
    info = obj.get(F.EVAL_CHECKPOINT)
    try:  # a model tpt train did not write has no checkpoint info: placed by step via the metrics, or not at all
        info = F.CheckpointInfo.from_dict(info, path) if isinstance(info, dict) and "error" not in info else None
    except F.FormatError as err:
        problems.append(Problem(str(path), 0, F.EVAL_CHECKPOINT, str(err)))
        info = None
    if info is None:
        return Point(None, None, None, scores)
    return Point(float(info.tokens_seen), info.step, None, scores)


def place_by_step(evals: list[tuple[str, Point]], metrics: list[Point], problems: list[Problem]) -> list[Point]:
    """Give eval points without tokens (or docs) those of the metrics row with the same step."""
    by_step = {p.step: p for p in metrics if p.step is not None}
    placed = []
    for path, point in evals:
        row = by_step.get(point.step)
        if point.tokens is None:
            if row is None:
                why = (
                    "missing, and no step"
                    if point.step is None
                    else f"missing, and step {point.step} is not in the metrics"
                )
                problems.append(Problem(path, 0, "tokens", why))
                continue
            point.tokens = row.tokens
        if point.docs is None and row is not None:
            point.docs = row.docs
        placed.append(point)
    return placed
