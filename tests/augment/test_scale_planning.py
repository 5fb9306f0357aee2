"""Issue 17: shards from file structure, write-once plans, array tasks, bounded duplicates, fsspec,
--dry-run, --limit, per-source fields, rejected counts by reason and file, early input checks."""

from __future__ import annotations

import json
import random
from collections import Counter
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from augment_helpers import corpus_rows, lab_rows, make_config, record_keys, run_cli, start_cli, write_jsonl

from tpt.augment.planning import compute_plan, specs_of
from tpt.augment.run import run_augment
from tpt.augment.shards import load_rows
from tpt.augment.specs import InputSpec


def lab_config(tmp_path, inputs, **kw):
    values = dict(backend="lab-expert", shard_bytes=1500, shard_size=7)
    values.update(kw)
    return make_config(tmp_path, inputs, **values)


def test_jsonl_byte_ranges_give_every_line_exactly_once(tmp_path):
    rows = corpus_rows(57)
    path = write_jsonl(tmp_path / "c.jsonl", rows)
    for shard_bytes in (1, 13, 64, 97, 500, 10_000):
        specs = specs_of(compute_plan(make_config(tmp_path, [path], shard_bytes=shard_bytes)))
        lines = [(r.line, json.loads(r.payload)["id"]) for s in specs for r in load_rows(s)]
        assert [i for _, i in lines] == [r["id"] for r in rows], shard_bytes
        assert [n for n, _ in lines] == list(range(1, 58))  # lazily counted line numbers are right


def test_parquet_shards_are_whole_row_groups_from_metadata(tmp_path):
    table = pa.Table.from_pylist(corpus_rows(50))
    pq.write_table(table, tmp_path / "a.parquet", row_group_size=8)
    plan = compute_plan(make_config(tmp_path, [tmp_path / "a.parquet"], shard_size=12))
    assert plan["files"][0]["rows"] == 50
    # whole row groups of 8, at least 12 rows per shard: a row group is read by one shard only
    assert [s[1:3] for s in plan["shards"]] == [[0, 16], [16, 32], [32, 48], [48, 50]]
    ids = [r.payload["id"] for s in specs_of(plan) for r in load_rows(s)]
    assert ids == [f"doc-{i}" for i in range(50)]


def multi_file_corpus(folder: Path) -> list[dict]:
    import gzip

    pool = lab_rows(400, seed=5)
    tabular = [r for r in pool if r["family"] == "multiply"][:30]  # one family: one Parquet schema
    rows = [r for r in pool if r["family"] != "multiply"][:60]
    write_jsonl(folder / "a.jsonl", rows[:30])
    pq.write_table(pa.Table.from_pylist(tabular), folder / "b.parquet", row_group_size=5)
    (folder / "c.jsonl.gz").write_bytes(gzip.compress("".join(json.dumps(r) + "\n" for r in rows[30:]).encode()))
    return rows + tabular


def test_three_array_tasks_started_together_on_an_empty_folder(tmp_path):
    rows = multi_file_corpus(tmp_path / "in")
    out = tmp_path / "run"
    argv = [
        str(tmp_path / "in"),
        "--out",
        str(out),
        "--backend",
        "lab-expert",
        "--shard-bytes",
        "1200",
        "--shard-size",
        "7",
        "--samples",
        "2",
        "--checkpoint-records",
        "4",
        "--no-progress",
    ]
    procs = [start_cli(argv + ["--shard-range", f"{i}/3"]) for i in range(3)]
    logs = [p.communicate(timeout=300)[0] for p in procs]
    assert [p.returncode for p in procs] == [0, 0, 0], logs
    counts = Counter(record_keys(out))
    assert set(counts) == {(r["id"], s) for r in rows for s in range(2)} and set(counts.values()) == {1}
    assert json.loads((out / "plan.json").read_text())["version"] == 3
    final = run_cli(argv)
    assert final.returncode == 0 and "already complete; nothing to do" in final.stderr


def test_duplicate_ids_within_and_across_shards(tmp_path):
    rows = lab_rows(20, seed=4)
    dup_in_shard = dict(rows[1], text=rows[1]["text"] + " again")
    write_jsonl(tmp_path / "in" / "a.jsonl", rows[:10] + [dup_in_shard])
    write_jsonl(tmp_path / "in" / "b.jsonl", rows[10:] + [rows[0]])  # rows[0]'s id again, in another file
    cfg = lab_config(tmp_path, [tmp_path / "in"], shard_bytes=10**6)
    summary = run_augment(cfg)
    keys = record_keys(cfg.out)
    assert sorted(keys) == sorted((r["id"], 0) for r in rows) and len(keys) == 20
    rejected = [r for p in sorted((cfg.out / "rejected").glob("*.parquet")) for r in pq.read_table(p).to_pylist()]
    assert [(Path(r["file"]).name, r["line"]) for r in rejected] == [("a.jsonl", 11), ("b.jsonl", 11)]
    assert all(r["reason"].startswith("duplicate id") and "a.jsonl:" in r["reason"] for r in rejected)
    assert summary.rejected == 2 and summary.stats["rejected_by_reason"] == {"duplicate id": 2}
    assert run_augment(cfg).nothing_to_do and len(record_keys(cfg.out)) == 20  # the merge is done once


def test_memory_filesystem_inputs(tmp_path):
    fsspec = pytest.importorskip("fsspec")
    mem = fsspec.filesystem("memory")
    pool = lab_rows(200, seed=6)
    rows = [r for r in pool if r["family"] != "multiply"][:6] + [r for r in pool if r["family"] == "multiply"][:6]
    mem.pipe("/tpt-test/corpus/a.jsonl", "".join(json.dumps(r) + "\n" for r in rows[:6]).encode())
    buf = pa.BufferOutputStream()
    pq.write_table(pa.Table.from_pylist(rows[6:]), buf)
    mem.pipe("/tpt-test/corpus/b.parquet", buf.getvalue().to_pybytes())
    try:
        cfg = lab_config(tmp_path, ["memory://tpt-test/corpus"], shard_bytes=700, shard_size=4)
        summary = run_augment(cfg)
    finally:
        mem.rm("/tpt-test", recursive=True)
    assert summary.records == 12 and sorted(record_keys(cfg.out)) == sorted((r["id"], 0) for r in rows)
    assert all(f["path"].startswith("memory://") for f in json.loads((cfg.out / "plan.json").read_text())["files"])


def test_dry_run_equals_a_hand_count(tmp_path, tiny_model_dir):
    from tpt.augment.backends.tokenize import TokenizerOps
    from tpt.augment.estimate import estimate
    from tpt.augment.prompts import load_strategy

    rows = corpus_rows(9) + [{"id": "bad"}]
    corpus = write_jsonl(tmp_path / "c.jsonl", rows)
    cfg = make_config(
        tmp_path,
        [corpus],
        model=str(tiny_model_dir),
        max_doc_tokens=5,
        samples=3,
        max_thinking_tokens=100,
        tokens_per_second=10.0,
        shard_bytes=300,
    )
    e = estimate(cfg)
    ops, strategy = TokenizerOps(str(tiny_model_dir)), load_strategy("default", 0)
    hand = sum(ops.count_tokens(strategy.build(r["id"], ops.truncate(r["text"], 5)[0])) for r in rows[:9])
    assert e.exact and (e.rows, e.documents, e.trajectories) == (10, 9, 27)
    assert e.prompt_tokens == hand
    assert e.thinking_tokens_bound == 2700 and e.gpu_hours_bound == pytest.approx(2700 / 10 / 3600)
    assert not cfg.out.exists()  # a dry run writes nothing


def test_dry_run_cli_writes_nothing_and_estimates_large_corpora(tmp_path):
    rows = lab_rows(400, seed=8)
    corpus = write_jsonl(tmp_path / "c.jsonl", rows)
    proc = run_cli(
        [
            str(corpus),
            "--out",
            str(tmp_path / "run"),
            "--backend",
            "lab-expert",
            "--dry-run",
            "--dry-run-sample",
            "40",
            "--shard-bytes",
            "2000",
            "--tokens-per-second",
            "1000",
        ]
    )
    assert proc.returncode == 0, proc.stderr
    assert "GPU-hours" in proc.stdout
    import re

    estimated = int(re.search(r"~([\d,]+) input rows", proc.stdout).group(1).replace(",", ""))  # sampled: marked ~
    assert 300 < estimated < 500 and not (tmp_path / "run").exists()


def test_limit_is_a_trial_with_its_own_fingerprint(tmp_path):
    corpus = write_jsonl(tmp_path / "c.jsonl", lab_rows(30, seed=2))
    cfg = lab_config(tmp_path, [corpus], limit=11)
    assert run_augment(cfg).records == 11
    full = lab_config(tmp_path, [corpus])
    from tpt.augment.run import ConfigMismatch

    with pytest.raises(ConfigMismatch, match="limit"):
        run_augment(full)


def test_per_source_fields_and_rejections_by_reason_and_file(tmp_path):
    rows = lab_rows(6, seed=1)
    write_jsonl(tmp_path / "a.jsonl", rows[:3] + ["{broken"])
    write_jsonl(
        tmp_path / "b.jsonl",
        [
            {"uid": r["id"], "body": r["text"], **{k: v for k, v in r.items() if k not in ("id", "text")}}
            for r in rows[3:]
        ]
        + [{"uid": "x"}],
    )
    cfg = lab_config(tmp_path, [tmp_path / "a.jsonl", InputSpec(tmp_path / "b.jsonl", "body", "uid")])
    summary = run_augment(cfg)
    assert sorted(record_keys(cfg.out)) == sorted((r["id"], 0) for r in rows)
    assert summary.stats["rejected_by_reason"] == {"malformed JSON": 1, "missing text field": 1}
    assert summary.stats["rejected_by_file"] == {str(tmp_path / "a.jsonl"): 1, str(tmp_path / "b.jsonl"): 1}


def test_a_wrong_text_field_fails_before_the_model_loads(tmp_path):
    corpus = write_jsonl(tmp_path / "c.jsonl", [{"id": "a", "body": "x"}])
    (tmp_path / "no-such-model").mkdir()  # a folder (paths are checked first) that no model load would accept
    proc = run_cli(
        [
            str(corpus),
            "--out",
            str(tmp_path / "run"),
            "--backend",
            "transformers",
            "--model",
            str(tmp_path / "no-such-model"),
            "--no-progress",
        ]
    )
    assert proc.returncode == 2 and "no 'text' field" in proc.stderr and "body" in proc.stderr
    pq.write_table(pa.table({"id": ["a"], "body": ["x"]}), tmp_path / "p.parquet")
    proc = run_cli(
        [
            str(tmp_path / "p.parquet"),
            "--out",
            str(tmp_path / "run2"),
            "--backend",
            "transformers",
            "--model",
            str(tmp_path / "no-such-model"),
            "--no-progress",
        ]
    )
    assert proc.returncode == 2 and "no column 'text' (columns: id, body)" in proc.stderr
    bad = write_jsonl(tmp_path / "bad.jsonl", [{"id": "a", "text": "fine"}, "{broken"])
    proc = run_cli(
        [
            str(bad),
            "--out",
            str(tmp_path / "run3"),
            "--backend",
            "transformers",
            "--strict",
            "--model",
            str(tmp_path / "no-such-model"),
            "--no-progress",
        ]
    )
    assert proc.returncode == 2 and f"{bad}:2: field '': malformed JSON" in proc.stderr  # before any model load


def test_an_old_run_folder_is_refused_with_a_clear_message(tmp_path):
    corpus = write_jsonl(tmp_path / "c.jsonl", lab_rows(3))
    out = tmp_path / "run"
    out.mkdir()
    (out / "plan.json").write_text(json.dumps({"n_rows": 3, "shard_size": 1000, "duplicates": {}}))
    (out / "manifest.json").write_text(json.dumps({"stage": "augment", "fingerprint": {}}))
    proc = run_cli([str(corpus), "--out", str(out), "--backend", "lab-expert", "--no-progress"])
    assert proc.returncode == 2 and "older tpt" in proc.stderr


def test_concurrent_planners_agree_and_write_once(tmp_path):
    import threading

    from tpt.augment.planning import load_or_create_plan

    folder = tmp_path / "in"
    for i in range(5):
        write_jsonl(folder / f"f{i}.jsonl", corpus_rows(random.Random(i).randint(5, 40)))
    cfg = make_config(tmp_path, [folder], shard_bytes=333)
    cfg.out.mkdir()
    plans = []
    threads = [threading.Thread(target=lambda: plans.append(load_or_create_plan(cfg))) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(plans) == 6 and all(p == plans[0] for p in plans) and plans[0] == compute_plan(cfg)
    assert [p.name for p in cfg.out.iterdir()] == ["plan.json"]
