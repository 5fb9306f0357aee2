"""Resolve a TrainConfig into a RunPlan: data, tokenizer, model config, batch layout, schedule.

Everything here is cheap and runs before the model is built, so every input problem
(see checks.py) surfaces before any compute is spent.
"""

from __future__ import annotations

import hashlib
import math
import sys
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from tpt.prepare.packed import PackedDataset

from . import checks
from .checks import TrainInputError
from .config import TrainConfig, check_paths
from .data import BatchLayout, DataOrder, split_heldout
from .distributed import Dist
from .presets import config_from_file, preset_config


@dataclass(frozen=True)
class Schedule:
    """Linear warmup to ``peak``, then cosine decay to ``peak * min_ratio`` at ``total`` steps."""

    peak: float
    min_ratio: float
    warmup: int
    total: int

    def lr(self, step: int) -> float:
        if step < self.warmup:
            return self.peak * (step + 1) / self.warmup
        progress = min(1.0, (step - self.warmup) / max(1, self.total - self.warmup))
        low = self.peak * self.min_ratio
        return low + (self.peak - low) * 0.5 * (1.0 + math.cos(math.pi * progress))


@dataclass
class RunPlan:
    data_root: Path
    train: PackedDataset
    eval_ds: PackedDataset  # where the held-out rows live (val split, or the tail of train)
    eval_rows: np.ndarray
    order: DataOrder
    layout: BatchLayout
    tokenizer: object
    tokenizer_path: Path
    model_config: object  # a transformers PretrainedConfig
    model_source: str  # "preset 20m", "config FILE" or "init PATH": for messages
    total_steps: int
    schedule: Schedule
    use_mask: bool  # SFT: loss on masked tokens only
    doc_attention: bool  # per-document attention and positions (see data.read_batch)
    vocab_size: int = 0  # embedding rows the model needs (> the --init model's when tokens were added)
    added_token_ids: list = field(default_factory=list)  # ids `tpt prepare --add-think-tokens` added: new rows
    save_dtype: object = None  # the --init model's own dtype: final model and snapshots are saved in it

    @property
    def counts_targets(self) -> bool:
        """Whether the targets per step vary (so they are counted) instead of B x (seq_len - 1)."""
        return self.use_mask or self.doc_attention

    @property
    def seq_len(self) -> int:
        return self.train.seq_len

    @property
    def tokens_per_step(self) -> int:
        return self.layout.global_batch * self.seq_len

    def fingerprint(self, cfg: TrainConfig) -> dict:
        """What must not change between a checkpoint and the run resuming it."""
        index_bytes = (self.data_root / "index.json").read_bytes()
        return {
            "mode": cfg.mode,
            "model": self.model_source,
            "data_index_sha256": hashlib.sha256(index_bytes).hexdigest(),
            "seq_len": self.seq_len,
            "global_batch": self.layout.global_batch,
            "total_steps": self.total_steps,
            "schedule": [self.schedule.peak, self.schedule.min_ratio, self.schedule.warmup],
            "optimizer": [
                cfg.optimizer.weight_decay,
                cfg.optimizer.beta1,
                cfg.optimizer.beta2,
                cfg.optimizer.grad_clip,
            ],
            "seed": cfg.seed,
            "doc_attention": cfg.model.doc_attention,  # changes what every token sees and which targets count
        }


def resolve_model_config(cfg: TrainConfig, train: PackedDataset, tok) -> tuple[object, str]:
    if cfg.model.rope_theta is not None and (
        cfg.model.init is not None or cfg.model.config is not None or cfg.model.rope_theta <= 0
    ):
        raise TrainInputError(
            f"--rope-theta {cfg.model.rope_theta}: must be > 0 and applies to --model-preset only "
            "(an --init checkpoint or --model-config file carries its own rope_theta)"
        )
    if cfg.model.init is not None:
        from transformers import AutoConfig

        init = Path(cfg.model.init)
        checks.check_init_folder(init)
        return AutoConfig.from_pretrained(str(init), local_files_only=True), f"init {init}"
    if cfg.model.config is not None:
        return config_from_file(Path(cfg.model.config)), f"config {cfg.model.config}"
    if not cfg.model.preset:
        raise TrainInputError("no model: give --model-preset (e.g. 20m), --model-config FILE or --init CHECKPOINT")
    # Round the vocabulary up to a multiple of 64: faster matmuls, same token ids.
    vocab = -(-max(int(train.index["vocab_size"]), len(tok)) // 64) * 64
    return preset_config(
        cfg.model.preset,
        vocab,
        train.seq_len,
        int(train.index.get("eos_id", tok.eos_token_id)),
        tok.pad_token_id,
        cfg.model.rope_theta,
    ), f"preset {cfg.model.preset}"


def total_steps(cfg: TrainConfig, train_rows: int, seq_len: int, layout: BatchLayout) -> int:
    budget = cfg.schedule.tokens
    if budget is None:
        if cfg.schedule.epochs <= 0:
            raise TrainInputError(f"--epochs {cfg.schedule.epochs}: must be > 0 (or give --tokens)")
        budget = int(cfg.schedule.epochs * train_rows * seq_len)
    steps = -(-budget // (layout.global_batch * seq_len))
    if steps < 1:
        raise TrainInputError(
            f"--tokens {cfg.schedule.tokens}: less than one step of {layout.global_batch * seq_len} tokens"
        )
    return steps


def make_plan(cfg: TrainConfig, dist: Dist) -> RunPlan:
    check_paths(cfg)
    data_root = Path(cfg.data)
    train = checks.open_split(data_root, "train", required=True)
    val = checks.open_split(data_root, "val", required=False)
    if len(train) == 0:
        raise TrainInputError(f"--data {data_root}: the train split has no sequences")
    use_mask = cfg.mode == "sft"
    if use_mask:
        checks.check_sft_masks(train)
        if val is not None:
            checks.check_sft_masks(val)
    tok_path = checks.tokenizer_dir(train)
    tok = checks.load_tokenizer(tok_path)
    checks.check_tokenizer(tok, tok_path, train.index, cfg.mode)
    model_config, source = resolve_model_config(cfg, train, tok)
    added = checks.added_tokens(train.index, tok, tok_path)
    vocab = int(model_config.vocab_size)
    if cfg.model.init is not None and added:  # rows for the added tokens (the checkpoint may already have them)
        vocab = max(vocab, len(tok))
    checks.check_model_fits(model_config, train, source, vocab)
    checks.check_checkpoint_tokenizer(tok, tok_path, model_config, train)
    if cfg.model.init is not None:
        checks.check_init_tokenizer(Path(cfg.model.init), tok, tok_path, added)
    if cfg.model.doc_attention:
        checks.check_doc_starts(train)

    train_rows, eval_rows, from_val = split_heldout(train, val, cfg.batch.eval_sequences)
    if len(train_rows) == 0:
        raise TrainInputError(f"--data {data_root}: no training rows left after holding out validation rows")
    eval_rows = eval_rows[: len(eval_rows) // dist.world * dist.world]  # equal shares: collectives stay in step
    if cfg.batch.micro_batch < 1:
        raise TrainInputError(f"--micro-batch {cfg.batch.micro_batch}: must be >= 1")
    layout = BatchLayout.plan(cfg.batch.global_sequences(train.seq_len), cfg.batch.micro_batch, dist.world)
    steps = total_steps(cfg, len(train_rows), train.seq_len, layout)
    if dist.is_main:
        warn_epochs(steps * layout.global_batch, len(train_rows), data_root)
    warmup = int(cfg.schedule.warmup * steps) if cfg.schedule.warmup < 1 else int(cfg.schedule.warmup)
    return RunPlan(
        data_root=data_root,
        train=train,
        eval_ds=val if from_val else train,
        eval_rows=eval_rows,
        order=DataOrder(train_rows, cfg.seed),
        layout=layout,
        tokenizer=tok,
        tokenizer_path=tok_path,
        model_config=model_config,
        model_source=source,
        total_steps=steps,
        schedule=Schedule(cfg.optimizer.lr, cfg.schedule.min_lr_ratio, min(warmup, steps), steps),
        use_mask=use_mask,
        doc_attention=cfg.model.doc_attention,
        vocab_size=vocab,
        added_token_ids=sorted(added.values()),
        save_dtype=checks.model_dtype(model_config) if cfg.model.init is not None else None,
    )


def warn_epochs(sequences: int, train_rows: int, data_root: Path) -> None:
    """Say so when the budget goes past one pass over the data (the data repeats)."""
    if sequences > train_rows:
        repeated = "every sequence is" if sequences >= 2 * train_rows else f"{sequences - train_rows:,} sequences are"
        print(
            f"tpt train: warning: the budget is {sequences / train_rows:.2f} epochs over {data_root}'s "
            f"{train_rows:,} training sequences: {repeated} seen more than once",
            file=sys.stderr,
            flush=True,
        )
