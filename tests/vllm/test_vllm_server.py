"""`tpt augment --backend openai` end to end against the session's real vLLM server.

Sampling honoured (same seed -> same trajectories, another seed -> others), thinking read from
`message.reasoning` (reasoning parser on) and from the completion text (completions API: no parser),
the `</think>` stop and `finish_reason=length`, kill -9 and rerun, faults injected by a proxy, and a
server that dies (one event with its reason, not a failure per request).
"""

from __future__ import annotations

import asyncio
import json
import sys
from collections import Counter
from pathlib import Path

import httpx
import pytest
from augment_helpers import corpus_rows, make_config, write_jsonl
from fault_proxy import FaultProxy
from vllm_helpers import mostly_identical

from tpt.augment.backends.base import GenRequest
from tpt.augment.backends.openai import OpenAIBackend
from tpt.augment.cli import main as augment_main
from tpt.augment.run import run_augment
from tpt.io.runs import iter_records
from tpt.records import Document

FAULT_PROXY = Path(__file__).resolve().parents[1] / "augment" / "fault_proxy.py"


def vllm_config(tmp_path, corpus, base_url, model, name="run", **kw):
    values = dict(
        backend="openai",
        base_url=base_url,
        model=model,
        tokenizer=model,
        concurrency=8,
        retry_backoff=0.05,
        timeout=120,
        max_thinking_tokens=48,
        max_doc_tokens=256,
        out=tmp_path / name,
    )
    values.update(kw)
    return make_config(tmp_path, [corpus], **values)


def thinking_by_key(out: Path) -> dict:
    return {(r.id, r.sample): r.thinking for r in iter_records(out)}


def test_chat_with_reasoning_parser_seeds_and_think_stop(tmp_path, vllm_server):
    corpus = write_jsonl(tmp_path / "c.jsonl", corpus_rows(8))
    runs = {}
    for name, seed in (("a", 0), ("b", 0), ("c", 1)):
        cfg = vllm_config(tmp_path, corpus, vllm_server.base_url, vllm_server.model, name=name, samples=2, seed=seed)
        summary = run_augment(cfg)
        assert (summary.records, summary.failed, summary.exit_code) == (16, 0, 0), vllm_server.log()
        runs[name] = thinking_by_key(cfg.out)
    records = list(iter_records(tmp_path / "a"))
    assert all(r.backend == "openai" and "</think>" not in r.thinking for r in records)
    assert sum(bool(r.thinking) for r in records) >= 12  # the thinking is read from `reasoning`
    stopped = [r for r in records if r.finish_reason == "stop" and r.thinking_tokens < 48]
    assert stopped, "no trajectory ended at </think>: the stop string did not fire"
    assert mostly_identical(runs["a"], runs["b"])  # same --seed: the same trajectories
    assert sum(runs["a"][k] != runs["c"][k] for k in runs["a"]) >= 12  # another seed: other trajectories

    # Where the thinking came from: the parser's field (vLLM >= 0.10 calls it `reasoning`).
    body = {
        "model": vllm_server.model,
        "messages": [{"role": "user", "content": "Explain primes."}],
        "max_tokens": 48,
        "stop": ["</think>"],
        "seed": 3,
        "temperature": 0.6,
    }
    message = httpx.post(f"{vllm_server.base_url}/chat/completions", json=body, timeout=120).json()["choices"][0][
        "message"
    ]
    assert (message.get("reasoning") or message.get("reasoning_content")) and not message.get("content")


def test_completions_without_parser_and_length_finish(tmp_path, vllm_server):
    corpus = write_jsonl(tmp_path / "c.jsonl", corpus_rows(12))
    cfg = vllm_config(
        tmp_path, corpus, vllm_server.base_url, vllm_server.model, api="completions", max_thinking_tokens=3
    )
    summary = run_augment(cfg)
    assert (summary.records, summary.failed) == (12, 0), vllm_server.log()
    records = list(iter_records(cfg.out))
    at_budget = [r for r in records if r.finish_reason == "length"]
    assert at_budget and all(r.thinking_tokens == 3 for r in at_budget)
    assert all(r.thinking_tokens <= 3 for r in records)
    stats = json.loads((cfg.out / "stats.json").read_text())
    assert stats["length_finish_rate"] == pytest.approx(len(at_budget) / 12)


def test_vllm_gets_only_the_documents_requests(tmp_path, vllm_server):
    """vLLM names itself in its model list (``owned_by``) and honours a request's sampling as sent, so
    ``--server-sampling auto`` sends it no probe (a generation round trip in every run's start-up):
    the proxy sees the documents' requests and nothing else."""
    corpus = write_jsonl(tmp_path / "c.jsonl", corpus_rows(4))
    with FaultProxy(vllm_server.root, faults=0) as proxy:
        cfg = vllm_config(tmp_path, corpus, proxy.base_url, vllm_server.model, api="completions")
        assert cfg.backend.openai.server_sampling == "auto" and cfg.sampling.temperature > 0
        summary = run_augment(cfg)
    assert (summary.records, summary.failed) == (4, 0), vllm_server.log()
    assert len(proxy.bodies) == 4 and not any("generation_config" in body for body in proxy.bodies)


def test_requests_go_out_from_a_window_of_concurrency_tasks(tmp_path, vllm_server):
    """At most --concurrency request tasks (+ the one that runs them) exist at any time: the client's
    work per answer must not grow with the shard (64 MiB of documents at scale)."""
    corpus = write_jsonl(tmp_path / "c.jsonl", corpus_rows(1))
    cfg = vllm_config(tmp_path, corpus, vllm_server.base_url, vllm_server.model, concurrency=3, max_thinking_tokens=4)
    backend = OpenAIBackend(cfg.backend, cfg.sampling)
    requests = [
        GenRequest(doc=Document(id=f"d{i}", text="x"), sample=0, prompt=f"Count to {i}.", seed=i) for i in range(10)
    ]
    tasks, finished = [], []
    try:
        for i, result in backend.generate_stream(requests, cfg.sampling.params()):
            assert result.error is None, result.error
            tasks.append(len(asyncio.all_tasks(backend._loop)))
            finished.append(i)
    finally:
        backend.close()
    assert sorted(finished) == list(range(10)) and max(tasks) <= 3 + 1


def test_kill_9_then_rerun_against_vllm(tmp_path, vllm_server):
    from test_resume import kill_after, saved_records, start

    corpus = write_jsonl(tmp_path / "corpus.jsonl", corpus_rows(16))
    out = tmp_path / "run"
    argv = [
        str(corpus),
        "--out",
        str(out),
        "--backend",
        "openai",
        "--base-url",
        vllm_server.base_url,
        "--model",
        vllm_server.model,
        "--tokenizer",
        vllm_server.model,
        "--samples",
        "2",
        "--max-thinking-tokens",
        "64",
        "--max-doc-tokens",
        "256",
        "--shard-size",
        "4",
        "--checkpoint-records",
        "2",
        "--concurrency",
        "2",
        "--no-progress",
    ]
    assert kill_after(start(argv), out, at_least=6, timeout=300), "the run finished before it could be killed"
    assert 6 <= saved_records(out) < 32
    final = start(argv)
    log, _ = final.communicate(timeout=600)
    assert final.returncode == 0, log
    counts = Counter((r.id, r.sample) for r in iter_records(out))
    assert set(counts) == {(f"doc-{i}", s) for i in range(16) for s in range(2)} and set(counts.values()) == {1}
    assert "32 records" in log and "(32 new)" not in log


def test_retries_through_fault_proxy_in_front_of_vllm(tmp_path, vllm_server):
    corpus = write_jsonl(tmp_path / "c.jsonl", corpus_rows(10))
    with FaultProxy(vllm_server.root, faults=8) as proxy:
        cfg = vllm_config(
            tmp_path, corpus, proxy.base_url, vllm_server.model, max_retries=4, concurrency=4, server_sampling="native"
        )
        summary = run_augment(cfg)
    assert (summary.records, summary.failed) == (10, 0)
    assert proxy.injected == [429, 500, "drop", 503] * 2
    assert all(r.thinking or r.finish_reason == "stop" for r in iter_records(cfg.out))


def test_a_dead_server_is_one_event_and_the_rerun_finishes(tmp_path, vllm_server, capsys):
    """The server dies mid-run (a proxy process in front of vLLM exits after 5 answers): tpt says so
    once, with the reason, keeps what finished, writes no failed rows; a rerun finishes the rest."""
    corpus = write_jsonl(tmp_path / "c.jsonl", corpus_rows(24))
    serve = f"{sys.executable} {FAULT_PROXY} {{port}} {vllm_server.root} 0 5"
    base = [
        str(corpus),
        "--out",
        str(tmp_path / "run"),
        "--backend",
        "openai",
        "--model",
        vllm_server.model,
        "--max-thinking-tokens",
        "16",
        "--max-doc-tokens",
        "256",
        "--no-progress",
        "--concurrency",
        "2",
        "--checkpoint-records",
        "1",
        "--retry-backoff",
        "0.05",
        "--server-sampling",
        "native",
    ]
    # --serve with no restarts left: the death stops the run (exit 3) with the server's report.
    assert augment_main(base + ["--serve", serve, "--serve-restarts", "0"]) == 3
    err = capsys.readouterr().err
    assert err.count("the generation engine died") == 1 and "exited with code 1" in err
    assert "stopping after 0 restart(s)" in err
    from test_resume import saved_records

    assert saved_records(tmp_path / "run") >= 4  # what finished before the death is on disk (as parts)
    assert not list((tmp_path / "run").glob("failed/*.parquet"))
    # With restarts: the dying server is started again until the run is done.
    assert augment_main(base + ["--serve", serve, "--serve-restarts", "6"]) == 0
    err = capsys.readouterr().err
    assert "restarting the server (1 of at most 6" in err and "24 records" in err


def test_preflight_checks_model_name_and_context_before_any_request(tmp_path, vllm_server, capsys):
    from vllm_helpers import MAX_MODEL_LEN

    corpus = write_jsonl(tmp_path / "c.jsonl", corpus_rows(4))
    base = [
        str(corpus),
        "--backend",
        "openai",
        "--base-url",
        vllm_server.base_url,
        "--tokenizer",
        vllm_server.model,
        "--no-progress",
        "--max-doc-tokens",
        "256",
    ]
    assert (
        augment_main(base + ["--out", str(tmp_path / "a"), "--model", "not-served", "--max-thinking-tokens", "8"]) == 2
    )
    assert "not 'not-served'" in capsys.readouterr().err
    assert (
        augment_main(
            base
            + ["--out", str(tmp_path / "b"), "--model", vllm_server.model, "--max-thinking-tokens", str(MAX_MODEL_LEN)]
        )
        == 2
    )
    err = capsys.readouterr().err
    assert f"max_model_len {MAX_MODEL_LEN} tokens" in err and "--max-thinking-tokens" in err
    assert not list((tmp_path / "b").glob("data/*.parquet"))


def test_preflight_compares_the_local_tokenizer_with_the_servers(tmp_path, vllm_server, capsys):
    """A local tokenizer that splits text otherwise than the served model's stops the run before any request."""
    from tpt.prepare.tokenizer import train_tokenizer
    from tpt.tiny import SAMPLE_TEXTS

    other = train_tokenizer(SAMPLE_TEXTS * 5, tmp_path / "other-tokenizer", vocab_size=300, min_frequency=1)
    corpus = write_jsonl(tmp_path / "c.jsonl", corpus_rows(4))
    argv = [str(corpus), "--backend", "openai", "--base-url", vllm_server.base_url, "--model", vllm_server.model]
    argv += ["--no-progress", "--max-doc-tokens", "64", "--max-thinking-tokens", "8"]
    assert augment_main(argv + ["--out", str(tmp_path / "a"), "--tokenizer", str(other)]) == 2
    err = capsys.readouterr().err
    assert "does not split text as" in err and "--tokenizer" in err and str(other) in err
    assert not list((tmp_path / "a").glob("data/*.parquet"))
    # The served model's own tokenizer passes the same check, and the run goes on.
    assert augment_main(argv + ["--out", str(tmp_path / "b"), "--tokenizer", vllm_server.model]) == 0
