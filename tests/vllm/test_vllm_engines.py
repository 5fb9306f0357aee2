"""vLLM started by tpt itself: `--serve vllm` (the command users type) and `--backend vllm` in-process.

Each starts its own engine (~45 s on an idle 2-core machine), so each is one test doing several checks.
"""

from __future__ import annotations

import json

import httpx
import pytest
from augment_helpers import corpus_rows, make_config, write_jsonl
from vllm_helpers import mostly_identical

from tpt.augment.cli import main as augment_main
from tpt.augment.run import run_augment
from tpt.io.runs import iter_records


def test_serve_vllm_starts_uses_and_stops_vllm(tmp_path, reasoning_model_dir, capsys):
    """`tpt augment --serve vllm`: no reasoning parser, so the thinking comes back as the content."""
    from vllm_helpers import require_vllm

    require_vllm()
    corpus = write_jsonl(tmp_path / "c.jsonl", corpus_rows(6))
    out = tmp_path / "run"
    argv = [
        str(corpus),
        "--out",
        str(out),
        "--backend",
        "openai",
        "--serve",
        "vllm",
        "--model",
        str(reasoning_model_dir),
        "--max-model-len",
        "1024",
        "--max-doc-tokens",
        "256",
        "--max-thinking-tokens",
        "32",
        "--no-progress",
        "--serve-timeout",
        "900",
    ]
    assert augment_main(argv) == 0, capsys.readouterr().err
    err = capsys.readouterr().err
    assert "-m tpt.vllm_launch serve" in err and "--no-enable-chunked-prefill" in err and "6 records" in err
    records = list(iter_records(out))
    assert len(records) == 6 and sum(bool(r.thinking) for r in records) >= 4
    logs = list((out / "logs").glob("tpt-serve-*.log"))
    assert logs and "vLLM" in logs[0].read_text()  # the server's log is kept in the run folder
    port = err.split("--port ")[1].split()[0]
    with pytest.raises(httpx.HTTPError):  # stopped at the end of the run
        httpx.get(f"http://127.0.0.1:{port}/health", timeout=3)


def test_in_process_vllm_backend(tmp_path, reasoning_model_dir):
    from vllm_helpers import require_vllm

    require_vllm()
    from tpt.augment.backends.vllm import VLLMBackend

    corpus = write_jsonl(tmp_path / "c.jsonl", corpus_rows(10))
    cfg = make_config(
        tmp_path,
        [corpus],
        backend="vllm",
        model=str(reasoning_model_dir),
        samples=2,
        max_thinking_tokens=24,
        max_model_len=1024,
        max_doc_tokens=256,
        out=tmp_path / "a",
    )
    backend = VLLMBackend(cfg.backend_config(), cfg.sampling)
    try:
        first = run_augment(cfg, backend=backend)
        cfg_again = make_config(
            tmp_path,
            [corpus],
            backend="vllm",
            model=str(reasoning_model_dir),
            samples=2,
            max_thinking_tokens=24,
            max_model_len=1024,
            max_doc_tokens=256,
            out=tmp_path / "b",
        )
        second = run_augment(cfg_again, backend=backend)
        # The same records, resume and failure semantics as every backend: a rerun has nothing to do.
        rerun = run_augment(cfg, backend=backend)
        before = {(r.id, r.sample): r for r in iter_records(tmp_path / "a")}
        # A larger budget for the records that hit the old one; everything else is reused.
        cfg.sampling.max_thinking_tokens, cfg.regenerate_length = 64, True
        longer = run_augment(cfg, backend=backend)
    finally:
        backend.close()
    assert (first.records, first.failed, first.exit_code) == (20, 0, 0)
    assert second.records == 20 and rerun.nothing_to_do
    a = before  # the first run's records, as they were before --regenerate-length
    b = {(r.id, r.sample): r for r in iter_records(tmp_path / "b")}
    assert mostly_identical({k: r.thinking for k, r in a.items()}, {k: r.thinking for k, r in b.items()})
    assert len({r.thinking for r in a.values()}) >= 15  # samples of one document differ
    assert all(r.backend == "vllm" and r.thinking_tokens <= 24 and "</think>" not in r.thinking for r in a.values())
    assert any(r.finish_reason == "stop" for r in a.values()) and any(r.finish_reason == "length" for r in a.values())
    cut = {k for k, r in before.items() if r.finish_reason == "length"}
    after = {(r.id, r.sample): r for r in iter_records(tmp_path / "a")}
    assert longer.new_records == len(cut) and longer.records == 20 and longer.failed == 0
    assert {k: after[k] for k in after if k not in cut} == {k: before[k] for k in before if k not in cut}
    assert any(after[k].thinking_tokens > 24 for k in cut) and all(after[k].thinking_tokens <= 64 for k in cut)
    stats = json.loads((tmp_path / "a" / "stats.json").read_text())
    assert stats["this_run"]["new_records"] == len(cut)
