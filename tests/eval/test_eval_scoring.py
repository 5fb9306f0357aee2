"""Every scorer gives full marks to the gold answers and zero to wrong ones, on the real benchmark files."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tpt.evaluate import scoring
from tpt.evaluate.prompts import gsm8k_doc_to_target, minerva_fewshot_samples


def read_jsonl(path: Path, n: int | None = None) -> list[dict]:
    rows = []
    with open(path) as fh:
        for line in fh:
            rows.append(json.loads(line))
            if n is not None and len(rows) == n:
                break
    return rows


def test_extractors_on_hand_made_cases():
    assert scoring.extract_gsm8k_strict("so 3 + 4 = 7.\n#### 1,234") == "1234"
    assert scoring.extract_gsm8k_strict("The answer is 7") is None
    assert scoring.extract_gsm8k_flexible("He pays $1,200.00 in total, then 5 more: $1,205.") == "1205"
    assert scoring.extract_gsm8k_flexible("no numbers here") is None
    assert scoring.last_boxed(r"so $\boxed{\frac{1}{2}}$ and \boxed{x^{2}}") == "x^{2}"
    assert scoring.extract_math_answer("Final Answer: The final answer is $\\frac{2}{3}$. I hope it is correct.") == "\\frac{2}{3}"
    assert scoring.extract_choice_letter(" The answer is (C).") == "C"
    assert scoring.extract_choice_letter("the answer is Blue") is None
    assert scoring.extract_choice_letter(" B. because") == "B"
    assert scoring.math_equivalent("0.5", "\\frac{1}{2}")
    assert not scoring.math_equivalent("0.25", "\\frac{1}{2}")
    assert not scoring.math_equivalent(None, "3")


def test_gsm8k_gold_scores_one_and_wrong_scores_zero(eval_data_dir):
    docs = read_jsonl(eval_data_dir / "gsm8k" / "test.jsonl")
    for doc in docs:
        # A model that reproduces the reference solution (the few-shot format) is right both ways.
        assert scoring.gsm8k_process_results(doc, [gsm8k_doc_to_target(doc)]) == {
            "exact_match_strict": 1.0, "exact_match_flexible": 1.0}, doc["question"]
    for doc in docs[:200]:
        wrong = str(int(float(scoring.gsm8k_gold(doc))) + 1)
        assert scoring.gsm8k_process_results(doc, [f"I think it is {wrong}.\n#### {wrong}"]) == {
            "exact_match_strict": 0.0, "exact_match_flexible": 0.0}
    # Flexible accepts an answer outside the "####" format; strict does not.
    doc = docs[0]
    assert scoring.gsm8k_process_results(doc, [f"So she makes {scoring.gsm8k_gold(doc)} dollars."]) == {
        "exact_match_strict": 0.0, "exact_match_flexible": 1.0}


def _minerva(answer: str) -> str:
    return f"Some work.\nFinal Answer: The final answer is ${answer}$. I hope it is correct."


@pytest.mark.parametrize("folder,n", [("math500", 500), ("math", 100)])
def test_math_gold_scores_one_and_wrong_scores_zero(eval_data_dir, folder, n):
    docs = read_jsonl(eval_data_dir / folder / "test.jsonl", n)
    misses = [d["problem"][:60] for d in docs if scoring.math_process_results(d, [_minerva(scoring.math_gold(d))])["math_verify"] != 1.0]
    assert not misses, misses
    # The boxed form of the reference solution scores too (the extractor's fallback).
    assert all(scoring.math_process_results(d, [d["solution"]])["math_verify"] == 1.0 for d in docs[:30])
    wrong = [d for d in docs[:50] if scoring.math_process_results(d, [_minerva("\\frac{7919}{104729}")])["math_verify"] != 0.0]
    assert not wrong
    assert scoring.math_process_results(docs[0], ["I do not know."])["math_verify"] == 0.0


def test_every_math_solution_has_a_gold_answer(eval_data_dir):
    for doc in read_jsonl(eval_data_dir / "math" / "test.jsonl"):
        assert scoring.math_gold(doc), doc["idx"]


def test_minerva_exemplars_score_themselves():
    for shot in minerva_fewshot_samples():
        gold = scoring.last_boxed(shot["solution"])
        assert scoring.math_process_results({"answer": gold}, [shot["solution"]])["math_verify"] == 1.0


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


def test_mmlu_pro_gold_scores_one_and_wrong_scores_zero(eval_data_dir):
    docs = read_jsonl(eval_data_dir / "mmlu_pro" / "test.jsonl", 2000)
    for doc in docs:
        wrong = next(letter for letter in scoring.LETTERS if letter != doc["answer"])
        assert scoring.mmlu_pro_process_results(doc, [f" The answer is ({doc['answer']})."]) == {"exact_match": 1.0}
        assert scoring.mmlu_pro_process_results(doc, [f" The answer is ({wrong})."]) == {"exact_match": 0.0}
        assert scoring.LETTERS[doc["answer_index"]] == doc["answer"]
