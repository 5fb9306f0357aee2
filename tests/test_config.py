from dataclasses import dataclass
from pathlib import Path
from typing import Literal, Optional

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
    limit: Optional[int] = field(None, help="limit")
    strict: bool = field(False, help="strict")
    sampling: Inner = field(default_factory=Inner, help="sampling")


def test_parse_generates_all_flags():
    cfg = parse(Outer, ["x.jsonl", "y.jsonl", "--out", "o", "--mode", "b", "--limit", "3", "--strict", "--temperature", "1.0"], "t")
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
