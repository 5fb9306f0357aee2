"""The generator-comparison workflow (examples/compare_generators.py) at tiny size on CPU:
two arms (prompt strategies of a tiny generator) plus vanilla, side-by-side statistics and curves."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[2] / "examples" / "compare_generators.py"
TOPICS = ["derivatives", "primes", "photosynthesis", "boiling water", "mitochondria", "long multiplication"]


def load_script():
    spec = importlib.util.spec_from_file_location("compare_generators", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_arms_are_checked_before_anything_runs(tmp_path, capsys):
    script = load_script()
    for arms in (["a=--model m"], ["a=--model m", "a=--model n"], ["x/y=--model m", "b=--model n"]):
        with pytest.raises(SystemExit):
            script.main(["c.jsonl", "--out", str(tmp_path), "--tokenizer", "tok", *(f"--arm={a}" for a in arms)])
    assert "NAME=FLAGS" in capsys.readouterr().err and not any(tmp_path.iterdir())


@pytest.mark.slow
def test_two_strategies_side_by_side(tmp_path, tiny_model_dir, eval_data_dir, capsys):
    corpus = tmp_path / "corpus.jsonl"
    corpus.write_text(
        "".join(
            json.dumps({"id": f"d{i}", "text": f"Document {i} explains {TOPICS[i % 6]} step by step."}) + "\n"
            for i in range(12)
        )
    )
    gen = f"--backend transformers --model {tiny_model_dir} --device cpu --max-thinking-tokens 12 --no-progress"
    out = tmp_path / "cmp"
    argv = [
        str(corpus),
        "--out",
        str(out),
        "--tokenizer",
        str(tiny_model_dir),
        "--vanilla",
        "--augment",
        gen,
        "--arm",
        "default=--strategy default",
        "--arm",
        "back=--strategy back-thinking",
        "--prepare",
        "--seq-len 32",
        "--train",
        (
            "--model-preset 0.5m --tokens 2K --batch-tokens 256 --micro-batch 8 --save-at 1K "
            "--eval-every 0 --save-every 0 --no-progress --threads 1"
        ),
        "--eval",
        f"--tasks boolq --limit 2 --data-dir {eval_data_dir} --device cpu --backend hf --micro-batch 4",
    ]
    assert load_script().main(argv) == 0

    printed = capsys.readouterr().out
    assert (
        printed.count("$ tpt augment") == 2 and printed.count("$ tpt train") == 3 and "$ tpt analyze curves" in printed
    )
    stats = json.loads((out / "stats" / "stats.json").read_text())
    groups = stats["by"]["run"]["groups"]  # one column per arm, named after it
    assert list(groups) == ["default", "back"] and all(g["records"] == 12 and "flags" in g for g in groups.values())
    assert "| default | 12 |" in (out / "stats" / "report.md").read_text()
    for arm, strategy in (("default", "default"), ("back", "back-thinking")):
        manifest = json.loads((out / "aug" / arm / "manifest.json").read_text())
        assert manifest["fingerprint"]["strategy"] == strategy
    curves = json.loads((out / "curves" / "curves.json").read_text())
    assert list(curves["runs"]) == ["vanilla", "default", "back"]
    for run in curves["runs"].values():
        assert run["eval_points"] == 2  # the 1K snapshot and the final model, each scored on boolq
    assert {c["method"] for c in curves["comparisons"]} == {"default", "back"}

    # a rerun keeps every finished step: nothing is augmented, prepared, trained or evaluated again
    assert load_script().main(argv) == 0
    again = capsys.readouterr().out
    assert "$ tpt prepare" not in again and "$ tpt train" not in again and "$ tpt eval" not in again
