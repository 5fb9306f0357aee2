"""The openai backend against a real `transformers serve` on 127.0.0.1 (tiny random model)."""

from __future__ import annotations

import json
import shutil

import pytest
from augment_helpers import corpus_rows, make_config, write_jsonl
from fault_proxy import FaultProxy

from tpt.augment.backends.openai import OpenAIBackend
from tpt.augment.run import run_augment
from tpt.io.runs import iter_records


@pytest.fixture
def five_docs(tmp_path):
    return write_jsonl(tmp_path / "five.jsonl", corpus_rows(5))


def openai_config(tmp_path, corpus, base_url, model, **kw):
    values = dict(
        backend="openai", base_url=base_url, model=model, tokenizer=model, concurrency=4, retry_backoff=0.05, timeout=60
    )
    values.update(kw)
    return make_config(tmp_path, [corpus], **values)


@pytest.mark.parametrize("api", ["chat", "completions"])
def test_both_endpoints(tmp_path, five_docs, openai_server, api):
    cfg = openai_config(
        tmp_path, five_docs, openai_server.base_url, openai_server.model, api=api, samples=2, server_sampling="native"
    )
    summary = run_augment(cfg)
    assert summary.exit_code == 0 and summary.records == 10
    records = list(iter_records(cfg.out))
    assert all(r.backend == "openai" and 0 < r.thinking_tokens <= 8 for r in records)
    stats = json.loads((cfg.out / "stats.json").read_text())
    assert stats["this_run"]["prompt_tokens"] > 0


def test_retries_through_fault_injecting_proxy(tmp_path, small_corpus, openai_server, monkeypatch):
    secret = "sk-test-SECRET-123"
    monkeypatch.setenv("TPT_TEST_KEY", secret)
    root = openai_server.base_url.removesuffix("/v1")
    with FaultProxy(root, faults=6) as proxy:
        cfg = openai_config(
            tmp_path,
            small_corpus,
            proxy.base_url,
            openai_server.model,
            api_key_env="TPT_TEST_KEY",
            server_sampling="native",
            max_retries=3,
        )
        summary = run_augment(cfg)
    assert proxy.injected == [429, 500, "drop", 503, 429, 500]
    assert summary.exit_code == 0 and summary.records == 10 and summary.failed == 0
    assert len(proxy.bodies) == 10 + 6
    assert all(h.get("authorization", h.get("Authorization")) == f"Bearer {secret}" for h in proxy.headers)
    assert secret not in (cfg.out / "manifest.json").read_text()


def test_exhausted_retries_go_to_failed_and_are_retried(tmp_path, small_corpus, openai_server, monkeypatch):
    secret = "sk-never-logged"
    monkeypatch.setenv("TPT_TEST_KEY", secret)
    root = openai_server.base_url.removesuffix("/v1")
    with FaultProxy(root, faults=3, pattern=(500,)) as proxy:
        # One request in flight, no retries: the first three requests fail for good.
        cfg = openai_config(
            tmp_path,
            small_corpus,
            proxy.base_url,
            openai_server.model,
            concurrency=1,
            max_retries=0,
            server_sampling="native",
            api_key_env="TPT_TEST_KEY",
        )
        first = run_augment(cfg)
        failed = [json.dumps(r) for p in sorted((cfg.out / "failed").glob("*.parquet")) for r in _rows(p)]
        second = run_augment(cfg)  # same command, the faults are over: only the failed three are generated
    assert first.failed == 3 and first.records == 7 and first.exit_code == 1
    assert len(failed) == 3 and all("HTTP 500" in f and secret not in f for f in failed)
    assert second.new_records == 3 and second.records == 10 and second.failed == 0 and second.exit_code == 0
    assert not list((cfg.out / "failed").glob("*.parquet"))
    assert sorted(r.id for r in iter_records(cfg.out)) == sorted(f"doc-{i}" for i in range(10))


def test_client_errors_are_not_retried(tmp_path, five_docs, openai_server):
    with FaultProxy(openai_server.base_url.removesuffix("/v1"), faults=1, pattern=(400,)) as proxy:
        cfg = openai_config(
            tmp_path, five_docs, proxy.base_url, openai_server.model, concurrency=1, server_sampling="native"
        )
        summary = run_augment(cfg)
    assert summary.failed == 1 and len(proxy.bodies) == 5


def test_server_that_ignores_temperature_is_detected(tmp_path, small_corpus, openai_server):
    """transformers serve samples only when the model's generation config says do_sample."""
    greedy = tmp_path / "greedy-model"
    shutil.copytree(openai_server.model, greedy)
    gen = json.loads((greedy / "generation_config.json").read_text())
    gen.update(do_sample=False, temperature=None, top_p=None)
    (greedy / "generation_config.json").write_text(json.dumps(gen))
    cfg = openai_config(tmp_path, small_corpus, openai_server.base_url, str(greedy))
    backend = OpenAIBackend(cfg.backend, cfg.sampling)
    assert backend.send_generation_config  # the probe found it must send generation_config
    other = openai_config(tmp_path, small_corpus, openai_server.base_url, openai_server.model)
    sampling_model = OpenAIBackend(other.backend, other.sampling)
    assert not sampling_model.send_generation_config  # this one samples natively
    backend.close(), sampling_model.close()


def test_missing_tokenizer_is_a_clear_error(tmp_path, small_corpus, openai_server):
    cfg = openai_config(tmp_path, small_corpus, openai_server.base_url, "some-remote-model", tokenizer=None)
    with pytest.raises(ValueError, match="--tokenizer"):
        run_augment(cfg)


def _rows(path):
    import pyarrow.parquet as pq

    return pq.read_table(path).to_pylist()
