"""Augment's inputs and --shard-range are typed records at the boundary (CLI, config files, Python),
and a run folder written when they were strings (tests/augment/fixtures/old-run) resumes unchanged."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from augment_helpers import record_keys

from tpt.augment.config import AugmentConfig
from tpt.augment.run import run_augment
from tpt.augment.specs import InputSpec, ShardRange, parse_input, parse_shard_range
from tpt.config import build, parse, to_dict
from tpt.io.runs import completion

OLD_RUN = Path(__file__).parent / "fixtures" / "old-run"


def test_input_spec_syntax():
    assert parse_input("a.jsonl") == InputSpec("a.jsonl")
    assert parse_input("a.jsonl:body") == InputSpec("a.jsonl", "body")
    assert parse_input("a.jsonl:body:uid") == InputSpec("a.jsonl", "body", "uid")
    assert parse_input("a.jsonl::uid") == InputSpec("a.jsonl", None, "uid")
    assert parse_input("s3://b/a.parquet") == InputSpec("s3://b/a.parquet")
    assert parse_input("s3://b/a.parquet:content") == InputSpec("s3://b/a.parquet", "content")
    assert parse_input("data/*.jsonl") == InputSpec("data/*.jsonl")
    assert parse_input({"path": "a.jsonl", "id_field": "uid"}) == InputSpec("a.jsonl", None, "uid")
    assert InputSpec("a.jsonl", None, "uid").fields("text", "id") == ("text", "uid")
    for text in ("a.jsonl", "a.jsonl:body", "a.jsonl:body:uid", "a.jsonl::uid"):
        assert parse_input(text).describe() == text
    with pytest.raises(ValueError, match="no path"):
        parse_input(" ")
    with pytest.raises(ValueError, match="unknown key"):
        parse_input({"path": "a.jsonl", "text": "body"})


def test_shard_range_syntax():
    assert parse_shard_range("1/4") == ShardRange(1, 4) and str(ShardRange(1, 4)) == "1/4"
    assert parse_shard_range({"index": 0, "count": 2}) == ShardRange(0, 2)
    assert [k for k in range(7) if ShardRange(1, 3).holds(k)] == [1, 4]
    for bad in ("4/4", "-1/2", "1", "a/b", "1/2/3"):
        with pytest.raises(ValueError, match=bad):
            parse_shard_range(bad)


@pytest.mark.parametrize(
    "argv, named",
    [
        (["", "--out", "o"], "argument INPUTS: '': no path"),
        (["a.jsonl", "--out", "o", "--shard-range", "4/4"], "argument --shard-range: '4/4': need 0 <= i < n"),
        (["a.jsonl", "--out", "o", "--shard-range", "half"], "argument --shard-range: 'half': expected i/n"),
    ],
)
def test_a_bad_value_is_a_usage_error_naming_the_flag(argv, named, capsys):
    with pytest.raises(SystemExit) as exit_info:
        parse(AugmentConfig, argv, "tpt augment")
    assert exit_info.value.code == 2 and named in capsys.readouterr().err


def test_one_record_from_flags_files_and_python(tmp_path, capsys):
    flags = ["a.jsonl:body:uid", "b.jsonl", "--out", "o", "--shard-range", "1/4"]
    from_flags = parse(AugmentConfig, flags, "tpt augment")
    assert from_flags.inputs == [InputSpec("a.jsonl", "body", "uid"), InputSpec("b.jsonl")]
    assert from_flags.executor.shard_range == ShardRange(1, 4)
    structured = tmp_path / "run.yaml"
    structured.write_text(
        "inputs:\n- {path: a.jsonl, text_field: body, id_field: uid}\n- b.jsonl\nout: o\n"
        "executor: {shard_range: {index: 1, count: 4}}\n"
    )
    assert parse(AugmentConfig, ["--config", str(structured)], "tpt augment") == from_flags
    python = AugmentConfig(inputs=[InputSpec("a.jsonl", "body", "uid"), InputSpec("b.jsonl")], out=Path("o"))
    python.executor.shard_range = ShardRange(1, 4)
    assert build(AugmentConfig, inputs=python.inputs, out="o", shard_range=ShardRange(1, 4)) == python == from_flags
    with pytest.raises(SystemExit):  # print_config: the structured form, which reads back into the same config
        parse(AugmentConfig, [*flags, "--print-config"], "tpt augment")
    structured.write_text(capsys.readouterr().out)
    assert "text_field: body" in structured.read_text() and "count: 4" in structured.read_text()
    assert parse(AugmentConfig, ["--config", str(structured)], "tpt augment") == from_flags


def test_an_old_manifest_replays_its_string_inputs():
    replayed = parse(AugmentConfig, ["--config", str(OLD_RUN / "run" / "manifest.json")], "tpt augment")
    assert replayed.inputs == [InputSpec("a.jsonl", "body", "key"), InputSpec("b.jsonl")]
    assert replayed.executor.shard_range == ShardRange(0, 2) and replayed.executor.shard_bytes == 600


def test_a_run_folder_written_with_string_inputs_resumes_unchanged(tmp_path, monkeypatch):
    shutil.copytree(OLD_RUN, tmp_path, dirs_exist_ok=True)
    monkeypatch.chdir(tmp_path)  # the fixture's paths are relative, as the command that wrote it gave them
    run = Path("run")
    done = sorted(run.glob("data/*.parquet")) + sorted(run.glob("state/*.done"))
    before = {p: (p.read_bytes(), p.stat().st_mtime_ns) for p in done}
    plan_before = (run / "plan.json").read_text()
    argv = ["a.jsonl:body:key", "b.jsonl", "--out", "run", "--backend", "lab-expert", "--shard-bytes", "600"]
    config = parse(AugmentConfig, [*argv, "--no-progress", "--checkpoint-records", "2"], "tpt augment")

    summary = run_augment(config)

    assert len(before) == 6 and {p: (p.read_bytes(), p.stat().st_mtime_ns) for p in done} == before  # not redone
    ids = [json.loads(line)["key"] for line in Path("a.jsonl").read_text().splitlines()]
    ids += [json.loads(line)["id"] for line in Path("b.jsonl").read_text().splitlines()]
    assert sorted(record_keys(run)) == sorted((i, 0) for i in ids)  # every row once
    assert summary.records == 12 and summary.new_records == 5 and summary.stats["complete"]
    assert (run / "plan.json").read_text() == plan_before  # migrated when read, never rewritten
    manifest = json.loads((run / "manifest.json").read_text())
    assert manifest["format"] == "tpt.augment_manifest/2"
    assert manifest["fingerprint"]["inputs"][0] == {"path": "a.jsonl", "text_field": "body", "id_field": "key"}
    assert parse(AugmentConfig, ["--config", str(run / "manifest.json")], "tpt augment") == config  # replays
    assert run_augment(config).nothing_to_do and len(record_keys(run)) == 12
    assert completion(run) == {"shards": 6, "done": 6, "missing": [], "failed": 0}  # what prepare checks


def test_prepare_sees_which_shards_of_a_run_are_missing():
    missing = ["shard-00001", "shard-00003", "shard-00005"]
    assert completion(OLD_RUN / "run") == {"shards": 6, "done": 3, "missing": missing, "failed": 0}


def test_a_changed_input_field_is_still_a_different_config(tmp_path, monkeypatch):
    from tpt.augment.run import ConfigMismatch

    shutil.copytree(OLD_RUN, tmp_path, dirs_exist_ok=True)
    monkeypatch.chdir(tmp_path)
    argv = ["a.jsonl:body:uid", "b.jsonl", "--out", "run", "--backend", "lab-expert", "--shard-bytes", "600"]
    with pytest.raises(ConfigMismatch, match="inputs"):
        run_augment(parse(AugmentConfig, [*argv, "--no-progress"], "tpt augment"))
    assert to_dict(InputSpec("a.jsonl", "body", "key")) == {"path": "a.jsonl", "text_field": "body", "id_field": "key"}
