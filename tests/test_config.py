from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import pytest

from tpt.config import field, parse, to_dict


@dataclass
class Inner:
    temperature: float = field(0.6, help="sampling temperature")


@dataclass
class Outer:
    inputs: list[str] = field(help="input files", positional=True)
    out: Path = field(help="output folder")
    mode: Literal["a", "b"] = field("a", help="mode")
    limit: int | None = field(None, help="limit")
    strict: bool = field(False, help="strict")
    sampling: Inner = field(default_factory=Inner, help="sampling")


def test_parse_generates_all_flags():
    cfg = parse(
        Outer,
        ["x.jsonl", "y.jsonl", "--out", "o", "--mode", "b", "--limit", "3", "--strict", "--temperature", "1.0"],
        "t",
    )
    assert cfg.inputs == ["x.jsonl", "y.jsonl"]
    assert cfg.out == Path("o") and cfg.mode == "b" and cfg.limit == 3 and cfg.strict is True
    assert cfg.sampling.temperature == 1.0
    assert to_dict(cfg)["out"] == "o"


def test_defaults_and_errors():
    cfg = parse(Outer, ["x", "--out", "o"], "t")
    assert cfg.mode == "a" and cfg.limit is None and cfg.strict is False and cfg.sampling.temperature == 0.6
    with pytest.raises(SystemExit):
        parse(Outer, ["x", "--out", "o", "--mode", "c"], "t")
    with pytest.raises(SystemExit):
        parse(Outer, ["x"], "t")


@dataclass
class Counted:
    tokens: int = field(1000, help="budget", count=True)
    sources: list[str] = field(default_factory=lambda: ["a"], help="sources")
    out: Path = field(Path("o"), help="out")


def test_counts_typed_at_the_boundary_and_lists_accumulate():
    cfg = parse(Counted, ["--tokens", "1.5M", "--sources", "x", "--sources", "y,z"], "t")
    assert cfg.tokens == 1_500_000 and cfg.sources == ["x", "y,z"]
    assert parse(Counted, [], "t").sources == ["a"]
    with pytest.raises(SystemExit):
        parse(Counted, ["--tokens", "lots"], "t")


def test_abbreviations_refused():
    with pytest.raises(SystemExit):
        parse(Outer, ["x", "--ou", "o"], "t")


def test_help_shows_each_default_once(capsys):
    with pytest.raises(SystemExit):
        parse(Outer, ["--help"], "t")
    text = capsys.readouterr().out
    assert "(default: a)" in text and "(default: none) (default" not in text and "(default: None)" not in text


@pytest.mark.parametrize("suffix", [".yaml", ".toml", ".json"])
def test_config_file_then_flags_override(tmp_path, suffix):
    body = {
        ".yaml": "inputs: [x.jsonl]\nout: from-file\nsampling:\n  temperature: 0.9\nlimit: 7\n",
        ".toml": 'inputs = ["x.jsonl"]\nout = "from-file"\nlimit = 7\n[sampling]\ntemperature = 0.9\n',
        ".json": '{"inputs": ["x.jsonl"], "out": "from-file", "temperature": 0.9, "limit": 7}',
    }[suffix]
    path = tmp_path / f"c{suffix}"
    path.write_text(body)
    cfg = parse(Outer, ["--config", str(path), "--limit", "3"], "t")
    assert cfg.inputs == ["x.jsonl"] and cfg.out == Path("from-file") and cfg.limit == 3
    assert cfg.sampling.temperature == 0.9


def test_print_config_round_trips(tmp_path, capsys):
    with pytest.raises(SystemExit) as done:
        parse(Outer, ["x", "--out", "o", "--mode", "b", "--temperature", "0.3", "--print-config"], "t")
    assert done.value.code == 0
    path = tmp_path / "printed.yaml"
    path.write_text(capsys.readouterr().out)
    again = parse(Outer, ["--config", str(path)], "t")
    assert again == parse(Outer, ["x", "--out", "o", "--mode", "b", "--temperature", "0.3"], "t")


def test_manifest_replays_and_bad_files_name_the_key(tmp_path):
    manifest = tmp_path / "manifest.json"
    manifest.write_text('{"stage": "x", "fingerprint": "f", "config": {"inputs": ["a"], "out": "o", "mode": "b"}}')
    assert parse(Outer, ["--config", str(manifest)], "t").mode == "b"
    bad = tmp_path / "bad.yaml"
    bad.write_text("inputs: [a]\nout: o\nmaxx: 3\n")
    with pytest.raises(SystemExit) as err:
        parse(Outer, ["--config", str(bad)], "t")
    assert "bad.yaml" in str(err.value) and "'maxx'" in str(err.value)
    wrong = tmp_path / "wrong.yaml"
    wrong.write_text("inputs: [a]\nout: o\nmode: c\n")
    with pytest.raises(SystemExit) as err:
        parse(Outer, ["--config", str(wrong)], "t")
    assert "mode must be one of" in str(err.value)
