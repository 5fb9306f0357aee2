"""One real vLLM server for the session, on 127.0.0.1, serving a tiny model the fixture builds.

vLLM takes ~45 s to start on an idle 2-core machine (minutes on a busy one), so every test that
needs a server shares this one, started with the command ``--serve vllm`` uses (``tpt.vllm_launch``:
CPU-safe settings) plus ``--reasoning-parser deepseek_r1``.  The suite starts vLLM three times in
all: this server, the ``--serve vllm`` test, and the in-process ``--backend vllm`` engine.

vLLM is part of ``make install``: when it is missing these tests fail under CI (``CI`` set), so a
broken install cannot pass as skipped tests; elsewhere they skip with the reason.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))
from vllm_helpers import MAX_MODEL_LEN, REASONING_PARSER, require_vllm  # noqa: E402

# The augment tests' helpers (corpus writers, the fault proxy, the kill -9 driver) are reused here.
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "augment"))


def pytest_collection_modifyitems(config, items):
    for item in items:
        if "tests/vllm/" in str(item.fspath).replace(os.sep, "/"):
            item.add_marker(pytest.mark.vllm)


@pytest.fixture(scope="session")
def reasoning_model_dir(tmp_path_factory) -> Path:
    """head_dim 32, ``<think>``/``</think>`` ordinary added tokens, closes its thinking now and then."""
    from tpt.tiny import build_reasoning_tiny_model

    return build_reasoning_tiny_model(tmp_path_factory.mktemp("reasoning-model") / "model")


class VLLMServer:
    def __init__(self, served, model: str):
        self.served = served
        self.base_url = served.base_url  # ends in /v1
        self.root = served.base_url.removesuffix("/v1")
        self.model = model  # the folder: vLLM serves the model under its path

    def log(self) -> str:
        from tpt.augment.serve import log_tail

        return log_tail(self.served.log.name, 40)


@pytest.fixture(scope="session")
def vllm_server(reasoning_model_dir, tmp_path_factory):
    require_vllm()
    from tpt.augment.serve import ServedModel
    from tpt.vllm_launch import cpu_environment, serve_command

    work = tmp_path_factory.mktemp("vllm-server")
    command = serve_command(max_model_len=MAX_MODEL_LEN, extra=f"--reasoning-parser {REASONING_PARSER}")
    with ServedModel(
        command, str(reasoning_model_dir), timeout=900, env=cpu_environment(str(work / "cache")), log_dir=work
    ) as served:
        yield VLLMServer(served, str(reasoning_model_dir))
