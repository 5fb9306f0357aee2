"""`tpt lab run` configuration: its fields ARE the CLI; profiles size the run to the hardware."""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path
from typing import Literal

from tpt.config import field


@dataclass(frozen=True)
class Profile:
    """Everything that sizes a run.  ``tokens`` is TPT's training budget B; vanilla trains to
    ``vanilla_multiple`` x B in the same kind of run.  Checkpoints are saved at ``fractions`` of B
    (TPT: those <= 1; vanilla: all), the learning-curve points."""

    tokens: int
    fractions: tuple[float, ...]
    model_preset: str
    seq_len: int
    batch_tokens: int
    lr: float
    heldout_per_family: int  # per seed, split evenly over the family's difficulty levels
    families: tuple[str, ...]
    # every choice (formats, lr, RoPE base, modes, sizes) is made on the dev seed's draw; the
    # report shows only the test seeds, which no choice looked at (docs/lab.md, "Protocol")
    dev_seed: int = 0
    test_seeds: tuple[int, ...] = (1, 2, 3)
    vanilla_multiple: float = 4.0
    workers: int = 2  # training runs in parallel (one CPU thread each)
    # RoPE base of the lab models (`tpt train --rope-theta`).  100, not 10,000: with 16-dim heads,
    # base 10,000 leaves ~2 rotation frequencies that vary over a 60-token document (docs/lab.md)
    rope_theta: float = 100.0
    vocab_size: int = (
        512  # small enough that digits stay separate tokens, large enough that every chain_mod10 step is 4 tokens
    )
    # per-arm pre-training lr, chosen on the dev seed by `tpt lab tune` (docs/lab.md, "lr sweep");
    # an arm not named here uses ``lr``.  vanilla-like arms use vanilla's, TPT-like arms TPT's
    arm_lr: tuple[tuple[str, float], ...] = ()
    # post-training (5b, `--ablations`): SFT lr per (arm, form), chosen on the dev seed by
    # `tpt lab tune --sft`; forms: "think" (question -> thinking + answer) and "answer" (answer only)
    sft_lr: tuple[tuple[str, float], ...] = ()
    sft_examples: int = 512
    sft_epochs: float = 2.0

    def lr_for(self, arm: str) -> float:
        """Pre-training lr of ``arm``: vanilla-like arms (vanilla, vanilla-pool) take vanilla's, the rest TPT's."""
        return dict(self.arm_lr).get("vanilla" if arm.startswith("vanilla") else "tpt", self.lr)

    def sft_lr_for(self, arm: str, form: str) -> float:
        """SFT lr of base ``arm`` in ``form``; without a dev choice, the arm's pre-training lr / 8."""
        return dict(self.sft_lr).get(f"{arm}-{form}", self.lr_for(arm) / 8)


ALL_FAMILIES = ("chain_mod10", "divisibility", "multiply", "two_hop")

PROFILES: dict[str, Profile] = {
    # `--quick`: a smoke run for tests; numbers are noise
    "quick": Profile(
        tokens=16_000,
        fractions=(0.5, 1.0, 2.0, 4.0),
        model_preset="0.1m",
        seq_len=128,
        batch_tokens=1000,
        lr=3e-3,
        heldout_per_family=8,
        families=ALL_FAMILIES,
        test_seeds=(1,),
        sft_examples=48,
        sft_epochs=1.0,
        sft_lr=(("vanilla-think", 1e-3), ("vanilla-answer", 1e-3), ("tpt-think", 1e-3), ("tpt-answer", 1e-3)),
    ),
    # the default (`make demo`): <= 10 minutes on an idle 2-core CPU for 3 test seeds (docs/lab.md,
    # "Budget").  Two families: chain_mod10 (where TPT's steps can work at this size) and
    # divisibility (which vanilla learns directly): signal per second.  vanilla reads 4 x B.
    "default": Profile(
        tokens=1_000_000,
        fractions=(0.125, 0.25, 0.5, 0.75, 1.0, 1.5, 2.0, 3.0, 4.0),
        model_preset="0.1m",
        seq_len=256,
        batch_tokens=512,
        lr=4e-3,
        heldout_per_family=64,
        families=("chain_mod10", "divisibility"),
        arm_lr=(("vanilla", 0.002), ("tpt", 0.008)),  # `tpt lab tune` on the dev seed (docs/lab.md)
        # `tpt lab tune --sft-only --dev-saved` on the dev seed, from the arm_lr checkpoints at B (docs/lab.md)
        sft_lr=(("vanilla-think", 5e-4), ("vanilla-answer", 2e-3), ("tpt-think", 2e-3), ("tpt-answer", 2e-3)),
    ),
    # `--full`: sized for one GPU (5m preset); batch 4K / lr 4e-3 from an earlier H200 run (docs/lab.md)
    "full": Profile(
        tokens=8_000_000,
        fractions=(0.0625, 0.125, 0.25, 0.5, 0.75, 1.0, 2.0, 3.0, 4.0),
        model_preset="5m",
        seq_len=512,
        batch_tokens=4000,
        lr=4e-3,
        heldout_per_family=200,
        families=ALL_FAMILIES,
        workers=1,
    ),
}


@dataclass
class LabConfig:
    """Controlled TPT experiment on synthetic reasoning tasks: vanilla vs TPT through augment ->
    prepare -> train -> eval, then a report with bootstrap intervals.  See docs/lab.md."""

    out: Path = field(
        Path("runs/lab"), help="output folder: report.md, results.json, plots/, and every stage's outputs"
    )
    quick: bool = field(False, help="smoke-test size (numbers are noise)")
    full: bool = field(False, help="GPU size: larger model and budgets, all four families")
    dev: bool = field(
        False, help="run the dev seed only (for choosing settings); its report is marked DEV and is not a result"
    )
    evaluate_saved: bool = field(
        False,
        help="no training: evaluate the checkpoints an interrupted run saved and report them (the curves stop where "
        "the arms stopped; the report says so)",
    )
    ablations: bool = field(
        False,
        help="also the ablation arms: constrained-data curve, noisy experts, [d; t_other], [d; filler] (docs/lab.md)",
    )
    generators: bool = field(
        False,
        help="also TPT arms whose thinking is written by small generators tpt trains (two sizes, forward and "
        "back-thinking; docs/generators.md)",
    )
    families: list[str] | None = field(
        None, help="task families: built-in names or module paths (default: the profile's)"
    )
    test_seeds: list[int] | None = field(None, help="test seeds (default: the profile's; the dev seed is refused)")
    tokens: int | None = field(
        None, count=True, help="TPT's training tokens B, e.g. 1.5M (vanilla reads vanilla_multiple x B)"
    )
    model_preset: str | None = field(None, help="`tpt train` model preset (overrides the profile)")
    batch_tokens: int | None = field(None, count=True, help="tokens per optimizer step (overrides the profile)")
    lr: float | None = field(None, help="peak learning rate of every arm (overrides the profile's, per-arm ones too)")
    rope_theta: float | None = field(
        None, help="RoPE base of the models (overrides the profile; `tpt train --rope-theta`)"
    )
    workers: int | None = field(None, help="training runs in parallel, one CPU thread each (default: the profile's)")
    doc_attention: bool = field(
        False,
        help="`tpt train --doc-attention`: attend within each packed document, positions from 0 per document (as the "
        "evaluation prompts see them)",
    )
    device: Literal["auto", "cpu", "cuda"] = field("auto", help="training and evaluation device (as tpt train's)")
    threads: int = field(
        1,
        help="torch threads per training run (0: torch's default). 1 is the default because these models are tiny: "
        "on a busy 2-core machine, OpenMP threads spinning against other processes made a step ~10x slower "
        "(docs/lab.md)",
    )

    def profile(self) -> Profile:
        if self.quick and self.full:
            raise ValueError("--quick and --full are exclusive")
        base = PROFILES["quick" if self.quick else "full" if self.full else "default"]
        overrides = {
            k: v
            for k, v in (
                ("tokens", self.tokens),
                ("model_preset", self.model_preset),
                ("batch_tokens", self.batch_tokens),
                ("lr", self.lr),
                ("arm_lr", () if self.lr else None),  # --lr: one lr for every arm (what `tpt lab tune` sweeps)
                ("rope_theta", self.rope_theta),
                ("workers", self.workers),
                ("families", tuple(self.families) if self.families else None),
                ("test_seeds", tuple(self.test_seeds) if self.test_seeds else None),
            )
            if v is not None and (v or k == "arm_lr")
        }
        prof = replace(base, **overrides)
        if prof.dev_seed in prof.test_seeds:
            raise ValueError(f"--test-seeds must not include the dev seed {prof.dev_seed}: every choice was made on it")
        return prof

    def seeds(self, prof: Profile) -> list[int]:
        return [prof.dev_seed] if self.dev else list(prof.test_seeds)
