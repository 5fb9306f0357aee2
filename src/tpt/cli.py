"""The `tpt` command: one subcommand per stage.

Stages are imported lazily (so `tpt --help` is instant and a stage's heavy imports only load
when it runs).  Each stage's CLI module exposes ``main(argv: list[str]) -> int``; no stage's
CLI imports another's.
"""

from __future__ import annotations

import importlib
import sys

# name -> (module exposing main(argv), one-line description)
COMMANDS: dict[str, tuple[str, str]] = {
    "augment": ("tpt.augment.cli", "corpus -> thinking trajectories (resumable, exactly-once)"),
    "tokenizer": ("tpt.prepare.tokenizer_cli", "train a byte-level BPE tokenizer with TPT's special tokens"),
    "prepare": ("tpt.prepare.cli", "thinking records / raw text -> packed token shards"),
    "train": ("tpt.train.cli", "pre-train from scratch, mid-train a checkpoint, or SFT"),
    "eval": ("tpt.evaluate.cli", "benchmarks through lm-evaluation-harness, offline"),
    "analyze": ("tpt.analyze.cli", "trajectory statistics, learning curves, data-efficiency report"),
    "filter": ("tpt.analyze.filter_cli", "drop flagged trajectories, keep a table of what was removed"),
    "lab": ("tpt.lab.cli", "controlled TPT experiments on synthetic reasoning tasks (CPU, minutes)"),
    "demo": ("tpt.demo", "the README's main job, end to end"),
}


def usage() -> str:
    width = max(map(len, COMMANDS))
    lines = ["usage: tpt <command> [options]   (tpt <command> --help for each)", "", "commands:"]
    lines += [f"  {name:<{width}}  {desc}" for name, (_, desc) in COMMANDS.items()]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help", "help"):
        print(usage())
        return 0
    if argv[0] in ("-V", "--version"):
        from tpt import __version__

        print(__version__)
        return 0
    name, rest = argv[0], argv[1:]
    if name not in COMMANDS:
        print(f"tpt: unknown command {name!r}\n\n{usage()}", file=sys.stderr)
        return 2
    module = importlib.import_module(COMMANDS[name][0])
    return int(module.main(rest) or 0)


if __name__ == "__main__":
    sys.exit(main())
