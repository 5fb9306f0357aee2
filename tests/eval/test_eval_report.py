"""The side-by-side table and the paper's 5-task average."""

from __future__ import annotations

import pytest

from tpt.evaluate.report import compare
from tpt.evaluate.runner import paper_base_average


def result(name: str, scores: dict[str, float]) -> dict:
    tasks = {t: {"metric": "acc,none", "score": s, "stderr": 0.01, "n": 100} for t, s in scores.items()}
    return {"model": name, "tasks": tasks, "averages": {"paper_base_5": paper_base_average(tasks)}, "limit": None}


def test_average_needs_all_five_tasks():
    full = {"gsm8k": 0.5, "math": 0.2, "boolq": 0.7, "mmlu": 0.4, "mmlu_pro": 0.2}
    assert paper_base_average({t: {"score": s} for t, s in full.items()})["score"] == pytest.approx(0.4)
    partial = paper_base_average({"gsm8k": {"score": 0.5}})
    assert partial["score"] is None and partial["missing"] == ["math", "boolq", "mmlu", "mmlu_pro"]


def test_table_has_one_column_per_model_and_differences():
    vanilla = result("vanilla", {"gsm8k": 0.30, "math": 0.10, "boolq": 0.60, "mmlu": 0.40, "mmlu_pro": 0.15})
    tpt = result("tpt", {"gsm8k": 0.45, "math": 0.20, "boolq": 0.62, "mmlu": 0.43, "mmlu_pro": 0.20})
    lines = compare([vanilla, tpt]).splitlines()
    assert lines[0] == "| task | metric | n | vanilla | tpt | Δ tpt − vanilla |"
    assert lines[2] == "| gsm8k | acc | 100 | 30.0 ± 1.0 | 45.0 ± 1.0 | +15.0 |"
    assert lines[7] == "| **5-task average** | paper-base |  | 31.0 | 38.0 | +7.0 |"


def test_table_marks_tasks_a_model_did_not_run():
    table = compare([result("a", {"gsm8k": 0.5}), result("b", {"math": 0.25})])
    assert "| gsm8k | acc | 100 | 50.0 ± 1.0 | – | – |" in table
    assert "| math | acc | 100 | – | 25.0 ± 1.0 | – |" in table
    assert "5-task average" not in table
