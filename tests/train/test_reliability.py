"""`tpt train` against concurrency and corruption (issue 20 item 5): a second process on a live
--out, cut checkpoint files, a cut starts.npy."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from tpt.config import build
from tpt.io.lock import FileLock, LockHeld
from tpt.train import TrainConfig, TrainInputError, train
from tpt.train.checkpoint import CORRUPT_STATE_DIR, PREV_STATE_DIR, STATE_DIR, STATE_FILE
from tpt.train.loop import LOCK_FILE

from .conftest import write_packed

FAST = dict(
    model_preset="0.1m",
    batch_tokens="128",
    micro_batch=4,
    lr=3e-3,
    threads=1,
    progress=False,
    eval_every=0,
    eval_sequences=4,
    log_every=1,
)


def cut(path: Path, keep: float = 0.5) -> None:
    data = path.read_bytes()
    path.write_bytes(data[: int(len(data) * keep)])


def steps_logged(out: Path) -> list[int]:
    rows = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    return [r["step"] for r in rows if "loss" in r]


def test_second_train_on_a_live_out_is_refused_without_touching_it(packed_dir, tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    (out / "metrics.jsonl").write_text('{"step": 1, "loss": 5.0}\n{"step": 2, "loss": 4.0}\n')
    before = (out / "metrics.jsonl").read_bytes()
    with FileLock(out / LOCK_FILE, what=f"--out {out}"):  # the live run
        with pytest.raises(LockHeld, match=rf"--out {out} is in use by pid {os.getpid()}"):
            train(build(TrainConfig, data=packed_dir, out=out, tokens="512", **FAST))
    assert (out / "metrics.jsonl").read_bytes() == before and sorted(p.name for p in out.iterdir()) == [
        LOCK_FILE,
        "metrics.jsonl",
    ]


def test_previous_state_is_kept_and_a_cut_latest_one_falls_back(packed_dir, tmp_path, capsys):
    out = tmp_path / "out"
    cfg = build(TrainConfig, data=packed_dir, out=out, tokens="768", save_every=2, **FAST)  # 6 steps, states at 2, 4, 6
    first = train(cfg)
    assert first.steps == 6
    info = lambda d: json.loads((out / d / "tpt_checkpoint.json").read_text())["step"]  # noqa: E731
    assert (info(STATE_DIR), info(PREV_STATE_DIR)) == (6, 4)
    # As if killed after the state at step 6 was written, whose weights file a full disk then cut:
    (out / "tpt_train_done.json").unlink()
    cut(out / STATE_DIR / "model.safetensors")
    again = train(cfg)
    err = capsys.readouterr().err
    assert f"{out / STATE_DIR / 'model.safetensors'}: unreadable" in err and "falling back" in err
    assert again.steps == 6 and (out / CORRUPT_STATE_DIR).is_dir()
    assert steps_logged(out) == [1, 2, 3, 4, 5, 6]  # steps 5-6 redone once: metrics cut back to step 4 first


def test_cut_trainer_state_and_nothing_to_fall_back_to_is_named(packed_dir, tmp_path):
    out = tmp_path / "out"
    cfg = build(TrainConfig, data=packed_dir, out=out, tokens="256", save_every=0, **FAST)
    train(cfg)
    (out / "tpt_train_done.json").unlink()
    cut(out / STATE_DIR / STATE_FILE)
    with pytest.raises(
        TrainInputError, match=rf"no readable resumable state: {out / STATE_DIR / STATE_FILE}: unreadable"
    ):
        train(cfg)
    assert (out / STATE_DIR / STATE_FILE).exists()  # left where it is: a rerun says the same, never starts over


def test_init_checkpoint_that_cannot_be_loaded_is_named(packed_dir, tmp_path):
    first = train(build(TrainConfig, data=packed_dir, out=tmp_path / "base", tokens="128", save_every=0, **FAST))
    cut(first.checkpoint / "model.safetensors")
    with pytest.raises(TrainInputError, match=rf"{first.checkpoint / 'model.safetensors'}: cannot be loaded"):
        train(
            build(
                TrainConfig,
                data=packed_dir,
                out=tmp_path / "mid",
                tokens="128",
                init=first.checkpoint,
                **{**FAST, "model_preset": ""},
            )
        )


def test_cut_starts_file_is_named_before_training(tokenizer_dir, tmp_path):
    data = write_packed(tmp_path / "data", tokenizer_dir)
    cut(data / "train-00001.starts.npy", 0.3)
    with pytest.raises(TrainInputError, match=rf"{data / 'train-00001.starts.npy'}: unreadable document starts"):
        train(build(TrainConfig, data=data, out=tmp_path / "out", tokens="256", doc_attention=True, **FAST))
    assert not (tmp_path / "out" / "metrics.jsonl").exists()


def test_budget_past_one_epoch_is_warned(tokenizer_dir, tmp_path, capsys):
    data = write_packed(tmp_path / "data", tokenizer_dir, repeat=1)
    train(build(TrainConfig, data=data, out=tmp_path / "out", epochs=2.0, **FAST))
    assert "tpt train: warning: the budget is 2.0" in capsys.readouterr().err


def test_cli_os_error_and_held_lock_are_one_line_with_exit_code_3(packed_dir, tmp_path, capsys):
    from tpt.train.cli import main

    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    args = [
        "--data",
        str(packed_dir),
        "--tokens",
        "128",
        "--model-preset",
        "0.1m",
        "--batch-tokens",
        "128",
        "--no-progress",
    ]
    assert main([*args, "--out", str(blocker / "out")]) == 3
    err = capsys.readouterr().err.strip()
    assert err.startswith(f"tpt train: error: {blocker / 'out'}") and "\n" not in err and "Traceback" not in err
    out = tmp_path / "live"
    with FileLock(out / LOCK_FILE, what=f"--out {out}"):
        assert main([*args, "--out", str(out)]) == 3
    assert "is in use by pid" in capsys.readouterr().err
