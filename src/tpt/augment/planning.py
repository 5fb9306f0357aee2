"""The plan: which shards a run has, from the structure of its input files alone.

A shard is a pure function of (file, range): a Parquet file's whole row groups, at least
``--shard-size`` rows of them; an HF dataset's rows in blocks of ``--shard-size``; a plain JSONL
file's bytes ``[start, stop)`` in blocks of ``--shard-bytes`` (a line belongs to the range that
holds its first byte); a compressed JSONL file whole (it cannot be entered in the middle).
Planning lists the files and reads their sizes and Parquet footers, never their rows, so any
array task can plan by itself; ``RUN/plan.json`` is written once (atomically: concurrent planners
compute the same plan and exactly one writes it) and every later process reads it. A task with
``--shard-range i/n`` then reads only its own ranges.

Plan versions: 3 stores the inputs as ``InputSpec`` mappings (``tpt.augment.specs``); 2 stored the
strings typed on the command line and is migrated when read (``plan_from_text``), never rewritten,
so a run planned by an older tpt resumes; 1 (shards by row ordinal over the whole corpus) is refused.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from tpt.augment.specs import ShardRange, inputs_from_strings, inputs_record
from tpt.formats import shard_name
from tpt.io import fs
from tpt.io.atomic import atomic_create_text
from tpt.io.readers import READ_ERRORS, _parquet, file_kind, hf_num_rows, iter_range, resolve_inputs

PLAN_VERSION = 3
MIGRATED_PLAN_VERSIONS = (2,)  # inputs as strings: read into version 3 by plan_from_text


class PlanMismatch(RuntimeError):
    """RUN/plan.json was made for other inputs or by another version of tpt."""


@dataclass(frozen=True)
class ShardSpec:
    index: int
    file: str  # path or URL, as planned
    kind: str  # parquet | hf | jsonl | jsonl-stream
    start: int  # first row (parquet, hf) or byte (jsonl)
    stop: int  # exclusive; -1: to the end of the file
    rows: int = -1  # rows in the range when the file's metadata says (-1: unknown until read)
    limit: int = -1  # --limit: take at most this many rows of the range
    text_field: str = "text"
    id_field: str | None = None
    size: int = -1  # the file's size when planned (a changed input is refused, not half-read)

    @property
    def name(self) -> str:
        return shard_name(self.index)


def plan_files(config) -> list[dict]:
    """Every input file with its kind, size and (where metadata has it) row count, in run order."""
    files: dict[str, dict] = {}
    for source in config.inputs:
        text_field, id_field = source.fields(config.text_field, config.id_field)
        for path in resolve_inputs([source.path]):
            if str(path) in files:
                continue
            entry = {
                "path": str(path),
                "kind": file_kind(path),
                "size": _size(path),
                "rows": None,
                "text_field": text_field,
                "id_field": id_field,
            }
            try:
                if entry["kind"] == "parquet":
                    meta = _parquet(path).metadata
                    entry["rows"] = meta.num_rows
                    entry["row_groups"] = [meta.row_group(g).num_rows for g in range(meta.num_row_groups)]
                elif entry["kind"] == "hf":
                    entry["rows"] = hf_num_rows(path)
            except READ_ERRORS as exc:  # read again (and rejected by name) when its shard runs
                entry["error"] = f"{type(exc).__name__}: {exc}"
            files[str(path)] = entry
    return list(files.values())


def _size(path) -> int:
    return -1 if fs.is_dir(path) else fs.size(path)


def cut_shards(files: list[dict], shard_size: int, shard_bytes: int) -> list[list]:
    """[file index, start, stop, rows] per shard, in file order."""
    shards = []
    for i, entry in enumerate(files):
        if entry.get("error") or entry["kind"] == "jsonl-stream":
            shards.append([i, 0, -1, -1])
        elif entry["kind"] == "jsonl":
            shards += [[i, s, min(s + shard_bytes, entry["size"]), -1] for s in range(0, entry["size"], shard_bytes)]
        elif entry["kind"] == "parquet":
            shards += [[i, start, stop, stop - start] for start, stop in _group_blocks(entry["row_groups"], shard_size)]
        else:
            shards += [
                [i, s, min(s + shard_size, entry["rows"]), min(shard_size, entry["rows"] - s)]
                for s in range(0, entry["rows"], shard_size)
            ]
    return shards


def _group_blocks(groups: list[int], shard_size: int) -> list[tuple[int, int]]:
    """Row ranges made of whole row groups, each of at least ``shard_size`` rows (the last may be
    smaller; one big row group is one shard): a row group is read by exactly one shard, never re-read
    by several (Parquet cannot read part of a row group)."""
    blocks, start, rows = [], 0, 0
    for n in groups:
        rows += n
        if rows - start >= shard_size:
            blocks.append((start, rows))
            start = rows
    if rows > start:
        blocks.append((start, rows))
    return blocks


def compute_plan(config) -> dict:
    files = plan_files(config)
    plan = {
        "version": PLAN_VERSION,
        "inputs": [inputs_record(spec) for spec in config.inputs],
        "shard_size": config.executor.shard_size,
        "shard_bytes": config.executor.shard_bytes,
        "limit": config.limit,
        "files": files,
        "shards": cut_shards(files, config.executor.shard_size, config.executor.shard_bytes),
    }
    if config.limit is not None:
        plan["shards"] = _apply_limit(plan, config.limit)
    return plan


def _apply_limit(plan: dict, limit: int) -> list[list]:
    """The shards holding the first ``limit`` rows; the last one carries how many of its rows to take
    (a fifth column). Ranges of unknown size are counted by reading them: a trial run reads ~N rows."""
    kept, left = [], limit
    for shard in plan["shards"]:
        if left <= 0:
            break
        rows = shard[3]
        if rows < 0:
            entry = plan["files"][shard[0]]
            rows = sum(1 for _ in iter_range(fs.as_path(entry["path"]), entry["kind"], shard[1], shard[2]))
        kept.append(shard + [left] if rows > left else shard)
        left -= rows
    return kept


def specs_of(plan: dict, shard_range: ShardRange | None = None) -> list[ShardSpec]:
    specs = []
    for index, shard in enumerate(plan["shards"]):
        entry = plan["files"][shard[0]]
        limit = shard[4] if len(shard) > 4 else -1
        specs.append(
            ShardSpec(
                index,
                entry["path"],
                entry["kind"],
                shard[1],
                shard[2],
                shard[3],
                limit,
                entry["text_field"],
                entry["id_field"],
                entry["size"],
            )
        )
    if shard_range is not None:
        specs = [s for s in specs if shard_range.holds(s.index)]
    return specs


def load_or_create_plan(config) -> dict:
    """RUN/plan.json if it exists (checked against this run), else planned now and written once."""
    path = Path(config.out) / "plan.json"
    if not path.exists():
        atomic_create_text(path, json.dumps(compute_plan(config), ensure_ascii=False) + "\n")
    plan = read_plan(path)
    check_plan(plan, config, path)
    return plan


def read_plan(path: Path) -> dict:
    return plan_from_text(path.read_text(encoding="utf-8"), path)


def plan_from_text(text: str, where) -> dict:
    """The plan in ``text`` (read from ``where``: a path or URL), refused when another version made it."""
    plan = json.loads(text)
    if plan.get("version") in MIGRATED_PLAN_VERSIONS:
        plan = dict(plan, version=PLAN_VERSION, inputs=inputs_from_strings(plan["inputs"]))
    if isinstance(plan.get("version"), int) and plan["version"] > PLAN_VERSION:
        raise PlanMismatch(
            f"{where}: plan version {plan['version']} is newer than this tpt reads ({PLAN_VERSION}); upgrade tpt"
        )
    if plan.get("version") != PLAN_VERSION:
        raise PlanMismatch(
            f"{where}: this run was planned by an older tpt (shards by row ordinal over the whole corpus), which this "
            "version cannot resume exactly-once. Finish it with the tpt version that started it, or start a new --out."
        )
    return plan


def check_plan(plan: dict, config, path) -> None:
    wanted = {
        "inputs": [inputs_record(spec) for spec in config.inputs],
        "shard_size": config.executor.shard_size,
        "shard_bytes": config.executor.shard_bytes,
        "limit": config.limit,
    }
    diff = {k: (plan.get(k), v) for k, v in wanted.items() if plan.get(k) != v}
    if diff:
        lines = "; ".join(f"{k}: plan has {a!r}, now {b!r}" for k, (a, b) in diff.items())
        raise PlanMismatch(f"{path} was made for other inputs ({lines}); use another --out, or the original settings")


def planned_rows(plan: dict) -> int | None:
    """Rows of the whole plan when every file's metadata says (Parquet, HF), else None."""
    total = 0
    for shard in plan["shards"]:
        if shard[3] < 0:
            return None
        total += shard[4] if len(shard) > 4 else shard[3]
    return total
