"""Check the benchmark files row by row before any model loads.

A benchmark scored on silently fewer items is a different benchmark, so a bad row stops the run
up front (seconds, not hours in) with the file, line and field named, instead of being dropped
or surfacing as a pyarrow error halfway through an evaluation.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Callable
from pathlib import Path


class BadDataFile(ValueError):
    pass


def _has_boxed(doc: dict) -> bool:
    return "\\boxed" in doc["solution"] or "\\fbox" in doc["solution"]


def _boolq_query_ok(doc: dict) -> bool:
    query = doc["query"]
    return isinstance(query, str) and query.startswith("Passage: ") and "\nQuestion: " in query and query.endswith("?")


# file name pattern (relative to --data-dir) -> (required fields, extra row checks: description, test)
Check = tuple[str, Callable[[dict], bool]]
JSONL_RULES: dict[str, tuple[tuple[str, ...], tuple[Check, ...]]] = {
    "gsm8k/": (("question", "answer"), (("answer ends in '#### N'", lambda d: "####" in d["answer"]),)),
    "math/": (("problem", "solution"), (("solution has a \\boxed{} answer", _has_boxed),)),
    "math500/": (("problem", "answer"), ()),
    "aime24/": (("problem", "answer"), ()),
    "amc23/": (("problem", "answer"), ()),
    "boolq/": (
        ("query", "gold"),
        (
            ("gold is 0 or 1", lambda d: d["gold"] in (0, 1)),
            ("query is 'Passage: ...\\nQuestion: ...?'", _boolq_query_ok),
        ),
    ),
    "mmlu_pro/": (
        ("question", "options", "answer", "category"),
        (
            ("options is a non-empty list", lambda d: isinstance(d["options"], list) and len(d["options"]) > 0),
            (
                "answer is a letter A-J naming an option",
                lambda d: d["answer"] in set("ABCDEFGHIJ"[: len(d["options"])]),
            ),
        ),
    ),
}
MMLU_HEADER = ["question", "choice0", "choice1", "choice2", "choice3", "answer"]


def check_file(path: Path, rel: str) -> int:
    """Raise BadDataFile naming file, line and field for the first bad row; return the row count."""
    if rel.endswith(".csv"):
        return _check_mmlu_csv(path)
    rule = next((r for prefix, r in JSONL_RULES.items() if rel.startswith(prefix)), None)
    if rule is None:
        return 0
    fields, checks = rule
    rows = 0
    with open(path, encoding="utf-8") as fh:
        for line_no, line in enumerate(fh, 1):
            if not line.strip():
                continue
            doc = _parse(path, line_no, line)
            for name in fields:
                if doc.get(name) in (None, ""):
                    raise BadDataFile(f"{path} line {line_no}: field {name!r} is missing or empty")
            for description, ok in checks:
                if not ok(doc):
                    raise BadDataFile(f"{path} line {line_no}: expected {description}")
            rows += 1
    if rows == 0:
        raise BadDataFile(f"{path}: no rows")
    return rows


def _parse(path: Path, line_no: int, line: str) -> dict:
    try:
        doc = json.loads(line)
    except json.JSONDecodeError as err:
        raise BadDataFile(f"{path} line {line_no}: not valid JSON ({err.msg} at column {err.colno})") from err
    if not isinstance(doc, dict):
        raise BadDataFile(f"{path} line {line_no}: expected a JSON object, got {type(doc).__name__}")
    return doc


def _check_mmlu_csv(path: Path) -> int:
    with open(path, encoding="utf-8", newline="") as fh:
        reader = csv.reader(fh)
        header = next(reader, None)
        if header != MMLU_HEADER:
            raise BadDataFile(f"{path} line 1: header {header} is not {MMLU_HEADER}")
        rows = 0
        for row in reader:
            line = reader.line_num
            if len(row) != len(MMLU_HEADER):
                raise BadDataFile(f"{path} line {line}: {len(row)} fields, expected {len(MMLU_HEADER)}")
            if row[-1] not in ("0", "1", "2", "3"):
                raise BadDataFile(f"{path} line {line}: field 'answer' is {row[-1]!r}, expected 0-3")
            rows += 1
    return rows
