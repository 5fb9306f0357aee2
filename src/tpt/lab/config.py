"""`tpt lab run` configuration: its fields ARE the CLI; profiles size the run to the hardware."""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path
from typing import Optional

from tpt.config import field
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
    vocab_size: int = 320  # near character level: digits stay separate tokens, so arithmetic is learnable


PROFILES: dict[str, Profile] = {
    # `--quick`: a smoke run for tests, <= 2 minutes on 2 cores; numbers are noise
    "quick": Profile(tokens=24_000, fractions=(0.5, 1.0), model_preset="0.1m", seq_len=128, batch_tokens="1K", lr=3e-3,
                     heldout_per_level=2, sft_examples=24, sft_tokens=4_000, seeds=1),
    # the default: <= 10 minutes on a 2-core CPU (3 pretraining runs + 2 SFT runs)
    "default": Profile(tokens=640_000, fractions=(0.125, 0.25, 0.5, 1.0), model_preset="0.5m", seq_len=256,
                       batch_tokens="512", lr=2e-3, heldout_per_level=20, sft_examples=256, sft_tokens=60_000, seeds=1),
    # `--full`: sized for one GPU; 3 seeds for spread
    "full": Profile(tokens=40_000_000, fractions=(0.03125, 0.0625, 0.125, 0.25, 0.5, 1.0), model_preset="5m", seq_len=512,
                    batch_tokens="32K", lr=1e-3, heldout_per_level=100, sft_examples=2_000, sft_tokens=2_000_000, seeds=3),
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
    tokens: Optional[int] = field(None, help="training tokens per arm (overrides the profile)")
    model_preset: Optional[str] = field(None, help="`tpt train` model preset (overrides the profile)")
    batch_tokens: Optional[str] = field(None, help="tokens per optimizer step (overrides the profile)")
    lr: Optional[float] = field(None, help="peak learning rate (overrides the profile)")
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
            ("tokens", self.tokens), ("model_preset", self.model_preset), ("seeds", self.seeds), ("batch_tokens", self.batch_tokens), ("lr", self.lr)
        ) if v}
        return replace(base, **overrides)
