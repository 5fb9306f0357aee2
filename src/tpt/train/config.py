"""`tpt train` configuration: one small config per component (model, optimizer, schedule, batch,
checkpointing) composed into ``TrainConfig``; the flags stay flat (``--lr`` sets ``optimizer.lr``).

Counts are ints from the boundary on: ``--tokens 50M``, ``--batch-tokens 256K`` and
``--save-at 1M,2M`` are read by the parser (and by ``tpt.config.build`` for Python callers).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from tpt.config import field
from tpt.counts import format_count, parse_count, parse_counts  # noqa: F401 (re-exported)


@dataclass
class ModelConfig:
    """Which network: a preset, a config.json, or an HF checkpoint to continue."""

    preset: str = field(
        "",
        flag="--model-preset",
        help="model size preset (see docs/train.md: 0.5m, 1m, 5m, 20m, 50m, 150m, 400m, 1b); ignored with --init",
    )
    config: Path | None = field(
        None, flag="--model-config", help="a transformers config.json to build the model from (instead of a preset)"
    )
    rope_theta: float | None = field(
        None,
        help="RoPE base for a preset model (default 10000); a small base (e.g. 100) gives small heads finer position "
        "resolution over short contexts",
    )
    init: Path | None = field(None, help="mid-training / SFT: start from this local HF causal-LM folder")
    doc_attention: bool = field(
        False,
        help="attend only within each document of a packed row, positions restarting at 0 per document "
        "(boundary-crossing targets dropped)",
    )


@dataclass
class OptimizerConfig:
    """AdamW."""

    lr: float = field(3e-4, help="peak learning rate (AdamW)")
    weight_decay: float = field(0.1, help="AdamW weight decay (not applied to norms and biases)")
    beta1: float = field(0.9, help="AdamW beta1")
    beta2: float = field(0.95, help="AdamW beta2")
    grad_clip: float = field(1.0, help="clip the global gradient norm to this (0 = off)")


@dataclass
class ScheduleConfig:
    """How long, and the learning-rate curve over it."""

    tokens: int | None = field(
        None, count=True, help="training token budget, e.g. 50M (default: --epochs over the data)"
    )
    epochs: float = field(1.0, help="passes over the data when --tokens is not given")
    warmup: float = field(0.01, help="linear warmup: a fraction of all steps if < 1, else a number of steps")
    min_lr_ratio: float = field(0.1, help="cosine decays to lr * this")


@dataclass
class BatchConfig:
    """How the prepared sequences are batched."""

    batch_tokens: int = field(
        256_000, count=True, help="global batch in tokens per optimizer step (rounded to whole sequences)"
    )
    micro_batch: int = field(
        8, help="sequences per forward pass per process; gradient accumulation fills the global batch"
    )
    eval_sequences: int = field(256, help="held-out sequences for validation loss")

    def global_sequences(self, seq_len: int) -> int:
        return max(1, math.floor(self.batch_tokens / seq_len + 0.5))


@dataclass
class CheckpointConfig:
    """What is saved, and resuming from it."""

    save_every: int = field(500, help="write the resumable state OUT/state every N steps (0 = only at the end)")
    save_at: list[int] = field(
        default_factory=list,
        count=True,
        help="also save HF snapshots OUT/tokens-<N> at these token counts, e.g. 1M,2M,5M",
    )
    resume: bool = field(True, help="resume from OUT/state when it exists (--no-resume refuses a non-empty OUT)")


@dataclass
class TrainConfig:
    """Train a causal LM on packed token shards (tpt prepare's output): from scratch, mid-training an
    HF checkpoint, or SFT on `tpt prepare --sft` data.

    Checkpoints are HF save_pretrained folders (transformers / lm-eval / vLLM load them unchanged);
    an interrupted run resumes exactly from OUT/state when started again with the same command.
    """

    data: Path = field(help="prepared folder (tpt prepare; for --mode sft: tpt prepare --sft)")
    out: Path = field(help="output folder: final model at the top, OUT/state for resume, OUT/tokens-* snapshots")
    mode: Literal["pretrain", "sft"] = field(
        "pretrain", help="pretrain: loss on all tokens; sft: loss on mask==1 (assistant) tokens only"
    )
    model: ModelConfig = field(default_factory=ModelConfig, help="model")
    optimizer: OptimizerConfig = field(default_factory=OptimizerConfig, help="optimizer")
    schedule: ScheduleConfig = field(default_factory=ScheduleConfig, help="schedule")
    batch: BatchConfig = field(default_factory=BatchConfig, help="batching")
    checkpoint: CheckpointConfig = field(default_factory=CheckpointConfig, help="checkpointing")
    seed: int = field(0, help="seed for model init and data order")
    precision: Literal["auto", "fp32", "bf16"] = field("auto", help="auto: bf16 autocast on GPU, fp32 on CPU")
    compile: bool = field(False, help="torch.compile the model (helps on GPU; not on CPU)")
    threads: int = field(0, help="CPU threads per process (0 = torch's default); 1 is fastest on a busy machine")
    device: Literal["auto", "cpu", "cuda"] = field("auto", help="where to train")
    parallel: Literal["auto", "ddp", "fsdp"] = field("auto", help="under torchrun: auto = FSDP2 on GPU, DDP on CPU")
    eval_every: int = field(200, help="validation loss every N steps (0 = only at the end)")
    log_every: int = field(10, help="metrics line every N steps")
    progress: bool = field(True, help="progress bar with tokens/s")


class TrainInputError(ValueError):
    """Bad data, tokenizer, model or config: reported before training starts."""


def check_paths(cfg: TrainConfig) -> None:
    """The given paths exist and --data is prepared data: checked before torch loads (``tpt train``
    fails on a wrong path in a fraction of a second) and again by the plan (Python callers)."""
    data = Path(cfg.data)
    if not data.exists():
        raise TrainInputError(f"--data {data}: does not exist")
    if data.is_file():  # SFT data is built by tpt prepare --sft; train reads prepared folders only
        init = cfg.model.init or "CHECKPOINT"
        raise TrainInputError(
            f"--data {data}: a file, not a prepared folder. Prepare chat JSONL first: "
            f"tpt prepare --sft --source {data} --tokenizer {init} --seq-len 2048 --out {data}.prepared, "
            f"then tpt train --mode {cfg.mode} --data {data}.prepared ..."
        )
    for flag, path in (("--init", cfg.model.init), ("--model-config", cfg.model.config)):
        if path is not None and not Path(path).exists():
            raise TrainInputError(f"{flag} {path}: does not exist")


# Keys older manifests hold that no longer configure anything (a replayed manifest ignores them).
RETIRED_KEYS = {"seq_len": "SFT data is built by `tpt prepare --sft --seq-len N`"}
TrainConfig.retired_keys = RETIRED_KEYS  # type: ignore[attr-defined]
