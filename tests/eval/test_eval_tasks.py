"""The rendered task configs load in lm-eval offline, score gold right, and bad input is named."""

from __future__ import annotations

import itertools
import shutil
from pathlib import Path

import pytest

from tpt.evaluate.catalog import MMLU_PRO_CATEGORIES, MMLU_SUBJECTS, TASKS, UnknownTask, resolve_tasks
from tpt.evaluate.datacheck import BadDataFile
from tpt.evaluate.render import DataFileMissing, RenderOptions, render_tasks


@pytest.fixture(scope="module")
def all_tasks(eval_data_dir, tmp_path_factory):
    """Every task, all 57 MMLU subjects and 14 MMLU-Pro categories, built by lm-eval from our YAMLs."""
    from lm_eval.tasks import TaskManager

    import tpt.evaluate.tasks.utils  # noqa: F401

    folder = render_tasks(
        list(TASKS.values()), RenderOptions(eval_data_dir, samples=3), tmp_path_factory.mktemp("tasks")
    )
    manager = TaskManager(include_path=str(folder), include_defaults=False)
    return manager.load([spec.lm_task for spec in TASKS.values()])["tasks"]


def test_every_subject_and_category_builds(all_tasks):
    names = set(all_tasks)
    assert {f"tpt_mmlu_{s}" for s in MMLU_SUBJECTS} <= names
    assert {f"tpt_mmlu_pro_{c.replace(' ', '_')}" for c in MMLU_PRO_CATEGORIES} <= names
    assert len(list(all_tasks["tpt_math"].test_docs())) == 5000
    assert sum(len(list(all_tasks[f"tpt_mmlu_{s}"].test_docs())) for s in MMLU_SUBJECTS) == 14042
    assert (
        sum(len(list(all_tasks[f"tpt_mmlu_pro_{c.replace(' ', '_')}"].test_docs())) for c in MMLU_PRO_CATEGORIES)
        == 12032
    )
    assert all_tasks["tpt_aime24"].config.repeats == 3


def _loglikelihood_scores(task, doc, pick: int) -> dict:
    """process_results as lm-eval calls it, with choice ``pick`` the most likely."""
    n = len(task.doc_to_choice(doc))
    return task.process_results(doc, [(-1.0 if i == pick else -5.0, i == pick) for i in range(n)])


def test_loglikelihood_tasks_score_gold_one_and_wrong_zero(all_tasks):
    for name in ["tpt_boolq"] + [f"tpt_mmlu_{s}" for s in MMLU_SUBJECTS]:
        task = all_tasks[name]
        docs = list(itertools.islice(task.eval_docs, 10))
        for doc in docs:
            gold = task.doc_to_target(doc)
            assert _loglikelihood_scores(task, doc, gold)["acc"] == 1.0, (name, doc)
            assert _loglikelihood_scores(task, doc, (gold + 1) % len(task.doc_to_choice(doc)))["acc"] == 0.0
    boolq = all_tasks["tpt_boolq"]
    assert sum(boolq.doc_to_target(d) for d in boolq.eval_docs) == 2033  # yes-answers, per SOURCES.md


def test_mmlu_cells_stay_text(all_tasks):
    # "None" is an answer option in college_mathematics; pandas would turn it into NaN by default.
    docs = list(all_tasks["tpt_mmlu_college_mathematics"].test_docs())
    assert any("None" in (d["choice0"], d["choice1"], d["choice2"], d["choice3"]) for d in docs)
    assert all(isinstance(d[f"choice{i}"], str) and d[f"choice{i}"] != "nan" for d in docs for i in range(4))


def test_mmlu_pro_shots_are_own_category_and_exclude_the_question(all_tasks):
    task = all_tasks["tpt_mmlu_pro_law"]
    docs = list(task.test_docs())
    first, seventh = docs[0], docs[6]
    context = task.fewshot_context(first, num_fewshot=5)
    assert context.count("Question:\n") == 6  # five shots + the question
    assert context.count(first["question"].strip()) == 1  # only as the question under test
    assert docs[5]["question"].strip() in context  # the sixth stepped in
    assert "about law" in context
    # each shot: lm-eval's CoT format with the reasoning missing (no validation split offline)
    assert f"Answer: Let's think step by step. The answer is ({docs[1]['answer']}).\n\nQuestion:" in context
    assert context.endswith("Answer: Let's think step by step.")
    context = task.fewshot_context(seventh, num_fewshot=5)
    assert all(d["question"].strip() in context for d in docs[:5])
    assert task.doc_to_target(first) == first["answer"]


@pytest.mark.parametrize(
    "lm_task,answer",
    [
        ("tpt_gsm8k", lambda doc: " " + doc["answer"]),
        ("tpt_gsm8k_cot", lambda doc: f" Adding up. The answer is {doc['answer'].split('#### ')[-1]}."),
    ],
)
def test_gsm8k_gold_scores_one_and_wrong_scores_zero(all_tasks, lm_task, answer):
    from tpt.evaluate.reference import score_output

    task = all_tasks[lm_task]
    for doc in task.eval_docs:  # all 1319: the reference solution scores under both filters
        assert score_output(task, doc, answer(doc)) == {
            "exact_match,strict-match": 1.0,
            "exact_match,flexible-extract": 1.0,
        }
    for doc in list(task.eval_docs)[:100]:
        wrong = int(doc["answer"].split("#### ")[-1].replace(",", "")) + 1
        verdicts = score_output(task, doc, f" So the answer is {wrong}.\n#### {wrong}")
        assert verdicts == {"exact_match,strict-match": 0.0, "exact_match,flexible-extract": 0.0}


def test_mmlu_pro_gold_scores_one_and_wrong_scores_zero(all_tasks):
    from tpt.evaluate.reference import score_output
    from tpt.evaluate.scoring import LETTERS

    for category in ("law", "math", "computer_science"):
        task = all_tasks[f"tpt_mmlu_pro_{category}"]
        for doc in list(task.eval_docs)[:200]:
            wrong = next(letter for letter in LETTERS if letter != doc["answer"])
            assert score_output(task, doc, f" ... the answer is ({doc['answer']}).") == {
                "exact_match,custom-extract": 1.0
            }
            assert score_output(task, doc, f" ... the answer is ({wrong}).") == {"exact_match,custom-extract": 0.0}
            assert LETTERS[doc["answer_index"]] == doc["answer"]


def test_missing_file_names_file_and_data_dir(eval_data_dir, tmp_path):
    partial = tmp_path / "data"
    shutil.copytree(eval_data_dir / "gsm8k", partial / "gsm8k")
    with pytest.raises(DataFileMissing, match=r"math/test\.jsonl.*--data-dir .*data"):
        render_tasks(resolve_tasks("gsm8k,math", None), RenderOptions(partial), tmp_path / "tasks")
    (partial / "mmlu" / "dev").mkdir(parents=True)
    with pytest.raises(DataFileMissing, match=r"mmlu/dev/anatomy_dev\.csv"):
        render_tasks(resolve_tasks("mmlu", None), RenderOptions(partial, mmlu_subjects=["anatomy"]), tmp_path / "tasks")
    with pytest.raises(DataFileMissing, match="not a folder"):
        render_tasks(resolve_tasks("gsm8k", None), RenderOptions(tmp_path / "nowhere"), tmp_path / "tasks")


def test_unknown_and_unavailable_tasks():
    with pytest.raises(
        UnknownTask, match="known tasks: gsm8k, gsm8k_cot, math, math500, boolq, mmlu, mmlu_pro, aime24, amc23"
    ):
        resolve_tasks("gsm8k,hellaswag", None)
    with pytest.raises(UnknownTask, match="gpqa.*unavailable"):
        resolve_tasks("gpqa", None)
    with pytest.raises(UnknownTask, match="known suites"):
        resolve_tasks(None, "paper-mid")
    assert [s.name for s in resolve_tasks(None, None)] == ["gsm8k_cot", "math", "boolq", "mmlu", "mmlu_pro"]
    with pytest.raises(ValueError, match="unknown MMLU subject"):
        render_tasks(
            resolve_tasks("mmlu", None), RenderOptions(Path("."), mmlu_subjects=["astrology"]), Path("/tmp/unused")
        )


def _broken_copy(eval_data_dir: Path, tmp_path: Path, rel: str, line_no: int, replace) -> Path:
    """A --data-dir copy of ``rel``'s folder with line ``line_no`` of ``rel`` rewritten by ``replace``."""
    root = tmp_path / "data"
    shutil.copytree(eval_data_dir / rel.split("/")[0], root / rel.split("/")[0])
    path = root / rel
    path.chmod(0o644)
    lines = path.read_text(encoding="utf-8").splitlines(keepends=True)
    lines[line_no - 1] = replace(lines[line_no - 1])
    path.write_text("".join(lines), encoding="utf-8")
    return root


@pytest.mark.parametrize(
    "rel,line_no,replace,task,message",
    [
        ("gsm8k/test.jsonl", 17, lambda line: line[:40] + "\n", "gsm8k", r"test\.jsonl line 17: not valid JSON"),
        (
            "gsm8k/test.jsonl",
            3,
            lambda line: line.replace('"answer"', '"solution"'),
            "gsm8k",
            r"line 3: field 'answer' is missing",
        ),
        (
            "mmlu_pro/test.jsonl",
            5,
            lambda line: line.replace('"answer": "', '"answer": "Z'),
            "mmlu_pro",
            r"line 5: expected answer is a letter",
        ),
        (
            "math/test.jsonl",
            2,
            lambda line: line.replace("boxed", "fixed"),
            "math",
            r"line 2: expected solution has a \\boxed",
        ),
        (
            "boolq/boolq_dev.jsonl",
            9,
            lambda line: line.replace("Question: ", "Q: "),
            "boolq",
            r"boolq_dev\.jsonl line 9: expected query is 'Passage",
        ),
    ],
)
def test_bad_rows_are_named_by_file_line_and_field(eval_data_dir, tmp_path, rel, line_no, replace, task, message):
    root = _broken_copy(eval_data_dir, tmp_path, rel, line_no, replace)
    with pytest.raises(BadDataFile, match=message):
        render_tasks(resolve_tasks(task, None), RenderOptions(root, mmlu_pro_categories=["math"]), tmp_path / "tasks")


def test_bad_mmlu_csv_row_is_named(eval_data_dir, tmp_path):
    root = tmp_path / "data"
    for split in ("dev", "test"):
        (root / "mmlu" / split).mkdir(parents=True)
        shutil.copy(eval_data_dir / "mmlu" / split / f"anatomy_{split}.csv", root / "mmlu" / split)
    test_csv = root / "mmlu" / "test" / "anatomy_test.csv"
    test_csv.chmod(0o644)
    lines = test_csv.read_text().splitlines(keepends=True)
    lines[3] = lines[3].rstrip()[:-1] + "7\n"  # answer index 7
    test_csv.write_text("".join(lines))
    with pytest.raises(BadDataFile, match=r"anatomy_test\.csv line 4: field 'answer' is '7'"):
        render_tasks(resolve_tasks("mmlu", None), RenderOptions(root, mmlu_subjects=["anatomy"]), tmp_path / "tasks")
