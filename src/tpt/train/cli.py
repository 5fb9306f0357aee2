"""`tpt train`: a thin CLI over tpt.train.loop.train (see docs/train.md)."""

from __future__ import annotations

import os
import sys

from tpt.config import parse

from .config import TrainConfig, TrainInputError, check_paths

EPILOG_EXAMPLES = """
examples:
  tpt train --data data/tpt --model-preset 20m --tokens 50M --out ckpt/tpt          # from scratch
  tpt train --data data/tpt --init path/to/hf-checkpoint --out ckpt/mid             # mid-training
  tpt train --mode sft --data sft.jsonl --init ckpt/mid --out ckpt/sft              # SFT
  torchrun --nproc-per-node 2 -m tpt train ...                                      # data-parallel
"""


def main(argv: list[str]) -> int:
    cfg = parse(TrainConfig, argv, prog="tpt train", description=(TrainConfig.__doc__ or "") + EPILOG_EXAMPLES)
    try:
        check_paths(cfg)  # before torch loads: a wrong path costs a fraction of a second
    except TrainInputError as e:
        print(f"tpt train: error: {e}", file=sys.stderr)
        return 2
    from tpt.io.lock import LockHeld

    from .loop import TrainingDiverged, train

    try:
        result = train(cfg)
    except TrainInputError as e:
        print(f"tpt train: error: {e}", file=sys.stderr)
        return 2
    except LockHeld as e:
        print(f"tpt train: error: {e}", file=sys.stderr)
        return 3
    except OSError as e:  # disk full, read-only or unwritable --out: one line naming the path
        print(f"tpt train: error: {e.filename or cfg.out}: {e.strerror or e}", file=sys.stderr)
        return 3
    except TrainingDiverged as e:
        print(f"tpt train: diverged: {e}", file=sys.stderr)
        return 1
    if int(os.environ.get("RANK", "0")) != 0:
        return 0  # one summary line per run, not per process
    val = f", val loss {result.val_loss:.4f}" if result.val_loss is not None else ""
    print(f"tpt train: done: {result.steps} steps, {result.tokens_seen:,} tokens{val}; model at {result.checkpoint}")
    return 0
