"""The `tpt` command: one subcommand per stage.

Stages are imported lazily (so `tpt --help` is instant and a stage's heavy imports only load
when it runs).  Each stage's CLI module exposes ``main(argv: list[str]) -> int``; no stage's
CLI imports another's.  Exit codes are the same for every stage (``tpt.exit_codes``): 0 ok, 1 rows
set aside, 2 usage/input error, 3 environment error or crash, 130 interrupted; an OS error that a
stage does not handle itself (disk full, read-only, permission) is one line naming the path.
"""

from __future__ import annotations

import importlib
import sys
import traceback

from tpt.exit_codes import EXIT_CODES_HELP, EXIT_ENVIRONMENT, EXIT_INTERRUPTED, EXIT_USAGE, one_line, secrets_in_env

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
    return "\n".join(lines + ["", EXIT_CODES_HELP])


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
        return EXIT_USAGE
    return run_stage(name, rest)


def run_stage(name: str, argv: list[str]) -> int:
    """A stage's ``main``, with its unhandled errors turned into the documented exit codes."""
    try:
        module = importlib.import_module(COMMANDS[name][0])
        return int(module.main(argv) or 0)
    except KeyboardInterrupt:
        print(f"tpt {name}: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except OSError as exc:  # disk full, read-only, permission: the environment, not a bug
        print(one_line(name, exc), file=sys.stderr)
        return EXIT_ENVIRONMENT
    except Exception as exc:  # a crash: the traceback (secrets scrubbed) for the report, then code 3
        from tpt.io.scrub import scrub

        print(scrub(traceback.format_exc(), secrets_in_env()), file=sys.stderr, end="")
        print(one_line(name, exc) + "  [crash: exit code 3]", file=sys.stderr)
        return EXIT_ENVIRONMENT


if __name__ == "__main__":
    sys.exit(main())
