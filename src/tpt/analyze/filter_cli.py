"""`tpt filter RUN --out CLEAN`: drop flagged trajectories, keep a table of what was removed."""

from __future__ import annotations

import json
import sys

from tpt.analyze.filter import FilterConfig, filter_run
from tpt.analyze.stats import count_records
from tpt.config import parse
from tpt.progress import progress_bar

DESCRIPTION = """Write a clean copy of an augment run without the trajectories that raise quality flags.

flags: truncated (hit the thinking budget), empty (near-empty thinking), repetition (repeated
word n-grams: a loop), copy (thinking mostly copies the document), template (leftover prompt or
chat-template text), script (thinking not in the document's writing system).
OUT/removed/*.parquet lists every removed record (id, sample, flags, detail); OUT/manifest.json
records the thresholds and the source run.  See docs/analyze.md."""


def main(argv: list[str]) -> int:
    cfg = parse(FilterConfig, argv, "tpt filter", DESCRIPTION)
    try:
        with progress_bar(count_records([cfg.run]), "filter", "rec") as bar:
            result = filter_run(cfg, progress=bar)
    except (FileNotFoundError, FileExistsError, ValueError) as e:
        print(f"tpt filter: {e}", file=sys.stderr)
        return 2
    print(json.dumps(result.to_dict(), indent=2))
    print(
        f"kept {result.kept} of {result.records} records -> {cfg.out}/data; removed {result.removed} -> "
        f"{cfg.out}/removed",
        file=sys.stderr,
    )
    return 0
