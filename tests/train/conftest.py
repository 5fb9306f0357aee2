"""Fixtures for tpt train: a locally trained tokenizer and packed folders written with numpy.

The packed folders follow src/tpt/prepare/packed.py's layout exactly (index.json + per-shard
tokens.bin / starts.npy / mask.bin), so these tests do not depend on `tpt prepare` itself.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from tpt.prepare.packed import FORMAT, token_dtype

# Short, repetitive "documents" with thinking: a tiny model learns them within a few dozen steps.
TEXTS = [
    f"{a} plus {b} is {a + b}. <think> Adding {a} and {b}: {a} + {b} = {a + b}, so the sum is {a + b}. </think>"
    for a in range(12)
    for b in range(12)
]


@pytest.fixture(scope="session")
def tokenizer_dir(tmp_path_factory) -> Path:
    from tpt.prepare.tokenizer import train_tokenizer

    return train_tokenizer(TEXTS, tmp_path_factory.mktemp("tok") / "tokenizer", vocab_size=300, min_frequency=1)


def token_stream(tokenizer_dir: Path) -> tuple[np.ndarray, list[int], int]:
    """All TEXTS tokenized with EOS after each: (ids, document start offsets, eos id)."""
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(str(tokenizer_dir))
    ids, starts = [], []
    for text in TEXTS:
        starts.append(len(ids))
        ids += tok.encode(text, add_special_tokens=False) + [tok.eos_token_id]
    return np.array(ids, dtype=np.int64), starts, tok.eos_token_id


def write_packed(
    root: Path,
    tokenizer_dir: Path,
    seq_len: int = 32,
    train_shards: int = 2,
    val_rows: int = 8,
    with_mask: bool = False,
    kind: str = "tpt",
    repeat: int = 3,
) -> Path:
    """A prepared folder: the token stream (repeated) cut into rows of seq_len, split into shards."""
    from transformers import AutoTokenizer

    ids, starts, eos = token_stream(tokenizer_dir)
    vocab = len(AutoTokenizer.from_pretrained(str(tokenizer_dir)))
    stream = np.concatenate([ids] * repeat)
    doc_starts = np.concatenate([np.array(starts) + k * len(ids) for k in range(repeat)])
    rows = len(stream) // seq_len
    table = stream[: rows * seq_len].reshape(rows, seq_len)
    dtype = token_dtype(vocab)
    splits: dict[str, list[dict]] = {"train": [], "val": []}
    pieces = {"val": [table[:val_rows]]} if val_rows else {}
    pieces["train"] = np.array_split(table[val_rows:], train_shards)
    root.mkdir(parents=True, exist_ok=True)
    for split, blocks in pieces.items():
        offset = 0 if split == "val" else val_rows * seq_len
        for k, block in enumerate(blocks):
            name = f"{split}-{k:05d}"
            block.astype(dtype).tofile(root / f"{name}.tokens.bin")
            lo, hi = offset, offset + block.size
            np.save(
                root / f"{name}.starts.npy", (doc_starts[(doc_starts >= lo) & (doc_starts < hi)] - lo).astype(np.int64)
            )
            if with_mask:  # SFT-style: loss on the second half of each row
                mask = np.zeros(block.shape, dtype=np.uint8)
                mask[:, seq_len // 2 :] = 1
                mask.tofile(root / f"{name}.mask.bin")
            splits[split].append({"name": name, "num_sequences": int(block.shape[0]), "has_mask": with_mask})
            offset = hi
    if not val_rows:
        del splits["val"]
    index = {
        "format": FORMAT,
        "seq_len": seq_len,
        "dtype": dtype.name,
        "vocab_size": vocab,
        "eos_id": eos,
        "tokenizer": str(tokenizer_dir),
        "splits": splits,
        "sources": [{"path": "synthetic", "kind": kind}],
    }
    (root / "index.json").write_text(json.dumps(index, indent=2))
    return root


@pytest.fixture(scope="session")
def packed_dir(tmp_path_factory, tokenizer_dir) -> Path:
    return write_packed(tmp_path_factory.mktemp("packed") / "data", tokenizer_dir)
