"""`tpt lab run --quick` end to end through the real stages: report, results, plots."""

from __future__ import annotations

import json
import time

import pytest

from tpt.lab import corpus
from tpt.lab.cli import main
from tpt.lab.families import load_family

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def quick_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("lab") / "quick"
    started = time.perf_counter()
    assert main(["run", "--quick", "--out", str(out)]) == 0
    return out, time.perf_counter() - started


def test_quick_run_writes_the_report(quick_run):
    out, seconds = quick_run
    assert seconds < 240, f"--quick took {seconds:.0f} s"  # 2 min target; slack for a shared, loaded CI box
    results = json.loads((out / "results.json").read_text())
    assert set(results["curves"]) == {"vanilla", "tpt", "vanilla-pool"}
    assert "data_efficiency" in results and "overall" in results["data_efficiency"]
    assert set(results["sft"]) == {"vanilla", "tpt"}
    for points in results["curves"].values():
        assert [p["tokens"] for p in points] == sorted(p["tokens"] for p in points) and len(points) == 2
        assert all(0.0 <= p["overall"]["mean"] <= 1.0 for p in points)
    # TPT samples are longer, so at the same token budget TPT has read fewer unique documents
    assert results["curves"]["tpt"][-1]["unique_docs"] < results["curves"]["vanilla"][-1]["unique_docs"]
    for fam, table in results["trajectory_lengths"].items():
        values = [table[k] for k in sorted(table, key=int)]
        assert values == sorted(values), (fam, values)
    report = (out / "report.md").read_text()
    assert "Data-efficiency multiplier" in report and "After SFT" in report
    for png in ("accuracy_vs_tokens", "accuracy_vs_unique_docs", "trajectory_length_vs_difficulty", "constrained_data", "sft"):
        path = out / "plots" / f"{png}.png"
        assert path.stat().st_size > 1000 and path.read_bytes()[:4] == b"\x89PNG"


def test_quick_run_heldout_is_disjoint_from_what_was_trained(quick_run):
    out, _ = quick_run
    seed_dir = out / "seed-0"
    heldout = corpus.read_heldout(seed_dir / "heldout.jsonl")
    families = {h.family: load_family(h.family, 0) for h in heldout}
    held = {corpus.problem_key(families[h.family], h.problem) for h in heldout}
    trained = [json.loads(line) for line in (seed_dir / "corpus.jsonl").read_text().splitlines()]
    assert held and trained
    assert not held & {corpus.problem_key(families[r["family"]], r["problem"]) for r in trained}
    questions = {families[h.family].question(h.problem) for h in heldout}
    sft = [json.loads(line)["messages"][0]["content"] for line in (seed_dir / "sft.jsonl").read_text().splitlines()]
    assert not questions & set(sft)


def test_rerun_reuses_finished_seeds(quick_run, capsys):
    out, _ = quick_run
    started = time.perf_counter()
    assert main(["run", "--quick", "--out", str(out)]) == 0
    assert "reusing" in capsys.readouterr().out
    assert time.perf_counter() - started < 60


def test_cli_errors(capsys, tmp_path):
    assert main(["nope"]) == 2
    assert main(["run", "--quick", "--full", "--out", str(tmp_path)]) == 2
    assert "exclusive" in capsys.readouterr().err


def test_doc_attention_reaches_every_training_run(tmp_path):
    out = tmp_path / "da"
    assert main(["run", "--quick", "--doc-attention", "--no-constrained", "--families", "chain_mod10", "--out", str(out)]) == 0
    runs = sorted((out / "seed-0" / "train").glob("*/train_config.json"))
    assert [p.parent.name for p in runs] == ["tpt", "tpt+sft", "vanilla", "vanilla+sft"]
    for path in runs:
        assert '"doc_attention": true' in path.read_text(), path
    assert json.loads((out / "results.json").read_text())["config"]["doc_attention"] is True
