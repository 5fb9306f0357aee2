"""`tpt lab run ...`: the lab experiment end to end (see docs/lab.md)."""

from __future__ import annotations

import sys

from tpt.config import parse
from tpt.lab.config import LabConfig

USAGE = (
    "usage: tpt lab run [--quick | --full] [--out DIR] [options]   (tpt lab run --help)\n"
    "       tpt lab tune [--lrs ...] [--sft] [--out DIR]           (dev-seed lr sweeps; tpt lab tune --help)"
)


def main(argv: list[str]) -> int:
    if not argv or argv[0] in ("-h", "--help"):
        print(
            USAGE
            + "\n\nsubcommands:\n  run   vanilla vs TPT on synthetic reasoning tasks: augment -> prepare -> train -> "
            "eval -> report\n  tune  the dev-seed lr sweeps (both arms; with --sft the SFT lr per arm and form)"
        )
        return 0
    if argv[0] == "tune":
        return tune(argv[1:])
    if argv[0] != "run":
        print(f"tpt lab: unknown subcommand {argv[0]!r}\n{USAGE}", file=sys.stderr)
        return 2
    cfg = parse(LabConfig, argv[1:], prog="tpt lab run")
    from tpt.lab.experiment import run_lab

    try:
        run_lab(cfg)
    except ValueError as e:
        print(f"tpt lab: {e}", file=sys.stderr)
        return 2
    return 0


def tune(argv: list[str]) -> int:
    from tpt.lab.tune import TuneConfig

    cfg = parse(TuneConfig, argv, prog="tpt lab tune")
    from tpt.lab.tune import run_tune

    try:
        run_tune(cfg)
    except ValueError as e:
        print(f"tpt lab: {e}", file=sys.stderr)
        return 2
    return 0
