"""`prepare(cfg)`: sources -> tokenize once (pass 1) -> plan -> mix, pack and write (pass 2).

Everything that can be checked without compute (sources, shards, tokenizer, template, flags)
is checked first; the output is written in a temp folder renamed into place at the very end,
so an interrupted run never leaves a folder that looks done.
"""

from __future__ import annotations

import json
import shutil
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from tpt.config import to_dict
from tpt.io.readers import Rejection
from tpt.prepare.budget import budget_warnings, empty_source_message
from tpt.prepare.cache import SourceCache, tokenize_source
from tpt.prepare.config import DOC_CUTS, FORMATS, KINDS, SFT_KIND, PrepareConfig, PrepareError, SourceSpec
from tpt.prepare.exports import export_megatron, export_text, megatron_data_path
from tpt.prepare.formatting import SampleEncoder, check_tokenizer
from tpt.prepare.inputs import DocCutter, check_complete, duplicate_keys, warn
from tpt.prepare.mixing import Mixer, assign_targets, is_val, training_pool, val_threshold
from tpt.prepare.packed import MEGATRON_FORMAT, TEXT_FORMAT, token_dtype, write_index
from tpt.prepare.sources import check_source
from tpt.prepare.tokenizer import add_special_tokens, load_tokenizer
from tpt.prepare.writer import SplitWriter, check_out, output_folder
from tpt.progress import progress_bar
from tpt.records import REJECTED_SCHEMA


def prepare(cfg: PrepareConfig) -> dict:
    """Run `tpt prepare`; returns the manifest (also written to ``cfg.out/index.json``)."""
    if cfg.sft:
        from tpt.prepare.sft import prepare_sft

        kinds = [s.describe() for s in cfg.source if s.kind != SFT_KIND]
        if kinds:
            raise PrepareError(f"--sft --source {kinds[0]!r}: SFT sources are chat JSONL paths, without :KIND")
        out = prepare_sft(
            [str(s.path) for s in cfg.source],
            cfg.tokenizer,
            cfg.seq_len,
            cfg.out,
            val_sequences=cfg.val_sequences,
            seed=cfg.seed,
            overwrite=cfg.overwrite,
        )
        return json.loads((out / "index.json").read_text())
    specs, budget, cap, shard_tokens = _check_config(cfg)
    inputs = _check_inputs(cfg, specs)
    tokenizer, added = (None, {}) if cfg.format == "text" else _load_checked_tokenizer(cfg, specs)
    started = time.perf_counter()
    with output_folder(Path(cfg.out), cfg.overwrite) as tmp:
        rejected: list[Rejection] = []
        if cfg.format == "text":
            manifest = _export_text(cfg, specs, inputs, tmp, rejected)
        else:
            if added:  # saved with the data: train and eval read this tokenizer, not the original
                tokenizer.save_pretrained(tmp / ADDED_TOKENIZER_DIR)
            encoder = SampleEncoder(tokenizer, cfg.template, token_dtype(len(tokenizer)))
            caches = _tokenize_all(cfg, specs, encoder, tmp, rejected, inputs)
            if cfg.format == "megatron":
                manifest = _export_megatron(cfg, specs, caches, encoder, tmp, tokenizer, added)
            else:
                manifest = _pack_all(cfg, specs, caches, budget, cap, shard_tokens, tmp, tokenizer, rejected, added)
        manifest["inputs"] = {s.describe(): _input_summary(i) for s, i in zip(specs, inputs)}
        for message in manifest.get("warnings", []):
            warn(message)
        # --format text: OUT/*.parquet must be the dataset alone (loaders glob it), so rejected rows go in a subfolder
        _write_rejected(tmp / ("rejected/rejected.parquet" if cfg.format == "text" else "rejected.parquet"), rejected)
        shutil.rmtree(tmp / "_cache", ignore_errors=True)
        manifest["seconds"] = round(time.perf_counter() - started, 3)
        _write_manifest(cfg, tmp, tokenizer, manifest)
    return json.loads((Path(cfg.out) / "index.json").read_text())


ADDED_TOKENIZER_DIR = "tokenizer"


def _pack_all(cfg, specs, caches, budget, cap, shard_tokens, tmp, tokenizer, rejected, added) -> dict:
    """Pass 2 of --format packed: validation split, per-source pools and targets, mix and pack."""
    val_rows, threshold = _plan_validation(cfg, caches)
    pools = [training_pool(c, i, threshold, cfg.seed, cap) for i, c in enumerate(caches)]
    pool_tokens = [int(c.lengths[p].sum()) for c, p in zip(caches, pools)]
    targets, rows = assign_targets(specs, pool_tokens, budget, cfg.seq_len)
    shard_rows = max(1, shard_tokens // cfg.seq_len)
    writer = dict(seq_len=cfg.seq_len, dtype=token_dtype(len(tokenizer)), shard_rows=shard_rows)
    mixer = Mixer(caches, pools, targets, cfg.seed)
    train = _pack(SplitWriter(tmp, "train", rows=rows, **writer), mixer, len(specs))
    val = _pack_validation(tmp, caches, threshold, val_rows, cfg.seed, writer)
    manifest = _manifest(cfg, tokenizer, specs, caches, pools, targets, mixer, train, val, rejected)
    manifest["warnings"] = budget_warnings(cfg, specs, manifest["sources"], cap)
    manifest["splits"] = {"train": train["shards"], **({"val": val["shards"]} if val else {})}
    manifest.update(_tokenizer_fields(cfg, tokenizer, added))
    return manifest


def _export_megatron(cfg, specs, caches, encoder, tmp, tokenizer, added) -> dict:
    exported = export_megatron(tmp, specs, caches, encoder.dtype)
    return {
        "format": MEGATRON_FORMAT,
        "sources": exported,
        "megatron_data_path": megatron_data_path(specs, exported),
        "dtype": encoder.dtype.name,
        "vocab_size": len(tokenizer),
        "eos_id": int(tokenizer.eos_token_id),
        "template": cfg.template,
        **_tokenizer_fields(cfg, tokenizer, added),
        "config": to_dict(cfg),
    }


def _export_text(cfg, specs, inputs, tmp, rejected) -> dict:
    options = dict(on_length=cfg.on_length, batch_docs=cfg.batch_docs, text_field=cfg.text_field, id_field=cfg.id_field)
    sources = export_text(
        tmp, specs, rejected, cfg.template, options, [i["cutter"] for i in inputs], [i["duplicates"] for i in inputs]
    )
    for source, inp in zip(sources, inputs):
        source["doc_cut"] = inp["cutter"].cut if inp["cutter"] else 0
    return {"format": TEXT_FORMAT, "sources": sources, "template": cfg.template, "config": to_dict(cfg)}


def _tokenizer_fields(cfg, tokenizer, added: dict) -> dict:
    path = ADDED_TOKENIZER_DIR if added else str(Path(cfg.tokenizer).resolve())  # relative: resolved against the data
    return {"tokenizer": path, "added_tokens": added, "base_tokenizer": str(Path(cfg.tokenizer).resolve())}


def _write_manifest(cfg, tmp: Path, tokenizer, manifest: dict) -> None:
    if manifest.get("format") in (MEGATRON_FORMAT, TEXT_FORMAT):
        (tmp / "index.json").write_text(json.dumps(manifest, indent=2, default=str) + "\n")
        return
    splits = manifest.pop("splits")
    eos = int(tokenizer.eos_token_id)
    write_index(tmp, seq_len=cfg.seq_len, vocab_size=len(tokenizer), eos_id=eos, splits=splits, **manifest)


def _check_inputs(cfg: PrepareConfig, specs: list[SourceSpec]) -> list[dict]:
    """Completeness, duplicate keys and the document cut of each source, before any compute."""
    out = []
    for spec in specs:
        state = check_complete(spec, cfg.allow_incomplete)
        duplicates = duplicate_keys(spec, cfg.allow_duplicates)
        cutter = DocCutter(spec, cfg.doc_cut_tokenizer) if cfg.doc_cut == "prefix" and spec.kind == "tpt" else None
        out.append({"completion": state, "duplicates": duplicates, "cutter": cutter, "doc_cut": cfg.doc_cut})
    return out


def _input_summary(inp: dict) -> dict:
    """What index.json says about a source's checks: completion, repeated keys, the document cut."""
    cut = inp["cutter"].cut if inp["cutter"] else 0
    return {
        "completion": inp["completion"],
        "duplicates": len(inp["duplicates"]),
        "doc_cut": inp["doc_cut"],
        "docs_cut": cut,
    }


def _tokenize_all(
    cfg: PrepareConfig, specs: list[SourceSpec], encoder: SampleEncoder, tmp: Path, rejected: list, inputs: list[dict]
) -> list[SourceCache]:
    """Pass 1: every source through the tokenizer once, into ``tmp/_cache``."""
    (tmp / "_cache").mkdir()
    options = dict(
        seed=cfg.seed,
        on_length=cfg.on_length,
        batch_docs=cfg.batch_docs,
        text_field=cfg.text_field,
        id_field=cfg.id_field,
    )
    caches = []
    for i, (spec, inp) in enumerate(zip(specs, inputs)):
        cache = tokenize_source(
            spec,
            encoder,
            tmp / "_cache" / f"source-{i}.bin",
            rejected,
            **options,
            duplicates=inp["duplicates"],
            cutter=inp["cutter"],
        )
        if cache.num_docs == 0:
            raise PrepareError(empty_source_message(spec, cache))
        caches.append(cache)
    return caches


def _check_config(cfg: PrepareConfig) -> tuple[list[SourceSpec], int | None, int | None, int]:
    if not cfg.source:
        raise PrepareError("no --source given")
    specs = list(cfg.source)
    bare = [s.describe() for s in specs if s.kind == SFT_KIND]
    if bare:  # a chat file is an --sft source; anything else needs its kind
        raise PrepareError(
            f"--source {bare[0]!r}: expected PATH:KIND[:WEIGHT], KIND one of {KINDS}, WEIGHT a float or xN epochs "
            "(a bare PATH is a chat JSONL for --sft)"
        )
    names = [s.name for s in specs]
    if len(set(names)) != len(names):
        raise PrepareError(f"--source: the same PATH:KIND is listed twice ({names})")
    if cfg.seq_len < 2:
        raise PrepareError(f"--seq-len {cfg.seq_len}: must be >= 2 (a row gives seq_len - 1 targets)")
    if cfg.val_sequences < 0 or (cfg.val_fraction is not None and not 0 < cfg.val_fraction < 1):
        raise PrepareError("--val-sequences must be >= 0 and --val-fraction in (0, 1)")
    if cfg.on_length not in ("keep", "drop", "cut"):
        raise PrepareError(f"--on-length {cfg.on_length!r}: expected keep, drop or cut")
    _check_format(cfg, specs)
    check_out(Path(cfg.out), cfg.overwrite)
    for spec in specs:
        check_source(spec, cfg.text_field)
    return specs, cfg.tokens, cfg.pool_tokens, cfg.shard_tokens


def _check_format(cfg: PrepareConfig, specs: list[SourceSpec]) -> None:
    if cfg.format not in FORMATS or cfg.doc_cut not in DOC_CUTS:
        raise PrepareError(f"--format {cfg.format!r} / --doc-cut {cfg.doc_cut!r}: expected {FORMATS} / {DOC_CUTS}")
    if cfg.format != "text" and not cfg.tokenizer:
        raise PrepareError(f"--tokenizer: needed for --format {cfg.format} (only --format text works without one)")
    if cfg.format == "packed":
        return
    if cfg.tokens or cfg.pool_tokens:
        raise PrepareError(
            f"--tokens / --pool-tokens: apply to --format packed only; a --format {cfg.format} export holds every "
            "document once and the trainer mixes (Megatron: --data-path weights; see docs/exports.md)"
        )
    repeated = [s.describe() for s in specs if s.epochs is not None]
    if repeated:
        raise PrepareError(
            f"--source {repeated[0]}: xN epochs apply to --format packed only; give a weight (the export records it "
            "for the trainer's blending)"
        )


def _load_checked_tokenizer(cfg: PrepareConfig, specs: list[SourceSpec]):
    """-> (tokenizer, {added token: id}); with --add-think-tokens the template's lacking tokens are added."""
    try:
        tokenizer = load_tokenizer(cfg.tokenizer)
    except ValueError as e:
        raise PrepareError(f"--tokenizer: {e}") from e
    need = any(s.kind == "tpt" for s in specs)
    missing = check_tokenizer(tokenizer, cfg.template, need, cfg.tokenizer, add_missing=cfg.add_think_tokens)
    return tokenizer, add_special_tokens(tokenizer, missing) if missing else {}


def _plan_validation(cfg: PrepareConfig, caches: list[SourceCache]) -> tuple[int, int | None]:
    """-> (validation rows, split-key threshold) -- documents with key <= threshold are held out."""
    if cfg.val_fraction is not None:
        rows = int(cfg.val_fraction * sum(int(c.lengths.sum()) for c in caches) // cfg.seq_len)
        if rows < 1:
            raise PrepareError(
                f"--val-fraction {cfg.val_fraction}: less than one --seq-len {cfg.seq_len} sequence of data"
            )
    else:
        rows = cfg.val_sequences
    return rows, val_threshold(caches, rows * cfg.seq_len)


def _pack(writer: SplitWriter, mixer: Mixer, num_sources: int) -> dict:
    """Fill ``writer`` from ``mixer``; per-source tokens count only what landed in rows."""
    tokens = [0] * num_sources
    cut = 0
    with progress_bar(writer.remaining, f"pack {writer.split}", " tok", unit_scale=True, leave=False) as bar:
        for i, ids in mixer:
            taken = writer.add(ids)
            tokens[i] += taken
            bar.update(taken)
            if writer.full:
                cut = len(ids) - taken
                break
    return {
        "shards": writer.close(),
        "sequences": writer.rows,
        "tokens": writer.written,
        "tokens_per_source": tokens,
        "docs": writer.docs,
        "docs_across_rows": writer.docs_across_rows,
        "last_doc_tokens_cut": cut,
    }


def _pack_validation(
    tmp: Path, caches: list[SourceCache], threshold: int | None, rows: int, seed: int, writer: dict
) -> dict | None:
    """Validation rows from the held-out documents of all sources, interleaved by size, one pass."""
    if not rows:
        return None
    held = [np.flatnonzero(is_val(c, threshold)) for c in caches]
    use = [i for i, docs in enumerate(held) if len(docs)]  # sources with held-out documents
    mixer = Mixer(
        [caches[i] for i in use], [held[i] for i in use], [float(caches[i].lengths[held[i]].sum()) for i in use], seed
    )
    packed = _pack(SplitWriter(tmp, "val", rows=rows, **writer), mixer, len(use))
    per_source = [0] * len(caches)
    for j, i in enumerate(use):
        per_source[i] = packed["tokens_per_source"][j]
    packed["tokens_per_source"] = per_source
    packed["docs_per_source"] = [len(h) for h in held]
    return packed


def _write_rejected(path: Path, rejected: list[Rejection]) -> None:
    path.parent.mkdir(exist_ok=True)
    table = pa.Table.from_pylist([r.to_row() for r in rejected], schema=REJECTED_SCHEMA)
    pq.write_table(table, path, compression="zstd")


def _manifest(cfg, tokenizer, specs, caches, pools, targets, mixer, train, val, rejected) -> dict:
    sources = []
    pool_tokens = [mixer.progress[i].pool_tokens for i in range(len(specs))]
    held_out = val["docs_per_source"] if val else [0] * len(specs)
    for i, (spec, cache) in enumerate(zip(specs, caches)):
        written = train["tokens_per_source"][i]
        sources.append(
            {
                "source": spec.describe(),
                "path": str(spec.path),
                "kind": spec.kind,
                "weight": spec.weight,
                "epochs": spec.epochs,
                "docs_read": cache.num_docs,
                "docs_tokens": int(cache.offsets[-1]),
                "rejected_rows": cache.rejected,
                "length_dropped": cache.length.dropped,
                "length_cut": cache.length.cut,
                "val_docs": val["docs_per_source"][i] if val else 0,
                "val_tokens": val["tokens_per_source"][i] if val else 0,
                "pool_docs": len(pools[i]),
                "pool_tokens": pool_tokens[i],
                "target_tokens": round(targets[i], 1),
                "tokens": written,
                "share": round(written / train["tokens"], 6),
                "unique_docs": mixer.unique_docs(i),
                "epochs_seen": round(written / pool_tokens[i], 6),
                "share_used": round(mixer.unique_docs(i) / max(1, cache.num_docs - held_out[i]), 6),
            }
        )
    slots = train["sequences"] * cfg.seq_len
    return {
        "pad_id": tokenizer.pad_token_id,
        "template": cfg.template,
        "seed": cfg.seed,
        "sources": sources,
        "packing": {
            "efficiency": train["tokens"] / slots,  # real tokens / row slots: 1.0, rows are never padded
            "padding_tokens": slots - train["tokens"],
            "docs": train["docs"],
            "docs_across_rows": train["docs_across_rows"],
            "last_doc_tokens_cut": train["last_doc_tokens_cut"],
        },
        "train": {"sequences": train["sequences"], "tokens": train["tokens"]},
        "val": {"sequences": val["sequences"], "tokens": val["tokens"]} if val else {"sequences": 0, "tokens": 0},
        "rejected_rows": len(rejected),
        "config": to_dict(cfg),
    }
