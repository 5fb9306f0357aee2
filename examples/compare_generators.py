"""Choose a generator (or prompt strategy) before paying for the full run: one corpus through
several arms, their trajectory statistics side by side, then a small TPT training per arm and the
learning curves side by side.

Every step is an ordinary `tpt` command, printed before it runs (copy them to run by hand, or on a
cluster); outputs of finished steps are kept, so rerunning the script resumes where it stopped.

    python examples/compare_generators.py sample.jsonl --out runs/compare --tokenizer tok/ \\
        --augment '--backend openai --serve "vllm serve {model} --port {port}"' \\
        --arm "r1-1.5b=--model models/DeepSeek-R1-Distill-Qwen-1.5B" \\
        --arm "r1-7b=--model models/DeepSeek-R1-Distill-Qwen-7B" \\
        --arm "back=--model ckpt/gen-back --strategy back-thinking" \\
        --vanilla --prepare "--seq-len 2048" --train "--model-preset 20m --tokens 200M --save-at 50M,100M,150M" \\
        --eval "--suite paper-base --data-dir ../shared/data/eval --limit 200"

Layout under --out: aug/ARM (tpt augment runs), stats/ (tpt analyze stats --by run: one column
per arm), data/ARM and ckpt/ARM (tpt prepare / tpt train, the same flags for every arm),
ckpt/ARM/eval (tpt eval of each snapshot, with --eval), curves/ (tpt analyze curves).
See docs/generators.md.
"""

from __future__ import annotations

import argparse
import shlex
import sys
from pathlib import Path


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("corpus", help="the corpus every arm augments (a sample of the real one): a file or a folder")
    p.add_argument("--out", type=Path, required=True, help="folder for every arm's runs and the reports")
    p.add_argument(
        "--arm",
        action="append",
        required=True,
        metavar="NAME=FLAGS",
        help="an arm: its name and its `tpt augment` flags (backend, model, strategy, ...); repeat, two or more",
    )
    p.add_argument("--tokenizer", required=True, help="the tokenizer every arm's training data is prepared with")
    p.add_argument(
        "--augment", default="", help="`tpt augment` flags shared by all arms (e.g. '--max-thinking-tokens 8192')"
    )
    p.add_argument("--stats", default="--quality", help="extra `tpt analyze stats` flags (default: --quality)")
    p.add_argument("--prepare", default="", help="`tpt prepare` flags shared by all arms (e.g. '--seq-len 2048')")
    p.add_argument("--train", default="", help="`tpt train` flags shared by all arms; --save-at gives curve points")
    p.add_argument(
        "--eval", default=None, help="`tpt eval` flags: evaluate every snapshot (omit: curves from training metrics)"
    )
    p.add_argument("--curves", default="", help="extra `tpt analyze curves` flags (e.g. '--x docs' or '--task gsm8k')")
    p.add_argument("--vanilla", action="store_true", help="also train on the raw corpus: the baseline of the curves")
    p.add_argument(
        "--stop-after", choices=["stats", "train"], help="stop after the statistics (no training) or before eval"
    )
    args = p.parse_args(argv)
    args.arms = [parse_arm(spec, p) for spec in args.arm]
    names = [name for name, _ in args.arms]
    if len(set(names)) != len(names) or len(names) < 2 or (args.vanilla and "vanilla" in names):
        p.error(
            f"--arm: need two or more arms with distinct names (and none called 'vanilla' with --vanilla); got {names}"
        )
    return args


def parse_arm(spec: str, parser: argparse.ArgumentParser) -> tuple[str, list[str]]:
    name, eq, flags = spec.partition("=")
    if not eq or not name or "/" in name:
        parser.error(f"--arm {spec!r}: expected NAME=FLAGS (a name without '/')")
    return name, shlex.split(flags)


def tpt(argv: list[str], ok: tuple[int, ...] = (0,)) -> None:
    """One `tpt` command, printed first, run in this process (as the CLI would run it)."""
    from tpt.cli import main

    print("$ tpt " + shlex.join(argv), flush=True)
    code = main(argv)
    if code not in ok:
        sys.exit(
            f"compare_generators: `tpt {argv[0]}` exited with {code}; fix the cause and rerun (finished steps are kept)"
        )


def augment_all(args) -> list[Path]:
    runs = []
    for name, flags in args.arms:
        run = args.out / "aug" / name
        # exit 1 = some rows set aside or failed (their tables say why): the comparison goes on
        # an arm's own flags come last: they override the shared ones
        tpt(["augment", args.corpus, "--out", str(run), *shlex.split(args.augment), *flags], ok=(0, 1))
        runs.append(run)
    return runs


def train_all(args) -> list[tuple[str, Path]]:
    sources = [(name, f"{args.out / 'aug' / name}:tpt:1.0") for name, _ in args.arms]
    if args.vanilla:
        sources.insert(0, ("vanilla", f"{args.corpus}:vanilla:1.0"))
    trained = []
    for name, source in sources:
        data, ckpt = args.out / "data" / name, args.out / "ckpt" / name
        if not (data / "index.json").exists():
            tpt(
                [
                    "prepare",
                    "--source",
                    source,
                    "--tokenizer",
                    args.tokenizer,
                    "--out",
                    str(data),
                    *shlex.split(args.prepare),
                ]
            )
        if not (ckpt / "tpt_checkpoint.json").exists():  # tpt train itself resumes an interrupted run
            tpt(["train", "--data", str(data), "--out", str(ckpt), *shlex.split(args.train)])
        trained.append((name, ckpt))
    return trained


def evaluate_all(args, trained: list[tuple[str, Path]]) -> None:
    for _, ckpt in trained:
        models = [*sorted(ckpt.glob("tokens-*")), ckpt]  # the snapshots, then the final model
        if not (ckpt / "eval").is_dir():
            tpt(["eval", *map(str, models), "--out", str(ckpt / "eval"), *shlex.split(args.eval)])


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    runs = augment_all(args)
    tpt(
        ["analyze", "stats", *map(str, runs), "--by", "run", "--out", str(args.out / "stats"), *shlex.split(args.stats)]
    )
    if args.stop_after == "stats":
        return 0
    trained = train_all(args)
    if args.eval is not None and args.stop_after != "train":
        evaluate_all(args, trained)
    runs_flags = [flag for name, ckpt in trained for flag in ("--run", f"{name}={ckpt}")]
    curves = ["analyze", "curves", *runs_flags, "--out", str(args.out / "curves")]
    tpt(curves + shlex.split(args.curves))
    print(f"\nside by side: {args.out / 'stats/report.md'} (trajectories), {args.out / 'curves/report.md'} (learning)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
