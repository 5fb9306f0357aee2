"""`tpt tokenizer train INPUT... --vocab-size N --out DIR`: byte-level BPE with TPT's special tokens.

INPUTs are augment run folders (documents and thinking trajectories are both used, so the
vocabulary covers both) or raw JSONL / Parquet files or folders (their text field).
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from dataclasses import dataclass
from itertools import islice
from pathlib import Path

from tpt.config import field, parse


@dataclass
class TokenizerTrainConfig:
    """Train a byte-level BPE tokenizer (special tokens <|endoftext|> <|pad|> <think> </think>
    <|im_start|> <|im_end|>)."""

    inputs: list[Path] = field(help="augment run folders, or raw JSONL / Parquet files or folders", positional=True)
    out: Path = field(help="output tokenizer folder (an HF tokenizer: AutoTokenizer.from_pretrained loads it)")
    vocab_size: int = field(8192, help="vocabulary size, special tokens included")
    min_frequency: int = field(2, help="minimum pair frequency for a merge")
    max_texts: int | None = field(None, help="train on at most this many texts (documents + trajectories)")
    text_field: str = field("text", help="text column of raw sources")


def training_sources(cfg: TokenizerTrainConfig) -> list:
    """Every input checked (exists, readable) before the tokenizer library is imported."""
    from tpt.prepare.config import SourceSpec
    from tpt.prepare.sources import check_source, is_run_folder

    specs = [SourceSpec(path, "tpt" if is_run_folder(path) else "vanilla", 1.0) for path in cfg.inputs]
    for spec in specs:
        check_source(spec, cfg.text_field)
    return specs


def iter_training_texts(cfg: TokenizerTrainConfig, rejected: list) -> Iterator[str]:
    from tpt.prepare.sources import iter_sample_batches

    for spec in training_sources(cfg):
        for batch in iter_sample_batches(spec, rejected, text_field=cfg.text_field):
            for sample in batch:
                yield sample.text
                if sample.thinking:
                    yield sample.thinking


def train(cfg: TokenizerTrainConfig) -> tuple[Path, int]:
    """-> (tokenizer folder, number of rejected input rows)."""
    training_sources(cfg)  # a wrong path fails here, before transformers loads
    from tpt.prepare.tokenizer import train_tokenizer

    rejected: list = []
    texts = iter_training_texts(cfg, rejected)
    out = train_tokenizer(
        islice(texts, cfg.max_texts) if cfg.max_texts else texts, cfg.out, cfg.vocab_size, cfg.min_frequency
    )
    return out, len(rejected)


USAGE = "usage: tpt tokenizer train INPUT... --out DIR [options]   (tpt tokenizer train --help)"


def main(argv: list[str]) -> int:
    if not argv or argv[0] in ("-h", "--help", "help"):
        print(f"{USAGE}\n\nsubcommands:\n  train  {' '.join((TokenizerTrainConfig.__doc__ or '').split())}")
        return 0
    if argv[0] != "train":
        print(f"tpt tokenizer: unknown subcommand {argv[0]!r}\n{USAGE}", file=sys.stderr)
        return 2
    cfg = parse(TokenizerTrainConfig, argv[1:], prog="tpt tokenizer train")  # with --config / --print-config
    from tpt.prepare.config import PrepareError

    try:
        out, rejected = train(cfg)
    except PrepareError as e:
        print(f"tpt tokenizer train: error: {e}", file=sys.stderr)
        return 2
    note = f" ({rejected} unreadable input rows skipped)" if rejected else ""
    print(f"tokenizer written to {out}{note}")
    return 0
