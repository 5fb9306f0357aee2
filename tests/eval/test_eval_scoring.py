"""MATH (Minerva) and AIME/AMC scorers: full marks to the gold answers, zero to wrong ones, on the real files.

GSM8K and MMLU-Pro score through lm-eval's own filters and metrics: test_eval_tasks checks them.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tpt.evaluate import minerva, scoring
from tpt.evaluate.prompts import minerva_fewshot_samples


def read_jsonl(path: Path, n: int | None = None) -> list[dict]:
    rows = []
    with open(path) as fh:
        for line in fh:
            rows.append(json.loads(line))
            if n is not None and len(rows) == n:
                break
    return rows


def test_extractors_on_hand_made_cases():
    assert scoring.last_boxed(r"so $\boxed{\frac{1}{2}}$ and \boxed{x^{2}}") == "x^{2}"
    assert (
        scoring.extract_math_answer("Final Answer: The final answer is $\\frac{2}{3}$. I hope it is correct.")
        == "\\frac{2}{3}"
    )
    assert scoring.math_equivalent("0.5", "\\frac{1}{2}")
    assert not scoring.math_equivalent("0.25", "\\frac{1}{2}")
    assert not scoring.math_equivalent(None, "3")


def _minerva_doc(doc: dict) -> dict:
    """What lm-eval's minerva process_docs makes of a MATH row (tpt's copy: tpt.evaluate.minerva)."""
    answer = minerva.normalize_final_answer(minerva.remove_boxed(minerva.last_boxed_only_string(doc["solution"])))
    return {"problem": doc["problem"], "solution": doc["solution"], "answer": answer}


@pytest.mark.parametrize("folder,n", [("math500", 200), ("math", 100)])
def test_minerva_gold_scores_one_and_wrong_scores_zero(eval_data_dir, folder, n):
    docs = [_minerva_doc(d) for d in read_jsonl(eval_data_dir / folder / "test.jsonl", n)]
    right = "Work.\nFinal Answer: The final answer is ${}$. I hope it is correct."
    misses = [
        d["answer"]
        for d in docs
        if minerva.process_results(d, [right.format(d["answer"])]) != {"exact_match": 1, "math_verify": 1}
    ]
    # a handful of normalised references are not valid LaTeX any more (math-verify then finds nothing)
    assert len(misses) <= 0.02 * n, misses
    wrong = [
        d["answer"]
        for d in docs[:50]
        if minerva.process_results(d, [right.format("\\frac{7919}{104729}")]) != {"exact_match": 0, "math_verify": 0}
    ]
    assert not wrong
    assert minerva.process_results(docs[0], ["I do not know."]) == {"exact_match": 0, "math_verify": 0}


def test_minerva_exemplars_score_themselves():
    for shot in minerva_fewshot_samples():
        assert minerva.process_results(_minerva_doc(shot), [shot["solution"]]) == {"exact_match": 1, "math_verify": 1}


@pytest.mark.parametrize("folder", ["aime24", "amc23"])
def test_competition_pass_at_1(eval_data_dir, folder):
    docs = read_jsonl(eval_data_dir / folder / "test.jsonl")
    for doc in docs:
        right = f"... so the answer is $\\boxed{{{scoring.format_gold(doc['answer'])}}}$."
        assert scoring.pass_at_1_process_results(doc, [[right, right, right, right]]) == {"pass@1": 1.0}
        assert scoring.pass_at_1_process_results(doc, [["\\boxed{100000}", "no answer"]]) == {"pass@1": 0.0}
        assert scoring.pass_at_1_process_results(doc, [[right, "\\boxed{100000}", right, "x"]]) == {"pass@1": 0.5}
    # AIME keeps leading zeros ("025"); a model writing 25 is right.
    assert scoring.math_equivalent("25", "025")
