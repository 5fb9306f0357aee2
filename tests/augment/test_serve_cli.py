"""--serve lifecycle (a real process: started, health-checked, always stopped) and the CLI."""

from __future__ import annotations

import os
import shlex
import sys
from pathlib import Path

import pytest
from augment_helpers import corpus_rows, write_jsonl

from tpt.augment.cli import main as augment_main
from tpt.augment.serve import ServedModel


def static_server_command(root) -> str:
    # A real HTTP server whose /v1/models answers 200: enough for the health check.
    (root / "v1").mkdir(parents=True, exist_ok=True)
    (root / "v1" / "models").write_text('{"data": []}')
    return f"{sys.executable} -m http.server {{port}} --bind 127.0.0.1 --directory {root}"


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def test_served_model_is_stopped_on_error(tmp_path):
    with pytest.raises(RuntimeError, match="boom"):
        with ServedModel(static_server_command(tmp_path), "m", timeout=30) as served:
            pid = served.process.pid
            assert served.base_url.endswith("/v1") and alive(pid)
            raise RuntimeError("boom")
    served.process.wait(timeout=5)
    assert served.process.returncode is not None


def test_server_that_dies_is_reported(tmp_path):
    with pytest.raises(RuntimeError, match="exited with code"):
        with ServedModel(f"{sys.executable} -c 'import sys; sys.exit(3)' {{port}}", "m", timeout=30):
            pass


def test_cli_serve_starts_uses_and_stops_the_server(tmp_path, openai_server, capsys):
    """--serve through the CLI: the 'server' is a real process (a proxy in front of the session's
    transformers serve), started on a free port, health-checked, used, and stopped at the end."""
    import re

    import httpx

    corpus = write_jsonl(tmp_path / "c.jsonl", corpus_rows(3))
    proxy_script = Path(__file__).with_name("fault_proxy.py")
    serve = f"{sys.executable} {proxy_script} {{port}} {openai_server.base_url.removesuffix('/v1')}"
    argv = [
        str(corpus),
        "--out",
        str(tmp_path / "run"),
        "--backend",
        "openai",
        "--serve",
        serve,
        "--model",
        openai_server.model,
        "--max-thinking-tokens",
        "4",
        "--no-progress",
        "--server-sampling",
        "native",
    ]
    assert augment_main(argv) == 0
    err = capsys.readouterr().err
    assert "3 records" in err
    port = re.search(r"fault_proxy.py (\d+) ", err).group(1)
    with pytest.raises(httpx.ConnectError):
        httpx.get(f"http://127.0.0.1:{port}/health", timeout=5)


def test_cli_refuses_mismatched_config_and_reports(tmp_path, tiny_model_dir, capsys):
    corpus = write_jsonl(tmp_path / "c.jsonl", corpus_rows(3) + ["{bad json"])
    base = [
        str(corpus),
        "--out",
        str(tmp_path / "run"),
        "--model",
        str(tiny_model_dir),
        "--max-thinking-tokens",
        "4",
        "--no-progress",
        "--device",
        "cpu",
    ]
    assert augment_main(base) == 1  # one row rejected -> non-zero exit
    err = capsys.readouterr().err
    assert "3 records" in err and "1 rejected" in err
    assert augment_main(base + ["--samples", "2"]) == 2
    assert "samples: run has 1, now 2" in capsys.readouterr().err
    assert augment_main(base) == 1 and "nothing to do" in capsys.readouterr().err


def test_cli_help(capsys):
    with pytest.raises(SystemExit) as exit_info:
        augment_main(["--help"])
    assert exit_info.value.code == 0
    out = capsys.readouterr().out
    assert "--max-doc-tokens" in out and "--shard-range" in out and "--serve" in out


def test_a_server_that_does_not_answer_stops_the_run_once(tmp_path, tiny_model_dir, capsys):
    """--base-url (a server tpt did not start) refusing connections, /health failing: one clear stop
    (exit 3), not a failed row per document; a later run carries on."""
    from tpt.augment.serve import free_port

    corpus = write_jsonl(tmp_path / "c.jsonl", corpus_rows(6))
    dead = f"http://127.0.0.1:{free_port()}/v1"
    argv = [
        str(corpus),
        "--out",
        str(tmp_path / "run"),
        "--backend",
        "openai",
        "--base-url",
        dead,
        "--model",
        str(tiny_model_dir),
        "--max-thinking-tokens",
        "8",
        "--no-progress",
        "--retry-backoff",
        "0.05",
    ]
    assert augment_main(argv) == 3
    err = capsys.readouterr().err
    assert "does not answer any more" in err and err.count("the generation engine died") == 1
    assert "rerun the same command" in err
    assert not list((tmp_path / "run").glob("failed/*.parquet"))


def test_serve_vllm_preset_is_tpts_launcher_with_cpu_safe_flags():
    from tpt.augment.serve import expand_preset
    from tpt.vllm_launch import serve_flags

    argv = shlex.split(
        expand_preset("vllm --reasoning-parser deepseek_r1", max_model_len=4096).format(model="M", port=9)
    )
    assert argv[1:5] == ["-m", "tpt.vllm_launch", "serve", "M"] and argv[argv.index("--port") + 1] == "9"
    assert argv[-2:] == ["--reasoning-parser", "deepseek_r1"] and argv[argv.index("--max-model-len") + 1] == "4096"
    assert expand_preset("vllm serve {model} --port {port}") == "vllm serve {model} --port {port}"  # the user's own
    cpu = serve_flags(4096, cpu=True)
    assert "--no-enable-chunked-prefill" in cpu and cpu[cpu.index("--max-num-batched-tokens") + 1] == "8192"
    assert "--no-enable-chunked-prefill" not in serve_flags(4096, cpu=False)
