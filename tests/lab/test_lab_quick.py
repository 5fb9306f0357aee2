"""`tpt lab run --quick` end to end through the real stages: report, results, plots, the leakage
scan over every text any arm trained on, and the dev / test seed separation."""

from __future__ import annotations

import json
import math
import time

import pytest

from tpt.lab.cli import main
from tpt.lab.config import PROFILES, LabConfig
from tpt.lab.leakage import scan

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def quick_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("lab") / "quick"
    started = time.perf_counter()
    assert main(["run", "--quick", "--out", str(out)]) == 0
    return out, time.perf_counter() - started


def test_quick_run_writes_the_report(quick_run):
    out, seconds = quick_run
    assert seconds < 300, f"--quick took {seconds:.0f} s"  # slack for a shared, loaded CI box
    results = json.loads((out / "results.json").read_text())
    prof = PROFILES["quick"]
    assert (
        results["split"] == "test"
        and results["test_seeds"] == list(prof.test_seeds)
        and results["dev_seed"] == prof.dev_seed
    )
    assert results["mode"] == {"vanilla": "reflect", "tpt": "reflect"}
    assert set(results["curves"]) == {"vanilla", "tpt"}
    # vanilla trains to 4 x TPT's budget, in one run with checkpoints
    assert results["curves"]["vanilla"][-1]["tokens"] == 4 * results["curves"]["tpt"][-1]["tokens"]
    for fam in prof.families:
        assert (
            0
            <= results["chance"][fam]["ci"][0]
            <= results["chance"][fam]["acc"]
            <= results["chance"][fam]["ci"][1]
            <= 1
        )
        for points in results["curves"].values():
            for p in points:
                lo, hi = p[fam]["ci"]
                assert lo <= p[fam]["acc"] <= hi and isinstance(p[fam]["at_chance"], bool)
        for e in results["data_efficiency"][fam]:
            assert e["kind"] in ("finite", "lower_bound", "upper_bound", "none") and len(e["ci"]) == 2
    assert results["curves"]["tpt"][-1]["unique_docs"] < results["curves"]["vanilla"][-1]["unique_docs"]
    assert {"torch", "transformers", "tokenizers", "numpy"} <= set(results["versions"])
    for fam, table in results["trajectory_lengths"].items():
        values = [table[k] for k in sorted(table, key=int)]
        assert values == sorted(values), (fam, values)
    report = (out / "report.md").read_text()
    assert "Data-efficiency multiplier" in report and "majority baseline" in report and "Leakage scan" in report
    for png in ("accuracy_vs_tokens", "accuracy_vs_unique_docs", "trajectory_length_vs_difficulty"):
        path = out / "plots" / f"{png}.png"
        assert path.stat().st_size > 1000 and path.read_bytes()[:4] == b"\x89PNG"


def test_leakage_scan_of_every_training_text_finds_nothing(quick_run):
    out, _ = quick_run
    seed_dir = out / "seed-1"
    found = scan(seed_dir)
    # the scan covered every kind of training text: TPT's [d; t], vanilla's documents, background, tokenizer text
    assert {"augment", "corpus.jsonl", "background.jsonl", "tokenizer_text.txt"} <= set(found["sources"])
    assert found["patterns"] > 3 * 8 and found["texts"] > 1000
    assert found["hits"] == []
    assert json.loads((out / "results.json").read_text())["leakage"]["1"]["hit_count"] == 0
    # each held-out row carries its question, answer and the expert's full trajectory
    rows = [json.loads(line) for line in (seed_dir / "heldout.jsonl").read_text().splitlines()]
    assert all(
        r["question"] and r["answer"] and r["trajectory"].endswith(f"So the answer is {r['answer']}.") for r in rows
    )


def test_leakage_scan_finds_a_planted_leak(quick_run, tmp_path):
    """The scan can fail: a copy of the seed with one held-out sub-result inside a tokenizer text."""
    import shutil

    out, _ = quick_run
    copy = tmp_path / "seed-1"
    shutil.copytree(out / "seed-1", copy, ignore=shutil.ignore_patterns("train", "data"))
    row = next(
        json.loads(line)
        for line in (copy / "heldout.jsonl").read_text().splitlines()
        if len(json.loads(line)["identity"]) > 1
    )
    planted = next(t for t in row["identity"] if t != row["question"])
    with (copy / "tokenizer_text.txt").open("a") as f:
        f.write("\nsome text " + planted + " more text")
    hits = scan(copy)["hits"]
    assert hits and {h["source"] for h in hits} == {"tokenizer_text.txt"} and planted in {h["pattern"] for h in hits}


def test_dev_run_uses_only_the_dev_seed(tmp_path):
    out = tmp_path / "dev"
    assert main(["run", "--quick", "--dev", "--families", "chain_mod10", "--out", str(out)]) == 0
    results = json.loads((out / "results.json").read_text())
    assert (
        results["split"] == "dev" and results["seeds"] == [PROFILES["quick"].dev_seed] and results["test_seeds"] == []
    )
    assert sorted(p.name for p in out.glob("seed-*")) == [f"seed-{PROFILES['quick'].dev_seed}"]
    assert "DEV SEED" in (out / "report.md").read_text()


def test_rerun_reuses_finished_work(quick_run, capfd):
    out, _ = quick_run
    trained = {p: p.stat().st_mtime_ns for p in (out / "seed-1" / "train").glob("*/model.safetensors")}
    assert main(["run", "--quick", "--out", str(out)]) == 0
    assert "reusing" in capfd.readouterr().out  # printed by the worker process that prepares the seed
    assert trained and trained == {
        p: p.stat().st_mtime_ns for p in (out / "seed-1" / "train").glob("*/model.safetensors")
    }  # nothing retrained


def test_cli_errors(capsys, tmp_path):
    assert main(["nope"]) == 2
    assert main(["run", "--quick", "--full", "--out", str(tmp_path)]) == 2
    assert "exclusive" in capsys.readouterr().err
    assert main(["run", "--quick", "--test-seeds", "0", "1", "--out", str(tmp_path)]) == 2
    assert "dev seed" in capsys.readouterr().err
    assert (
        LabConfig().seeds(PROFILES["default"]) == [1, 2, 3]
        and PROFILES["default"].dev_seed not in PROFILES["default"].test_seeds
    )
    assert not math.isnan(PROFILES["default"].vanilla_multiple) and PROFILES["default"].vanilla_multiple >= 4


def test_ablations_run_every_arm_without_leakage(tmp_path):
    out = tmp_path / "abl"
    assert (
        main(
            [
                "run",
                "--quick",
                "--ablations",
                "--workers",
                "1",
                "--families",  # one family keeps it quick: divisibility's paraphrases are tested in test_expert
                "chain_mod10",
                "--out",
                str(out),
            ]
        )
        == 0
    )
    results = json.loads((out / "results.json").read_text())
    arms = {"vanilla", "tpt", "vanilla-pool", "tpt-noisy10", "tpt-noisy30", "tpt-other", "tpt-filler", "tpt-para"}
    arms.add("tpt-para-noisy30")
    sft_arms = {f"{arm}+sft-{form}" for arm in ("vanilla", "tpt") for form in ("think", "answer")}
    assert set(results["curves"]) == arms | sft_arms
    assert set(results["ablations_vs_tpt_at_B"]) == arms - {"vanilla", "tpt"}
    # the pool arm repeats TPT's raw documents: never more unique documents than TPT read
    assert results["curves"]["vanilla-pool"][-1]["unique_docs"] <= 1.05 * results["curves"]["tpt"][-1]["unique_docs"]
    assert results["leakage"]["1"]["hit_count"] == 0  # noisy slips never state a held-out sub-result
    assert (
        "augment-noisy30" in results["leakage"]["1"]["sources"]
        and "augment-filler" in results["leakage"]["1"]["sources"]
    )
    assert (out / "seed-1" / "analyze" / "stats.json").exists()  # tpt analyze stats on the lab's own augment run
    assert {"augment-para", "augment-para-noisy30", "sft-think.jsonl", "sft-answer.jsonl"} <= set(
        results["leakage"]["1"]["sources"]
    )
    # 5(b): each SFT'd model scored before and after in the same formats, at the per-(arm, form) lr
    prof = PROFILES["quick"]
    for arm in sft_arms:
        base, form = arm.split("+sft-")
        row = results["sft"][arm]
        assert row["lr"] == prof.sft_lr_for(base, form)
        for mode in ("reflect", "chat"):
            cell = row[mode]["overall"]
            assert cell["diff"]["diff"] == pytest.approx(cell["after"]["acc"] - cell["before"]["acc"])
        # "before" in reflect is the base arm's own point at B
        assert (
            row["reflect"]["chain_mod10"]["before"]["acc"]
            == results["curves"][base][-1 if base == "tpt" else 1]["chain_mod10"]["acc"]
        )
    answer_only = [json.loads(line) for line in (out / "seed-1" / "sft-answer.jsonl").read_text().splitlines()]
    assert all(
        m["messages"][1]["content"].startswith("The answer is") and "<think>" not in m["messages"][1]["content"]
        for m in answer_only
    )
    assert "Post-training (5b)" in (out / "report.md").read_text()
    assert (out / "plots" / "constrained_data.png").exists()


def test_evaluate_saved_reports_an_interrupted_run(quick_run, tmp_path):
    """An arm killed after its 2 x B snapshot: --evaluate-saved evaluates what was saved, cuts the
    curves to the points every seed reached, and the report says the run is partial."""
    import shutil

    out, _ = quick_run
    copy = tmp_path / "partial"
    shutil.copytree(out, copy)
    vanilla = copy / "seed-1" / "train" / "vanilla"
    (vanilla / "curve.json").unlink()
    (vanilla / "config.json").unlink()  # the final model was never written
    shutil.rmtree(vanilla / "tokens-32K")  # nor the 2 x B snapshot
    assert main(["run", "--quick", "--evaluate-saved", "--out", str(copy)]) == 0
    results = json.loads((copy / "results.json").read_text())
    assert [p["tokens"] for p in results["curves"]["vanilla"]] == [8_000, 16_000]
    assert results["timing"]["last_point"]["vanilla"] == 16_000
    assert "Partial run" in (copy / "report.md").read_text()
