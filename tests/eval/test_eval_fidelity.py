"""tpt's tasks against lm-eval's own: the same requests, character for character, and the same verdicts.

The official side is the task YAML inside the installed lm_eval package, pointed at the same local
files (``tpt.evaluate.reference``); tpt's side is what ``tpt eval`` renders and runs.  No model is
needed: a request is fully determined by the task (prompt, shots, stop sequences, generation budget),
and a verdict by the task's filters and metrics applied to a given output.  A change on either side
-- lm-eval upgraded, or a tpt template, prompt or scorer edited -- fails here, naming the task and
the first character that differs.
"""

from __future__ import annotations

import json

import pytest

from tpt.evaluate import minerva, reference
from tpt.evaluate.catalog import TASKS
from tpt.evaluate.render import RenderOptions, render_tasks

N_REQUESTS = 25
# (tpt task, MMLU subject / MMLU-Pro category): a one-word and a multi-word one of each
CASES = [
    ("gsm8k", None),
    ("gsm8k_cot", None),
    ("math", None),
    ("math500", None),
    ("boolq", None),
    ("mmlu", "anatomy"),
    ("mmlu", "high_school_us_history"),
    ("mmlu_pro", "law"),
    ("mmlu_pro", "computer science"),
]
SUBJECTS = sorted({sub for name, sub in CASES if name == "mmlu"})
CATEGORIES = sorted({sub for name, sub in CASES if name == "mmlu_pro"})


@pytest.fixture(scope="module")
def tpt_tasks(eval_data_dir, tmp_path_factory):
    from lm_eval.tasks import TaskManager

    import tpt.evaluate.tasks.utils  # noqa: F401  registers the few-shot sampler the YAMLs name

    specs = [TASKS[name] for name in dict.fromkeys(name for name, _ in CASES)]
    opts = RenderOptions(eval_data_dir, mmlu_subjects=SUBJECTS, mmlu_pro_categories=CATEGORIES)
    folder = render_tasks(specs, opts, tmp_path_factory.mktemp("tasks"))
    return TaskManager(include_path=str(folder), include_defaults=False).load([s.lm_task for s in specs])["tasks"]


@pytest.fixture(scope="module")
def pairs(tpt_tasks, eval_data_dir, tmp_path_factory):
    """{(task, subject): (official lm-eval task, tpt's task)} over the same local files."""
    work = tmp_path_factory.mktemp("official")
    out = {}
    for name, sub in CASES:
        official = reference.official_task(name, eval_data_dir, work, **_variant(name, sub))
        ours = tpt_tasks[reference.OFFICIAL_YAML[name][1].format(subject=sub, slug=(sub or "").replace(" ", "_"))]
        out[name, sub] = official, ours
    return out


def _variant(name: str, sub: str | None) -> dict:
    return {"subject": sub} if name == "mmlu" else {"category": sub} if name == "mmlu_pro" else {}


def _first_difference(a: tuple, b: tuple) -> str:
    (kind_a, doc_a, args_a), (kind_b, doc_b, args_b) = a, b
    if (kind_a, doc_a) != (kind_b, doc_b) or args_a[1:] != args_b[1:]:
        return f"official {kind_a} doc {doc_a} {args_a[1:]!r}\n     tpt {kind_b} doc {doc_b} {args_b[1:]!r}"
    x, y = args_a[0], args_b[0]
    i = next((i for i, (p, q) in enumerate(zip(x, y)) if p != q), min(len(x), len(y)))
    return (
        f"doc {doc_a}, prompt character {i}:\nofficial ...{x[max(0, i - 80) : i + 80]!r}\n     tpt "
        f"...{y[max(0, i - 80) : i + 80]!r}"
    )


@pytest.mark.parametrize("name,sub", CASES)
def test_requests_equal_the_official_task(pairs, name, sub):
    official, ours = pairs[name, sub]
    assert len(official.eval_docs) == len(ours.eval_docs)
    # MMLU-Pro: the first five questions of a category are tpt's stand-in shots (the sixth steps in
    # for them), so the comparison starts after them; test_eval_tasks checks those five.
    offset = reference.MMLU_PRO_SHOTS if name == "mmlu_pro" else 0
    theirs, mine = (reference.render_requests(task, N_REQUESTS, offset=offset) for task in (official, ours))
    assert len(theirs) == len(mine) >= N_REQUESTS
    for a, b in zip(theirs, mine):
        assert a == b, f"{name} {sub or ''}: {_first_difference(a, b)}"


# The fields tpt derives from the local files itself (the rest are read as they are).
DERIVED_FIELDS = {"boolq": ("passage", "question", "label"), "math": ("answer",), "math500": ("answer",)}
RENDER_EVERY = 20  # lm-eval renders a prompt in ~1 ms: every 20th document keeps this test at a few seconds


@pytest.mark.parametrize("name,sub", CASES)
def test_every_document_matches_the_official_task(pairs, name, sub):
    """Beyond the first requests: every document's derived fields (all 3270 BoolQ passage/question
    splits, all 5500 normalised MATH answers), and every 20th document's text, target and choices."""
    official, ours = pairs[name, sub]
    fields = DERIVED_FIELDS.get(name, ())
    for i, (theirs, mine) in enumerate(zip(official.eval_docs, ours.eval_docs, strict=True)):
        assert [mine[f] for f in fields] == [theirs[f] for f in fields], f"{name}: doc {i} differs"
        if i % RENDER_EVERY:
            continue
        assert ours.doc_to_text(mine) == official.doc_to_text(theirs), f"{name} {sub or ''}: doc {i} text differs"
        assert ours.doc_to_target(mine) == official.doc_to_target(theirs), f"{name} {sub or ''}: doc {i} target differs"
        if official.OUTPUT_TYPE == "multiple_choice":
            assert ours.doc_to_choice(mine) == official.doc_to_choice(theirs)


@pytest.mark.parametrize("name,sub", CASES)
def test_filters_metrics_and_shots_equal_the_official_task(pairs, name, sub):
    official, ours = pairs[name, sub]
    for key in (
        "output_type",
        "num_fewshot",
        "repeats",
        "filter_list",
        "metric_list",
        "target_delimiter",
        "fewshot_delimiter",
        "description",
    ):
        assert getattr(ours.config, key) == getattr(official.config, key), f"{name}: {key} differs"
    assert ours.config.metadata["version"] == official.config.metadata["version"], f"{name}: task version differs"


@pytest.mark.parametrize("name", [n for n, spec in TASKS.items() if spec.reference])
def test_versions_are_the_ones_tpt_reproduces(name):
    spec = TASKS[name]
    assert name in reference.OFFICIAL_YAML, f"{name} claims to reproduce {spec.reference} but is not compared"
    assert reference.official_version(name) == spec.reference_version, f"lm-eval's {spec.reference} changed version"


def test_competition_tasks_are_documented_as_tpt_protocol():
    assert TASKS["aime24"].reference is None and TASKS["amc23"].reference is None


# --------------------------------------------------------------------------- tricky outputs
# (task, document index, model output, expected verdicts). The expected values are what lm-eval's
# metric gives; both the official task and tpt's must give exactly these.
GSM8K_DOC0 = 0  # Janet's ducks: gold 18
TRICKY = [
    ("gsm8k", GSM8K_DOC0, " 16 - 3 - 4 = 9 eggs, 9 * 2 = 18.\n#### 18", {"strict-match": 1, "flexible-extract": 1}),
    ("gsm8k", GSM8K_DOC0, " She sells 9 eggs.\n#### 18.00", {"strict-match": 0, "flexible-extract": 0}),
    ("gsm8k", GSM8K_DOC0, " She makes $18 every day.", {"strict-match": 0, "flexible-extract": 1}),
    ("gsm8k", GSM8K_DOC0, " #### 18 dollars, from 9 eggs", {"strict-match": 1, "flexible-extract": 0}),
    ("gsm8k", GSM8K_DOC0, " ####18", {"strict-match": 0, "flexible-extract": 1}),
    ("gsm8k", GSM8K_DOC0, " #### $18", {"strict-match": 0, "flexible-extract": 1}),
    (
        "gsm8k_cot",
        GSM8K_DOC0,
        " 16 - 3 - 4 = 9. 9 * 2 = 18. The answer is 18.",
        {"strict-match": 1, "flexible-extract": 1},
    ),
    ("gsm8k_cot", GSM8K_DOC0, " The answer is $18.", {"strict-match": 0, "flexible-extract": 1}),
    ("gsm8k_cot", GSM8K_DOC0, " The answer is 18.00.", {"strict-match": 0, "flexible-extract": 0}),
    ("gsm8k_cot", GSM8K_DOC0, " the answer is 18.", {"strict-match": 0, "flexible-extract": 1}),
    ("gsm8k_cot", GSM8K_DOC0, " The answer is 18. Then 2 more.", {"strict-match": 1, "flexible-extract": 0}),
    # MATH-500 doc 2: gold \frac{14}{3}
    (
        "math500",
        2,
        " So $x=\\frac{14}{3}$.\nFinal Answer: The final answer is $\\frac{14}{3}$. I hope it is correct.",
        {"exact_match": 1, "math_verify": 1},
    ),
    # without "I hope it is correct." Minerva's extraction needs a space after the answer's last character
    ("math500", 2, " Final Answer: The final answer is $\\frac{14}{3}$.", {"exact_match": 0, "math_verify": 1}),
    ("math500", 2, " Final Answer: The final answer is $\\frac{14}{3}$ ", {"exact_match": 1, "math_verify": 1}),
    ("math500", 2, " The answer is $\\frac{14}{3}$.", {"exact_match": 0, "math_verify": 1}),
    ("math500", 2, " So $x = \\boxed{\\frac{14}{3}}$.", {"exact_match": 0, "math_verify": 1}),
    (
        "math500",
        2,
        " Final Answer: The final answer is $14/3$. I hope it is correct.",
        {"exact_match": 1, "math_verify": 1},
    ),
    (
        "math500",
        2,
        " Final Answer: The final answer is $\\dfrac{14}{3}$. I hope it is correct.",
        {"exact_match": 1, "math_verify": 1},
    ),
    (
        "math500",
        2,
        " Final Answer: The final answer is $\\frac{13}{3}$. I hope it is correct.",
        {"exact_match": 0, "math_verify": 0},
    ),
    # math-verify reads the whole generation but prefers the "final answer is" span to a later number
    (
        "math500",
        2,
        " Final Answer: The final answer is $\\frac{14}{3}$. I hope it is correct. But $x = 5$.",
        {"exact_match": 1, "math_verify": 1},
    ),
    ("math500", 2, " We get $x = 5$, so $y = \\frac{14}{3}$.", {"exact_match": 0, "math_verify": 1}),
    ("math500", 2, " We get $y = \\frac{14}{3}$, so $x = 5$.", {"exact_match": 0, "math_verify": 0}),
    # doc 0: a tuple, equal as a string (sympy cannot parse it); doc 7: 90^\circ, units normalised away
    (
        "math500",
        0,
        " Final Answer: The final answer is $\\left( 3, \\frac{\\pi}{2} \\right)$. I hope it is correct.",
        {"exact_match": 1, "math_verify": 1},
    ),
    (
        "math500",
        7,
        " Final Answer: The final answer is $90$. I hope it is correct.",
        {"exact_match": 1, "math_verify": 1},
    ),
    (
        "math500",
        7,
        " Final Answer: The final answer is $90^\\circ$. I hope it is correct.",
        {"exact_match": 1, "math_verify": 1},
    ),
    # MMLU-Pro law, doc 5 (gold C): the official regex, first match, case-insensitive comparison
    ("mmlu_pro", 5, " The farmer used it openly. The answer is (C).", {"custom-extract": 1}),
    ("mmlu_pro", 5, " the answer is c", {"custom-extract": 0}),
    ("mmlu_pro", 5, " So the answer is C.", {"custom-extract": 1}),
    ("mmlu_pro", 5, " C. not hostile.", {"custom-extract": 0}),
    ("mmlu_pro", 5, " The answer is (B). No, the answer is (C).", {"custom-extract": 0}),
]


def _verdicts(task, doc_index: int, output: str) -> dict[str, float]:
    doc = list(task.eval_docs)[doc_index]
    return reference.score_output(task, doc, output)


@pytest.mark.parametrize("name,doc_index,output,expected", TRICKY)
def test_tricky_outputs_score_as_the_official_metric(pairs, name, doc_index, output, expected):
    official, ours = pairs[name, "law" if name == "mmlu_pro" else None]
    theirs, mine = _verdicts(official, doc_index, output), _verdicts(ours, doc_index, output)
    assert mine == theirs, f"{name}: tpt {mine} vs lm-eval {theirs} for {output!r}"
    # keys are "metric,filter"; the table names the filter (generative GSM8K / MMLU-Pro) or the metric (MATH)
    shown = {
        key.split(",")[1] if key.split(",")[1] != "none" else key.split(",")[0]: value for key, value in mine.items()
    }
    assert shown == expected, f"{name}: {output!r} scored {shown}, expected {expected}"


def test_minerva_normalisation_equals_official_on_every_math_answer(eval_data_dir):
    """tpt's copy of the Minerva normaliser against lm-eval's, on all 5500 reference solutions."""
    from lm_eval.tasks.minerva_math import utils as official

    for folder in ("math", "math500"):
        for line in (eval_data_dir / folder / "test.jsonl").read_text(encoding="utf-8").splitlines():
            solution = json.loads(line)["solution"]
            ours = minerva.normalize_final_answer(minerva.remove_boxed(minerva.last_boxed_only_string(solution)))
            assert ours == official.normalize_final_answer(
                official.remove_boxed(official.last_boxed_only_string(solution))
            )
            assert minerva.get_unnormalized_answer(solution) == official.get_unnormalized_answer(solution)
