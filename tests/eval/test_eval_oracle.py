"""The whole scoring chain (prompts -> lm-eval filters -> our scorers -> aggregation -> our JSON).

No model small enough for a CPU test answers any of these benchmarks, so the tiny-model runs can
only show 0% everywhere.  Here an answer key stands in for the model: it reads the document lm-eval
attaches to each request and answers it right (or wrong).  Everything else is the real pipeline,
so a score other than 100% / 0% means a broken prompt, filter, scorer or aggregation.
"""

from __future__ import annotations

import pytest
from lm_eval.api.model import LM

from tpt.evaluate.catalog import resolve_tasks
from tpt.evaluate.config import EvalConfig
from tpt.evaluate.minerva import last_boxed_only_string, remove_boxed
from tpt.evaluate.models import ModelTarget
from tpt.evaluate.render import RenderOptions, render_tasks
from tpt.evaluate.runner import evaluate_model
from tpt.evaluate.scoring import LETTERS, format_gold


def right_choice(task: str, doc: dict) -> str:
    if task.startswith("tpt_boolq"):
        return " " + ["no", "yes"][doc["label"]]
    return " " + "ABCD"[int(doc["answer"])]  # MMLU


def right_generation(task: str, doc: dict) -> str:
    if task == "tpt_gsm8k":
        return " " + doc["answer"]
    if task == "tpt_gsm8k_cot":
        return f" Adding up. The answer is {doc['answer'].split('#### ')[-1]}."
    if task.startswith("tpt_mmlu_pro"):
        return f" The answer is ({doc['answer']})."
    if task in ("tpt_math", "tpt_math500"):
        answer = remove_boxed(last_boxed_only_string(doc["solution"]))
        return f" Work.\nFinal Answer: The final answer is ${answer}$. I hope it is correct."
    return f" So the answer is $\\boxed{{{format_gold(doc['answer'])}}}$."  # AIME, AMC


def wrong_generation(task: str, doc: dict) -> str:
    if task.startswith("tpt_mmlu_pro"):
        return f" The answer is ({next(x for x in LETTERS if x != doc['answer'])})."
    return " The answer is -987654321.\nFinal Answer: The final answer is $\\boxed{-987654321}$.\n#### -987654321"


class AnswerKey(LM):
    def __init__(self, right: bool):
        super().__init__()
        self.right = right

    def loglikelihood(self, requests):
        out = []
        for req in requests:
            _, continuation = req.args
            is_right = (continuation == right_choice(req.task_name, req.doc)) == self.right
            out.append((0.0 if is_right else -10.0, is_right))
        return out

    def generate_until(self, requests):
        answer = right_generation if self.right else wrong_generation
        return [answer(req.task_name, req.doc) for req in requests]

    def loglikelihood_rolling(self, requests):
        raise NotImplementedError


@pytest.mark.parametrize("right", [True, False])
def test_answer_key_scores_all_or_nothing(eval_data_dir, tmp_path, right):
    cfg = EvalConfig(
        suite="all",
        data_dir=eval_data_dir,
        out=tmp_path,
        limit=3,
        samples=2,
        mmlu_subjects=["anatomy", "college_mathematics"],
        mmlu_pro_categories=["math", "law", "computer science"],
    )
    specs = resolve_tasks(None, "all")
    opts = RenderOptions(
        eval_data_dir,
        samples=2,
        mmlu_subjects=cfg.mmlu_subjects,
        mmlu_pro_categories=cfg.mmlu_pro_categories,
    )
    task_dir = render_tasks(specs, opts, tmp_path / "tasks")
    result = evaluate_model(cfg, ModelTarget("key", "answer key", AnswerKey(right)), specs, task_dir)
    expected = 1.0 if right else 0.0
    scores = {name: task["score"] for name, task in result["tasks"].items()}
    assert scores == {spec.name: expected for spec in specs}
    assert {name: task["n"] for name, task in result["tasks"].items()} == {
        "gsm8k": 3,
        "gsm8k_cot": 3,
        "math": 3,
        "math500": 3,
        "boolq": 3,
        "mmlu": 6,
        "mmlu_pro": 9,
        "aime24": 3,
        "amc23": 3,
    }
    for name, metric in [
        ("gsm8k", "exact_match,strict-match"),
        ("gsm8k_cot", "exact_match,strict-match"),
        ("math", "exact_match,none"),
        ("math500", "exact_match,none"),
    ]:
        assert result["tasks"][name]["metrics"][metric]["score"] == expected, name
    assert result["averages"]["paper_base_5"]["score"] == expected
