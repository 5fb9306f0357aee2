"""The files between stages, through tpt.formats: what one stage writes the next reads by name,
older untagged files still read, newer versions and broken files are refused naming the file."""

from __future__ import annotations

import json

import pytest

from tpt import formats as F
from tpt.analyze.results import read_eval
from tpt.evaluate.runner import checkpoint_info


def test_checkpoint_info_round_trip_and_legacy_files(tmp_path):
    path = F.write_checkpoint_info(tmp_path, F.CheckpointInfo(step=7, tokens_seen=1792, val_loss=2.5))
    assert json.loads(path.read_text())["format"] == "tpt.checkpoint_info/1"
    assert F.read_checkpoint_info(tmp_path) == F.CheckpointInfo(7, 1792, 2.5)
    path.write_text(json.dumps({"step": 3, "tokens_seen": 10, "requested_tokens": 8}))  # before the tag existed
    assert F.read_checkpoint_info(tmp_path).requested_tokens == 8
    assert F.read_checkpoint_info(tmp_path / "no-such-folder") is None


def test_broken_or_newer_checkpoint_info_is_refused_naming_the_file(tmp_path):
    path = tmp_path / F.CHECKPOINT_INFO_FILE
    path.write_text("{not json")
    with pytest.raises(F.FormatError, match=f"{path}: not valid JSON"):
        F.read_checkpoint_info(tmp_path)
    path.write_text(json.dumps({"format": "tpt.checkpoint_info/9", "step": 1, "tokens_seen": 1}))
    with pytest.raises(F.FormatError, match="newer than this tpt reads"):
        F.read_checkpoint_info(tmp_path)
    path.write_text(json.dumps({"step": 1, "tokens": 5}))
    with pytest.raises(F.FormatError, match="field 'tokens_seen' must be an integer"):
        F.read_checkpoint_info(tmp_path)
    assert "tokens_seen" in checkpoint_info(str(tmp_path))["error"]  # tpt eval records it, keeps the scores


def test_eval_result_written_by_eval_is_placed_by_analyze(tmp_path):
    F.write_checkpoint_info(tmp_path / "ckpt", F.CheckpointInfo(step=4, tokens_seen=4096))
    result = {
        "model": "ckpt",
        "scores": {"gsm8k": 0.25, "boolq": None},
        "checkpoint": checkpoint_info(str(tmp_path / "ckpt")),
    }
    path = F.write_eval_result(tmp_path / "results", "ckpt", result)
    assert path == tmp_path / "results" / "ckpt.json" and json.loads(path.read_text())["format"] == "tpt.eval_result/1"
    problems = []
    point = read_eval(path, problems)
    assert problems == [] and (point.tokens, point.step, point.values) == (4096.0, 4, {"gsm8k": 0.25})


def test_run_layout_names_the_folders_readers_use(tmp_path):
    layout = F.RunLayout(tmp_path)
    assert not F.is_run_folder(tmp_path)
    layout.data.mkdir()
    assert F.is_run_folder(tmp_path) and layout.manifest == tmp_path / "manifest.json"
    assert {p.name for p in (layout.data, layout.rejected, layout.failed, layout.state)} <= F.RUN_ENTRIES
