"""Fixtures for tpt analyze / tpt filter tests (helpers live in analyze_helpers.py: a unique module name)."""

from __future__ import annotations

from pathlib import Path

import pytest
from analyze_helpers import write_run


@pytest.fixture
def make_run(tmp_path):
    def make(name: str, shards: list[list[dict]], manifest: dict | None = None) -> Path:
        return write_run(tmp_path / name, shards, manifest)

    return make
