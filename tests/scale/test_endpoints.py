"""Several servers as one: load balancing, fail-over, and `--serve-replicas` (one server per GPU)."""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import httpx
import pytest

from tpt.augment.backends.openai import make_backend
from tpt.augment.config import AugmentConfig
from tpt.augment.endpoints import BalancedOpenAIBackend, EndpointPool, gpu_groups, serve_replicas
from tpt.augment.run import run_augment
from tpt.augment.serve import free_port
from tpt.config import build


def test_pool_prefers_the_least_loaded_server_and_avoids_one_that_failed():
    pool = EndpointPool(["http://a/v1", "http://b/v1", "http://c/v1"], cooldown=30.0)
    assert [pool.pick() for _ in range(3)] == [0, 1, 2]  # idle pool: round-robin
    pool.in_flight = [3, 1, 2]
    assert pool.pick() == 1
    pool.failed(1)
    assert pool.pick() == 2  # b sits out its cool-down although it is the least loaded
    pool.succeeded(1)
    assert pool.pick() == 1
    for i in range(3):
        pool.failed(i)
    assert pool.pick() in (0, 1, 2)  # all down: still try rather than stall


def test_gpu_groups_split_gpus_between_replicas():
    gpus = ["0", "1", "2", "3"]
    assert gpu_groups(0, gpus) == ["0", "1", "2", "3"]  # one per GPU
    assert gpu_groups(2, gpus) == ["0,1", "2,3"]  # tensor-parallel pairs
    assert gpu_groups(1, gpus) == [None]  # a single server sees every GPU, as without replicas
    assert gpu_groups(6, ["0", "1"]) == ["0", "1", "0", "1", "0", "1"]  # several small servers per GPU
    assert gpu_groups(3, []) == [None, None, None]  # CPU servers
    with pytest.raises(ValueError, match="no GPU is visible"):
        gpu_groups(0, [])
    with pytest.raises(ValueError, match="expected http"):
        build(AugmentConfig, inputs=["x"], out="o", base_url="127.0.0.1:8000/v1,http://x/v1")
    urls = build(AugmentConfig, inputs=["x"], out="o", base_url="http://a/v1/, http://b/v1").backend.openai.base_url
    assert urls == ["http://a/v1", "http://b/v1"]


def test_serve_replicas_gives_each_server_its_gpu_and_stops_them_all(tmp_path, stub_server_script, monkeypatch):
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "3,5")
    root = stub_server_script.parent / "stub-root"
    command = f"{sys.executable} {stub_server_script} {{port}} {root}"
    config = build(AugmentConfig, inputs=["x"], out=tmp_path / "run", serve=command, model="m", serve_timeout=60.0)
    config.serve.replicas = 0
    with serve_replicas(config) as urls:
        assert len(urls) == 2
        for url in urls:
            assert httpx.get(f"{url}/models", timeout=10).status_code == 200
        ports = [url.split(":")[2].split("/")[0] for url in urls]
        assert sorted((root / f"gpus-{p}").read_text() for p in ports) == ["3", "5"]
    time.sleep(0.5)
    for url in urls:
        with pytest.raises(httpx.HTTPError):
            httpx.get(f"{url}/models", timeout=2)


def test_balanced_backend_spreads_requests_and_routes_around_a_dead_server(tmp_path, corpus, openai_server):
    live = openai_server.base_url  # the same real server under two names: two "replicas"
    twin = live.replace("127.0.0.1", "localhost")
    dead = f"http://127.0.0.1:{free_port()}/v1"  # nothing listens here
    config = build(
        AugmentConfig,
        inputs=[str(corpus(6))],
        out=tmp_path / "run",
        backend="openai",
        model=openai_server.model,
        tokenizer=openai_server.model,
        base_url=f"{live},{twin},{dead}",
        concurrency=2,
        max_thinking_tokens=8,
        retry_backoff=0.05,
        timeout=60,
        shard_size=3,
        samples=2,
        progress=False,
    )
    backend = make_backend(config.backend, config.sampling)
    assert isinstance(backend, BalancedOpenAIBackend)
    try:
        summary = run_augment(config, backend=backend)
    finally:
        backend.close()
    assert (summary.records, summary.failed) == (12, 0)
    live_sent, twin_sent, dead_sent = backend.pool.sent
    assert live_sent > 0 and twin_sent > 0
    # The dead server is tried, then sits out growing cool-downs: most attempts go to live servers.
    assert dead_sent < (live_sent + twin_sent) / 2, backend.pool.summary()


def test_cli_serve_replicas_spreads_a_run_over_two_servers(tmp_path, corpus, openai_server, capsys):
    """`--serve CMD --serve-replicas 2` through the CLI: two real server processes (proxies in front of
    the session's transformers serve), both used, both stopped."""
    from tpt.augment.cli import main as augment_main

    proxy = Path(__file__).parents[1] / "augment" / "fault_proxy.py"
    serve = f"{sys.executable} {proxy} {{port}} {openai_server.base_url.removesuffix('/v1')}"
    argv = [
        str(corpus(6)),
        "--out",
        str(tmp_path / "run"),
        "--backend",
        "openai",
        "--serve",
        serve,
        "--serve-replicas",
        "2",
        "--model",
        openai_server.model,
        "--max-thinking-tokens",
        "4",
        "--no-progress",
        "--server-sampling",
        "native",
        "--concurrency",
        "1",
    ]
    assert augment_main(argv) == 0
    err = capsys.readouterr().err
    assert "2 servers up" in err
    urls = err.split("2 servers up: ")[1].splitlines()[0].split(", ")
    assert len(set(urls)) == 2
    stats = json.loads((tmp_path / "run" / "stats.json").read_text())
    assert (stats["records"], stats["failed"]) == (6, 0)
    for url in urls:  # stopped at the end of the run
        with pytest.raises(httpx.HTTPError):
            httpx.get(f"{url}/models", timeout=2)
