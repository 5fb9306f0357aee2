"""Configuration of `tpt prepare`: the dataclass fields ARE the CLI flags.

Sources and counts are typed where they enter: ``--source`` becomes a ``SourceSpec``, ``--tokens 50M``
an int (the parser does it for flags and config files, ``PrepareConfig.__post_init__`` for Python
callers that pass the text forms).  A source is written ``PATH:KIND[:WEIGHT]``:

* ``PATH``   an augment run folder (``RUN/data/*.parquet``), or raw JSONL / Parquet files or a folder of them
* ``KIND``   ``tpt`` (d + <think> t </think>, needs a run folder) or ``vanilla`` (d only)
* ``WEIGHT`` a float: the source's relative share of the token budget (default 1.0), or
             ``xN`` (e.g. ``x2``, ``x0.5``): exactly N passes (epochs) over the source, whatever the budget
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from tpt.config import field
from tpt.counts import parse_count as shared_parse_count

KINDS = ("tpt", "vanilla")
SFT_KIND = "sft"  # --sft: a chat JSONL, written as a bare PATH
FORMATS = ("packed", "megatron", "text")
DOC_CUTS = ("full", "prefix")
DEFAULT_TEMPLATE = "{text} <think> {thinking} </think>"


class PrepareError(ValueError):
    """A configuration, input or tokenizer problem found before any compute is spent."""


@dataclass(frozen=True)
class SourceSpec:
    path: Path
    kind: str  # "tpt" | "vanilla"
    weight: float | None = None  # share of the budget (relative), or
    epochs: float | None = None  # exact number of passes

    @property
    def name(self) -> str:
        return f"{self.path}:{self.kind}"

    def describe(self) -> str:
        if self.kind == SFT_KIND:
            return str(self.path)
        return f"{self.path}:{self.kind}:" + (f"x{self.epochs:g}" if self.epochs is not None else f"{self.weight:g}")


def parse_source(spec: str | Path | dict | SourceSpec) -> SourceSpec:
    """``PATH:KIND[:WEIGHT|xEPOCHS]`` (or the mapping a manifest holds) -> SourceSpec (PATH may contain ':').
    A bare PATH is an SFT source (``--sft``: chat JSONL), kind ``sft``."""
    if isinstance(spec, SourceSpec):
        return spec
    if isinstance(spec, dict):
        return SourceSpec(Path(spec["path"]), spec["kind"], spec.get("weight"), spec.get("epochs"))
    spec = str(spec)  # a Path: a bare path, unless its name ends in :KIND
    parts = spec.rsplit(":", 2)
    if len(parts) >= 2 and parts[-1] in KINDS:  # PATH:KIND
        path, kind, amount = ":".join(parts[:-1]), parts[-1], "1"
    elif len(parts) == 3 and parts[1] in KINDS:
        path, kind, amount = parts
    elif ":" not in spec.rsplit("/", 1)[-1]:  # no ':KIND' after the file name
        return SourceSpec(Path(spec), SFT_KIND)
    else:
        raise PrepareError(
            f"--source {spec!r}: expected PATH:KIND[:WEIGHT], KIND one of {KINDS}, WEIGHT a float or xN epochs"
        )
    epochs = amount[1:] if amount.startswith("x") else None
    try:
        value = float(epochs if epochs is not None else amount)
    except ValueError:
        raise PrepareError(
            f"--source {spec!r}: {amount!r} is neither a weight (0.125) nor an epoch count (x2)"
        ) from None
    if not value > 0:
        raise PrepareError(f"--source {spec!r}: weight / epochs must be > 0")
    if epochs is not None:
        return SourceSpec(Path(path), kind, epochs=value)
    return SourceSpec(Path(path), kind, weight=value)


parse_source.typed_as = SourceSpec  # type: ignore[attr-defined]  # tpt.config: a SourceSpec passes as it is


def parse_count(text: str | int | None, flag: str = "--tokens") -> int | None:
    """'50M' -> 50_000_000 (tpt.counts.parse_count); None or '' stays None; must be positive."""
    if text is None or text == "":
        return None
    if isinstance(text, int) and not isinstance(text, bool) and text > 0:
        return text
    try:
        value = shared_parse_count(text, flag)
    except ValueError:
        value = None
    if value is None or value <= 0:
        raise PrepareError(f"{flag} {text!r}: expected a positive count such as 50M, 1.5B, 2k or 1000")
    return value


@dataclass
class PrepareConfig:
    """Thinking records / raw text -> packed, fixed-length token shards (see docs/prepare.md)."""

    source: list[SourceSpec] = field(
        parse=parse_source,
        help="PATH:KIND[:WEIGHT] (repeatable). KIND tpt|vanilla; WEIGHT a budget share (default 1) or xN epochs. "
        "With --sft: chat-format JSONL files (PATH only)",
    )
    out: Path = field(help="output folder (written atomically: a temp folder renamed at the end)")
    tokenizer: str = field("", help="a local HF tokenizer folder (or model folder); needed except for --format text")
    format: Literal["packed", "megatron", "text"] = field(
        "packed",
        help="packed: tpt train's shards; megatron: Megatron-LM .bin/.idx per source, one sample per "
        "document; text: Parquet with the rendered sample in `text` + provenance columns (see docs/exports.md)",
    )
    add_think_tokens: bool = field(
        False,
        help="add the template's special tokens (<think>, </think>) the tokenizer lacks; the extended "
        "tokenizer is saved in OUT/tokenizer and `tpt train --init` resizes the model's embeddings to it",
    )
    doc_cut: Literal["full", "prefix"] = field(
        "full",
        help="d in a TPT sample: the full document, or exactly the prefix the generator saw "
        "(--max-doc-tokens of its tokenizer; see docs/prepare.md)",
    )
    doc_cut_tokenizer: str = field(
        "", help="--doc-cut prefix: the generator's tokenizer folder (default: the run manifest's)"
    )
    allow_incomplete: bool = field(False, help="pack an augment run whose shards are not all done (default: refuse)")
    allow_duplicates: bool = field(
        False, help="keep the first of repeated (id, sample) records and set the rest aside (default: refuse)"
    )
    warn_epochs: float = field(1.0, help="warn when a weighted source is repeated more than this many times")
    warn_share: float = field(0.5, help="warn when less than this share of a weighted source's documents is used")
    seq_len: int = field(2048, help="tokens per packed sequence")
    tokens: int | None = field(
        None,
        count=True,
        help="total training-token budget (50M, 1.5B, ...); default: the largest budget that repeats no weighted "
        "source",
    )
    pool_tokens: int | None = field(
        None,
        count=True,
        help="constrained-data setting: each source keeps only this many unique tokens, repeated to fill the budget",
    )
    val_sequences: int = field(8, help="held-out validation sequences, from documents never in train")
    val_fraction: float | None = field(None, help="instead of --val-sequences: this fraction of all unique tokens")
    seed: int = field(0, help="seed of document order, epoch shuffles and the validation split")
    template: str = field(
        DEFAULT_TEMPLATE, help="TPT sample template with {text} and {thinking}; EOS is added after each sample"
    )
    on_length: Literal["keep", "drop", "cut"] = field(
        "keep",
        help="records with finish_reason=length: keep them, drop them, or cut the thinking at its last full sentence",
    )
    text_field: str = field("text", help="text column of raw JSONL / Parquet sources")
    id_field: str | None = field(
        None, help="id column of raw sources (default: 'id' when present, else a content hash)"
    )
    shard_tokens: int = field(128_000_000, count=True, help="tokens per output shard file")
    batch_docs: int = field(1024, help="documents per tokenizer batch")
    sft: bool = field(
        False, help="SFT mode: --source files are chat JSONL (`messages`); rows are padded, with a loss mask"
    )
    overwrite: bool = field(False, help="replace --out if it exists")

    def __post_init__(self) -> None:
        # Python callers may pass the CLI's text forms ("run:tpt:1", "50M"): typed here, once.
        self.source = [parse_source(s) for s in self.source]
        self.tokens = parse_count(self.tokens, "--tokens")
        self.pool_tokens = parse_count(self.pool_tokens, "--pool-tokens")
        self.shard_tokens = parse_count(self.shard_tokens, "--shard-tokens")  # type: ignore[assignment]

    def describe_sources(self) -> list[str]:
        return [s.describe() for s in self.source]
