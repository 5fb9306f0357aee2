"""Eval fixtures: a second tiny model (a different random init) to compare against the first."""

from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture(scope="session")
def other_tiny_model_dir(tmp_path_factory) -> Path:
    from tpt.tiny import build_tiny_model

    return build_tiny_model(tmp_path_factory.mktemp("tiny-model-b") / "tpt-b", seed=1)
