"""Drop flagged trajectories: a clean run plus a table of what was removed and why.

Output layout (a valid augment run for every later stage)::

    OUT/data/<same names as the source>.parquet   kept records, THINKING_SCHEMA
    OUT/removed/<same names>.parquet              id, sample, flags (list), detail
    OUT/manifest.json                             the source's manifest + a "filter" section
    OUT/stats.json                                records in / kept / removed, counts per flag

Files are written under a temporary name and renamed when complete, so a crash never leaves a
half-written shard that looks finished.  Memory holds one record batch at a time.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from tpt.analyze.quality import FLAGS, QualityConfig, flag_rows, template_patterns
from tpt.config import field, to_dict
from tpt.io.runs import data_files, read_manifest
from tpt.records import THINKING_SCHEMA

REMOVED_SCHEMA = pa.schema(
    [("id", pa.string()), ("sample", pa.int32()), ("flags", pa.list_(pa.string())), ("detail", pa.string())]
)


@dataclass
class FilterConfig:
    """Write a copy of an augment run without the trajectories that raise the chosen quality flags."""

    run: Path = field(help="source augment run folder (RUN/data/*.parquet)", positional=True)
    out: Path = field(help="folder for the clean run (must not exist, or be empty, unless --overwrite)")
    remove: list[str] = field(default_factory=lambda: list(FLAGS), help=f"flags that remove a record; others are only counted (choices: {', '.join(FLAGS)})")
    overwrite: bool = field(False, help="replace an existing non-empty --out folder's files")
    batch_size: int = field(4096, help="records per Arrow batch (memory bound)")
    workers: int = field(1, help="processes filtering shard files in parallel (the text checks are CPU-bound Python)")
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

    def merge(self, other: "FilterResult") -> None:
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
    source, out = Path(cfg.run), Path(cfg.out)
    files = data_files(source)
    _prepare_out(source, out, cfg.overwrite)
    manifest = read_manifest(source)
    patterns = template_patterns(cfg.quality, manifest)
    result = _empty_result(cfg)
    if cfg.workers <= 1 or len(files) <= 1:
        for path in files:
            result.merge(_filter_file(path, out, cfg, patterns, progress))
    else:
        import multiprocessing
        from concurrent.futures import ProcessPoolExecutor

        jobs = [(path, out, cfg, patterns, None) for path in files]
        with ProcessPoolExecutor(cfg.workers, mp_context=multiprocessing.get_context("fork")) as pool:
            for part in pool.map(_filter_file, *zip(*jobs)):
                result.merge(part)
                if progress is not None:
                    progress.update(part.records)
    manifest["filter"] = {"source": str(source.resolve()), "config": to_dict(cfg), "template_patterns": patterns,
                          "result": result.to_dict()}
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


def _filter_file(path: Path, out: Path, cfg: FilterConfig, patterns: list[str], progress) -> FilterResult:
    """Filter one shard into OUT/data and OUT/removed (same file name); returns its counts."""
    result = _empty_result(cfg)
    parquet = pq.ParquetFile(path)
    missing = [c for c in THINKING_SCHEMA.names if c not in parquet.schema_arrow.names]
    if missing:
        raise ValueError(f"{path}: missing column(s) {', '.join(missing)} (not a thinking-record shard?)")
    kept_path, removed_path = out / "data" / path.name, out / "removed" / path.name
    remove = set(cfg.remove)
    with pq.ParquetWriter(str(kept_path) + ".tmp", THINKING_SCHEMA, compression="zstd") as kept_w, \
            pq.ParquetWriter(str(removed_path) + ".tmp", REMOVED_SCHEMA, compression="zstd") as removed_w:
        for batch in parquet.iter_batches(batch_size=cfg.batch_size, columns=THINKING_SCHEMA.names):
            cols = batch.select(["text", "thinking", "finish_reason"]).to_pydict()
            flags = flag_rows(cols, cfg.quality, patterns)
            keep = [not (set(f) & remove) for f in flags]
            kept_w.write_table(pa.Table.from_batches([batch.filter(pa.array(keep))]).cast(THINKING_SCHEMA))
            removed_w.write_table(_removed_table(batch, flags, keep))
            _count(result, flags, keep, remove)
            if progress is not None:
                progress.update(batch.num_rows)
    os.replace(str(kept_path) + ".tmp", kept_path)
    os.replace(str(removed_path) + ".tmp", removed_path)
    return result


def _removed_table(batch: pa.RecordBatch, flags: list[dict[str, str]], keep: list[bool]) -> pa.Table:
    ids, samples = batch.column("id").to_pylist(), batch.column("sample").to_pylist()
    rows = [
        {"id": ids[i], "sample": samples[i], "flags": sorted(f), "detail": "; ".join(f"{k}: {v}" for k, v in sorted(f.items()))}
        for i, f in enumerate(flags) if not keep[i]
    ]
    return pa.Table.from_pylist(rows, schema=REMOVED_SCHEMA)


def _count(result: FilterResult, flags: list[dict[str, str]], keep: list[bool], remove: set[str]) -> None:
    for f, k in zip(flags, keep):
        result.records += 1
        result.kept += k
        result.removed += not k
        for name in f:
            result.flagged[name] += 1
            if name in remove:
                result.removed_by[name] += 1


def _write_json(path: Path, obj: dict) -> None:
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(json.dumps(obj, indent=2, ensure_ascii=False, default=str))
    os.replace(tmp, path)


def read_removed(out: str | Path) -> pa.Table:
    """The removed-records table of a filtered run (all shards)."""
    files = sorted((Path(out) / "removed").glob("*.parquet"))
    return pa.concat_tables([pq.read_table(f) for f in files]) if files else REMOVED_SCHEMA.empty_table()

