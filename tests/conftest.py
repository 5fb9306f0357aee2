"""Shared fixtures: tiny locally built models, the shared benchmark data.

Stage-specific fixtures live in tests/<stage>/conftest.py.  Nothing here downloads anything.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def _no_hub() -> None:
    # Tests must never reach a hub: fail fast instead of hanging on the closed network.
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


_no_hub()


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory) -> Path:
    """A random-weight Qwen2 model (~0.16M params) with a locally trained BPE tokenizer."""
    from tpt.tiny import build_tiny_model

    return build_tiny_model(tmp_path_factory.mktemp("tiny-model") / "model")


@pytest.fixture(scope="session")
def eval_data_dir() -> Path:
    """The offline benchmark files (../shared/data/eval, or $TPT_EVAL_DATA)."""
    path = Path(os.environ.get("TPT_EVAL_DATA", REPO.parent / "shared" / "data" / "eval"))
    if not path.is_dir():
        # In CI the data sits beside the clone: a missing folder there is a failure, not a skip.
        if os.environ.get("CI"):
            pytest.fail(f"benchmark data not found at {path} (set TPT_EVAL_DATA)")
        pytest.skip(f"benchmark data not found at {path}")
    return path


def has_cuda() -> bool:
    try:
        import torch

        return torch.cuda.is_available()
    except Exception:
        return False


def pytest_collection_modifyitems(config, items):
    if has_cuda():
        return
    skip_gpu = pytest.mark.skip(reason="needs a CUDA device")
    for item in items:
        if "gpu" in item.keywords:
            item.add_marker(skip_gpu)


class _Server:
    def __init__(self, base_url: str, model: str):
        self.base_url = base_url  # ends in /v1
        self.model = model


@pytest.fixture(scope="session")
def openai_server(tiny_model_dir):
    """A real OpenAI-compatible server (`transformers serve`) on 127.0.0.1 serving the tiny model.

    Started once per session, always stopped.  No model is forced, so a test may also name
    another local model folder in its requests; ``.model`` is the tiny model's folder.
    """
    import shutil
    import sys

    from tpt.augment.serve import ServedModel

    exe = Path(sys.executable).parent / "transformers"
    if not exe.exists() and shutil.which("transformers") is None:
        pytest.skip("transformers serve is not installed (pip install 'transformers[serving]')")
    command = f"{exe if exe.exists() else 'transformers'} serve --host 127.0.0.1 --port {{port}} --model-timeout 7200"
    with ServedModel(command, str(tiny_model_dir), timeout=180) as served:
        yield _Server(served.base_url, str(tiny_model_dir))
