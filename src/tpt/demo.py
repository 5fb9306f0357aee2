"""``tpt demo``: the README's main job.

By default it runs the lab (``tpt lab run``: vanilla vs TPT on synthetic reasoning tasks through
augment -> prepare -> train -> eval -> report, minutes on a CPU) and prints where the report is.
``tpt demo --augment-only`` instead augments a small sample corpus with the in-process backend and
a tiny, locally built random-weight model (nothing is downloaded).
"""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass
from pathlib import Path

from tpt.config import field, parse

DEMO_DOCS = [
    "The derivative of x squared is two x, because the slope of the parabola grows linearly with x.",
    "If n cubed plus 100 is divisible by n plus 10, then n plus 10 divides 900, so the largest n is 890.",
    "Photosynthesis converts light energy into chemical energy stored in glucose, releasing oxygen.",
    "A prime number has exactly two divisors: one and itself. Two is the only even prime.",
    "Water boils at 100 degrees Celsius at sea level; at altitude the pressure is lower, so it boils sooner.",
    "To multiply 37 by 24, compute 37 times 20 plus 37 times 4, which is 740 plus 148, or 888.",
]


def write_sample_corpus(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    rows = [{"id": f"demo-{i}", "text": text, "source": "tpt-demo"} for i, text in enumerate(DEMO_DOCS)]
    rows.append({"id": "demo-bad", "text": None})  # shows the rejected table at work
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def run_augment_demo(out: Path, samples: int = 2, max_thinking_tokens: int = 24) -> int:
    from tpt.augment.config import AugmentConfig
    from tpt.augment.run import print_summary, run_augment
    from tpt.augment.specs import InputSpec
    from tpt.config import build
    from tpt.tiny import build_tiny_model

    model_dir = out / "tiny-model"
    if not (model_dir / "config.json").exists():
        build_tiny_model(model_dir)
    corpus = write_sample_corpus(out / "corpus.jsonl")
    config = build(  # the flat names of the flags, typed as the flags would be
        AugmentConfig,
        inputs=[InputSpec(corpus)],
        out=out / "augment",
        backend="transformers",
        model=str(model_dir),
        samples=samples,
        max_thinking_tokens=max_thinking_tokens,
        shard_size=4,
        device="cpu",
    )
    summary = run_augment(config)
    print_summary(config, summary)
    print(
        f"demo: thinking records in {config.out}/data/*.parquet (rejected rows in {config.out}/rejected/, "
        f"stats in {config.out}/stats.json). The model is a random-weight toy, so the thinking is noise."
    )
    # The demo row with text=null is rejected on purpose; that is the demo working, not failing.
    return 0 if summary.failed == 0 and summary.rejected == 1 else 1


@dataclass
class DemoConfig:
    """The README's main job: the lab (`tpt lab run`), or `tpt augment` alone on a 7-row sample corpus."""

    out: Path = field(Path("runs/demo"), help="output folder")
    augment_only: bool = field(False, help="run the augment demo only")
    quick: bool = field(False, help="the lab's quick profile (~1-2 min)")


def main(argv: list[str]) -> int:
    args = parse(DemoConfig, argv, "tpt demo", __doc__ or "")
    if args.augment_only:
        return run_augment_demo(args.out)
    return run_lab_demo(args.out, quick=args.quick)


def run_lab_demo(out: Path, quick: bool = False) -> int:
    from tpt.lab.config import LabConfig
    from tpt.lab.experiment import run_lab

    run_lab(LabConfig(out=out, quick=quick))
    print(f"demo: lab report in {out}/report.md (results {out}/results.json, plots {out}/plots/)")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
