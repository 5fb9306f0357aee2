"""`prepare()` end to end on small augment runs and raw files, read back through PackedDataset."""

import json
import re

import numpy as np
import pyarrow.parquet as pq
import pytest
from prepare_helpers import random_records, write_jsonl, write_run

from tpt.prepare.config import PrepareConfig, PrepareError
from tpt.prepare.packed import PackedDataset
from tpt.prepare.run import prepare


def config(tok_dir, out, *sources, **kw) -> PrepareConfig:
    return PrepareConfig(
        source=list(sources), tokenizer=str(tok_dir), out=out, **{"seq_len": 64, "val_sequences": 4, **kw}
    )


def stream(ds: PackedDataset) -> np.ndarray:
    """The split's rows back to back: the packed token stream in order."""
    return np.concatenate([ds[i] for i in range(len(ds))]) if len(ds) else np.zeros(0)


def full_docs(tok, ds: PackedDataset) -> list[str]:
    """Decoded documents that lie wholly inside the split (the first and last may be partial)."""
    ids = stream(ds).tolist()
    eos = [i for i, t in enumerate(ids) if t == tok.eos_token_id]
    return [tok.decode(ids[a + 1 : b]) for a, b in zip(eos, eos[1:])]


def tagged(records):
    """Each document carries its id, so it can be found in the packed stream."""
    return [{**r, "text": f"[{r['id']}] {r['text']}"} for r in records]


def test_two_sources_mixed_packed_and_accounted(tmp_path, tok, tok_dir):
    run = write_run(tmp_path / "run", tagged(random_records(150)))
    raw = write_jsonl(
        tmp_path / "raw.jsonl",
        [{"id": f"r{i}", "text": f"[r{i}] water boils at altitude."} for i in range(80)]
        + ["{not json", {"id": "x", "body": "no text"}],
    )
    index = prepare(config(tok_dir, tmp_path / "out", f"{run}:tpt:1.0", f"{raw}:vanilla:0.125", tokens="8k"))
    train, val = PackedDataset(tmp_path / "out"), PackedDataset(tmp_path / "out", "val")
    assert len(train) == 8000 // 64 == index["train"]["sequences"] and len(val) == 4
    assert index["packing"]["efficiency"] == 1.0 and index["packing"]["padding_tokens"] == 0
    tpt, vanilla = index["sources"]
    assert tpt["tokens"] + vanilla["tokens"] == 125 * 64  # per-source tokens add up to what was written
    assert abs(vanilla["tokens"] - 125 * 64 * 0.125 / 1.125) < 20  # within one document of its 1/9 share
    assert tpt["docs_read"] == 150 and vanilla["docs_read"] == 80 and vanilla["rejected_rows"] == 2
    assert tpt["epochs_seen"] == pytest.approx(tpt["tokens"] / tpt["pool_tokens"], abs=1e-6)
    assert index["vocab_size"] == len(tok) and index["dtype"] == "uint16" and index["eos_id"] == tok.eos_token_id
    assert index["template"] == "{text} <think> {thinking} </think>" and index["seed"] == 0
    rejected = pq.read_table(tmp_path / "out" / "rejected.parquet").to_pylist()
    assert [(r["line"], r["field"]) for r in rejected] == [(81, ""), (82, "text")]
    assert rejected[0]["file"] == str(raw) and "malformed JSON" in rejected[0]["reason"]
    docs = full_docs(tok, train)
    assert any("<think>" in d for d in docs) and any(d.startswith("[r") and "<think>" not in d for d in docs)
    assert all(re.fullmatch(r"\[d\d+\] .* <think> .* </think>", d) for d in docs if d.startswith("[d"))


def test_validation_documents_never_appear_in_train(tmp_path, tok, tok_dir):
    """The same run as tpt and vanilla: a held-out id is held out of both sources."""
    run = write_run(tmp_path / "run", tagged(random_records(150)))
    index = prepare(config(tok_dir, tmp_path / "out", f"{run}:tpt:1", f"{run}:vanilla:1", val_sequences=6))
    ids = lambda docs: {re.match(r"\[(d\d+)\]", d).group(1) for d in docs}  # noqa: E731
    train_ids = ids(full_docs(tok, PackedDataset(tmp_path / "out")))
    val_ids = ids(full_docs(tok, PackedDataset(tmp_path / "out", "val")))
    assert val_ids and train_ids and not (val_ids & train_ids)
    assert sum(s["val_docs"] for s in index["sources"]) >= len(val_ids)


def test_document_starts_mark_every_document(tmp_path, tok, tok_dir, tpt_run):
    prepare(config(tok_dir, tmp_path / "out", f"{tpt_run}:tpt:1", shard_tokens="1k"))
    ds = PackedDataset(tmp_path / "out")
    assert len(ds.shards) > 1  # 1k-token shards
    eos = tok.eos_token_id
    for i in range(len(ds)):
        row, starts = ds[i].tolist(), ds.doc_starts(i).tolist()
        after_eos = [p + 1 for p, t in enumerate(row[:-1]) if t == eos]
        assert starts == sorted(set(after_eos + ([0] if i == 0 or ds[i - 1][-1] == eos else [])))


def test_same_seed_same_bytes_other_seed_other_order(tmp_path, tok_dir, tpt_run):
    for name, seed in (("a", 0), ("b", 0), ("c", 1)):
        prepare(config(tok_dir, tmp_path / name, f"{tpt_run}:tpt:1", seed=seed))
    read = lambda name: (tmp_path / name / "train-00000.tokens.bin").read_bytes()  # noqa: E731
    assert read("a") == read("b") and read("a") != read("c")


def test_epoch_count_source_repeats_each_document(tmp_path, tok, tok_dir):
    run = write_run(tmp_path / "run", tagged(random_records(40)))
    index = prepare(config(tok_dir, tmp_path / "out", f"{run}:tpt:x3", val_sequences=0))
    src = index["sources"][0]
    assert src["unique_docs"] == src["pool_docs"] == 40
    assert 3 * src["pool_tokens"] - 64 < src["tokens"] <= 3 * src["pool_tokens"]  # all but the last partial row
    assert 2.9 < src["epochs_seen"] <= 3.0 and "val" not in index["splits"]
    counts = {}
    for d in full_docs(tok, PackedDataset(tmp_path / "out")):
        counts[d] = counts.get(d, 0) + 1
    assert max(counts.values()) == 3 and sum(counts.values()) >= 3 * 40 - 3


def test_constrained_pool_tokens(tmp_path, tok_dir, tpt_run):
    index = prepare(
        config(tok_dir, tmp_path / "out", f"{tpt_run}:tpt:1", pool_tokens="2k", tokens="10k", val_sequences=0)
    )
    src = index["sources"][0]
    assert src["pool_tokens"] <= 2000 and src["unique_docs"] == src["pool_docs"] < 120
    assert src["tokens"] == 10_000 // 64 * 64 and src["epochs_seen"] > 4.5


def test_length_records_dropped_and_counted(tmp_path, tok_dir):
    records = random_records(60)
    for r in records[:10]:
        r["finish_reason"] = "length"
    run = write_run(tmp_path / "run", records)
    src = prepare(config(tok_dir, tmp_path / "out", f"{run}:tpt:1", on_length="drop", val_sequences=0))["sources"][0]
    assert (src["docs_read"], src["length_dropped"]) == (50, 10)


def test_vanilla_from_a_run_reads_each_document_once_and_raw_parquet_works(tmp_path, tok_dir):
    records = random_records(30)
    run = write_run(tmp_path / "run", records + [{**r, "sample": 1} for r in records])
    import pyarrow as pa

    pq.write_table(pa.table({"text": [r["text"] for r in records]}), tmp_path / "raw.parquet")
    index = prepare(
        config(tok_dir, tmp_path / "out", f"{run}:vanilla:1", f"{tmp_path / 'raw.parquet'}:vanilla:1", val_sequences=0)
    )
    assert [s["docs_read"] for s in index["sources"]] == [30, 30]


def test_sharded_output_reads_back_as_one_stream(tmp_path, tok_dir, tpt_run):
    prepare(config(tok_dir, tmp_path / "one", f"{tpt_run}:tpt:1", val_sequences=0))
    prepare(config(tok_dir, tmp_path / "many", f"{tpt_run}:tpt:1", val_sequences=0, shard_tokens="640"))
    one, many = PackedDataset(tmp_path / "one"), PackedDataset(tmp_path / "many")
    assert len(many.shards) > 1 and all(s.num_sequences == 10 for s in many.shards[:-1])
    assert np.array_equal(stream(one), stream(many))


# ---- bad input: clear errors before any compute, and nothing left behind ----


def test_missing_source_and_corrupt_shard(tmp_path, tok_dir, tpt_run):
    with pytest.raises(PrepareError, match="does not exist"):
        prepare(config(tok_dir, tmp_path / "out", f"{tmp_path / 'nope'}:tpt:1"))
    (tpt_run / "data" / "part-00001.parquet").write_bytes(b"PAR1 this is not parquet")
    with pytest.raises(PrepareError, match=r"part-00001\.parquet: corrupt or unreadable Parquet shard"):
        prepare(config(tok_dir, tmp_path / "out", f"{tpt_run}:tpt:1"))
    (tmp_path / "notes.txt").write_text("hello")
    with pytest.raises(PrepareError, match=r"notes\.txt: unsupported file"):
        prepare(config(tok_dir, tmp_path / "out", f"{tmp_path / 'notes.txt'}:vanilla:1"))
    assert not (tmp_path / "out").exists()


def test_tokenizer_without_think_is_refused(tmp_path, plain_tok_dir, tpt_run):
    with pytest.raises(PrepareError, match=r"lacks special token\(s\) \['</think>', '<think>'\]"):
        prepare(config(plain_tok_dir, tmp_path / "out", f"{tpt_run}:tpt:1"))
    # the same tokenizer is fine for vanilla data
    assert prepare(config(plain_tok_dir, tmp_path / "out", f"{tpt_run}:vanilla:1"))["train"]["sequences"] > 0


def test_config_that_does_not_fit_leaves_no_folder(tmp_path, tok_dir, tpt_run):
    with pytest.raises(PrepareError, match="give only"):
        prepare(config(tok_dir, tmp_path / "out", f"{tpt_run}:tpt:x1", tokens="10M"))
    with pytest.raises(PrepareError, match="validation split needs"):
        prepare(config(tok_dir, tmp_path / "out", f"{tpt_run}:tpt:1", val_sequences=10_000))
    # no output, no temp folder; the lock file stays
    assert sorted(p.name for p in tmp_path.iterdir()) == [".out.tpt-lock", "run"]


def test_existing_output_needs_overwrite(tmp_path, tok_dir, tpt_run):
    prepare(config(tok_dir, tmp_path / "out", f"{tpt_run}:tpt:1"))
    with pytest.raises(PrepareError, match="already exists"):
        prepare(config(tok_dir, tmp_path / "out", f"{tpt_run}:tpt:1"))
    assert prepare(config(tok_dir, tmp_path / "out", f"{tpt_run}:tpt:1", seed=3, overwrite=True))["seed"] == 3


def test_packed_reader_errors(tmp_path, tok_dir, tpt_run):
    out = tmp_path / "out"
    prepare(config(tok_dir, out, f"{tpt_run}:tpt:1"))
    ds = PackedDataset(out)
    with pytest.raises(ValueError, match="vocabulary of 400 ids, the model has only 300"):
        ds.check_model(vocab_size=300)
    with pytest.raises(ValueError, match="seq_len 64 exceeds the model's 32 positions"):
        ds.check_model(vocab_size=400, max_positions=32)
    ds.check_model(vocab_size=512, max_positions=64)
    shard = out / "train-00000.tokens.bin"
    shard.write_bytes(shard.read_bytes()[:-2])
    with pytest.raises(ValueError, match="truncated or corrupt shard"):
        PackedDataset(out)
    shard.unlink()
    with pytest.raises(FileNotFoundError, match="train-00000.tokens.bin: shard listed in index.json is missing"):
        PackedDataset(out)
    (out / "index.json").write_text('{"format": "tpt-packed-v1", "seq_len": ')
    with pytest.raises(ValueError, match="corrupt index.json"):
        PackedDataset(out)
    (out / "index.json").write_text(json.dumps({"format": "tpt-packed-v1"}))
    with pytest.raises(ValueError, match=r"corrupt index.json \(missing"):
        PackedDataset(out)


def test_cli_repeated_sources_and_errors(tmp_path, tok_dir, tpt_run, capsys):
    from tpt.prepare.cli import main

    raw = write_jsonl(tmp_path / "raw.jsonl", [{"text": f"doc {i} water boils."} for i in range(50)])
    argv = ["--source", f"{tpt_run}:tpt:1", "--source", f"{raw}:vanilla:x1", "--tokenizer", str(tok_dir),
            "--seq-len", "32", "--tokens", "4k", "--out", str(tmp_path / "out")]  # fmt: skip
    assert main(argv) == 0
    summary = json.loads(capsys.readouterr().out)
    assert [s["source"] for s in summary["sources"]] == [f"{tpt_run}:tpt:1", f"{raw}:vanilla:x1"]
    assert summary["sources"][1]["epochs_seen"] == pytest.approx(1.0)
    assert main(argv) == 2 and "already exists" in capsys.readouterr().err


def test_reader_errors_surface_through_the_prefetch_thread():
    from tpt.prepare.cache import prefetch

    def rows():
        yield 1
        raise OSError("disk went away")

    it = prefetch(rows())
    assert next(it) == 1
    with pytest.raises(OSError, match="disk went away"):
        next(it)


def test_val_fraction_sizes_the_validation_split(tmp_path, tok_dir, tpt_run):
    index = prepare(config(tok_dir, tmp_path / "out", f"{tpt_run}:tpt:1", val_fraction=0.1))
    total = index["sources"][0]["docs_tokens"]
    assert index["val"]["sequences"] == int(0.1 * total // 64) > 0
    assert index["sources"][0]["pool_tokens"] <= total - index["val"]["sequences"] * 64
