"""`tpt prepare`: a thin CLI over ``tpt.prepare.run.prepare`` (flags = PrepareConfig fields)."""

from __future__ import annotations

import json
import os
import sys

from tpt.config import parse
from tpt.prepare.config import PrepareConfig, PrepareError

EPILOG_EXAMPLE = (
    "example: tpt prepare --source runs/aug1:tpt:1.0 --source raw.jsonl:vanilla:0.125 "
    "--tokenizer tok/ --seq-len 2048 --tokens 50M --out data/tpt\n"
    "also: tpt prepare back-thinking --help  (SFT data for a back-thinking generator)"
)


def main(argv: list[str]) -> int:
    if argv[:1] == ["back-thinking"]:  # SFT data for a back-thinking generator (docs/generators.md)
        from tpt.prepare.back_thinking_cli import main as back_thinking_main

        return back_thinking_main(argv[1:])
    cfg = parse(
        PrepareConfig,
        list(argv),
        "tpt prepare",
        (PrepareConfig.__doc__ or "") + "\n\n" + EPILOG_EXAMPLE,
    )
    # the Rust tokenizer's own thread pool; we never fork after using it
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "true")
    from tpt.io.lock import LockHeld
    from tpt.prepare.run import prepare

    try:
        index = prepare(cfg)
    except PrepareError as e:
        print(f"tpt prepare: error: {e}", file=sys.stderr)
        return 2
    except LockHeld as e:
        print(f"tpt prepare: error: {e}", file=sys.stderr)
        return 3
    except OSError as e:  # disk full, read-only or unwritable --out: one line naming the path
        print(f"tpt prepare: error: {e.filename or cfg.out}: {e.strerror or e}", file=sys.stderr)
        return 3
    print(json.dumps(summary(index), indent=2))
    return 0


def summary(index: dict) -> dict:
    keys = (
        "format",
        "seq_len",
        "vocab_size",
        "train",
        "val",
        "packing",
        "rejected_rows",
        "added_tokens",
        "megatron_data_path",
        "warnings",
        "seconds",
    )
    out = {k: index[k] for k in keys if index.get(k) not in (None, [], {})}
    wanted = ("source", "tokens", "share", "unique_docs", "share_used", "epochs_seen", "documents", "prefix")
    out["sources"] = [{k: s[k] for k in wanted if k in s} for s in index.get("sources", [])]
    out.update({k: index[k] for k in ("conversations", "truncated") if k in index})  # SFT
    return out
