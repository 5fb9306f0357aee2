"""lm-eval's own task definitions, pointed at the local benchmark files: the reference tpt is checked against.

``official_task(name, data_dir, workdir)`` loads the task YAML shipped inside the installed lm_eval
package (``lm_eval/tasks/...``), changes nothing but where its data comes from, and builds lm-eval's
``ConfigurableTask`` from it.  Where the local file's layout differs from the Hugging Face dataset the
YAML expects (BoolQ, MMLU), a converted copy is written under ``workdir``; the conversion here is
written independently of tpt's own (``tpt.evaluate.prompts``), so a mistake in either shows up as a
difference.  MMLU-Pro's few-shot (validation) split is not available offline: the official task gets
the same stand-in shots tpt uses (docs/eval.md), so everything else can still be compared.

``render_requests`` and ``score_output`` turn any task (official or tpt's) into what a model would
receive and what an output would score; tests/eval/test_eval_fidelity.py compares the two sides.
"""

from __future__ import annotations

import csv
import json
from pathlib import Path

# tpt task -> (official YAML under lm_eval/tasks/, tpt's lm-eval task it is compared with)
OFFICIAL_YAML = {
    "gsm8k": ("gsm8k/gsm8k.yaml", "tpt_gsm8k"),
    "gsm8k_cot": ("gsm8k/gsm8k-cot.yaml", "tpt_gsm8k_cot"),
    "math": ("minerva_math/minerva_math_algebra.yaml", "tpt_math"),  # the format is the same for all 7 subjects
    "math500": ("minerva_math/minerva_math500.yaml", "tpt_math500"),
    "boolq": ("super_glue/boolq/default.yaml", "tpt_boolq"),
    "mmlu": ("mmlu/default/mmlu_{subject}.yaml", "tpt_mmlu_{subject}"),
    "mmlu_pro": ("mmlu_pro/mmlu_pro_{slug}.yaml", "tpt_mmlu_pro_{slug}"),
}
# The official groups tpt's grouped tasks reproduce (for their versions).
OFFICIAL_GROUP_YAML = {
    "math": "benchmarks/minerva_math.yaml",
    "mmlu": "mmlu/default/_mmlu.yaml",
    "mmlu_pro": "mmlu_pro/_mmlu_pro.yaml",
}
MMLU_PRO_SHOTS = 5
# lm-eval command-line settings under which the official task equals tpt's: MMLU's YAML has no
# num_fewshot (0-shot); the usual 5-shot MMLU is `lm_eval --tasks mmlu --num_fewshot 5`.
RUN_WITH = {"mmlu": {"num_fewshot": 5}}


def lm_eval_tasks_dir() -> Path:
    import lm_eval.tasks

    return Path(lm_eval.tasks.__file__).parent


def official_config(rel: str) -> dict:
    """An official task YAML as lm-eval loads it (includes merged, ``!function``s imported)."""
    from lm_eval.tasks._yaml_loader import load_yaml

    return load_yaml(lm_eval_tasks_dir() / rel)


def official_version(name: str) -> float:
    """The version of the official task (or group) tpt's task ``name`` reproduces."""
    rel = OFFICIAL_GROUP_YAML.get(name) or OFFICIAL_YAML[name][0]
    return float(official_config(rel)["metadata"]["version"])


def official_task(name: str, data_dir: Path, workdir: Path, subject: str = "anatomy", category: str = "law"):
    """lm-eval's task for tpt task ``name`` (one MMLU subject / MMLU-Pro category) over the local files."""
    from lm_eval.api.task import ConfigurableTask

    rel = OFFICIAL_YAML[name][0].format(subject=subject, slug=category.replace(" ", "_"))
    cfg = official_config(rel)
    for key in ("tag", "group", "task_list"):
        cfg.pop(key, None)
    workdir.mkdir(parents=True, exist_ok=True)
    cfg.update(RUN_WITH.get(name, {}))
    files = _data_files(name, data_dir, workdir, subject, category)
    cfg.update(dataset_path="json", dataset_name=None, dataset_kwargs={"data_files": files})
    for split in ("training_split", "validation_split", "fewshot_split"):
        if cfg.get(split) not in (None, *files):  # e.g. BoolQ's train split: no local copy, and boolq is 0-shot
            cfg[split] = None
    return ConfigurableTask(config=cfg)


def _data_files(name: str, data_dir: Path, workdir: Path, subject: str, category: str) -> dict[str, str]:
    if name == "gsm8k" or name == "gsm8k_cot":
        return {"train": str(data_dir / "gsm8k/train.jsonl"), "test": str(data_dir / "gsm8k/test.jsonl")}
    if name in ("math", "math500"):
        return {"test": str(data_dir / name / "test.jsonl")}
    if name == "boolq":
        rows = [_superglue_boolq(row) for row in _read_jsonl(data_dir / "boolq/boolq_dev.jsonl")]
        return {"validation": _write_jsonl(workdir / "boolq_validation.jsonl", rows)}
    if name == "mmlu":
        return {
            split: _write_jsonl(
                workdir / f"mmlu_{subject}_{split}.jsonl", _cais_mmlu(data_dir / f"mmlu/{split}/{subject}_{split}.csv")
            )
            for split in ("dev", "test")
        }
    if name == "mmlu_pro":
        test = data_dir / "mmlu_pro/test.jsonl"
        shots = _write_jsonl(workdir / "mmlu_pro_validation.jsonl", _mmlu_pro_shots(test, category))
        return {"test": str(test), "validation": shots}
    raise KeyError(f"no official lm-eval task for {name!r}")


def _read_jsonl(path: Path) -> list[dict]:
    with open(path, encoding="utf-8") as fh:
        return [json.loads(line) for line in fh if line.strip()]


def _write_jsonl(path: Path, rows: list[dict]) -> str:
    path.write_text("".join(json.dumps(row) + "\n" for row in rows), encoding="utf-8")
    return str(path)


def _superglue_boolq(row: dict) -> dict:
    """llm-foundry's "Passage: P\\nQuestion: Q?" -> SuperGLUE's fields (no title: the file has none)."""
    head, _, question = row["query"].rpartition("\nQuestion: ")
    assert head.startswith("Passage: ") and question.endswith("?"), row["query"][:80]
    return {"passage": head[len("Passage: ") :], "question": question[:-1], "label": row["gold"]}


def _cais_mmlu(path: Path) -> list[dict]:
    """hendrycks CSV (question, choice0..3, answer index) -> cais/mmlu's {question, choices, answer}."""
    with open(path, encoding="utf-8", newline="") as fh:
        reader = csv.DictReader(fh)
        return [
            {"question": r["question"], "choices": [r[f"choice{i}"] for i in range(4)], "answer": int(r["answer"])}
            for r in reader
        ]


def _mmlu_pro_shots(test: Path, category: str) -> list[dict]:
    """tpt's offline stand-in for the validation split: the category's first test questions, no reasoning."""
    rows = [r for r in _read_jsonl(test) if r["category"] == category]
    rows = sorted(rows, key=lambda r: r["question_id"])[:MMLU_PRO_SHOTS]
    return [{**r, "cot_content": f"A: Let's think step by step. The answer is ({r['answer']})."} for r in rows]


def render_requests(task, n: int, seed: int = 1234, offset: int = 0) -> list[tuple]:
    """The first ``n`` requests (after ``offset`` documents) exactly as a model backend receives them."""
    from lm_eval.models.utils import normalize_gen_kwargs

    task.set_fewshot_seed(seed)
    task.build_all_requests(limit=offset + n)
    requests = []
    for inst in task.instances:
        if inst.doc_id < offset:
            continue
        args = inst.arguments
        if inst.request_type == "generate_until":  # what every lm-eval backend does first
            args = (args[0], normalize_gen_kwargs(args[1]))
        requests.append((inst.request_type, inst.doc_id, args))
    return requests


def score_output(task, doc: dict, output: str) -> dict[str, float]:
    """{"metric,filter": value} for one generation, through the task's own filters and metrics."""
    inst = task.construct_requests(doc=doc, ctx="", metadata=(task.config.task, 0, 1))
    inst = inst[0] if isinstance(inst, list) else inst
    inst.resps = [output]
    for ensemble in task._filters:
        ensemble.apply([inst])
    return {
        f"{metric},{key}": float(value)
        for key, resp in inst.filtered_resps.items()
        for metric, value in task.process_results(doc, [resp]).items()
    }
