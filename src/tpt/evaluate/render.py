"""Render the packaged task templates into lm-eval YAMLs whose data_files point into --data-dir.

The templates (``tpt/evaluate/tasks/*.yaml``) hold ``${data_dir}``-style placeholders; one run
renders them once into ``<out>/tasks/`` (kept: it documents exactly what ran) and hands that
folder to ``lm_eval.tasks.TaskManager(include_path=...)``.  Every file a task needs is checked
first (present, and every row well-formed), so a bad one is named before any model is loaded.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from string import Template

from tpt.evaluate.catalog import MMLU_PRO_CATEGORIES, MMLU_SUBJECTS, TaskSpec, UnknownTask, slug
from tpt.evaluate.datacheck import check_file

# Per-task generation budgets (tokens) when --max-gen-toks is not given: lm-eval's (its YAML's value,
# else its models' default of 256), and tpt's own for the competition protocol.
DEFAULT_MAX_GEN_TOKS = {
    "gsm8k": 256,
    "gsm8k_cot": 256,
    "math": 256,
    "math500": 256,
    "mmlu_pro": 2048,
    "aime24": 8192,
    "amc23": 8192,
}


class DataFileMissing(FileNotFoundError):
    pass


@dataclass
class RenderOptions:
    data_dir: Path
    samples: int = 4
    max_gen_toks: int | None = None
    mmlu_subjects: list[str] | None = None  # None: all 57
    mmlu_pro_categories: list[str] | None = None  # None: all 14


def _template(name: str) -> Template:
    return Template(resources.files("tpt.evaluate.tasks").joinpath(name).read_text())


def _yaml_safe(path: Path) -> str:
    """The path as it may sit inside a double-quoted YAML string."""
    return json.dumps(str(path))[1:-1]


def check_files(specs: list[TaskSpec], data_dir: Path, opts: RenderOptions) -> None:
    if not data_dir.is_dir():
        raise DataFileMissing(f"--data-dir {data_dir} is not a folder (expected the benchmark files, see docs/eval.md)")
    for spec in specs:
        for rel in required_files(spec, opts):
            if not (data_dir / rel).is_file():
                raise DataFileMissing(
                    f"task {spec.name!r} needs {data_dir / rel}, which does not exist "
                    f"(--data-dir {data_dir}; layout in docs/eval.md)"
                )
            check_file(data_dir / rel, rel)


def required_files(spec: TaskSpec, opts: RenderOptions) -> tuple[str, ...]:
    if spec.name == "mmlu":
        return tuple(f"mmlu/{split}/{s}_{split}.csv" for s in _subjects(opts) for split in ("dev", "test"))
    return spec.files


def _subjects(opts: RenderOptions) -> list[str]:
    chosen = opts.mmlu_subjects or list(MMLU_SUBJECTS)
    unknown = sorted(set(chosen) - set(MMLU_SUBJECTS))
    if unknown:
        raise UnknownTask(f"unknown MMLU subject(s) {unknown}; known: {', '.join(MMLU_SUBJECTS)}")
    return chosen


def _categories(opts: RenderOptions) -> list[str]:
    chosen = opts.mmlu_pro_categories or list(MMLU_PRO_CATEGORIES)
    unknown = sorted(set(chosen) - set(MMLU_PRO_CATEGORIES) - {slug(c) for c in MMLU_PRO_CATEGORIES})
    if unknown:
        raise UnknownTask(f"unknown MMLU-Pro categor(ies) {unknown}; known: {', '.join(MMLU_PRO_CATEGORIES)}")
    return [c.replace("_", " ") for c in chosen]


def _group_yaml(group: str, members: list[str], metric: str, version: float, filter_name: str = "none") -> str:
    """An lm-eval group averaging ``metric`` weighted by member size, versioned as the official group."""
    lines = [f"group: {group}", "task:"] + [f"  - {m}" for m in members]
    lines += [
        "aggregate_metric_list:",
        f"  - metric: {metric}",
        "    aggregation: mean",
        "    weight_by_size: true",
        f"    filter_list: {filter_name}",
    ]
    return "\n".join(lines + ["metadata:", f"  version: {version}", ""])


def render_tasks(specs: list[TaskSpec], opts: RenderOptions, dest: Path) -> Path:
    """Write one YAML per task (and per MMLU subject / MMLU-Pro category) into ``dest``."""
    data_dir = opts.data_dir.expanduser().resolve()
    check_files(specs, data_dir, opts)
    dest.mkdir(parents=True, exist_ok=True)
    for stale in dest.glob("*.yaml"):  # a previous run's tasks must not be picked up
        stale.unlink()
    common = {"data_dir": _yaml_safe(data_dir), "samples": opts.samples}
    for spec in specs:
        gen = {"max_gen_toks": opts.max_gen_toks or DEFAULT_MAX_GEN_TOKS.get(spec.name, 512)}
        for filename, text in _render_one(spec, opts, {**common, **gen}):
            (dest / filename).write_text(text)
    return dest


def _render_one(spec: TaskSpec, opts: RenderOptions, values: dict) -> list[tuple[str, str]]:
    if spec.name == "mmlu":
        subjects = _subjects(opts)
        files = [
            (
                f"mmlu_{s}.yaml",
                _template("mmlu_subject.yaml").substitute(values, subject=s, subject_words=s.replace("_", " ")),
            )
            for s in subjects
        ]
        group = _group_yaml("tpt_mmlu", [f"tpt_mmlu_{s}" for s in subjects], "acc", spec.reference_version)
        return [*files, ("mmlu_group.yaml", group)]
    if spec.name == "mmlu_pro":
        categories = _categories(opts)
        files = [
            (
                f"mmlu_pro_{slug(c)}.yaml",
                _template("mmlu_pro_category.yaml").substitute(values, category=c, slug=slug(c)),
            )
            for c in categories
        ]
        members = [f"tpt_mmlu_pro_{slug(c)}" for c in categories]
        group = _group_yaml("tpt_mmlu_pro", members, "exact_match", spec.reference_version, "custom-extract")
        return [*files, ("mmlu_pro_group.yaml", group)]
    if spec.name in ("math", "math500"):
        text = _template("math.yaml").substitute(values, task=spec.lm_task, folder=spec.name, reference=spec.reference)
        return [(f"{spec.name}.yaml", text)]
    if spec.name in ("aime24", "amc23"):
        return [
            (f"{spec.name}.yaml", _template("competition.yaml").substitute(values, task=spec.lm_task, folder=spec.name))
        ]
    return [(f"{spec.name}.yaml", _template(f"{spec.name}.yaml").substitute(values))]
