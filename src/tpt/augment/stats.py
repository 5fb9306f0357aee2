"""stats.json: what a run holds (from the shards' done markers, never re-reading finished data),
its rejected rows by reason and by file, its failures, and this invocation's throughput."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pyarrow.parquet as pq

from tpt.augment.markers import file_sums, marker_sums


def folder_stats(out: Path, results: list, wall: float, complete: bool) -> dict:
    rejected, failed = sorted((out / "rejected").glob("*.parquet")), sorted((out / "failed").glob("*.parquet"))
    return stats_of(_data_sums(out), rejected, failed, results, wall, complete)


def stats_of(
    data: dict, rejected: list[Path], failed_files: list[Path], results: list, wall: float, complete: bool
) -> dict:
    """stats.json from the data sums and the rejected and failed tables."""
    by_reason, by_file = _rejections(rejected)
    failed = sum(pq.ParquetFile(p).metadata.num_rows for p in failed_files)
    completion = sum(r.completion_tokens for r in results)
    new = sum(r.new_records for r in results)
    return {
        "records": data["records"],
        "documents": data["documents"],
        "rejected": sum(by_reason.values()),
        "rejected_by_reason": dict(by_reason.most_common()),
        "rejected_by_file": dict(by_file.most_common(50)),
        "failed": failed,
        "complete": complete,
        "thinking_tokens_total": data["thinking_tokens"],
        "doc_tokens_total": data["doc_tokens"],
        "truncated_rate": data["truncated"] / max(1, data["records"]),
        "length_finish_rate": data["length"] / max(1, data["records"]),
        "this_run": {
            "new_records": new,
            "shards_run": sum(1 for r in results if not r.skipped),
            "prompt_tokens": sum(r.prompt_tokens for r in results),
            "completion_tokens": completion,
            "wall_seconds": round(wall, 3),
            "completion_tokens_per_second": round(completion / wall, 2) if wall > 0 else 0.0,
            "records_per_second": round(new / wall, 2) if wall > 0 else 0.0,
        },
    }


def reason_kind(reason: str) -> str:
    """'malformed JSON: Expecting value...' -> 'malformed JSON' (the part before details)."""
    return reason.split(":", 1)[0].split(" (", 1)[0]


def _rejections(files: list[Path]) -> tuple[Counter, Counter]:
    by_reason, by_file = Counter(), Counter()
    for path in files:
        table = pq.read_table(path, columns=["file", "reason"])
        by_reason.update(reason_kind(r) for r in table.column("reason").to_pylist())
        by_file.update(table.column("file").to_pylist())
    return by_reason, by_file


def _data_sums(out: Path) -> dict:
    """Sums over every data file: from the done markers of finished shards (no data re-read), from the
    file itself for unfinished ones (partly failed) and markers of an older tpt."""
    return total_sums(marker_sums(out, p.stem) or file_sums(p) for p in sorted((out / "data").glob("*.parquet")))


def total_sums(per_file) -> dict:
    total = dict.fromkeys(("records", "documents", "thinking_tokens", "doc_tokens", "truncated", "length"), 0)
    for sums in per_file:
        for key in total:
            total[key] += sums[key]
    return total
