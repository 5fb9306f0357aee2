"""Duplicate ids across shards, in bounded memory.

No process ever holds the ids of the whole corpus. Within a shard a repeated id is rejected before
generation (``shards.parse_shard_rows``). Each shard also writes its ids, sorted, to
``RUN/state/ids/shard-k.parquet``; once every shard of the plan is done, ``merge_duplicates`` streams
those files through a k-way merge (memory: one small batch per shard) and, for every id seen in more
than one shard, keeps the occurrence in the lowest shard and moves the others' records out of
``data/`` into ``rejected/shard-k.duplicates.parquet`` (a row each, saying where the first one is).
Duplicates across shards therefore cost their generation, never a second record for one key.
The step is idempotent (a kill -9 in the middle is redone from the id files) and ends with the
marker ``RUN/state/duplicates.merged``.
"""

from __future__ import annotations

import heapq
from collections import defaultdict
from collections.abc import Iterator
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from tpt.augment.markers import file_sums, write_done_marker
from tpt.io.fs import as_path
from tpt.io.readers import _LineBase
from tpt.io.writers import touch_marker, write_table
from tpt.records import REJECTED_SCHEMA

IDS_SCHEMA = pa.schema([("id", pa.string()), ("line", pa.int64()), ("relative", pa.bool_())])
DONE = "duplicates.merged"  # not *.done: that glob means "finished shards"


def ids_path(run_dir: Path, name: str) -> Path:
    return run_dir / "state" / "ids" / f"{name}.parquet"


def write_ids(run_dir: Path, spec, docs, rows) -> None:
    """The shard's ids, sorted, with their lines; a JSONL byte range's lines are stored relative to
    the range (``relative``) and made absolute only for the few reported duplicates."""
    table = sorted(
        ({"id": d.id, "line": raw._line, "relative": not raw.line_is_known} for d, raw in zip(docs, rows)),
        key=lambda r: r["id"],
    )
    write_table(ids_path(run_dir, spec.name), table, IDS_SCHEMA)


def _iter_ids(path: Path, shard: int) -> Iterator[tuple[str, int, int, bool]]:
    if not path.exists():
        return
    for batch in pq.ParquetFile(path).iter_batches(batch_size=1024):
        for row in batch.to_pylist():
            yield row["id"], shard, row["line"], row["relative"]


def find_duplicates(run_dir: Path, specs) -> dict[int, list[tuple[str, str]]]:
    """shard index -> [(id, its line, where the first occurrence is)] for ids seen in a lower shard."""
    by_index = {s.index: s for s in specs}
    merged = heapq.merge(*(_iter_ids(ids_path(run_dir, s.name), s.index) for s in specs))
    bases: dict[int, _LineBase] = {}

    def line_of(shard: int, line: int, relative: bool) -> int:
        if relative:
            spec = by_index[shard]
            bases.setdefault(shard, _LineBase(as_path(spec.file), spec.start))
            return bases[shard]() + line
        return line

    found: dict[int, list[tuple[str, int, str]]] = defaultdict(list)
    first = None
    for doc_id, shard, line, relative in merged:
        if first is not None and first[0] == doc_id:
            where = f"{by_index[first[1]].file}:{line_of(*first[1:])} ({by_index[first[1]].name})"
            found[shard].append((doc_id, line_of(shard, line, relative), where))
        else:
            first = (doc_id, shard, line, relative)
    return found


def merge_duplicates(run_dir: Path, specs, found: dict | None = None) -> int:
    """Drop cross-shard duplicates from data/ (recording them in rejected/); returns how many.
    ``found``: ``find_duplicates``' answer when the caller already has it."""
    if (run_dir / "state" / DONE).exists():
        return 0
    found = find_duplicates(run_dir, specs) if found is None else found
    by_index = {s.index: s for s in specs}
    total = 0
    for index, dups in sorted(found.items()):
        spec = by_index[index]
        ids = {doc_id for doc_id, _, _ in dups}
        rows = [
            {
                "file": spec.file,
                "line": line,
                "field": spec.id_field or "id",
                "reason": f"duplicate id: {doc_id!r} (first at {where})",
                "raw": "",
            }
            for doc_id, line, where in dups
        ]
        # Rejections first: a kill between the two writes is redone identically from the id files.
        write_table(run_dir / "rejected" / f"{spec.name}.duplicates.parquet", rows, REJECTED_SCHEMA)
        data = run_dir / "data" / f"{spec.name}.parquet"
        if data.exists():
            table = pq.read_table(data)
            keep = pc.invert(pc.is_in(table.column("id"), value_set=pa.array(sorted(ids), pa.string())))
            kept = table.filter(keep)
            if kept.num_rows != table.num_rows:
                write_table(data, kept.to_pylist(), table.schema)
            write_done_marker(run_dir, spec.name, file_sums(data))  # the shard's sums without the duplicates
        total += len(dups)
    touch_marker(run_dir / "state" / DONE, str(total))
    return total
