"""`tpt eval` through vLLM scores as the in-process transformers path does (MMLU, BoolQ, float32):
over the session's vLLM server (log-likelihood tasks run without --server-logprobs: the server is
asked) and in-process (`--backend vllm`, lm-eval's `vllm` model with tpt's CPU engine settings)."""

from __future__ import annotations

import json

import pytest

from tpt.evaluate.cli import main
from tpt.evaluate.models import server_logprobs

TASKS = ["--tasks", "mmlu,boolq", "--mmlu-subjects", "anatomy,abstract_algebra", "--limit", "6", "--log-samples"]
LOGS = ("boolq", "anatomy", "abstract_algebra")


def per_item(out, task: str, metric: str = "acc") -> list:
    """(item, score) of every logged sample of the task whose log file name contains ``task``."""
    logs = sorted(out.glob(f"*.samples/*{task}*.jsonl"))
    assert len(logs) == 1, (task, sorted(p.name for p in out.glob("*.samples/*")))
    rows = [json.loads(line) for line in logs[0].read_text().splitlines()]
    return [(row["doc_id"], row[metric]) for row in sorted(rows, key=lambda r: r["doc_id"])]


def common(eval_data_dir) -> list[str]:
    return [*TASKS, "--data-dir", str(eval_data_dir), "--dtype", "float32"]


@pytest.fixture(scope="module")
def hf_scored(reasoning_model_dir, eval_data_dir, tmp_path_factory):
    """The reference: the checkpoint scored by the in-process transformers path (once for both tests)."""
    out = tmp_path_factory.mktemp("eval-hf")
    argv = [str(reasoning_model_dir), "--backend", "hf", "--device", "cpu", "--out", str(out), *common(eval_data_dir)]
    assert main(argv) == 0
    return out


def assert_scored_alike(out, reference) -> dict:
    hf = json.loads(next(reference.glob("*.json")).read_text())
    other = json.loads(next(out.glob("*.json")).read_text())
    for task in ("mmlu", "boolq"):
        assert other["tasks"][task]["n"] == hf["tasks"][task]["n"] > 0
        assert other["tasks"][task]["score"] == pytest.approx(hf["tasks"][task]["score"], abs=1e-9), task
    for log in LOGS:
        assert per_item(out, log) == per_item(reference, log), log
    return other


def test_hf_and_vllm_server_score_mmlu_and_boolq_alike(hf_scored, vllm_server, eval_data_dir, tmp_path, openai_server):
    assert server_logprobs(vllm_server.base_url, vllm_server.model)
    assert not server_logprobs(openai_server.base_url, openai_server.model)  # transformers serve: no prompt logprobs
    argv = ["--base-url", vllm_server.base_url, "--model", vllm_server.model, "--out", str(tmp_path / "vllm")]
    assert main([*argv, *common(eval_data_dir)]) == 0
    assert assert_scored_alike(tmp_path / "vllm", hf_scored)["lm_eval_model"] == "tpt-local-completions"


def test_hf_and_in_process_vllm_score_mmlu_and_boolq_alike(hf_scored, reasoning_model_dir, eval_data_dir, tmp_path):
    from vllm_helpers import require_vllm

    require_vllm()
    out = tmp_path / "vllm-in-process"
    assert main([str(reasoning_model_dir), "--backend", "vllm", "--out", str(out), *common(eval_data_dir)]) == 0
    scored = assert_scored_alike(out, hf_scored)
    assert scored["lm_eval_model"] == "vllm" and scored["dtype"] == "float32"
    assert scored["versions"]["vllm"].startswith("0.")  # lm-eval read vLLM's version (the CPU package's alias)
