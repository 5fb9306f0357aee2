"""`tpt eval` end to end on tiny locally built models: every suite writes its JSON and the table."""

from __future__ import annotations

import json

import pytest

from tpt.evaluate.cli import main

# Quick-check flags: two items per task, four new tokens, CPU.
QUICK = ["--limit", "2", "--max-gen-toks", "4", "--micro-batch", "4", "--device", "cpu", "--backend", "hf"]


def test_paper_base_suite_two_models_side_by_side(
    tiny_model_dir, other_tiny_model_dir, eval_data_dir, tmp_path, capsys
):
    out = tmp_path / "results"
    # what tpt train writes into its checkpoints; copied into the result for tpt analyze's curves
    (other_tiny_model_dir / "tpt_checkpoint.json").write_text(json.dumps({"step": 7, "tokens_seen": 1792}))
    argv = [
        str(tiny_model_dir),
        str(other_tiny_model_dir),
        "--suite",
        "paper-base",
        "--data-dir",
        str(eval_data_dir),
        "--out",
        str(out),
        "--mmlu-subjects",
        "anatomy",
        "--mmlu-pro-categories",
        "computer_science",
        "--log-samples",
        *QUICK,
    ]
    assert main(argv) == 0
    for name in ("model", "tpt-b"):
        result = json.loads((out / f"{name}.json").read_text())
        tasks = result["tasks"]
        assert list(tasks) == ["gsm8k_cot", "math", "boolq", "mmlu", "mmlu_pro"]
        assert {t: tasks[t]["n"] for t in tasks} == {"gsm8k_cot": 2, "math": 2, "boolq": 2, "mmlu": 2, "mmlu_pro": 2}
        for task in tasks.values():
            assert 0.0 <= task["score"] <= 1.0 and task["stderr"] is not None
        assert set(tasks["gsm8k_cot"]["metrics"]) == {"exact_match,strict-match", "exact_match,flexible-extract"}
        assert set(tasks["math"]["metrics"]) == {"exact_match,none", "math_verify,none"}
        # the reproducibility record: what each column is, and under which settings it ran
        assert result["metrics"] == {t: tasks[t]["metric"] for t in tasks}
        assert result["metrics"]["gsm8k_cot"] == "exact_match,flexible-extract"
        assert tasks["gsm8k_cot"]["reference"] == {"lm_eval_task": "gsm8k_cot", "version": 3.0, "protocol": "lm-eval"}
        assert {t: tasks[t]["num_fewshot"] for t in tasks} == {
            "gsm8k_cot": 8,
            "math": 4,
            "boolq": 0,
            "mmlu": 5,
            "mmlu_pro": 5,
        }
        assert result["task_versions"]["tpt_gsm8k_cot"] == 3.0 and result["task_versions"]["tpt_math"] == 3.1
        assert (
            float(result["task_versions"]["tpt_mmlu_pro"]) == 2.0
            and result["task_versions"]["tpt_mmlu_pro_computer_science"] == 3.1
        )
        assert result["lm_eval_version"] == result["versions"]["lm_eval"]
        assert result["fewshot_seed"] == 1234 and result["dtype"] == "auto"
        assert set(tasks["mmlu"]["subtasks"]) == {"anatomy"} and set(tasks["mmlu_pro"]["subtasks"]) == {
            "computer science"
        }
        average = result["averages"]["paper_base_5"]
        assert average["missing"] == [] and average["score"] == pytest.approx(
            sum(t["score"] for t in tasks.values()) / 5
        )
        assert result["batch_size"] == 4 and result["seeds"]["fewshot"] == 1234
        assert result["versions"]["lm_eval"] and result["config"]["data_dir"] == str(eval_data_dir)
        assert result["limit"] == 2
        assert result["scores"] == {t: tasks[t]["score"] for t in tasks}
        assert result["checkpoint"] == ({"step": 7, "tokens_seen": 1792} if name == "tpt-b" else None)
        # The headline scores are the means of the per-sample scores that were logged.
        for task, log, metric, filt in [
            ("gsm8k_cot", "tpt_gsm8k_cot", "exact_match", "flexible-extract"),
            ("boolq", "tpt_boolq", "acc", "none"),
        ]:
            rows = [json.loads(line) for line in (out / f"{name}.samples" / f"{log}.jsonl").read_text().splitlines()]
            rows = [r for r in rows if r["filter"] == filt]
            assert len(rows) == 2 and tasks[task]["score"] == pytest.approx(sum(r[metric] for r in rows) / 2)
    # Seeded few-shot draws: both models saw exactly the same prompts.
    hashes = [
        [
            json.loads(line)["prompt_hash"]
            for line in (out / f"{name}.samples" / "tpt_gsm8k_cot.jsonl").read_text().splitlines()
        ]
        for name in ("model", "tpt-b")
    ]
    assert hashes[0] == hashes[1]
    table = (out / "comparison.md").read_text()
    assert "| model | tpt-b | Δ tpt-b − model |" in table and "5-task average" in table
    assert table in capsys.readouterr().out
    assert (out / "tasks" / "mmlu_anatomy.yaml").is_file() and not (out / "tasks" / "mmlu_nutrition.yaml").exists()


def test_paper_post_suite_samples_each_problem(tiny_model_dir, eval_data_dir, tmp_path):
    out = tmp_path / "post"
    argv = [
        str(tiny_model_dir),
        "--suite",
        "paper-post",
        "--samples",
        "3",
        "--data-dir",
        str(eval_data_dir),
        "--out",
        str(out),
        "--log-samples",
        *QUICK,
    ]
    assert main(argv) == 0
    tasks = json.loads((out / "model.json").read_text())["tasks"]
    assert list(tasks) == ["aime24", "math500", "amc23"]
    assert tasks["aime24"]["metric"] == "pass@1,all_samples" and tasks["aime24"]["n"] == 2
    rows = [json.loads(line) for line in (out / "model.samples" / "tpt_aime24.jsonl").read_text().splitlines()]
    assert all(len(row["filtered_resps"][0]) == 3 for row in rows)  # three draws kept per problem
    assert rows[0]["arguments"][0][1]["temperature"] == 0.6 and rows[0]["arguments"][0][1]["do_sample"]


def test_server_model_runs_generative_tasks(openai_server, eval_data_dir, tmp_path, capsys):
    out = tmp_path / "served"
    argv = [
        "--base-url",
        openai_server.base_url,
        "--model",
        openai_server.model,
        "--tasks",
        "gsm8k,mmlu_pro",
        "--mmlu-pro-categories",
        "math",
        "--data-dir",
        str(eval_data_dir),
        "--out",
        str(out),
        "--limit",
        "2",
        "--max-gen-toks",
        "4",
    ]
    assert main(argv) == 0
    [written] = out.glob("*.json")
    result = json.loads(written.read_text())
    assert result["lm_eval_model"] == "tpt-local-completions"
    assert result["tasks"]["gsm8k"]["n"] == 2 and result["tasks"]["mmlu_pro"]["n"] == 2
    # Log-likelihood tasks need prompt logprobs, which transformers serve does not return.
    argv[argv.index("gsm8k,mmlu_pro")] = "boolq,gsm8k"
    assert main(argv) == 2
    assert "boolq score answers by log-likelihood" in capsys.readouterr().err


def test_bad_model_folders_say_why(tmp_path, tiny_model_dir, eval_data_dir, capsys):
    common = ["--tasks", "gsm8k", "--data-dir", str(eval_data_dir), "--out", str(tmp_path / "o"), *QUICK]
    assert main([str(tmp_path / "absent"), *common]) == 2
    assert "does not exist" in capsys.readouterr().err
    (tmp_path / "empty").mkdir()
    assert main([str(tmp_path / "empty"), *common]) == 2
    assert "no config.json" in capsys.readouterr().err
    no_weights = tmp_path / "no-weights"
    no_weights.mkdir()
    (no_weights / "config.json").write_text((tiny_model_dir / "config.json").read_text())
    assert main([str(no_weights), *common]) == 2
    assert "no weights" in capsys.readouterr().err
    unfinished = tmp_path / "run"
    (unfinished / "state").mkdir(parents=True)
    (unfinished / "train_config.json").write_text("{}")
    (unfinished / "state" / "config.json").write_text("{}")
    assert main([str(unfinished), *common]) == 2
    assert "no final model yet, its checkpoints: state" in capsys.readouterr().err
    assert main(["--tasks", "gsm8k", "--out", str(tmp_path / "o")]) == 2
    assert "no model" in capsys.readouterr().err


def test_unknown_task_and_missing_data_on_the_command_line(tiny_model_dir, tmp_path, capsys):
    assert main([str(tiny_model_dir), "--tasks", "gsm8k,gpqa", "--out", str(tmp_path)]) == 2
    assert "gpqa" in capsys.readouterr().err
    assert main([str(tiny_model_dir), "--tasks", "arc", "--out", str(tmp_path)]) == 2
    assert "known tasks: gsm8k" in capsys.readouterr().err
    assert (
        main([str(tiny_model_dir), "--tasks", "gsm8k", "--data-dir", str(tmp_path / "none"), "--out", str(tmp_path)])
        == 2
    )
    assert str(tmp_path / "none") in capsys.readouterr().err


def test_help_lists_tasks_and_suites(capsys):
    with pytest.raises(SystemExit) as stop:
        main(["--help"])
    assert stop.value.code == 0
    text = capsys.readouterr().out
    assert "--suite" in text and "paper-post" in text and "mmlu_pro" in text and "gpqa" in text


@pytest.mark.gpu
def test_paper_base_suite_on_cuda(tiny_model_dir, eval_data_dir, tmp_path, capsys):
    """On a GPU machine: the whole paper-base suite (all 57 MMLU subjects) through CUDA, timed."""
    out = tmp_path / "cuda"
    argv = [
        str(tiny_model_dir),
        "--suite",
        "paper-base",
        "--data-dir",
        str(eval_data_dir),
        "--out",
        str(out),
        "--limit",
        "8",
        "--max-gen-toks",
        "64",
        "--device",
        "cuda",
        "--backend",
        "hf",
    ]
    assert main(argv) == 0
    result = json.loads((out / "model.json").read_text())
    assert result["tasks"]["mmlu"]["n"] == 57 * 8 and result["averages"]["paper_base_5"]["missing"] == []
    with capsys.disabled():
        print(f"\npaper-base on cuda (--limit 8): {result['wall_time_s']:.1f} s")
