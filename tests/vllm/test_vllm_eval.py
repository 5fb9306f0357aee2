"""`tpt eval` through the session's vLLM server: the log-likelihood tasks (MMLU, BoolQ) run without
--server-logprobs (the server is asked), and score as the in-process transformers path does."""

from __future__ import annotations

import json

import pytest

from tpt.evaluate.cli import main
from tpt.evaluate.models import server_logprobs

TASKS = ["--tasks", "mmlu,boolq", "--mmlu-subjects", "anatomy,abstract_algebra", "--limit", "6", "--log-samples"]


def per_item(out, task: str, metric: str = "acc") -> list:
    """(item, score) of every logged sample of the task whose log file name contains ``task``."""
    logs = sorted(out.glob(f"*.samples/*{task}*.jsonl"))
    assert len(logs) == 1, (task, sorted(p.name for p in out.glob("*.samples/*")))
    rows = [json.loads(line) for line in logs[0].read_text().splitlines()]
    return [(row["doc_id"], row[metric]) for row in sorted(rows, key=lambda r: r["doc_id"])]


def test_hf_and_vllm_score_mmlu_and_boolq_alike(
    reasoning_model_dir, vllm_server, eval_data_dir, tmp_path, openai_server
):
    assert server_logprobs(vllm_server.base_url, vllm_server.model)
    assert not server_logprobs(openai_server.base_url, openai_server.model)  # transformers serve: no prompt logprobs

    common = [*TASKS, "--data-dir", str(eval_data_dir), "--dtype", "float32"]
    assert (
        main([str(reasoning_model_dir), "--backend", "hf", "--device", "cpu", "--out", str(tmp_path / "hf"), *common])
        == 0
    )
    assert (
        main(
            ["--base-url", vllm_server.base_url, "--model", vllm_server.model, "--out", str(tmp_path / "vllm"), *common]
        )
        == 0
    )
    hf = json.loads(next((tmp_path / "hf").glob("*.json")).read_text())
    served = json.loads(next((tmp_path / "vllm").glob("*.json")).read_text())
    assert served["lm_eval_model"] == "tpt-local-completions"
    for task in ("mmlu", "boolq"):
        assert served["tasks"][task]["n"] == hf["tasks"][task]["n"] > 0
        assert served["tasks"][task]["score"] == pytest.approx(hf["tasks"][task]["score"], abs=1e-9), task
    for log in ("boolq", "anatomy", "abstract_algebra"):
        assert per_item(tmp_path / "vllm", log) == per_item(tmp_path / "hf", log), log
