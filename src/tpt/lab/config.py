"""`tpt lab run` configuration: its fields ARE the CLI; profiles size the run to the hardware."""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path
from typing import Optional

from tpt.config import field, parse_count
from tpt.lab.families import BUILTIN


@dataclass(frozen=True)
class Profile:
    """Everything that sizes a run.  ``tokens`` is one arm's training budget; checkpoints are
    saved at ``fractions`` of it along the one run (the learning-curve points)."""

    tokens: int
    fractions: tuple[float, ...]
    model_preset: str
    seq_len: int
    batch_tokens: str
    lr: float
    heldout_per_level: int
    sft_examples: int
    sft_tokens: int
    seeds: int
    # RoPE base of the lab models (`tpt train --rope-theta`).  100, not 10,000: with 16-dim heads,
    # base 10,000 leaves ~2 rotation frequencies that vary over a 60-token document, too few to
    # point a head at "the operand 31 tokens back"; with 100, TPT's chain accuracy went from
    # chance to 0.89 at the same budget (docs/lab.md, "Third round")
    rope_theta: float = 100.0
    # SFT learning rate = pre-training lr x this.  Measured on the default run's checkpoints
    # (docs/lab.md): x1/2 erased most of what TPT had learnt (0.47 -> 0.17), x1/8 kept and
    # extended it (0.35), x1/20 was too little in 60k tokens (0.09); vanilla+SFT <= 0.06 in all
    sft_lr_scale: float = 0.125
    vocab_size: int = 512  # small enough that digits stay separate tokens, large enough that every chain_mod10 step is 4 tokens


PROFILES: dict[str, Profile] = {
    # `--quick`: a smoke run for tests, <= 2 minutes on 2 cores; numbers are noise
    "quick": Profile(tokens=24_000, fractions=(0.5, 1.0), model_preset="0.1m", seq_len=128, batch_tokens="1K", lr=3e-3,
                     heldout_per_level=2, sft_examples=24, sft_tokens=4_000, seeds=1),
    # the default: <= 10 minutes on a 2-core CPU (3 pretraining runs + 2 SFT runs).  A 0.12M model
    # at ~25k tokens/s reads 3M tokens per arm: TPT's steps start to work after ~1-1.5M (docs/lab.md)
    "default": Profile(tokens=3_000_000, fractions=(0.125, 0.25, 0.375, 0.5, 0.75, 1.0), model_preset="0.1m", seq_len=256,
                       batch_tokens="512", lr=4e-3, heldout_per_level=20, sft_examples=256, sft_tokens=150_000, seeds=1),
    # `--full`: sized for one GPU (~7 min per seed on an H200, estimated from an 8M-token run); 3 seeds.
    # Measured there: batch 32K / lr 1e-3 learnt nothing in 4M tokens (122 steps); batch 4K / lr 4e-3
    # gave TPT 0.85 vs vanilla 0.12 at 8M (docs/lab.md)
    "full": Profile(tokens=16_000_000, fractions=(0.015625, 0.03125, 0.0625, 0.125, 0.25, 0.5, 1.0), model_preset="5m",
                    seq_len=512, batch_tokens="4K", lr=4e-3, heldout_per_level=100, sft_examples=2_000, sft_tokens=2_000_000,
                    seeds=3),
}


@dataclass
class LabConfig:
    """Controlled TPT experiment on synthetic reasoning tasks: vanilla vs TPT through augment ->
    prepare -> train -> eval, then a report.  See docs/lab.md."""

    out: Path = field(Path("runs/lab"), help="output folder: report.md, results.json, plots/, and every stage's outputs")
    quick: bool = field(False, help="smoke-test size (<= 2 min on a 2-core CPU; numbers are noise)")
    full: bool = field(False, help="GPU size: larger model and budgets, 3 seeds")
    families: list[str] = field(default_factory=lambda: list(BUILTIN), help="task families: built-in names or module paths")
    seeds: Optional[int] = field(None, help="independent repetitions (corpus draw + model init); default from the profile")
    tokens: Optional[str] = field(None, help="training tokens per arm, e.g. 3M (overrides the profile)")
    model_preset: Optional[str] = field(None, help="`tpt train` model preset (overrides the profile)")
    batch_tokens: Optional[str] = field(None, help="tokens per optimizer step (overrides the profile)")
    lr: Optional[float] = field(None, help="peak learning rate (overrides the profile)")
    rope_theta: Optional[float] = field(None, help="RoPE base of the models (overrides the profile; `tpt train --rope-theta`)")
    sft: bool = field(True, help="run the post-training (SFT) phase")
    constrained: bool = field(True, help="run the constrained-data arm (vanilla repeating TPT's raw pool)")
    doc_attention: bool = field(
        False, help="`tpt train --doc-attention`: attend within each packed document, positions from 0 per document (as the evaluation prompts see them)"
    )
    device: str = field("auto", help="training and evaluation device: cpu | cuda | auto")
    threads: int = field(
        1, help="torch threads for training and evaluation (0: torch's default). 1 is the default because these models are tiny: "
        "on a busy 2-core machine, OpenMP threads spinning against other processes made a step ~10x slower (docs/lab.md)"
    )

    def profile(self) -> Profile:
        if self.quick and self.full:
            raise ValueError("--quick and --full are exclusive")
        base = PROFILES["quick" if self.quick else "full" if self.full else "default"]
        overrides = {k: v for k, v in (
            ("tokens", parse_count(self.tokens, "--tokens") if self.tokens else None), ("model_preset", self.model_preset), ("seeds", self.seeds), ("batch_tokens", self.batch_tokens), ("lr", self.lr),
            ("rope_theta", self.rope_theta)
        ) if v}
        return replace(base, **overrides)
