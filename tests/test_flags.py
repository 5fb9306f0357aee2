"""Same flag, same meaning: --device takes the same values in every stage that has it, and a bad
value fails at parse time naming the flag (before any model is loaded)."""

from __future__ import annotations

import pytest

from tpt.analyze.cli import StatsConfig
from tpt.augment.config import AugmentConfig
from tpt.config import flat_values, parse
from tpt.evaluate.config import EvalConfig


@pytest.mark.parametrize("cls, first", [(AugmentConfig, "corpus.jsonl --out o"), (EvalConfig, "model")])
def test_device_values_are_the_same_everywhere(cls, first, capsys):
    for value in ("auto", "cpu", "cuda", "cuda:1"):
        assert flat_values(parse(cls, [*first.split(), "--device", value], "tpt x"))["device"] == value
    with pytest.raises(SystemExit) as exit_info:
        parse(cls, [*first.split(), "--device", "gpu"], "tpt x")
    assert exit_info.value.code == 2
    assert "argument --device: 'gpu': expected auto, cpu, cuda or cuda:N" in capsys.readouterr().err


def test_device_from_a_config_file_is_checked_too(tmp_path, capsys):
    path = tmp_path / "c.yaml"
    path.write_text("device: tpu\n")
    with pytest.raises(SystemExit) as exit_info:
        parse(AugmentConfig, ["corpus.jsonl", "--out", "o", "--config", str(path)], "tpt augment")
    assert "expected auto, cpu, cuda or cuda:N" in f"{exit_info.value.code} {capsys.readouterr().err}"


def test_analyze_read_size_is_not_called_batch_size(tmp_path):
    cfg = parse(StatsConfig, [str(tmp_path), "--batch-records", "128", "--no-progress"], "tpt analyze stats")
    assert cfg.batch_records == 128 and cfg.progress is False
    with pytest.raises(SystemExit):
        parse(StatsConfig, [str(tmp_path), "--batch-size", "128"], "tpt analyze stats")


def test_batch_flags_have_one_meaning_each_and_old_spellings_warn(tmp_path, capsys):
    from tpt.analyze.filter import FilterConfig
    from tpt.evaluate.config import EvalConfig
    from tpt.train.config import TrainConfig

    # sequences per forward pass: --micro-batch in train and eval
    assert parse(TrainConfig, ["--data", "d", "--out", "o", "--micro-batch", "3"], "t").batch.micro_batch == 3
    assert parse(EvalConfig, ["m", "--micro-batch", "3"], "t").local.batch_size == 3
    # records per Arrow batch: --batch-records in analyze and filter
    assert parse(FilterConfig, [str(tmp_path), "--out", "o", "--batch-records", "64"], "t").batch_size == 64
    # requests in flight: --concurrency in augment and eval
    assert parse(EvalConfig, ["--base-url", "http://h/v1", "--concurrency", "5"], "t").server.concurrency == 5
    capsys.readouterr()
    assert parse(EvalConfig, ["m", "--batch-size", "2"], "tpt eval").local.batch_size == 2
    assert parse(FilterConfig, [str(tmp_path), "--out", "o", "--batch-size", "32"], "tpt filter").batch_size == 32
    err = capsys.readouterr().err
    assert "--batch-size is deprecated; use --micro-batch" in err and "use --batch-records" in err


ABBREVIATED = {
    "augment": ["augment", "c.jsonl", "--out", "o", "--max-thinking-token", "5"],
    "tokenizer": ["tokenizer", "train", "c.jsonl", "--out", "o", "--vocab", "5"],
    "prepare": ["prepare", "--source", "r:tpt", "--out", "o", "--tok", "x"],
    "train": ["train", "--data", "d", "--out", "o", "--micro", "2"],
    "eval": ["eval", "m", "--micro", "2"],
    "analyze": ["analyze", "stats", "r", "--batch-rec", "2"],
    "filter": ["filter", "r", "--out", "o", "--batch-rec", "2"],
    "lab": ["lab", "run", "--qui"],
    "demo": ["demo", "--aug"],
}


@pytest.mark.parametrize("name", sorted(ABBREVIATED))
def test_no_command_accepts_an_abbreviated_flag(name, capsys):
    from tpt.cli import COMMANDS, main

    assert set(ABBREVIATED) == set(COMMANDS)  # a new command joins this list
    with pytest.raises(SystemExit) as exit_info:
        main(ABBREVIATED[name])
    assert exit_info.value.code == 2 and "unrecognized arguments" in capsys.readouterr().err
