"""Fixtures for the augment tests: small corpora written per test, a session in-process backend."""

from __future__ import annotations

from pathlib import Path

import pytest
from augment_helpers import corpus_rows, write_jsonl


@pytest.fixture
def small_corpus(tmp_path) -> Path:
    return write_jsonl(tmp_path / "corpus.jsonl", corpus_rows(10))


@pytest.fixture(scope="session")
def hf_backend(tiny_model_dir):
    """One in-process backend for the session (loading a model is the slow part)."""
    from tpt.augment.backends.hf import TransformersBackend

    backend = TransformersBackend(str(tiny_model_dir), batch_size=8, device="cpu")
    yield backend
    backend.close()
