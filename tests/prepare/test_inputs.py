"""What `tpt prepare` checks about its inputs and its --out before any compute, and what it says
about the budget: incomplete runs, repeated keys, foreign or locked folders, leftovers of a killed
run, empty sources, silent repetition, the document cut."""

import json
import os
import subprocess
import sys

import pyarrow.parquet as pq
import pytest
from prepare_helpers import random_records, write_run

from tpt.io.atomic import TEMP_MARK
from tpt.io.lock import FileLock, LockHeld
from tpt.prepare.config import PrepareConfig, PrepareError
from tpt.prepare.packed import PackedDataset
from tpt.prepare.run import prepare
from tpt.prepare.writer import lock_path


def config(tok_dir, out, *sources, **kw) -> PrepareConfig:
    return PrepareConfig(
        source=list(sources), tokenizer=str(tok_dir), out=out, **{"seq_len": 64, "val_sequences": 2, **kw}
    )


def augment_layout(run, shards: int, done: int, shard_size: int = 10, failed: int = 0):
    """The markers `tpt augment` leaves: plan.json, manifest.json, state/shard-K.done, failed/*.parquet."""
    files = [{"path": "c.jsonl", "kind": "jsonl", "size": 10 * shards, "text_field": "text", "id_field": None}]
    plan = {"version": 3, "files": files, "shards": [[0, 10 * k, 10 * k + 10, -1] for k in range(shards)]}
    (run / "plan.json").write_text(json.dumps(plan))  # as tpt augment writes it
    (run / "manifest.json").write_text(json.dumps({"stage": "augment", "config": {"shard_size": shard_size}}))
    (run / "state").mkdir(exist_ok=True)
    for k in range(done):
        (run / "state" / f"shard-{k:05d}.done").write_text("{}")
    if failed:
        from tpt.records import FAILED_SCHEMA

        (run / "failed").mkdir(exist_ok=True)
        pq.write_table(FAILED_SCHEMA.empty_table(), run / "failed" / "shard-00000.parquet")


def test_incomplete_run_refused_unless_allowed(tmp_path, tok_dir, capsys):
    run = write_run(tmp_path / "run", random_records(40))
    augment_layout(run, shards=4, done=2)
    with pytest.raises(
        PrepareError, match=r"incomplete: 2 of 4 shards done \(missing shard-00002, shard-00003\).*--allow-incomplete"
    ):
        prepare(config(tok_dir, tmp_path / "out", f"{run}:tpt"))
    assert not (tmp_path / "out").exists()
    index = prepare(config(tok_dir, tmp_path / "out", f"{run}:tpt", allow_incomplete=True))
    assert "packing it anyway" in capsys.readouterr().err
    assert index["inputs"][f"{run}:tpt:1"]["completion"]["done"] == 2
    augment_layout(run, shards=4, done=4)
    prepare(config(tok_dir, tmp_path / "out2", f"{run}:tpt"))  # complete: no flag needed


def test_repeated_keys_refused_or_set_aside(tmp_path, tok_dir):
    records = random_records(30)
    run = write_run(tmp_path / "run", records)
    write_run(run, records[:5], shard="part-00001")  # a shard copied in twice
    with pytest.raises(PrepareError, match=r"5 record\(s\) repeat an \(id, sample\) key.*--allow-duplicates"):
        prepare(config(tok_dir, tmp_path / "out", f"{run}:tpt"))
    index = prepare(config(tok_dir, tmp_path / "out", f"{run}:tpt", allow_duplicates=True))
    assert index["sources"][0]["docs_read"] == 30 and index["rejected_rows"] == 5
    rejected = pq.read_table(tmp_path / "out" / "rejected.parquet").to_pylist()
    assert {r["raw"] for r in rejected} == {r["id"] for r in records[:5]}
    assert all(
        "duplicate (id, sample) key" in r["reason"] and r["file"].endswith("part-00001.parquet") for r in rejected
    )


def test_temp_folder_of_a_killed_run_is_removed_by_the_next(tmp_path, tok_dir, tpt_run):
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    pid = int(dead.stdout)  # a process that has exited: its temp folder is garbage
    import socket

    left = tmp_path / f".out{TEMP_MARK}-{socket.gethostname()}-{pid}"
    left.mkdir()
    (left / "train-00000.tokens.bin").write_bytes(b"\0" * 4096)
    legacy = tmp_path / f".out.tmp-{pid}"  # the name tpt used before tpt.io.atomic
    legacy.mkdir()
    prepare(config(tok_dir, tmp_path / "out", f"{tpt_run}:tpt"))
    assert not left.exists() and not legacy.exists()
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith(".out")) == [".out.tpt-lock"]


def test_second_prepare_on_the_same_out_is_refused_naming_the_holder(tmp_path, tok_dir, tpt_run):
    out = tmp_path / "out"
    with FileLock(lock_path(out), what=f"--out {out}"):
        with pytest.raises(LockHeld, match=rf"--out {out} is in use by pid {os.getpid()}"):
            prepare(config(tok_dir, out, f"{tpt_run}:tpt"))
    assert not out.exists()


def test_empty_source_is_named_before_compute(tmp_path, tok_dir, tpt_run):
    empty = write_run(tmp_path / "empty", [])
    with pytest.raises(PrepareError, match=rf"source {empty}:tpt:1: 0 records in {empty / 'data'}"):
        prepare(config(tok_dir, tmp_path / "out", f"{tpt_run}:tpt", f"{empty}:tpt"))
    blank = write_run(tmp_path / "blank", [{"id": f"b{i}", "text": "  ", "thinking": "t"} for i in range(3)])
    with pytest.raises(PrepareError, match=r"0 usable records: 3 row\(s\) rejected"):
        prepare(config(tok_dir, tmp_path / "out", f"{tpt_run}:tpt", f"{blank}:tpt"))


def test_budget_repetition_and_under_use_are_warned(tmp_path, tok_dir, capsys):
    big = write_run(tmp_path / "big", random_records(200, prefix="b"))
    small = write_run(tmp_path / "small", random_records(10, seed=1, prefix="s"))
    index = prepare(config(tok_dir, tmp_path / "out", f"{big}:tpt:1", f"{small}:tpt:1", tokens="6k"))
    err = capsys.readouterr().err
    big_s, small_s = index["sources"]
    assert small_s["epochs_seen"] > 1 and f"source {small}:tpt:1: repeated {small_s['epochs_seen']:.2f}x" in err
    assert big_s["share_used"] < 0.5 and f"only {big_s['share_used']:.0%} of its training documents" in err
    assert len(index["warnings"]) == 2 and all(
        k in big_s for k in ("tokens", "unique_docs", "share_used", "epochs_seen")
    )
    index = prepare(config(tok_dir, tmp_path / "out2", f"{small}:tpt:x3"))  # asked for: no warning
    assert index["warnings"] == [] and "warning" not in capsys.readouterr().err


def test_doc_cut_prefix_is_exactly_what_the_generator_saw(tmp_path, tok_dir):
    from tpt.augment.backends.tokenize import TokenizerOps

    ops = TokenizerOps(str(tok_dir))
    records = []
    for r in random_records(20):
        cut, n, was_cut = ops.truncate(r["text"], 6)
        records.append({**r, "doc_tokens": n, "doc_truncated": was_cut, "_cut": cut})
    run = write_run(tmp_path / "run", [{k: v for k, v in r.items() if k != "_cut"} for r in records])
    (run / "manifest.json").write_text(json.dumps({"config": {"max_doc_tokens": 6, "tokenizer": str(tok_dir)}}))
    assert any(r["doc_truncated"] for r in records)
    index = prepare(PrepareConfig(source=[f"{run}:tpt"], out=tmp_path / "txt", format="text", doc_cut="prefix"))
    rows = {r["id"]: r["text"] for r in pq.read_table(tmp_path / "txt" / "text-00000.parquet").to_pylist()}
    for r in records:
        assert rows[r["id"]] == f"{r['_cut']} <think> {r['thinking']} </think>"
    assert index["sources"][0]["doc_cut"] == sum(r["doc_truncated"] for r in records)
    assert index["config"]["doc_cut"] == "prefix"
    packed = prepare(config(tok_dir, tmp_path / "packed", f"{run}:tpt", doc_cut="prefix"))
    assert packed["config"]["doc_cut"] == "prefix" and len(PackedDataset(tmp_path / "packed")) > 0
    assert packed["inputs"][f"{run}:tpt:1"] == {
        "completion": None,
        "duplicates": 0,
        "doc_cut": "prefix",
        "docs_cut": index["sources"][0]["doc_cut"],
    }
    # the wrong tokenizer is caught, naming the record
    wrong = [{k: v for k, v in r.items() if k != "_cut"} | {"doc_tokens": r["doc_tokens"] + 1} for r in records]
    bad = write_run(tmp_path / "bad", wrong)
    (bad / "manifest.json").write_text((run / "manifest.json").read_text())
    with pytest.raises(PrepareError, match=r"part-00000.parquet:\d+: the record says the generator saw"):
        prepare(PrepareConfig(source=[f"{bad}:tpt"], out=tmp_path / "txt2", format="text", doc_cut="prefix"))


def test_doc_cut_prefix_needs_the_generator_tokenizer_only_without_offsets(tmp_path, tok_dir):
    records = [r | {"doc_truncated": True} for r in random_records(12)]
    old_style = write_run(tmp_path / "old", records)  # truncated, no doc_cut_chars (an older augment)
    with pytest.raises(PrepareError, match=r"manifest.json has no config.max_doc_tokens"):
        prepare(config(tok_dir, tmp_path / "out", f"{old_style}:tpt", doc_cut="prefix"))
    # records of this augment carry their cut: exact, with no manifest and no generator tokenizer
    exact = write_run(tmp_path / "new", [r | {"doc_cut_chars": len(r["text"]) // 2} for r in records])
    index = prepare(PrepareConfig(source=[f"{exact}:tpt"], out=tmp_path / "txt", format="text", doc_cut="prefix"))
    rows = {r["id"]: r["text"] for r in pq.read_table(tmp_path / "txt" / "text-00000.parquet").to_pylist()}
    for r in records:
        assert rows[r["id"]] == f"{r['text'][: len(r['text']) // 2]} <think> {r['thinking']} </think>"
    assert index["sources"][0]["doc_cut"] == len(records)


def test_runs_written_before_doc_cut_chars_still_read(tmp_path, tok_dir):
    """A shard without the doc_cut_chars column (an older tpt) is filtered and prepared as before."""
    from tpt.analyze.filter import FilterConfig, filter_run
    from tpt.records import THINKING_SCHEMA

    run = write_run(tmp_path / "run", random_records(30))
    shard = run / "data" / "part-00000.parquet"
    pq.write_table(pq.read_table(shard).drop_columns(["doc_cut_chars"]), shard)
    result = filter_run(FilterConfig(run=run, out=tmp_path / "clean", remove=["truncated"]))
    assert result.kept == 30
    clean = pq.read_table(tmp_path / "clean" / "data" / "part-00000.parquet")
    assert clean.schema.equals(THINKING_SCHEMA, check_metadata=False) and clean.column("doc_cut_chars").null_count == 30
    index = prepare(PrepareConfig(source=[f"{run}:tpt"], out=tmp_path / "txt", format="text", doc_cut="prefix"))
    assert index["sources"][0]["doc_cut"] == 0 and index["sources"][0]["documents"] == 30


def test_cli_exit_codes_for_a_held_lock_and_bad_input(tmp_path, tok_dir, tpt_run, capsys):
    from tpt.prepare.cli import main

    out = tmp_path / "out"
    with FileLock(lock_path(out), what=f"--out {out}"):
        assert main(["--source", f"{tpt_run}:tpt", "--tokenizer", str(tok_dir), "--out", str(out)]) == 3
    assert f"--out {out} is in use by pid {os.getpid()}" in capsys.readouterr().err
    assert main(["--source", f"{tpt_run}:tpt", "--out", str(out)]) == 2  # no tokenizer for packed
    assert "--tokenizer: needed for --format packed" in capsys.readouterr().err
