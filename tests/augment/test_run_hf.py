"""End-to-end runs with the in-process transformers backend: layout, exactly-once, refusal, rerun."""

from __future__ import annotations

import json

import pyarrow.parquet as pq
import pytest
from augment_helpers import corpus_rows, make_config, write_jsonl

from tpt.augment.backends.tokenize import TokenizerOps
from tpt.augment.run import ConfigMismatch, run_augment
from tpt.augment.specs import ShardRange
from tpt.io.runs import data_files, iter_records


def keys(run_dir):
    return sorted((r.id, r.sample) for r in iter_records(run_dir))


def test_run_layout_and_records(tmp_path, small_corpus, tiny_model_dir, hf_backend):
    cfg = make_config(tmp_path, [small_corpus], model=str(tiny_model_dir), samples=2, max_doc_tokens=6)
    summary = run_augment(cfg, backend=hf_backend)
    assert summary.exit_code == 0 and summary.records == 20
    assert [p.name for p in data_files(cfg.out)] == [f"shard-{i:05d}.parquet" for i in range(3)]
    assert keys(cfg.out) == sorted((f"doc-{i}", s) for i in range(10) for s in range(2))
    records = list(iter_records(cfg.out))
    assert all(r.doc_truncated and r.doc_tokens > 6 for r in records)  # every doc is longer than 6 tokens
    seen = TokenizerOps(str(tiny_model_dir)).truncate(records[0].text, 6)[0]  # the prefix in the prompt
    assert records[0].text[: records[0].doc_cut_chars] == seen and 0 < len(seen) < len(records[0].text)
    assert all(r.thinking_tokens <= 8 and r.finish_reason in ("stop", "length") for r in records)
    assert records[0].meta == {"n": 0} and records[0].text.startswith("Document 0")
    stats = json.loads((cfg.out / "stats.json").read_text())
    assert stats["records"] == 20 and stats["truncated_rate"] == 1.0 and stats["this_run"]["completion_tokens"] > 0
    manifest = json.loads((cfg.out / "manifest.json").read_text())
    assert manifest["fingerprint"]["model"] == str(tiny_model_dir)
    assert not (cfg.out / "data" / ".parts").exists() or not any((cfg.out / "data" / ".parts").iterdir())

    before = [pq.read_table(p).to_pylist() for p in data_files(cfg.out)]
    again = run_augment(cfg, backend=hf_backend)
    assert again.nothing_to_do and again.new_records == 0
    assert [pq.read_table(p).to_pylist() for p in data_files(cfg.out)] == before


def test_different_config_is_refused(tmp_path, small_corpus, tiny_model_dir, hf_backend):
    cfg = make_config(tmp_path, [small_corpus], model=str(tiny_model_dir), shard_size=100)
    run_augment(cfg, backend=hf_backend)
    changed = make_config(tmp_path, [small_corpus], model=str(tiny_model_dir), shard_size=100, temperature=1.0)
    with pytest.raises(ConfigMismatch, match="temperature"):
        run_augment(changed, backend=hf_backend)
    operational = make_config(tmp_path, [small_corpus], model=str(tiny_model_dir), shard_size=100, concurrency=3)
    assert run_augment(operational, backend=hf_backend).nothing_to_do


def test_bad_rows_and_duplicates_are_set_aside(tmp_path, tiny_model_dir, hf_backend):
    rows = corpus_rows(5) + ["{broken", {"id": "doc-1", "text": "same id again"}, {"id": "z", "text": ""}]
    corpus = write_jsonl(tmp_path / "c.jsonl", rows)
    cfg = make_config(tmp_path, [corpus], model=str(tiny_model_dir))
    summary = run_augment(cfg, backend=hf_backend)
    assert summary.records == 5 and summary.rejected == 3 and summary.exit_code == 1
    rejected = sorted(
        (r for p in (cfg.out / "rejected").glob("*.parquet") for r in pq.read_table(p).to_pylist()),
        key=lambda r: r["line"],
    )
    assert [(r["line"], r["reason"].split(" (")[0].split(":")[0]) for r in rejected] == [
        (6, "malformed JSON"),
        (7, "duplicate id"),
        (8, "empty document"),
    ]
    assert f"{corpus}:2" in rejected[1]["reason"] and "doc-1" in rejected[1]["reason"]  # where the first one was

    strict = make_config(tmp_path / "s", [corpus], model=str(tiny_model_dir), strict=True)
    with pytest.raises(ValueError, match="c.jsonl:6"):
        run_augment(strict, backend=hf_backend)


def test_shard_range_splits_work(tmp_path, small_corpus, tiny_model_dir, hf_backend):
    cfg = make_config(tmp_path, [small_corpus], model=str(tiny_model_dir), shard_range=ShardRange(1, 2))
    run_augment(cfg, backend=hf_backend)
    assert [p.name for p in data_files(cfg.out)] == ["shard-00001.parquet"]
    cfg0 = make_config(tmp_path, [small_corpus], model=str(tiny_model_dir), shard_range=ShardRange(0, 2))
    run_augment(cfg0, backend=hf_backend)
    assert keys(cfg.out) == sorted((f"doc-{i}", 0) for i in range(10))


def test_seeded_generation_is_reproducible(tmp_path, small_corpus, tiny_model_dir, hf_backend):
    a = make_config(tmp_path / "a", [small_corpus], model=str(tiny_model_dir))
    b = make_config(tmp_path / "b", [small_corpus], model=str(tiny_model_dir))
    run_augment(a, backend=hf_backend), run_augment(b, backend=hf_backend)
    assert [r.thinking for r in iter_records(a.out)] == [r.thinking for r in iter_records(b.out)]
