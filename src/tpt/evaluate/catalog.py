"""What can be evaluated: tasks, their files under --data-dir, their headline metric, suites."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

MMLU_SUBJECTS = (
    "abstract_algebra anatomy astronomy business_ethics clinical_knowledge college_biology college_chemistry "
    "college_computer_science college_mathematics college_medicine college_physics computer_security "
    "conceptual_physics econometrics electrical_engineering elementary_mathematics formal_logic global_facts "
    "high_school_biology high_school_chemistry high_school_computer_science high_school_european_history "
    "high_school_geography high_school_government_and_politics high_school_macroeconomics high_school_mathematics "
    "high_school_microeconomics high_school_physics high_school_psychology high_school_statistics "
    "high_school_us_history high_school_world_history human_aging human_sexuality international_law jurisprudence "
    "logical_fallacies machine_learning management marketing medical_genetics miscellaneous moral_disputes "
    "moral_scenarios nutrition philosophy prehistory professional_accounting professional_law "
    "professional_medicine professional_psychology public_relations security_studies sociology us_foreign_policy "
    "virology world_religions"
).split()

MMLU_PRO_CATEGORIES = (
    "biology",
    "business",
    "chemistry",
    "computer science",
    "economics",
    "engineering",
    "health",
    "history",
    "law",
    "math",
    "other",
    "philosophy",
    "physics",
    "psychology",
)


def slug(name: str) -> str:
    """'computer science' -> 'computer_science' (lm-eval task names cannot hold spaces)."""
    return name.replace(" ", "_")


@dataclass(frozen=True)
class TaskSpec:
    name: str  # what users type: --tasks gsm8k
    lm_task: str  # the lm-eval task or group name it renders to
    kind: Literal["generate", "loglikelihood"]
    metric: str  # headline metric (lm-eval "metric,filter" key)
    files: tuple[str, ...]  # required files, relative to --data-dir
    summary: str
    # The lm-eval (0.4.13) task or group this one reproduces, and its version; None: tpt's own protocol.
    reference: str | None = None
    reference_version: float | None = None


_SAMPLED = "pass@1,all_samples"  # mean over --samples draws, then over problems
_GSM8K_FILES = ("gsm8k/test.jsonl", "gsm8k/train.jsonl")

TASKS: dict[str, TaskSpec] = {
    spec.name: spec
    for spec in [
        TaskSpec(
            "gsm8k",
            "tpt_gsm8k",
            "generate",
            "exact_match,flexible-extract",
            _GSM8K_FILES,
            "lm-eval gsm8k: 5-shot Question/Answer, random train shots, strict + flexible",
            "gsm8k",
            3.0,
        ),
        TaskSpec(
            "gsm8k_cot",
            "tpt_gsm8k_cot",
            "generate",
            "exact_match,flexible-extract",
            _GSM8K_FILES[:1],
            "lm-eval gsm8k_cot: 8-shot Q/A, Wei et al. exemplars, strict + flexible",
            "gsm8k_cot",
            3.0,
        ),
        TaskSpec(
            "math",
            "tpt_math",
            "generate",
            "math_verify,none",
            ("math/test.jsonl",),
            "lm-eval minerva_math: MATH test (5000), 4-shot, math_verify + exact_match",
            "minerva_math",
            1.0,
        ),
        TaskSpec(
            "math500",
            "tpt_math500",
            "generate",
            "math_verify,none",
            ("math500/test.jsonl",),
            "lm-eval minerva_math500: MATH-500, 4-shot, math_verify + exact_match",
            "minerva_math500",
            3.1,
        ),
        TaskSpec(
            "boolq",
            "tpt_boolq",
            "loglikelihood",
            "acc,none",
            ("boolq/boolq_dev.jsonl",),
            "lm-eval boolq: dev (3270), 0-shot log-likelihood of no/yes (no titles offline)",
            "boolq",
            2.0,
        ),
        TaskSpec(
            "mmlu",
            "tpt_mmlu",
            "loglikelihood",
            "acc,none",
            tuple(f"mmlu/{split}/{s}_{split}.csv" for s in MMLU_SUBJECTS for split in ("dev", "test")),
            "lm-eval mmlu: 57 subjects, 5-shot (dev), log-likelihood of A-D, size-weighted",
            "mmlu",
            2.0,
        ),
        TaskSpec(
            "mmlu_pro",
            "tpt_mmlu_pro",
            "generate",
            "exact_match,custom-extract",
            ("mmlu_pro/test.jsonl",),
            "lm-eval mmlu_pro: 14 categories, 5-shot CoT prompt (shots from test offline)",
            "mmlu_pro",
            2.0,
        ),
        TaskSpec(
            "aime24",
            "tpt_aime24",
            "generate",
            _SAMPLED,
            ("aime24/test.jsonl",),
            "tpt protocol: AIME 2024 (30), 0-shot, pass@1 over --samples at T=0.6",
        ),
        TaskSpec(
            "amc23",
            "tpt_amc23",
            "generate",
            _SAMPLED,
            ("amc23/test.jsonl",),
            "tpt protocol: AMC 2023 (40), 0-shot, pass@1 over --samples at T=0.6",
        ),
    ]
}

# The paper's post-SFT suite also has GPQA and LiveCodeBench; no local copy of either exists.
UNAVAILABLE: dict[str, str] = {
    "gpqa": "GPQA has no copy in the offline benchmark folder (its authors ship it only as a "
    "password-protected archive, to keep it out of web-crawled training data); it cannot run offline",
    "livecodebench": "LiveCodeBench has no copy in the offline benchmark folder and needs sandboxed "
    "code execution; it cannot run offline",
}

SUITES: dict[str, tuple[str, ...]] = {
    # GSM8K as gsm8k_cot: 8-shot chain of thought, the usual base-model protocol and the shot count tpt
    # used before; lm-eval's gsm8k is 5-shot. Headline flexible-extract (docs/eval.md, "paper-base").
    "paper-base": ("gsm8k_cot", "math", "boolq", "mmlu", "mmlu_pro"),
    "paper-post": ("aime24", "math500", "amc23"),  # + GPQA, LiveCodeBench in the paper: unavailable
    "all": tuple(TASKS),
}

# The paper's base-model headline: the mean of these five tasks' headline metrics.
PAPER_BASE_AVERAGE = SUITES["paper-base"]


class UnknownTask(ValueError):
    pass


def resolve_tasks(tasks: list[str] | str | None, suite: str | None) -> list[TaskSpec]:
    """--tasks a,b (a list, as the flag is parsed; or the comma text) or --suite name -> task specs
    (default: the paper-base suite)."""
    if tasks and suite:
        raise UnknownTask("give --tasks or --suite, not both")
    if suite is not None and suite not in SUITES:
        raise UnknownTask(f"unknown suite {suite!r}; known suites: {', '.join(SUITES)}")
    if isinstance(tasks, str):
        tasks = tasks.split(",")
    names = [t.strip() for t in tasks if t.strip()] if tasks else list(SUITES[suite or "paper-base"])
    for name in names:
        if name in UNAVAILABLE:
            raise UnknownTask(f"task {name!r} is unavailable: {UNAVAILABLE[name]}")
        if name not in TASKS:
            raise UnknownTask(f"unknown task {name!r}; known tasks: {', '.join(TASKS)} (suites: {', '.join(SUITES)})")
    return [TASKS[name] for name in dict.fromkeys(names)]
