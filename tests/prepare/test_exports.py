"""`tpt prepare --format megatron | text`: read back with Megatron-LM's own reader and with pyarrow."""

import json

import numpy as np
import pyarrow.parquet as pq
import pytest
from prepare_helpers import random_records, write_jsonl, write_run

from tpt.prepare.config import PrepareConfig, PrepareError
from tpt.prepare.run import prepare


def config(tok_dir, out, *sources, **kw) -> PrepareConfig:
    return PrepareConfig(source=list(sources), tokenizer=str(tok_dir), out=out, **kw)


def test_megatron_export_is_read_by_megatron_core(tmp_path, tok, tok_dir):
    indexed = pytest.importorskip("megatron.core.datasets.indexed_dataset", reason="pip install 'tpt[export]'")
    records = random_records(40)
    run = write_run(tmp_path / "run", records)
    raw = write_jsonl(tmp_path / "raw.jsonl", [{"id": f"r{i}", "text": f"water boils {i} times."} for i in range(7)])
    index = prepare(config(tok_dir, tmp_path / "mg", f"{run}:tpt:3", f"{raw}:vanilla:1", format="megatron"))
    tpt_src, vanilla_src = index["sources"]
    assert (
        index["format"] == "tpt-megatron-v1"
        and index["megatron_data_path"] == f"3 {tpt_src['prefix']} 1 {vanilla_src['prefix']}"
    )
    ds = indexed.IndexedDataset(str(tmp_path / "mg" / tpt_src["prefix"]))
    assert len(ds) == 40 == tpt_src["documents"]  # one sequence per document, no packing
    assert len(ds.document_indices) == 41
    eos = tok.eos_token_id
    for i, record in enumerate(records):  # same order as the run, EOS appended, the template around d and t
        ids = ds[i]
        assert ids.dtype == np.uint16 and ids[-1] == eos and eos not in ids[:-1]
        assert tok.decode(ids[:-1].tolist()) == f"{record['text']} <think> {record['thinking']} </think>"
    vanilla = indexed.IndexedDataset(str(tmp_path / "mg" / vanilla_src["prefix"]))
    assert [tok.decode(vanilla[i][:-1].tolist()) for i in range(len(vanilla))] == [
        f"water boils {i} times." for i in range(7)
    ]


def test_megatron_export_refuses_packed_only_flags(tmp_path, tok_dir, tpt_run):
    with pytest.raises(PrepareError, match="--tokens / --pool-tokens: apply to --format packed only"):
        prepare(config(tok_dir, tmp_path / "mg", f"{tpt_run}:tpt", format="megatron", tokens="10k"))
    with pytest.raises(PrepareError, match="xN epochs apply to --format packed only"):
        prepare(config(tok_dir, tmp_path / "mg", f"{tpt_run}:tpt:x2", format="megatron"))
    assert not (tmp_path / "mg").exists()


def test_text_export_renders_the_template_with_provenance(tmp_path):
    records = [
        {**r, "doc_truncated": i % 2 == 0, "thinking_tokens": 10 + i, "sample": 0}
        for i, r in enumerate(random_records(30))
    ]
    run = write_run(tmp_path / "run", records)
    raw = write_jsonl(tmp_path / "raw.jsonl", [{"id": "r1", "text": "plain {thinking} text"}])
    template = "{text}\n\nThoughts: {thinking}"  # tag-free: no tokenizer needed at all
    index = prepare(
        PrepareConfig(
            source=[f"{run}:tpt", f"{raw}:vanilla:0.5"], out=tmp_path / "txt", format="text", template=template
        )
    )
    assert index["format"] == "tpt-text-v1" and [s["documents"] for s in index["sources"]] == [30, 1]
    rows = pq.read_table(sorted((tmp_path / "txt").glob("text-*.parquet"))).to_pylist()
    assert len(rows) == 31
    by_id = {r["id"]: r for r in rows}
    for i, record in enumerate(records):
        row = by_id[record["id"]]
        assert row["text"] == f"{record['text']}\n\nThoughts: {record['thinking']}"
        assert (row["kind"], row["doc_truncated"], row["thinking_tokens"]) == ("tpt", i % 2 == 0, 10 + i)
        assert row["source"] == f"{run}:tpt:1"
    assert (
        by_id["r1"]["text"] == "plain {thinking} text" and by_id["r1"]["kind"] == "vanilla"
    )  # fields substituted once


def test_text_export_is_loaded_by_hf_datasets(tmp_path, tpt_run):
    datasets = pytest.importorskip("datasets")
    prepare(PrepareConfig(source=[f"{tpt_run}:tpt"], out=tmp_path / "txt", format="text"))
    ds = datasets.load_dataset("parquet", data_files=str(tmp_path / "txt" / "*.parquet"), split="train")
    assert len(ds) == 120 and "<think>" in ds[0]["text"] and set(ds.column_names) >= {"text", "id", "source", "kind"}


def test_overwrite_never_replaces_a_folder_of_something_else(tmp_path, tok_dir, tpt_run):
    target = tmp_path / "mine"
    target.mkdir()
    (target / "notes.txt").write_text("precious")
    with pytest.raises(PrepareError, match=r"holds files that are not a tpt prepare output \(notes.txt"):
        prepare(config(tok_dir, target, f"{tpt_run}:tpt", format="megatron", overwrite=True))
    assert (target / "notes.txt").read_text() == "precious"
    prepare(config(tok_dir, tmp_path / "mg", f"{tpt_run}:tpt", format="megatron"))
    index = prepare(
        config(tok_dir, tmp_path / "mg", f"{tpt_run}:tpt", format="megatron", overwrite=True)
    )  # its own: replaced
    assert json.loads((tmp_path / "mg" / "index.json").read_text())["format"] == index["format"]


def test_megatron_index_for_large_vocabularies_reads_as_int32(tmp_path):
    """Vocabularies over 65,535 ids: prepare's uint32 cache is declared int32, Megatron's own choice."""
    indexed = pytest.importorskip("megatron.core.datasets.indexed_dataset", reason="pip install 'tpt[export]'")
    from tpt.prepare.exports import write_megatron_index

    docs = [np.array([151_000, 7, 151_643], np.uint32), np.array([65_536, 1], np.uint32), np.array([3], np.uint32)]
    np.concatenate(docs).tofile(tmp_path / "big.bin")
    write_megatron_index(tmp_path / "big.idx", [len(d) for d in docs], np.dtype(np.uint32))
    ds = indexed.IndexedDataset(str(tmp_path / "big"))
    assert len(ds) == 3 and all(ds[i].dtype == np.int32 and ds[i].tolist() == d.tolist() for i, d in enumerate(docs))
