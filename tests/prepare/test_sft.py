"""SFT: chat JSONL -> padded rows whose loss mask covers assistant tokens only."""

import json

import pyarrow.parquet as pq
import pytest
from prepare_helpers import write_jsonl

from tpt.prepare.config import PrepareConfig, PrepareError
from tpt.prepare.packed import PackedDataset
from tpt.prepare.run import prepare
from tpt.prepare.sft import chat_ids_and_mask, prepare_sft

CONVERSATIONS = [
    [{"role": "user", "content": "What is a prime?"}, {"role": "assistant", "content": "A number with two divisors."}],
    [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "Boiling point?"},
        {"role": "assistant", "content": "100 degrees."},
        {"role": "user", "content": "At altitude?"},
        {"role": "assistant", "content": "Lower."},
    ],
]


def test_mask_covers_exactly_the_assistant_turns(tmp_path, tok, tok_dir):
    rows = [{"messages": m} for m in CONVERSATIONS] + [
        "{broken",
        {"messages": [{"role": "user", "content": "no answer"}]},
    ]
    out = prepare_sft(write_jsonl(tmp_path / "sft.jsonl", rows), tok_dir, 128, tmp_path / "sft")
    assert json.loads((out / "index.json").read_text())["truncated"] == 0
    ds = PackedDataset(out)
    assert len(ds) == 2 and ds.index["sft"] is True
    pad = tok.pad_token_id
    for i, conv in enumerate(CONVERSATIONS):
        ids, mask = ds[i], ds.mask(i)
        assert tok.decode(ids[mask == 1]) == "".join(
            m["content"] + "<|im_end|>" for m in conv if m["role"] == "assistant"
        )
        real = int((ids != pad).sum())
        assert tok.decode(ids[:real]) == tok.apply_chat_template(conv, tokenize=False)
        assert (ids[real:] == pad).all() and not mask[real:].any()
        assert ds.doc_starts(i).tolist() == [0]
    rejected = pq.read_table(out / "rejected.parquet").to_pylist()
    assert [(r["line"], r["field"]) for r in rejected] == [(3, ""), (4, "messages")]
    assert "no assistant message" in rejected[1]["reason"]
    assert 0 < ds.index["packing"]["efficiency"] < 1


def test_prefix_rendering_fallback_matches_generation_markers(tok):
    """A chat template without {% generation %} markers gets the same mask by prefix rendering."""
    from tpt.prepare.sft import _mask_by_prefix

    for conv in CONVERSATIONS:
        ids, mask = chat_ids_and_mask(tok, conv)
        ids2, mask2 = _mask_by_prefix(tok, conv)
        assert ids == ids2
        # prefix rendering also counts the newline the template writes after <|im_end|>
        newline = tok("\n", add_special_tokens=False)["input_ids"]
        extra = [j for j in range(len(ids)) if mask2[j] and not mask[j]]
        assert all([ids[j]] == newline for j in extra) and all(mask2[j] for j in range(len(ids)) if mask[j])


def test_long_conversations_truncated_and_val_split(tmp_path, tok_dir):
    long = [
        {"role": "user", "content": "Hi."},
        {"role": "assistant", "content": "A prime number has two divisors. " * 20},
    ]
    numbered = lambda i: [{**m, "content": f"{i}. {m['content']}"} for m in CONVERSATIONS[0]]  # noqa: E731
    rows = [{"messages": numbered(i)} for i in range(10)] + [{"messages": long}]
    cfg = PrepareConfig(
        source=[str(write_jsonl(tmp_path / "sft.jsonl", rows))],
        tokenizer=str(tok_dir),
        out=tmp_path / "sft",
        seq_len=64,
        sft=True,
        val_sequences=3,
    )
    index = prepare(cfg)
    assert index["truncated"] == 1 and index["conversations"] == 11
    assert (index["train"]["sequences"], index["val"]["sequences"]) == (8, 3)
    train, val = PackedDataset(tmp_path / "sft"), PackedDataset(tmp_path / "sft", "val")
    assert len(train) == 8 and len(val) == 3 and val.mask(0) is not None


def test_sft_bad_inputs(tmp_path, tok_dir, plain_tok_dir):
    with pytest.raises(PrepareError, match="no such file"):
        prepare_sft(tmp_path / "missing.jsonl", tok_dir, 64, tmp_path / "o")
    path = write_jsonl(tmp_path / "sft.jsonl", [{"messages": CONVERSATIONS[0]}])
    with pytest.raises(PrepareError, match="no chat template"):
        prepare_sft(path, plain_tok_dir, 64, tmp_path / "o")
    with pytest.raises(PrepareError, match="only 1 conversations"):
        prepare_sft(path, tok_dir, 64, tmp_path / "o", val_sequences=1)
    assert not (tmp_path / "o").exists()


def test_cli_sft_path(tmp_path, tok_dir, capsys):
    from tpt.prepare.cli import main

    path = write_jsonl(tmp_path / "sft.jsonl", [{"messages": m} for m in CONVERSATIONS * 3])
    argv = [
        "--sft",
        "--source",
        str(path),
        "--tokenizer",
        str(tok_dir),
        "--seq-len",
        "128",
        "--val-sequences",
        "1",
        "--out",
        str(tmp_path / "o"),
    ]
    assert main(argv) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["train"]["sequences"] + summary["val"]["sequences"] == 6
