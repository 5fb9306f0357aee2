"""The side-by-side table and the paper's 5-task average."""

from __future__ import annotations

import pytest

from tpt.evaluate.catalog import TASKS
from tpt.evaluate.report import compare
from tpt.evaluate.runner import paper_base_average, reference_of


def result(name: str, scores: dict[str, float]) -> dict:
    tasks = {
        t: {"metric": TASKS[t].metric, "score": s, "stderr": 0.01, "n": 100, "reference": reference_of(TASKS[t])}
        for t, s in scores.items()
    }
    return {"model": name, "tasks": tasks, "averages": {"paper_base_5": paper_base_average(tasks)}, "limit": None}


def test_average_needs_all_five_tasks():
    full = {"gsm8k_cot": 0.5, "math": 0.2, "boolq": 0.7, "mmlu": 0.4, "mmlu_pro": 0.2}
    average = paper_base_average({t: {"score": s} for t, s in full.items()})
    assert average["score"] == pytest.approx(0.4)
    assert average["metrics"] == {
        "gsm8k_cot": "exact_match,flexible-extract",
        "math": "math_verify,none",
        "boolq": "acc,none",
        "mmlu": "acc,none",
        "mmlu_pro": "exact_match,custom-extract",
    }
    partial = paper_base_average({"gsm8k_cot": {"score": 0.5}, "gsm8k": {"score": 0.9}})
    assert partial["score"] is None and partial["missing"] == ["math", "boolq", "mmlu", "mmlu_pro"]


def test_table_has_one_column_per_model_and_differences_and_names_each_metric():
    vanilla = result("vanilla", {"gsm8k_cot": 0.30, "math": 0.10, "boolq": 0.60, "mmlu": 0.40, "mmlu_pro": 0.15})
    tpt = result("tpt", {"gsm8k_cot": 0.45, "math": 0.20, "boolq": 0.62, "mmlu": 0.43, "mmlu_pro": 0.20})
    lines = compare([vanilla, tpt]).splitlines()
    assert lines[0] == "| task | reproduces | metric | n | vanilla | tpt | Δ tpt − vanilla |"
    assert lines[2] == (
        "| gsm8k_cot | lm-eval gsm8k_cot v3 | exact_match (flexible-extract) | 100 | 30.0 ± 1.0 | 45.0 ± 1.0 | +15.0 |"
    )
    assert lines[3].startswith("| math | lm-eval minerva_math v1 | math_verify | 100 |")
    assert lines[6].startswith("| mmlu_pro | lm-eval mmlu_pro v2 | exact_match (custom-extract) | 100 |")
    assert lines[7] == "| **5-task average** | paper-base | mean of the headlines above |  | 31.0 | 38.0 | +7.0 |"


def test_table_marks_tasks_a_model_did_not_run_and_tpt_protocols():
    table = compare([result("a", {"gsm8k": 0.5}), result("b", {"aime24": 0.25})])
    assert "| gsm8k | lm-eval gsm8k v3 | exact_match (flexible-extract) | 100 | 50.0 ± 1.0 | – | – |" in table
    assert "| aime24 | tpt protocol | pass@1 | 100 | – | 25.0 ± 1.0 | – |" in table
    assert "5-task average" not in table
