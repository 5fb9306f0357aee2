"""The plugin registry: an out-of-tree prompt strategy and executor, found by module path and by
entry point, run through the real augment stage; unknown names fail with the known ones listed."""

from __future__ import annotations

import json
import textwrap

import pytest

from tpt.augment.config import AugmentConfig
from tpt.augment.executors import EXECUTORS, LocalExecutor, make_executor
from tpt.augment.prompts import STRATEGIES, load_strategy
from tpt.augment.run import run_augment
from tpt.augment.specs import InputSpec
from tpt.config import build
from tpt.registry import PluginNotFound, Registry

PLUGIN = textwrap.dedent("""
    from dataclasses import dataclass

    @dataclass(frozen=True)
    class Shout:
        name: str
        template: str
        seed: int

        def build(self, doc_id, context):
            return self.template.replace("{{CONTEXT}}", context.upper())

    def make(arg, seed):
        return Shout("shout" if arg is None else f"shout:{arg}", "LOUDLY " + (arg or "") + ": {{CONTEXT}}", seed)

    def not_a_strategy(arg, seed):
        return 42

    class CountingExecutor:
        runs = 0

        def run(self, specs, ctx, total_rows):
            from tpt.augment.executors import LocalExecutor

            CountingExecutor.runs += 1
            return LocalExecutor().run(specs, ctx, total_rows)
""")


@pytest.fixture
def plugin_module(tmp_path, monkeypatch):
    """A module outside tpt, importable as ``my_tpt_plugin``, and an installed distribution whose
    entry points name it (the files pip would write for a package declaring them)."""
    root = tmp_path / "site"
    root.mkdir()
    (root / "my_tpt_plugin.py").write_text(PLUGIN)
    dist = root / "my_tpt_plugin-0.1.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: my-tpt-plugin\nVersion: 0.1\n")
    (dist / "entry_points.txt").write_text(
        "[tpt.strategies]\nshout = my_tpt_plugin:make\n\n[tpt.executors]\ncounting = my_tpt_plugin:CountingExecutor\n"
    )
    monkeypatch.syspath_prepend(str(root))
    return root


def test_strategy_from_a_module_path(plugin_module):
    strategy = load_strategy("my_tpt_plugin:make:now", seed=3)
    assert strategy.build("d", "a doc") == "LOUDLY now: A DOC" and strategy.seed == 3
    assert load_strategy("my_tpt_plugin:make").build("d", "x") == "LOUDLY : X"


def test_strategy_and_executor_by_entry_point(plugin_module):
    assert "shout" in STRATEGIES.names() and "counting" in EXECUTORS.names()
    assert load_strategy("shout:hey").build("d", "doc") == "LOUDLY hey: DOC"
    assert type(make_executor("counting")).__name__ == "CountingExecutor"


def test_a_plugin_strategy_and_executor_run_the_augment_stage(plugin_module, tmp_path):
    import my_tpt_plugin

    rows = [{"id": f"d{i}", "text": f"document number {i}"} for i in range(3)]
    (tmp_path / "c.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    cfg = build(
        AugmentConfig,
        inputs=[InputSpec(tmp_path / "c.jsonl")],
        out=tmp_path / "run",
        backend="lab-expert",
        progress=False,
        strategy="shout:hey",
        executor="my_tpt_plugin:CountingExecutor",
    )
    summary = run_augment(cfg)
    assert summary.failed == 3  # the lab expert fails documents without lab metadata: each with a row saying why
    assert my_tpt_plugin.CountingExecutor.runs == 1
    manifest = json.loads((tmp_path / "run" / "manifest.json").read_text())
    assert "LOUDLY hey: {{CONTEXT}}" in json.dumps(manifest)  # the plugin's template is part of the run's identity


def test_unknown_names_list_the_known_ones():
    with pytest.raises(PluginNotFound, match=r"unknown --strategy 'nonsense'; known: default, random-focus"):
        load_strategy("nonsense")
    with pytest.raises(PluginNotFound, match="known: local, ray"):
        make_executor("slurm")
    with pytest.raises(PluginNotFound, match="no module named 'no_such_pkg.mod'"):
        load_strategy("no_such_pkg.mod:make")
    with pytest.raises(ValueError, match="local takes no ':ARGUMENT'"):
        make_executor("local:4")
    with pytest.raises(PluginNotFound, match="has no attribute 'nope'"):
        make_executor("tpt.augment.executors:nope")


def test_plugin_that_is_not_a_strategy_is_refused(plugin_module):
    with pytest.raises(ValueError, match="returned int, which lacks name, template, build"):
        load_strategy("my_tpt_plugin:not_a_strategy")


def test_registered_objects_and_lazy_strings():
    reg = Registry("executor", "--executor", {"lazy": "tpt.augment.executors:LocalExecutor"})
    reg.register("direct", LocalExecutor)
    assert reg.load("lazy") is LocalExecutor and reg.load("direct") is LocalExecutor
    assert reg.names()[:2] == ["lazy", "direct"]


EVAL_KIND = textwrap.dedent("""
    from tpt.evaluate.models import ModelTarget

    def make(cfg):
        return [ModelTarget(f"echo-{m}", m, "dummy", {"seen_batch": cfg.local.batch_size}) for m in cfg.models]
""")


def test_an_out_of_tree_eval_model_kind_from_a_module_path(tmp_path, monkeypatch):
    from tpt.evaluate.config import EvalConfig
    from tpt.evaluate.models import MODEL_KINDS, ModelNotLoadable, model_targets

    (tmp_path / "my_eval_kind.py").write_text(EVAL_KIND)
    monkeypatch.syspath_prepend(str(tmp_path))
    cfg = build(EvalConfig, models=["a", "b"], backend="my_eval_kind:make", batch_size="3")
    targets = model_targets(cfg)  # no folder checks: the plugin decides what a model is
    assert [(t.name, t.lm, t.args["seen_batch"]) for t in targets] == [("echo-a", "dummy", 3), ("echo-b", "dummy", 3)]
    assert {"hf", "vllm", "server"} <= set(MODEL_KINDS.names())
    with pytest.raises(ModelNotLoadable, match=r"unknown --backend 'nope'; known: hf, vllm, server"):
        model_targets(build(EvalConfig, models=["a"], backend="nope"))
    server = model_targets(build(EvalConfig, base_url="http://127.0.0.1:9/v1", model="m", concurrency=5))
    assert server[0].lm == "tpt-local-completions" and server[0].args["num_concurrent"] == 5
