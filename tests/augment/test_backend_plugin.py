"""Backends are plugins: one outside the tpt package is named by "module:factory" (or an entry
point in group tpt.backends) and runs through the real augment stage; tpt.augment names none."""

from __future__ import annotations

from pathlib import Path

import pytest

from tpt.augment.backends.base import backend_needs_model, load_backend_factory
from tpt.augment.config import AugmentConfig
from tpt.augment.run import run_augment
from tpt.config import build
from tpt.io.runs import iter_records

PLUGIN = """
from tpt.augment.backends.base import GenResult


class Shouter:
    name = "shouter"

    def generate(self, requests, sampling):
        return [GenResult(text=r.doc.text.upper(), completion_tokens=len(r.doc.text.split())) for r in requests]

    def count_tokens(self, text):
        return len(text.split())

    def truncate(self, text, max_tokens):
        words = text.split()
        return " ".join(words[:max_tokens]), len(words), len(words) > max_tokens

    def close(self):
        pass


def make(config, sampling):
    return Shouter()


make.needs_model = False
"""


def test_out_of_tree_backend_from_a_module_path(tmp_path, monkeypatch):
    (tmp_path / "my_shouter_backend.py").write_text(PLUGIN)
    monkeypatch.syspath_prepend(str(tmp_path))
    (tmp_path / "corpus.jsonl").write_text('{"id": "a", "text": "think about this"}\n{"id": "b", "text": "and this"}\n')
    cfg = build(
        AugmentConfig,
        inputs=[str(tmp_path / "corpus.jsonl")],
        out=tmp_path / "run",
        backend="my_shouter_backend:make",
        progress=False,
    )
    summary = run_augment(cfg)
    assert summary.records == 2 and summary.failed == 0
    assert sorted(r.thinking for r in iter_records(tmp_path / "run")) == ["AND THIS", "THINK ABOUT THIS"]


def test_unknown_and_broken_plugins_say_what_to_do(tmp_path, monkeypatch):
    with pytest.raises(ValueError, match="module.path:object"):
        load_backend_factory("no-such-backend")
    with pytest.raises(ValueError, match="no module named .no_such_module_xyz."):
        load_backend_factory("no_such_module_xyz:make")
    assert backend_needs_model("openai")


def test_the_core_never_names_the_lab():
    augment = Path(__file__).parents[2] / "src" / "tpt" / "augment"
    assert not [p for p in augment.rglob("*.py") if "tpt.lab" in p.read_text() or "lab-expert" in p.read_text()]
