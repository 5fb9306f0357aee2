"""Checks an augment run makes before it writes or loads anything: the config's values, the --out
folder (not inside an input, not another stage's folder) and the inputs' text/id fields, so a
wrong value fails in seconds, before a model or server starts."""

from __future__ import annotations

import json
from pathlib import Path

from tpt.augment.backends.base import BACKENDS, backend_needs_model
from tpt.augment.config import AugmentConfig
from tpt.augment.planning import ShardSpec
from tpt.augment.shards import head_of, load_rows, parse_shard_rows
from tpt.formats import RUN_ENTRIES
from tpt.io import fs
from tpt.io.atomic import TEMP_MARK
from tpt.io.readers import InputError, resolve_inputs


def has_output(out: Path) -> bool:
    """Anything generated or set aside: records (whole shards or in-shard chunks), done markers, rows."""
    found = (out / "data").rglob("*.parquet"), (out / "state").glob("*.done")
    rows = (out / "failed").glob("*.parquet"), (out / "rejected").glob("*.parquet")
    return any(next(it, None) is not None for it in (*found, *rows))


def check_out_folder(config: AugmentConfig) -> None:
    """Before anything is written: --out must not lie inside an input folder (its outputs would become
    inputs), and a non-empty folder must be a tpt augment run."""
    out = Path(config.out)
    for source in config.inputs:
        if not (out / "plan.json").exists():
            resolve_inputs([source.path])  # a wrong path fails here, before the run folder is made
        base = fs.as_path(_glob_base(source.path))
        if isinstance(base, Path) and base.is_dir() and fs.is_inside(out, base):
            raise InputError(
                f"--out {out} is inside the input folder {base}: the run's own files would be read as "
                "input on the next run. Choose an --out outside the inputs."
            )
    if out.is_dir() and any(out.iterdir()):
        entries = {p.name for p in out.iterdir()}
        stage = _manifest_stage(out)
        foreign = sorted(n for n in entries - RUN_ENTRIES if TEMP_MARK not in n)
        if stage not in (None, "augment") or (stage is None and foreign):
            what = f"a tpt {stage} folder" if stage else f"not a tpt augment run (it holds {', '.join(foreign[:5])})"
            raise InputError(f"--out {out} is {what}; refusing to write into it. Use an empty or new folder.")


def _glob_base(spec: str) -> str:
    """The folder part of a glob before its first wildcard (the path itself when there is none)."""
    cut = min((spec.index(c) for c in "*?[" if c in spec), default=None)
    if cut is None:
        return spec
    return spec[:cut].rsplit("/", 1)[0] if "/" in spec[:cut] else "."


def _manifest_stage(out: Path) -> str | None:
    try:
        return json.loads((out / "manifest.json").read_text()).get("stage", "?")
    except FileNotFoundError:
        return None
    except (OSError, ValueError):
        return "?"


def check_inputs(config: AugmentConfig, todo: list[ShardSpec], rows_per_file: int = 5) -> None:
    """The text field in each input this process will read: in a Parquet file's schema, on the first
    rows of other files (all its rows with --strict)."""
    seen: set[str] = set()
    for spec in todo:
        if spec.file in seen and not config.strict:
            continue
        seen.add(spec.file)
        if spec.kind == "parquet" and not config.strict:
            _check_parquet_schema(spec)
            continue
        rows = load_rows(spec) if config.strict else load_rows(head_of(spec, rows_per_file))
        docs, _, rejections = parse_shard_rows(rows, spec, strict=config.strict)
        payloads = [r.payload for r in rows if isinstance(r.payload, dict)]
        if rows and not docs and any(r.field == spec.text_field for r in rejections):
            fields = sorted({k for p in payloads for k in p}) or _json_fields(rows)
            raise InputError(
                f"{spec.file}: no {spec.text_field!r} field in its first {len(rows)} rows (fields: "
                f"{', '.join(fields) or 'none'}); pass --text-field, or PATH:FIELD for this input"
            )


def _check_parquet_schema(spec: ShardSpec) -> None:
    from tpt.io.readers import READ_ERRORS, _parquet

    try:
        names = _parquet(fs.as_path(spec.file)).schema_arrow.names
    except READ_ERRORS:
        return  # unreadable: its shard rejects it by name, and the run goes on
    wanted = [spec.text_field] + ([spec.id_field] if spec.id_field else [])
    missing = [name for name in wanted if name not in names]
    if missing:
        raise InputError(
            f"{spec.file}: no column {missing[0]!r} (columns: {', '.join(names)}); pass --text-field / "
            "--id-field, or PATH:TEXT_FIELD[:ID_FIELD] for this input"
        )


def _json_fields(rows) -> list[str]:
    fields: set[str] = set()
    for row in rows:
        try:
            item = json.loads(row.payload)
        except (TypeError, ValueError):
            continue
        if isinstance(item, dict):
            fields.update(item)
    return sorted(fields)


def validate(config: AugmentConfig) -> None:
    problems = []
    if config.sampling.samples < 1:
        problems.append("--samples must be >= 1")
    if config.prompt.max_doc_tokens < 1 or config.sampling.max_thinking_tokens < 1:
        problems.append("--max-doc-tokens and --max-thinking-tokens must be >= 1")
    if config.executor.shard_size < 1 or config.executor.shard_bytes < 1 or config.executor.checkpoint_records < 1:
        problems.append("--shard-size, --shard-bytes and --checkpoint-records must be >= 1")
    if config.limit is not None and config.limit < 1:
        problems.append("--limit must be >= 1")
    if not config.backend.model and backend_needs_model(config.backend.name):
        problems.append(f"--model is required for the {config.backend.name} backend")
    elif config.backend.name in BACKENDS.builtins and not (config.dry_run or config.plan_only):  # before torch loads
        tokenizer, given = config.backend.tokenizer_path(), config.backend.tokenizer
        if given and not Path(given).is_dir():
            problems.append(f"--tokenizer {given}: no such folder")
        elif config.backend.name == "transformers" and not Path(config.backend.model).is_dir():
            problems.append(
                f"--model {config.backend.model}: no such folder (the transformers backend loads a local one)"
            )
        elif not tokenizer or not Path(tokenizer).is_dir():
            problems.append(
                f"{config.backend.name} backend: a local tokenizer folder is needed to count and truncate on token "
                f"boundaries; pass --tokenizer PATH (got {tokenizer or config.backend.model!r})"
            )
    if not config.inputs:
        problems.append("no inputs given")
    if problems:
        raise ValueError("; ".join(problems))
