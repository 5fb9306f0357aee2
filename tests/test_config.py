import json
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import pytest

from tpt.config import build, field, parse, to_dict


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


def test_manifest_replays_and_bad_files_name_the_key(tmp_path, capsys):
    manifest = tmp_path / "manifest.json"
    manifest.write_text('{"stage": "x", "fingerprint": "f", "config": {"inputs": ["a"], "out": "o", "mode": "b"}}')
    assert parse(Outer, ["--config", str(manifest)], "t").mode == "b"
    bad = tmp_path / "bad.yaml"
    bad.write_text("inputs: [a]\nout: o\nmaxx: 3\n")
    with pytest.raises(SystemExit) as err:
        parse(Outer, ["--config", str(bad)], "t")
    message = capsys.readouterr().err
    assert err.value.code == 2 and "bad.yaml" in message and "'maxx'" in message
    wrong = tmp_path / "wrong.yaml"
    wrong.write_text("inputs: [a]\nout: o\nmode: c\n")
    with pytest.raises(SystemExit) as err:
        parse(Outer, ["--config", str(wrong)], "t")
    assert "mode must be one of" in capsys.readouterr().err


# --- the stages' component configs: flat flags, nested objects, old flat manifests ---------------


def test_augment_flags_fill_the_component_configs_and_backends_get_only_theirs():
    from tpt.augment.config import AugmentConfig, BackendConfig, SamplingConfig

    argv = [
        "c.jsonl",
        "--out",
        "o",
        "--backend",
        "openai",
        "--base-url",
        "http://h/v1",
        "--temperature",
        "1.0",
        "--gen-batch",
        "4",
    ]
    cfg = parse(AugmentConfig, [*argv, "--executor", "ray", "--serve", "vllm", "--backend-option", "k=v=w"], "t")
    assert (cfg.backend.name, cfg.backend.openai.base_url, cfg.backend.local.batch_size) == (
        "openai",
        ["http://h/v1"],
        4,
    )
    assert cfg.sampling.temperature == 1.0 and cfg.executor.name == "ray" and cfg.serve.command == "vllm"
    assert cfg.backend.options == {"k": "v=w"}
    own = cfg.backend_config()
    assert isinstance(own, BackendConfig) and isinstance(cfg.sampling, SamplingConfig)
    assert own.max_model_len == cfg.context_length() and own.cache_dir == cfg.out.resolve() / "logs"


def test_old_flat_manifest_replays_into_the_nested_config(tmp_path, capsys):
    from tpt.augment.config import AugmentConfig
    from tpt.config import flat_values

    old = {
        "inputs": ["c.jsonl"],
        "out": "o",
        "backend": "openai",
        "serve": "vllm",
        "batch_size": 3,
        "shard_size": 7,
        "seed": 5,
    }
    path = tmp_path / "manifest.json"
    path.write_text(json.dumps({"stage": "augment", "fingerprint": {}, "config": old}))
    cfg = parse(AugmentConfig, ["--config", str(path)], "t")
    assert (cfg.backend.name, cfg.serve.command, cfg.backend.local.batch_size) == ("openai", "vllm", 3)
    assert cfg.executor.shard_size == 7 and cfg.sampling.seed == 5
    with pytest.raises(SystemExit):  # --print-config writes the nested shape, which reads back the same
        parse(AugmentConfig, ["--config", str(path), "--print-config"], "t")
    nested = tmp_path / "nested.yaml"
    nested.write_text(capsys.readouterr().out)
    assert "sampling:" in nested.read_text() and "executor:" in nested.read_text()
    assert flat_values(parse(AugmentConfig, ["--config", str(nested)], "t")) == flat_values(cfg)


def test_build_types_python_values_like_flags_and_names_bad_ones():
    from tpt.train.config import OptimizerConfig, TrainConfig

    cfg = build(TrainConfig, data="d", out="o", tokens="1.5K", batch_tokens="1K", save_at=["2K,1K", 3000], lr="0.1")
    assert (
        cfg.schedule.tokens == 1500 and cfg.batch.batch_tokens == 1000 and cfg.checkpoint.save_at == [1000, 2000, 3000]
    )
    assert cfg.optimizer.lr == 0.1 and cfg.data == Path("d")
    given = build(TrainConfig, data="d", out="o", optimizer=OptimizerConfig(lr=0.5))
    assert given.optimizer.lr == 0.5  # component objects are taken as they are
    with pytest.raises(ValueError, match="unknown option 'lrate'"):
        build(TrainConfig, data="d", out="o", lrate=1)
    with pytest.raises(ValueError, match="cannot read 'lots' as a count"):
        build(TrainConfig, data="d", out="o", tokens="lots")
    with pytest.raises(ValueError, match="required"):
        build(TrainConfig, out="o")


def test_deprecated_spelling_warns_and_still_works(capsys):
    from tpt.augment.config import AugmentConfig

    assert (
        parse(AugmentConfig, ["c.jsonl", "--out", "o", "--batch-size", "5"], "tpt augment").backend.local.batch_size
        == 5
    )
    assert "--batch-size is deprecated; use --gen-batch" in capsys.readouterr().err


def test_prepare_sources_are_typed_records():
    from tpt.prepare.config import SFT_KIND, PrepareConfig, SourceSpec

    cfg = parse(PrepareConfig, ["--source", "r:tpt:x2", "--source", "raw.jsonl:vanilla:0.5", "--out", "o"], "t")
    assert cfg.source == [SourceSpec(Path("r"), "tpt", epochs=2.0), SourceSpec(Path("raw.jsonl"), "vanilla", 0.5)]
    assert PrepareConfig(source=["chats.jsonl"], out=Path("o"), tokens="2K").source[0].kind == SFT_KIND
    assert PrepareConfig(source=["r:tpt"], out=Path("o"), tokens="2K").tokens == 2000
    with pytest.raises(SystemExit):
        parse(PrepareConfig, ["--source", "r:tp:1", "--out", "o"], "t")


def test_prepare_refuses_a_bare_path_without_sft(tmp_path):
    from tpt.prepare.config import PrepareConfig, PrepareError
    from tpt.prepare.run import prepare

    with pytest.raises(PrepareError, match="a bare PATH is a chat JSONL for --sft"):
        prepare(PrepareConfig(source=["chats.jsonl"], out=tmp_path / "o", tokenizer="tok"))


@dataclass
class Grouped:
    runs: list[Path] = field(help="runs", positional=True)
    by: list[str] = field(default_factory=list, split=True, help="fields")
    targets: list[float] = field(default_factory=list, split=True, help="scores")
    order: list[str] = field(default_factory=list, repeat=True, help="FIELD=a,b")


def test_one_value_list_flags_leave_positionals_alone_and_positionals_may_come_anywhere(tmp_path):
    """What analyze's argv pre-pass did, done by the generator: `--by a,b RUN` keeps RUN positional."""
    argv = ["r1", "--by", "domain,audience", "r2", "--order", "audience=lo,hi", "r3", "--by", "x", "--targets", "0.3,1"]
    cfg = parse(Grouped, argv, "t")
    assert cfg.runs == [Path("r1"), Path("r2"), Path("r3")] and cfg.by == ["domain", "audience", "x"]
    assert cfg.order == ["audience=lo,hi"] and cfg.targets == [0.3, 1.0]
    with pytest.raises(SystemExit):
        parse(Grouped, ["r1", "--targets", "0.3,high"], "t")
    path = tmp_path / "c.yaml"
    path.write_text("runs: [r1]\nby: domain,audience\norder: audience=lo,hi\ntargets: [0.5, '0.6,0.7']\n")
    cfg = parse(Grouped, ["--config", str(path)], "t")
    assert cfg.by == ["domain", "audience"] and cfg.order == ["audience=lo,hi"] and cfg.targets == [0.5, 0.6, 0.7]
