"""Run the tasks through lm-evaluation-harness and write <out>/<model>.json + comparison.md."""

from __future__ import annotations

import json
import math
import os
import time
from pathlib import Path

from tpt.config import to_dict
from tpt.evaluate.catalog import PAPER_BASE_AVERAGE, TASKS, UNAVAILABLE, TaskSpec, resolve_tasks
from tpt.evaluate.config import EvalConfig
from tpt.evaluate.models import ModelTarget, check_server_tasks, model_targets
from tpt.evaluate.render import RenderOptions, render_tasks
from tpt.evaluate.report import compare
from tpt.formats import FormatError, read_checkpoint_info, write_eval_result


def _offline() -> None:
    # No run may reach a hub: benchmark files come from --data-dir, models from local folders.
    for var in ("HF_DATASETS_OFFLINE", "HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE"):
        os.environ.setdefault(var, "1")


def evaluate(cfg: EvalConfig) -> dict[str, dict]:
    """Evaluate every model of ``cfg``; returns {model name: result} as also written to --out.

    Sets HF_DATASETS_OFFLINE / HF_HUB_OFFLINE / TRANSFORMERS_OFFLINE (unless already set) for the
    whole process: benchmark files come from --data-dir and models from local folders only.
    """
    _offline()
    specs = resolve_tasks(cfg.tasks, cfg.suite)
    check_server_tasks(cfg, specs)
    targets = model_targets(cfg)  # every model checked before the first benchmark runs
    opts = RenderOptions(
        data_dir=cfg.data_dir,
        samples=cfg.samples,
        max_gen_toks=cfg.max_gen_toks,
        mmlu_subjects=cfg.mmlu_subjects,
        mmlu_pro_categories=cfg.mmlu_pro_categories,
    )
    task_dir = render_tasks(specs, opts, cfg.out / "tasks")
    results = {}
    for target in targets:
        result = evaluate_model(cfg, target, specs, task_dir)
        write_eval_result(cfg.out, target.name, result)
        results[target.name] = result
    table = compare(list(results.values()))
    (cfg.out / "comparison.md").write_text(table + "\n")
    return results


def evaluate_model(cfg: EvalConfig, target: ModelTarget, specs: list[TaskSpec], task_dir: Path) -> dict:
    import lm_eval
    from lm_eval.tasks import TaskManager

    import tpt.evaluate.server_lm  # noqa: F401  registers the tpt-local-*completions models
    import tpt.evaluate.tasks.utils  # noqa: F401  registers the few-shot sampler the YAMLs name

    started = time.time()
    raw = lm_eval.simple_evaluate(
        model=target.lm,
        model_args=target.args,
        tasks=[spec.lm_task for spec in specs],
        batch_size=target.batch_size,
        limit=cfg.limit,
        log_samples=cfg.log_samples,
        task_manager=TaskManager(include_path=str(task_dir), include_defaults=False),
        apply_chat_template=cfg.chat,
        fewshot_as_multiturn=cfg.chat,
        random_seed=cfg.seed,
        numpy_random_seed=cfg.seed,
        torch_random_seed=cfg.seed,
        fewshot_random_seed=cfg.seed,
    )
    wall = time.time() - started
    if cfg.log_samples:
        _write_samples(cfg.out / f"{target.name}.samples", raw.pop("samples", {}))
    tasks = {spec.name: summarize_task(raw, spec) for spec in specs}
    versions = _versions()
    return {
        "model": target.name,
        "source": target.source,
        "lm_eval_model": target.lm,
        "checkpoint": checkpoint_info(target.source),
        "scores": {name: task["score"] for name, task in tasks.items()},  # headline only (tpt analyze reads it)
        "tasks": tasks,
        "averages": {"paper_base_5": paper_base_average(tasks)},
        "unavailable": UNAVAILABLE,
        "metrics": {name: task["metric"] for name, task in tasks.items()},  # the headline metric of each column
        "lm_eval_version": versions.get("lm_eval"),
        "task_versions": raw.get("versions", {}),  # tpt's task configs, as lm-eval reports them
        "batch_size": target.batch_size,
        "concurrent_requests": target.args.get("num_concurrent"),
        "dtype": target.args.get("dtype"),  # None for a server: the server decides
        "dtype_resolved": resolved_dtype(target),
        "fewshot_seed": cfg.seed,
        "seeds": {"python": cfg.seed, "numpy": cfg.seed, "torch": cfg.seed, "fewshot": cfg.seed},
        "limit": cfg.limit,
        "wall_time_s": round(wall, 2),
        "versions": versions,
        "config": to_dict(cfg),
        "lm_eval_config": raw.get("config", {}),
        "task_configs": raw.get("configs", {}),
    }


def checkpoint_info(source: str) -> dict | None:
    """Where the checkpoint sits on its training curve (tpt train's info file); None for other models."""
    try:
        info = read_checkpoint_info(source)
    except FormatError as err:  # recorded, not fatal: the scores are still worth having
        return {"error": str(err)}
    return None if info is None else info.to_dict()


def _number(value) -> float | None:
    return float(value) if isinstance(value, (int, float)) and not math.isnan(value) else None


def _metrics(entry: dict) -> dict[str, dict]:
    """lm-eval's {"acc,none": .., "acc_stderr,none": ..} -> {"acc,none": {"score", "stderr"}}."""
    out = {}
    for key, value in entry.items():
        if "," not in key or "_stderr," in key:
            continue
        metric, filt = key.split(",", 1)
        out[key] = {"score": _number(value), "stderr": _number(entry.get(f"{metric}_stderr,{filt}"))}
    return out


def summarize_task(raw: dict, spec: TaskSpec) -> dict:
    results, counts = raw["results"], raw.get("n-samples", {})
    members = raw.get("group_subtasks", {}).get(spec.lm_task, [])
    metrics = _metrics(results[spec.lm_task])
    headline = metrics.get(spec.metric, {"score": None, "stderr": None})
    n = sum(counts[m]["effective"] for m in members) if members else counts.get(spec.lm_task, {}).get("effective")
    summary = {
        "metric": spec.metric,
        "score": headline["score"],
        "stderr": headline["stderr"],
        "n": n,
        "metrics": metrics,
        "num_fewshot": _num_fewshot(raw, spec, members),
        "reference": reference_of(spec),
    }
    if members:
        summary["subtasks"] = {
            results[m].get("alias", m).strip(" -"): {
                **_metrics(results[m]).get(spec.metric, {}),
                "n": counts[m]["effective"],
            }
            for m in members
        }
    return summary


def reference_of(spec: TaskSpec) -> dict:
    """Which lm-eval task (and version) this task reproduces; None: tpt's own protocol (docs/eval.md)."""
    if spec.reference is None:
        return {"lm_eval_task": None, "version": None, "protocol": "tpt"}
    return {"lm_eval_task": spec.reference, "version": spec.reference_version, "protocol": "lm-eval"}


def _num_fewshot(raw: dict, spec: TaskSpec, members: list[str]) -> int | None:
    shots = raw.get("n-shot", {})
    values = {shots.get(m) for m in members} if members else {shots.get(spec.lm_task)}
    return values.pop() if len(values) == 1 else None


def resolved_dtype(target: ModelTarget) -> str | None:
    """What --dtype auto becomes for a local folder: the dtype its config.json records (as transformers does)."""
    dtype = target.args.get("dtype")
    if dtype != "auto":
        return dtype
    config = Path(target.source) / "config.json"
    try:
        data = json.loads(config.read_text())
    except (OSError, json.JSONDecodeError):
        return None
    return data.get("dtype") or data.get("torch_dtype")


def paper_base_average(tasks: dict[str, dict]) -> dict:
    """The paper's base-model headline: mean of the five tasks' headline scores (all five needed)."""
    missing = [t for t in PAPER_BASE_AVERAGE if tasks.get(t, {}).get("score") is None]
    metrics = {t: TASKS[t].metric for t in PAPER_BASE_AVERAGE}  # which number of each task enters the mean
    if missing:
        return {"score": None, "tasks": list(PAPER_BASE_AVERAGE), "metrics": metrics, "missing": missing}
    scores = [tasks[t]["score"] for t in PAPER_BASE_AVERAGE]
    return {"score": sum(scores) / len(scores), "tasks": list(PAPER_BASE_AVERAGE), "metrics": metrics, "missing": []}


def _write_samples(folder: Path, samples: dict) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for task, rows in samples.items():
        with open(folder / f"{task}.jsonl", "w") as fh:
            for row in rows:
                fh.write(json.dumps(row, default=str) + "\n")


def _versions() -> dict[str, str]:
    from importlib.metadata import PackageNotFoundError, version

    found = {}
    for package in ("tpt", "lm_eval", "transformers", "torch", "datasets", "math-verify", "vllm"):
        try:
            found[package] = version(package)
        except PackageNotFoundError:
            pass
    return found
