import json

import pytest

from tpt.analyze.cli import main
from tpt.analyze.curves import data_efficiency, tokens_to_reach
from tpt.analyze.learning import RunSource, compare, load_runs
from tpt.analyze.results import read_eval, read_metrics

BASELINE = [(0, 0.1), (100, 0.2), (200, 0.3), (300, 0.4), (400, 0.5)]
METHOD = [(0, 0.1), (100, 0.4), (200, 0.6)]


def write_metrics(path, curve, extra=""):
    lines = [
        json.dumps({"step": i, "tokens": x, "loss": 3.0 - y, "unique_docs": x // 10, "score": y})
        for i, (x, y) in enumerate(curve)
    ]
    path.write_text("\n".join(lines) + "\n" + extra)
    return path


def test_tokens_to_reach_interpolates_the_running_best():
    assert tokens_to_reach([0, 100, 200], [0.1, 0.4, 0.6], 0.55) == pytest.approx(175.0)
    # a dip after a peak does not move the crossing earlier: running max carried forward
    assert tokens_to_reach([0, 100, 200, 300], [0.1, 0.5, 0.2, 0.7], 0.6) == pytest.approx(250.0)
    assert tokens_to_reach([0, 100], [0.1, 0.2], 0.9) is None


def test_multiplier_and_not_reached():
    reached, beyond = data_efficiency(BASELINE, METHOD, [0.4, 0.55])
    assert (reached.method_tokens, reached.baseline_tokens, reached.multiplier) == (100, 300, 3.0)
    assert beyond.reached is False and beyond.multiplier is None
    assert beyond.lower_bound == pytest.approx(400 / 175)


def test_metrics_reader_sets_aside_bad_lines_naming_file_line_and_field(tmp_path):
    path = write_metrics(tmp_path / "m.jsonl", BASELINE, '{"step": 9, "loss": 1.0}\n{"tokens": 5\n')
    problems = []
    points = read_metrics(path, problems)
    assert len(points) == 5 and points[2].values == {"loss": pytest.approx(2.7), "score": 0.3}
    assert points[2].docs == 20 and points[2].step == 2
    assert [str(p) for p in problems] == [
        f"{path}:6: field 'tokens': missing",
        f"{path}:7: field '-': not JSON (Expecting ',' delimiter)",
    ]


def test_eval_reader_understands_lm_eval_results(tmp_path):
    path = tmp_path / "ckpt.json"
    path.write_text(
        json.dumps(
            {
                "model": "m",
                "step": 3,
                "results": {
                    "gsm8k": {"exact_match,strict-match": 0.25, "exact_match_stderr,strict-match": 0.01},
                    "arc": {"acc,none": 0.5, "acc_norm,none": 0.6},
                    "mmlu": 0.4,
                },
            }
        )
    )
    point = read_eval(path, [])
    assert point.step == 3 and point.tokens is None
    assert point.values == {"gsm8k": 0.25, "arc": 0.6, "mmlu": 0.4}
    assert read_eval(path, [], metric="acc").values == {"arc": 0.5, "mmlu": 0.4}
    nested = tmp_path / "nested.json"  # what tpt eval writes: the checkpoint's info, tpt train's field names
    nested.write_text(
        json.dumps({"format": "tpt.eval_result/1", "checkpoint": {"tokens_seen": 10**9, "step": 7}, "scores": {"a": 1}})
    )
    assert (read_eval(nested, []).tokens, read_eval(nested, []).step) == (1e9, 7)


def test_tpt_files_are_read_by_their_format_not_by_guessed_aliases(tmp_path):
    guessed = tmp_path / "guessed.json"  # "tokens" is a metrics-row field, not a checkpoint-info one
    guessed.write_text(json.dumps({"scores": {"a": 0.5}, "checkpoint": {"tokens": 100, "step": 1}}))
    problems = []
    assert read_eval(guessed, problems).tokens is None
    assert problems[0].field == "checkpoint" and "'tokens_seen' must be an integer" in problems[0].reason
    newer = tmp_path / "newer.json"
    newer.write_text(json.dumps({"format": "tpt.eval_result/2", "scores": {"a": 0.5}}))
    problems = []
    assert read_eval(newer, problems) is None and "newer than this tpt reads" in problems[0].reason
    metrics = tmp_path / "m.jsonl"
    metrics.write_text(json.dumps({"train_tokens": 5, "loss": 1.0}) + "\n")
    problems = []
    assert read_metrics(metrics, problems) == [] and str(problems[0]).endswith("field 'tokens': missing")
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"model": "m"}))
    problems = []
    assert read_eval(bad, problems) is None and problems[0].field == "scores"


def test_eval_results_placed_by_step_and_compared(tmp_path):
    base_dir, method_dir = tmp_path / "base", tmp_path / "method"
    for folder, curve in ((base_dir, BASELINE), (method_dir, METHOD)):
        (folder / "eval").mkdir(parents=True)
        write_metrics(folder / "metrics.jsonl", curve)
        for step, (_, y) in enumerate(curve):  # lm-eval files that carry only a step and per-task scores
            (folder / "eval" / f"step{step}.json").write_text(json.dumps({"step": step, "results": {"a": y, "b": y}}))
        (folder / "config.json").write_text(json.dumps({"hidden_size": 8}))  # not an eval result: ignored
    problems = []
    runs = load_runs([RunSource("vanilla", base_dir), RunSource("tpt", method_dir)], None, problems)
    assert problems == [] and [len(r.evals) for r in runs] == [5, 3]
    assert runs[1].score_curve(None) == [(0.0, 0.1), (100.0, 0.4), (200.0, 0.6)]
    (comparison,) = compare(runs, "vanilla", None, [0.4], [], x="docs")
    assert comparison.efficiencies[0].multiplier == 3.0  # docs = tokens / 10 on both runs


def test_curves_cli_writes_table_plots_and_json(tmp_path, capsys):
    base = write_metrics(tmp_path / "base.jsonl", BASELINE)
    method = write_metrics(tmp_path / "tpt.jsonl", METHOD)
    out = tmp_path / "curves"
    assert (
        main(
            ["curves", "--run", f"vanilla={base}", "--run", f"tpt={method}", "--targets", "0.4,0.55", "--out", str(out)]
        )
        == 0
    )
    report = capsys.readouterr().out
    assert "| 0.400 | 100 | 300 | 3.00x |" in report
    assert "not reached (> 2.29x)" in report
    saved = json.loads((out / "curves.json").read_text())
    assert [t["multiplier"] for t in saved["comparisons"][0]["targets"]] == [3.0, None]
    for name in ("score_vs_tokens", "loss_vs_tokens", "score_vs_docs", "loss_vs_docs"):
        assert (out / "plots" / f"{name}.png").stat().st_size > 0
    assert (out / "report.html").exists()


def test_curves_default_targets_are_fractions_of_the_method_range(tmp_path, capsys):
    base = write_metrics(tmp_path / "base.jsonl", BASELINE)
    method = write_metrics(tmp_path / "tpt.jsonl", METHOD)
    assert main(["curves", "--run", f"vanilla={base}", f"tpt={method}", "--json"]) == 0
    targets = json.loads(capsys.readouterr().out)["comparisons"][0]["targets"]
    assert [round(t["target"], 6) for t in targets] == [0.225, 0.35, 0.475, 0.6]
    assert [t["reached"] for t in targets] == [True, True, True, False]


def test_curves_cli_errors_clearly(tmp_path, capsys):
    assert main(["curves", "--run", f"x={tmp_path / 'nope.jsonl'}"]) == 2
    assert "nope.jsonl" in capsys.readouterr().err
    with pytest.raises(SystemExit) as bad:  # a usage error at the boundary, before any file is read
        main(["curves", "--run", "no-equals-sign"])
    assert bad.value.code == 2 and "argument --run: 'no-equals-sign': expected NAME=PATH" in capsys.readouterr().err


def test_a_run_without_scores_is_explained_not_guessed(tmp_path, capsys):
    base = write_metrics(tmp_path / "base.jsonl", BASELINE)
    loss_only = tmp_path / "loss.jsonl"
    loss_only.write_text("\n".join(json.dumps({"tokens": x, "loss": 3 - y}) for x, y in METHOD) + "\n")
    assert main(["curves", "--run", f"vanilla={base}", f"tpt={loss_only}", "--json"]) == 0
    (comparison,) = json.loads(capsys.readouterr().out)["comparisons"]
    assert comparison["targets"] == [] and "no score curve against tokens for tpt" in comparison["note"]
