"""Tolerant readers for training metrics (JSONL) and evaluation results (JSON).

Neither format belongs to this module, so both readers accept what the trainer and `tpt eval`
are likely to write and say exactly what they could not use.

Metrics JSONL (one object per line; fields read):
  tokens        REQUIRED  training tokens seen so far (aliases: train_tokens, tokens_seen)
  step          optional  optimizer step (used to place eval results that carry only a step)
  loss          optional  training loss
  val_loss      optional  held-out loss
  unique_docs   optional  distinct documents seen so far (aliases: docs, documents, unique_documents)
  score         optional  a benchmark score logged by the trainer itself
A line that is not JSON or lacks ``tokens`` is set aside as a Problem (file, line, field,
reason), counted and reported; it never stops the report.

Eval JSON (one file per evaluated checkpoint, e.g. OUT/<model>.json; fields read):
  scores: {task: number}  or  results: {task: number | {metric: number}}  (lm-eval style; the
      metric is --metric if given, else the first of acc_norm, acc, exact_match, score, then
      any number; lm-eval's ",none" filter suffix is ignored)
  tokens / step / unique_docs at the top level or under "checkpoint" or "training": where the
      checkpoint sits on the curve; a file with only a step is placed via the metrics' tokens.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

TOKENS_KEYS = ("tokens", "train_tokens", "tokens_seen")
DOCS_KEYS = ("unique_docs", "docs", "documents", "unique_documents")
METRIC_PREFERENCE = ("acc_norm", "acc", "exact_match", "score")


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


def _first(obj: dict, keys: tuple[str, ...]) -> tuple[str | None, Any]:
    for key in keys:
        if key in obj and obj[key] is not None:
            return key, obj[key]
    return None, None


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
            key, tokens = _first(row, TOKENS_KEYS)
            if _number(tokens) is None:
                why = "missing" if key is None else f"not a number ({tokens!r})"
                problems.append(Problem(str(path), lineno, "tokens", why))
                continue
            _, docs = _first(row, DOCS_KEYS)
            step = row.get("step")
            values = {k: float(v) for k, v in row.items()
                      if k not in TOKENS_KEYS + DOCS_KEYS + ("step",) and _number(v) is not None}
            points.append(Point(float(tokens), int(step) if _number(step) is not None else None, _number(docs), values))
    return points


def pick_metric(task_result: Any, metric: str | None) -> float | None:
    """One number out of an lm-eval style task result ({"acc,none": 0.5, "acc_stderr,none": ...})."""
    if _number(task_result) is not None:
        return float(task_result)
    if not isinstance(task_result, dict):
        return None
    plain = {k.split(",")[0]: v for k, v in task_result.items() if _number(v) is not None and "stderr" not in k}
    for name in ([metric] if metric else list(METRIC_PREFERENCE)):
        if name in plain:
            return float(plain[name])
    return None if metric else (float(next(iter(plain.values()))) if plain else None)


def read_eval(path: str | Path, problems: list[Problem], metric: str | None = None) -> Point | None:
    """One checkpoint's scores; None (with a Problem) if the file has no usable score."""
    try:
        obj = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as e:
        problems.append(Problem(str(path), 0, "-", f"unreadable ({e})"))
        return None
    if not isinstance(obj, dict):
        problems.append(Problem(str(path), 0, "-", "not a JSON object"))
        return None
    table = obj.get("scores") if isinstance(obj.get("scores"), dict) else obj.get("results")
    if not isinstance(table, dict):
        problems.append(Problem(str(path), 0, "scores", "missing (expected 'scores' or 'results': {task: ...})"))
        return None
    scores = {task: s for task, r in table.items() if (s := pick_metric(r, metric)) is not None}
    if not scores:
        problems.append(Problem(str(path), 0, "results", f"no task has a numeric {metric or 'score'}"))
        return None
    where = dict(obj)
    for section in ("training", "checkpoint"):  # nested placement info, when it is an object
        if isinstance(obj.get(section), dict):
            where.update(obj[section])
    _, tokens = _first(where, TOKENS_KEYS)
    _, docs = _first(where, DOCS_KEYS)
    step = where.get("step")
    return Point(_number(tokens), int(step) if _number(step) is not None else None, _number(docs), scores)


def place_by_step(evals: list[tuple[str, Point]], metrics: list[Point], problems: list[Problem]) -> list[Point]:
    """Give eval points without tokens (or docs) those of the metrics row with the same step."""
    by_step = {p.step: p for p in metrics if p.step is not None}
    placed = []
    for path, point in evals:
        row = by_step.get(point.step)
        if point.tokens is None:
            if row is None:
                why = "missing, and no step" if point.step is None else f"missing, and step {point.step} is not in the metrics"
                problems.append(Problem(path, 0, "tokens", why))
                continue
            point.tokens = row.tokens
        if point.docs is None and row is not None:
            point.docs = row.docs
        placed.append(point)
    return placed
