"""Drop flagged trajectories: a clean run plus a table of what was removed and why.

Output layout (a valid augment run for every later stage)::

    OUT/data/<same names as the source>.parquet   kept records, THINKING_SCHEMA
    OUT/removed/<same names>.parquet              id, sample, flags (list), detail
    OUT/manifest.json                             the source's manifest + a "filter" section
    OUT/stats.json                                records in / kept / removed, counts per flag

Files are written under a temporary name and renamed when complete (tpt.io.atomic), so a crash
never leaves a half-written shard that looks finished.  Memory holds a few record batches at a
time.  The flags are computed per batch with numba kernels and pyarrow compute (quality_batch.py), not
per-record Python; shard files are filtered in parallel processes (one per core by default).
"""

from __future__ import annotations

import json
import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from tpt.analyze.quality import FLAGS, QualityConfig, template_patterns
from tpt.analyze.quality_batch import MAX_BATCH, BatchFlags, flag_batch, load_kernels
from tpt.config import field, to_dict
from tpt.io.atomic import atomic_write, atomic_write_text
from tpt.io.runs import data_files, read_manifest
from tpt.parallel import fork_map
from tpt.records import REQUIRED_COLUMNS, THINKING_SCHEMA, conform

REMOVED_SCHEMA = pa.schema(
    [("id", pa.string()), ("sample", pa.int32()), ("flags", pa.list_(pa.string())), ("detail", pa.string())]
)


@dataclass
class FilterConfig:
    """Write a copy of an augment run without the trajectories that raise the chosen quality flags."""

    run: Path = field(help="source augment run folder (RUN/data/*.parquet)", positional=True)
    out: Path = field(help="folder for the clean run (must not exist, or be empty, unless --overwrite)")
    remove: list[str] = field(
        default_factory=lambda: list(FLAGS),
        split=True,
        help=f"flags that remove a record; others are only counted (choices: {', '.join(FLAGS)})",
    )
    overwrite: bool = field(False, help="replace an existing non-empty --out folder's files")
    batch_size: int = field(
        512,
        flag="--batch-records",
        deprecated=["--batch-size"],
        help="records per Arrow batch: small batches keep the n-gram hash sets in cache",
    )
    workers: int = field(
        0, help="processes filtering shard files in parallel (0: one per CPU core; one process also runs 2 threads)"
    )
    compression: Literal["zstd", "lz4", "snappy", "none"] = field(
        "zstd",
        help="Parquet compression of the clean run's data files: 'none' writes ~8x faster (a quarter of "
        "filter's time goes to zstd) but files ~2.6x larger",
    )
    quality: QualityConfig = field(default_factory=QualityConfig, help="quality thresholds")


@dataclass
class FilterResult:
    records: int
    kept: int
    removed: int
    flagged: dict[str, int]  # records raising each flag (removing or not)
    removed_by: dict[str, int]  # removed records per removing flag

    def to_dict(self) -> dict:
        return dict(self.__dict__)

    def merge(self, other: FilterResult) -> None:
        self.records += other.records
        self.kept += other.kept
        self.removed += other.removed
        for name, count in other.flagged.items():
            self.flagged[name] += count
        for name, count in other.removed_by.items():
            self.removed_by[name] += count


def filter_run(cfg: FilterConfig, progress=None) -> FilterResult:
    unknown = sorted(set(cfg.remove) - set(FLAGS))
    if unknown:
        raise ValueError(f"--remove: unknown flag(s) {', '.join(unknown)} (choices: {', '.join(FLAGS)})")
    if not 0 < cfg.batch_size <= MAX_BATCH:
        raise ValueError(f"--batch-records {cfg.batch_size}: must be in 1..{MAX_BATCH}")
    source, out = Path(cfg.run), Path(cfg.out)
    files = data_files(source)
    _prepare_out(source, out, cfg.overwrite)
    manifest = read_manifest(source)
    patterns = template_patterns(cfg.quality, manifest)
    result = _empty_result(cfg)
    workers = cfg.workers if cfg.workers > 0 else len(os.sched_getaffinity(0))
    pieces = [piece for path in files for piece in _pieces(path)]
    inline = workers <= 1 or len(pieces) <= 1  # in this process: the bar can follow each batch
    jobs = [(piece, out, cfg, patterns, progress if inline else None, 2 if inline else 1) for piece in pieces]
    load_kernels()  # once, before the fork: the workers inherit the compiled code
    for part in fork_map(_filter_file, jobs, workers):
        result.merge(part)
        if not inline and progress is not None:
            progress.update(part.records)
    manifest["filter"] = {
        "source": str(source.resolve()),
        "config": to_dict(cfg),
        "template_patterns": patterns,
        "result": result.to_dict(),
    }
    _write_json(out / "manifest.json", manifest)
    _write_json(out / "stats.json", {"records": result.kept, "filter": result.to_dict()})
    return result


def _prepare_out(source: Path, out: Path, overwrite: bool) -> None:
    if out.resolve() == source.resolve():
        raise ValueError(f"{out}: --out must differ from the source run")
    if out.exists() and any(out.iterdir()) and not overwrite:
        raise FileExistsError(f"{out}: exists and is not empty (pass --overwrite to replace its files)")
    for sub in ("data", "removed"):
        (out / sub).mkdir(parents=True, exist_ok=True)
        for old in (out / sub).glob("*.parquet"):
            old.unlink()  # a stale shard from an earlier filter would be read as part of this run


def _empty_result(cfg: FilterConfig) -> FilterResult:
    return FilterResult(0, 0, 0, {f: 0 for f in FLAGS}, {f: 0 for f in cfg.remove})


# A file of more rows than this is filtered in pieces of whole row groups (about this many rows
# each), one job each: one large shard file then keeps every worker busy.  The pieces depend only
# on the file (not on --workers), so the clean run's files are the same whatever the worker count.
PIECE_ROWS = 65_536


@dataclass(frozen=True)
class _Piece:
    path: Path
    row_groups: list[int] | None  # None: the whole file
    name: str  # of its files in OUT/data and OUT/removed


def _pieces(path: Path) -> list[_Piece]:
    """The file as one piece, or, past PIECE_ROWS rows, as runs of row groups of >= PIECE_ROWS rows
    (the last may be smaller) named STEM.rgFIRST.parquet: they sort in file order."""
    meta = pq.ParquetFile(path).metadata
    if meta.num_rows <= PIECE_ROWS or meta.num_row_groups <= 1:
        return [_Piece(path, None, path.name)]
    pieces, group, rows = [], [], 0
    for index in range(meta.num_row_groups):
        group.append(index)
        rows += meta.row_group(index).num_rows
        if rows >= PIECE_ROWS or index == meta.num_row_groups - 1:
            pieces.append(_Piece(path, group, f"{path.stem}.rg{group[0]:05d}.parquet"))
            group, rows = [], 0
    return pieces


def _filter_file(
    piece: _Piece, out: Path, cfg: FilterConfig, patterns: list[str], progress, threads: int
) -> FilterResult:
    """Filter one shard (or piece of one) into OUT/data and OUT/removed (same file name); returns its
    counts.  ``threads``: batches flagged at once (1 when each core already runs a process)."""
    path = piece.path
    parquet = pq.ParquetFile(path)
    missing = [c for c in REQUIRED_COLUMNS if c not in parquet.schema_arrow.names]
    if missing:
        raise ValueError(f"{path}: missing column(s) {', '.join(missing)} (not a thinking-record shard?)")
    result = _empty_result(cfg)

    def write(kept_tmp: str, removed_tmp: str) -> None:
        with (
            pq.ParquetWriter(kept_tmp, THINKING_SCHEMA, compression=cfg.compression, **_SMALL_COLUMNS_ONLY) as kept_w,
            pq.ParquetWriter(removed_tmp, REMOVED_SCHEMA, compression="zstd") as removed_w,
        ):
            kept, removed = _RowGroups(kept_w), _RowGroups(removed_w)
            for batch, flags in _flagged_batches(parquet, piece.row_groups, cfg, patterns, threads):
                keep = np.ones(batch.num_rows, bool)
                for name in cfg.remove:
                    keep &= ~flags.raised[name]
                kept.add(conform(batch.filter(pa.array(keep))))  # a shard of an older tpt gains null columns
                removed.add(_removed_table(batch, flags, keep, cfg.quality))
                _count(result, flags, keep, cfg.remove)
                if progress is not None:
                    progress.update(batch.num_rows)
            kept.flush()
            removed.flush()

    # removed/ first, then data/: a shard counts as filtered once its data/ file exists
    def write_removed_then_kept(kept_tmp: str) -> None:
        atomic_write(out / "removed" / piece.name, lambda removed_tmp: write(kept_tmp, removed_tmp))

    atomic_write(out / "data" / piece.name, write_removed_then_kept)
    return result


# Dictionaries and min/max statistics only for the short columns: on the long, nearly unique text
# columns the writer builds a dictionary it then drops, and min/max of long texts helps no reader;
# skipping both makes writing the clean run ~20% cheaper (bench/filter_throughput.py's shards).
_LONG_COLUMNS = ("id", "text", "thinking")
_SHORT = [name for name in THINKING_SCHEMA.names if name not in _LONG_COLUMNS]
_SMALL_COLUMNS_ONLY = {"use_dictionary": _SHORT, "write_statistics": _SHORT}


class _RowGroups:
    """Collects small filtered tables into row groups of about ROW_GROUP rows: flags are computed
    on small batches (their hash sets stay in cache), but readers of the clean run want larger row
    groups.  4096 rows, as before: memory stays a few thousand records."""

    ROW_GROUP = 4096

    def __init__(self, writer: pq.ParquetWriter):
        self.writer, self.tables, self.rows = writer, [], 0

    def add(self, table: pa.Table) -> None:
        self.tables.append(table)
        self.rows += table.num_rows
        if self.rows >= self.ROW_GROUP:
            self.flush()

    def flush(self) -> None:
        if self.tables:
            self.writer.write_table(pa.concat_tables(self.tables), row_group_size=self.ROW_GROUP)
        self.tables, self.rows = [], 0


def _flagged_batches(parquet: pq.ParquetFile, row_groups, cfg: FilterConfig, patterns: list[str], threads: int):
    """(batch, BatchFlags) in file order; ``threads`` batches are flagged at once (numba and Arrow release the GIL)."""

    def flag(batch: pa.RecordBatch) -> tuple[pa.RecordBatch, BatchFlags]:
        cols = [batch.column(name) for name in ("text", "thinking", "finish_reason")]
        return batch, flag_batch(*cols, cfg.quality, patterns)

    present = [c for c in THINKING_SCHEMA.names if c in parquet.schema_arrow.names]
    batches = parquet.iter_batches(batch_size=cfg.batch_size, row_groups=row_groups, columns=present)
    if threads <= 1:
        yield from map(flag, batches)
        return
    with ThreadPoolExecutor(threads) as pool:
        pending = []
        for batch in batches:
            pending.append(pool.submit(flag, batch))
            if len(pending) > threads:  # bounded: at most threads + 1 batches in memory
                yield pending.pop(0).result()
        for future in pending:
            yield future.result()


def _removed_table(batch: pa.RecordBatch, flags: BatchFlags, keep: np.ndarray, quality: QualityConfig) -> pa.Table:
    gone = np.flatnonzero(~keep)
    ids, samples = batch.column("id").take(gone).to_pylist(), batch.column("sample").take(gone).to_pylist()
    rows = []
    for row, doc_id, sample in zip(gone.tolist(), ids, samples):
        detail = flags.details(row, quality)
        rows.append(
            {
                "id": doc_id,
                "sample": sample,
                "flags": sorted(detail),
                "detail": "; ".join(f"{k}: {v}" for k, v in sorted(detail.items())),
            }
        )
    return pa.Table.from_pylist(rows, schema=REMOVED_SCHEMA)


def _count(result: FilterResult, flags: BatchFlags, keep: np.ndarray, remove: list[str]) -> None:
    result.records += len(keep)
    result.kept += int(keep.sum())
    result.removed += int((~keep).sum())
    for name in FLAGS:
        result.flagged[name] += int(flags.raised[name].sum())
    for name in remove:
        result.removed_by[name] += int(flags.raised[name].sum())


def _write_json(path: Path, obj: dict) -> None:
    atomic_write_text(path, json.dumps(obj, indent=2, ensure_ascii=False, default=str))


def read_removed(out: str | Path) -> pa.Table:
    """The removed-records table of a filtered run (all shards)."""
    files = sorted((Path(out) / "removed").glob("*.parquet"))
    return pa.concat_tables([pq.read_table(f) for f in files]) if files else REMOVED_SCHEMA.empty_table()
