"""Streaming trajectory statistics over one or more augment runs.

One pass over ``RUN/data/*.parquet`` reading only the token-count columns (and ``meta`` or the
grouping columns when ``--by`` asks for them), one Arrow record batch at a time.  Every group
keeps fixed-size sufficient statistics (counts, sums, histograms; see histograms.py), so memory
is bounded by the number of groups, never by the number of records.

Grouping (``--by``) is in grouping.py.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from tpt.analyze.grouping import (
    FieldGroups,
    Problems,
    column_codes,
    meta_codes,
    ordinal_levels,
    parse_meta,
    resolve_field,
)
from tpt.analyze.histograms import CountHistogram, LogHistogram
from tpt.analyze.ordinal import spearman_from_histograms
from tpt.analyze.quality import FLAGS, QualityConfig, template_patterns
from tpt.analyze.quality_batch import raised_matrix
from tpt.io.runs import data_files, read_manifest
from tpt.parallel import fork_map

QUANTILES = (0.1, 0.25, 0.5, 0.75, 0.9, 0.99)


class GroupStats:
    """Sufficient statistics of one group of records."""

    def __init__(self) -> None:
        self.n = 0
        self.n_length = 0
        self.thinking, self.doc = CountHistogram(), CountHistogram()
        self.thinking_sum = self.thinking_sumsq = self.doc_sum = self.doc_sumsq = 0.0
        self.ratio = LogHistogram()
        self.ratio_sum, self.ratio_n = 0.0, 0
        self.flagged = np.zeros(len(FLAGS), dtype=np.int64)  # records raising each quality flag
        self.flag_checked = 0  # records whose flags were computed (--quality)

    def add(
        self, thinking: np.ndarray, doc: np.ndarray, is_length: np.ndarray, flags: np.ndarray | None = None
    ) -> None:
        """One batch of a group; ``flags`` (records, len(FLAGS)) bool when quality is counted."""
        if flags is not None:
            self.flagged += flags.sum(axis=0)
            self.flag_checked += int(flags.shape[0])
        self.n += int(thinking.size)
        self.n_length += int(is_length.sum())
        self.thinking.add(thinking)
        self.doc.add(doc)
        t, d = thinking.astype(np.float64), doc.astype(np.float64)
        self.thinking_sum += float(t.sum())
        self.thinking_sumsq += float((t * t).sum())
        self.doc_sum += float(d.sum())
        self.doc_sumsq += float((d * d).sum())
        has_doc = d > 0  # a ratio needs a non-empty document
        ratio = t[has_doc] / d[has_doc]
        self.ratio.add(ratio)
        self.ratio_sum += float(ratio.sum())
        self.ratio_n += int(ratio.size)

    def merge(self, other: GroupStats) -> None:
        self.n += other.n
        self.n_length += other.n_length
        self.thinking.merge(other.thinking)
        self.doc.merge(other.doc)
        self.ratio.merge(other.ratio)
        self.thinking_sum += other.thinking_sum
        self.thinking_sumsq += other.thinking_sumsq
        self.doc_sum += other.doc_sum
        self.doc_sumsq += other.doc_sumsq
        self.ratio_sum += other.ratio_sum
        self.ratio_n += other.ratio_n
        self.flagged += other.flagged
        self.flag_checked += other.flag_checked

    def summary(self) -> dict[str, Any]:
        out = self._length_summary()
        if self.flag_checked:
            out["flags"] = {name: int(c) for name, c in zip(FLAGS, self.flagged)}
        return out

    def _length_summary(self) -> dict[str, Any]:
        return {
            "records": self.n,
            "length_finish_rate": self.n_length / self.n if self.n else math.nan,
            "thinking_tokens": _describe(self.thinking, self.thinking_sum, self.thinking_sumsq, self.n),
            "doc_tokens": _describe(self.doc, self.doc_sum, self.doc_sumsq, self.n),
            "ratio": {
                "of_totals": self.thinking_sum / self.doc_sum if self.doc_sum else math.nan,
                "upsampling_factor": (self.doc_sum + self.thinking_sum) / self.doc_sum if self.doc_sum else math.nan,
                "mean": self.ratio_sum / self.ratio_n if self.ratio_n else math.nan,
                **{f"p{round(q * 100)}": self.ratio.quantile(q) for q in (0.1, 0.5, 0.9)},
                "records": self.ratio_n,
            },
        }


def _describe(hist: CountHistogram, total: float, sumsq: float, n: int) -> dict[str, float]:
    if n == 0:
        return {"mean": math.nan}
    mean = total / n
    out = {"mean": mean, "std": math.sqrt(max(0.0, sumsq / n - mean * mean)), "total": total}
    out["min"] = hist.quantile(0.0)
    out.update({f"p{round(q * 100)}": hist.quantile(q) for q in QUANTILES})
    out["max"] = hist.quantile(1.0)
    return out


class RunStats:
    """Accumulates statistics over batches; ``to_dict()`` is the `--json` output."""

    def __init__(
        self,
        by: list[str],
        max_groups: int = 50,
        orders: dict[str, list[str]] | None = None,
        quality: QualityConfig | None = None,
    ) -> None:
        self.by = list(by)
        self.orders = orders or {}
        self.quality = quality  # None: no quality flags (the text columns are not even read)
        self.overall = GroupStats()
        self.fields = {name: FieldGroups(name, max_groups, GroupStats) for name in self.by}
        self.problems = Problems()
        self.runs: list[str] = []
        self.files = 0

    def columns_needed(self) -> list[str]:
        cols = {"thinking_tokens", "doc_tokens", "finish_reason"}
        if self.quality is not None:
            cols |= {"text", "thinking"}
        for name in self.by:
            kind, key = resolve_field(name)
            if kind != "run":
                cols.add("meta" if kind == "meta" else key)
        return sorted(cols)

    def add_file(self, path: Path, run_name: str, batch_size: int, progress=None, patterns: list[str] = ()) -> None:
        """All records of one shard; ``patterns``: the run's template patterns (with quality)."""
        parquet = pq.ParquetFile(path)
        columns = self.columns_needed()
        missing = [c for c in columns if c not in parquet.schema_arrow.names]
        if missing:
            raise ValueError(f"{path}: missing column(s) {', '.join(missing)} (not a thinking-record shard?)")
        self.files += 1
        first_row = 0
        for batch in parquet.iter_batches(batch_size=batch_size, columns=columns):
            self.add_batch(batch, str(path), first_row, run_name, patterns)
            first_row += batch.num_rows
            if progress is not None:
                progress.update(batch.num_rows)

    def add_batch(
        self, batch: pa.RecordBatch, file: str, first_row: int, run_name: str, patterns: list[str] = ()
    ) -> None:
        thinking_col, doc_col = batch.column("thinking_tokens"), batch.column("doc_tokens")
        valid = pc.and_(
            pc.and_(pc.is_valid(thinking_col), pc.is_valid(doc_col)),
            pc.and_(
                pc.greater_equal(pc.fill_null(thinking_col, -1), 0), pc.greater_equal(pc.fill_null(doc_col, -1), 0)
            ),
        )
        row_numbers = first_row + np.arange(batch.num_rows)  # rows in the file, for problem reports
        if not pc.all(valid).as_py():
            ok = valid.to_numpy(zero_copy_only=False)
            self.problems.add(
                "null or negative token count (row skipped)", file, row_numbers[~ok], "thinking_tokens/doc_tokens"
            )
            batch, row_numbers = batch.filter(valid), row_numbers[ok]
        thinking = batch.column("thinking_tokens").to_numpy(zero_copy_only=False).astype(np.int64)
        doc = batch.column("doc_tokens").to_numpy(zero_copy_only=False).astype(np.int64)
        is_length = pc.fill_null(pc.equal(batch.column("finish_reason"), "length"), False).to_numpy(
            zero_copy_only=False
        )
        flags = None
        if self.quality is not None:
            columns = [batch.column(name) for name in ("text", "thinking", "finish_reason")]
            flags = raised_matrix(*columns, self.quality, patterns)
        self.overall.add(thinking, doc, is_length, flags)
        parsed_meta = None
        for name, groups in self.fields.items():
            kind, key = resolve_field(name)
            if kind == "run":
                codes = np.full(thinking.size, groups.code(run_name), dtype=np.int64)
            elif kind == "column":
                codes = column_codes(batch.column(key), groups)
            else:
                if parsed_meta is None:
                    parsed_meta = parse_meta(batch.column("meta"), file, row_numbers, self.problems)
                codes = meta_codes(parsed_meta, key, groups)
            groups.add(codes, thinking, doc, is_length, flags)

    def ordered_labels(self, name: str) -> list[str]:
        """Labels with records: ordinal levels in order first, then the rest as first seen."""
        groups = self.fields[name]
        levels = [label for label, _ in ordinal_levels(groups, self.orders.get(name)) or []]
        rest = [label for label in groups.labels if label not in levels]
        return [label for label in levels + rest if groups.groups[groups.codes[label]].n]

    def merge(self, other: RunStats) -> None:
        """Fold in statistics computed elsewhere (another worker's files)."""
        self.overall.merge(other.overall)
        for name, theirs in other.fields.items():
            mine = self.fields[name]
            for label, group in zip(theirs.labels, theirs.groups):
                mine.groups[mine.code(label, theirs.numeric.get(label))].merge(group)
        self.problems.merge(other.problems)
        self.files += other.files

    def spearman(self, name: str) -> dict[str, Any]:
        groups = self.fields[name]
        levels = ordinal_levels(groups, self.orders.get(name))
        if levels is None:
            return {
                "available": False,
                "reason": f"labels of {name!r} are not numeric; give --order {name}=low,...,high",
            }
        hists = [groups.groups[groups.codes[label]].thinking for label, _ in levels]
        result = spearman_from_histograms([v for _, v in levels], hists)
        excluded = sum(g.n for label, g in zip(groups.labels, groups.groups) if label not in dict(levels))
        means = {label: groups.groups[groups.codes[label]].summary()["thinking_tokens"]["mean"] for label, _ in levels}
        first, last = means[levels[0][0]], means[levels[-1][0]]
        return {
            "available": True,
            **result,
            "levels": [label for label, _ in levels],
            "records_excluded": excluded,
            "mean_thinking_tokens": means,
            "last_over_first": last / first if first else math.nan,
        }

    def to_dict(self) -> dict[str, Any]:
        by = {}
        for name, groups in self.fields.items():
            summaries = {label: groups.groups[groups.codes[label]].summary() for label in self.ordered_labels(name)}
            by[name] = {"groups": summaries, "spearman_thinking_tokens": self.spearman(name)}
        return {
            "runs": self.runs,
            "files": self.files,
            "overall": self.overall.summary(),
            "by": by,
            "problems": self.problems.to_dict(),
        }


def count_records(runs: list[str | Path]) -> int:
    """Records in ``runs`` from the Parquet footers (no data read): the progress bars' totals."""
    return sum(pq.ParquetFile(path).metadata.num_rows for run in runs for path in data_files(run))


def compute_stats(
    runs: list[str | Path],
    by: list[str] = (),
    orders: dict[str, list[str]] | None = None,
    max_groups: int = 50,
    batch_size: int = 65536,
    progress=None,
    workers: int = 1,
    quality: QualityConfig | None = None,
) -> RunStats:
    """Statistics over all records of ``runs``; see RunStats.to_dict() for the result.

    With ``workers > 1`` shard files are processed in parallel processes and merged in file
    order: the same numbers, except which labels beyond ``max_groups`` pool into "(other)".
    """
    stats = RunStats(list(by), max_groups, orders, quality)
    jobs = []  # (shard, run name, the run's template patterns)
    for run in runs:
        patterns = template_patterns(quality, read_manifest(run)) if quality is not None else []
        jobs += [(path, Path(run).name, patterns) for path in data_files(run)]
    stats.runs = [str(run) for run in runs]
    if workers <= 1 or len(jobs) <= 1:
        for path, run_name, patterns in jobs:
            stats.add_file(path, run_name, batch_size, progress, patterns)
        return stats
    work = [(path, run_name, patterns, stats.by, max_groups, batch_size, quality) for path, run_name, patterns in jobs]
    for (path, _, _), part in zip(jobs, fork_map(_file_stats, work, workers)):
        stats.merge(part)
        if progress is not None:
            progress.update(pq.ParquetFile(path).metadata.num_rows)
    return stats


def _file_stats(
    path: Path,
    run_name: str,
    patterns: list[str],
    by: list[str],
    max_groups: int,
    batch_size: int,
    quality: QualityConfig | None,
) -> RunStats:
    part = RunStats(by, max_groups, quality=quality)
    part.add_file(path, run_name, batch_size, patterns=patterns)
    return part
