"""The packed-token format: the contract between `tpt prepare` and `tpt train`.

Layout of a prepared folder::

    index.json                      format, seq_len, dtype, vocab_size, eos_id, tokenizer, splits, sources
    train-00000.tokens.bin          uint16/uint32 memmap, shape (num_sequences, seq_len)
    train-00000.starts.npy          int64 row-major token offsets (in this shard) where a document starts
    train-00000.mask.bin            optional uint8 (num_sequences, seq_len): 1 = token counts in the loss (SFT)
    val-00000.tokens.bin ...        held-out sequences, same layout

A training row of ``seq_len`` tokens gives ``seq_len - 1`` next-token targets.  Rows are fixed
length with no padding (documents flow across row boundaries), except SFT rows, which are
padded and masked.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

FORMAT = "tpt-packed-v1"
# index.json "format" of the exports (prepare/exports.py): other trainers' layouts, not read by tpt train.
MEGATRON_FORMAT = "tpt-megatron-v1"
TEXT_FORMAT = "tpt-text-v1"


def token_dtype(vocab_size: int) -> np.dtype:
    return np.dtype(np.uint16) if vocab_size <= 65535 else np.dtype(np.uint32)


def write_index(
    root: str | Path, *, seq_len: int, vocab_size: int, eos_id: int, splits: dict[str, list[dict]], **extra
) -> Path:
    """Write ``root/index.json`` (the format's required keys first, then anything in ``extra``)."""
    index = {
        "format": FORMAT,
        "seq_len": seq_len,
        "dtype": token_dtype(vocab_size).name,
        "vocab_size": vocab_size,
        "eos_id": eos_id,
        "splits": splits,
        **extra,
    }
    path = Path(root) / "index.json"
    path.write_text(json.dumps(index, indent=2, default=str) + "\n")
    return path


@dataclass
class ShardInfo:
    name: str  # e.g. "train-00000"
    num_sequences: int
    has_mask: bool = False


class PackedDataset:
    """Random access over one split of a prepared folder: ``ds[i] -> np.ndarray (seq_len,)``."""

    def __init__(self, root: str | Path, split: str = "train"):
        self.root = Path(root)
        index_path = self.root / "index.json"
        if not index_path.exists():
            raise FileNotFoundError(f"{self.root}: no index.json (not a folder written by `tpt prepare`)")
        try:
            self.index = json.loads(index_path.read_text())
        except json.JSONDecodeError as e:
            raise ValueError(f"{index_path}: corrupt index.json ({e})") from e
        if self.index.get("format") != FORMAT:
            raise ValueError(f"{index_path}: format {self.index.get('format')!r}, expected {FORMAT!r}")
        missing = [k for k in ("seq_len", "dtype", "vocab_size", "eos_id", "splits") if k not in self.index]
        if missing:
            raise ValueError(f"{index_path}: corrupt index.json (missing {missing})")
        self.seq_len = int(self.index["seq_len"])
        self.dtype = np.dtype(self.index["dtype"])
        self.vocab_size = int(self.index["vocab_size"])
        shards = self.index["splits"].get(split)
        if shards is None:
            raise KeyError(f"{index_path}: no split {split!r} (have: {', '.join(self.index['splits'])})")
        self.shards = [ShardInfo(**s) for s in shards]
        self._tokens = [self._open(s.name + ".tokens.bin", s.num_sequences, self.dtype) for s in self.shards]
        self._masks = [
            self._open(s.name + ".mask.bin", s.num_sequences, np.uint8) if s.has_mask else None for s in self.shards
        ]
        self._offsets = np.cumsum([0] + [s.num_sequences for s in self.shards])
        for s in self.shards:
            if not (self.root / f"{s.name}.starts.npy").exists():
                raise FileNotFoundError(
                    f"{self.root / s.name}.starts.npy: document starts listed in index.json are missing"
                )

    def check_model(self, vocab_size: int, max_positions: int | None = None) -> None:
        """Clear errors when this data cannot feed a model: ids beyond its vocabulary, rows too long."""
        if self.vocab_size > vocab_size:
            raise ValueError(
                f"{self.root}: data tokenized with a vocabulary of {self.vocab_size} ids, the model has only "
                f"{vocab_size} (prepare the data with the model's tokenizer)"
            )
        if max_positions is not None and self.seq_len > max_positions:
            raise ValueError(f"{self.root}: seq_len {self.seq_len} exceeds the model's {max_positions} positions")

    def _open(self, name: str, rows: int, dtype: np.dtype) -> np.memmap:
        path = self.root / name
        if not path.exists():
            raise FileNotFoundError(f"{path}: shard listed in index.json is missing")
        expected = rows * self.seq_len * np.dtype(dtype).itemsize
        if path.stat().st_size != expected:
            raise ValueError(
                f"{path}: {path.stat().st_size} bytes, index.json implies {expected} (truncated or corrupt shard)"
            )
        return np.memmap(path, dtype=dtype, mode="r", shape=(rows, self.seq_len))

    def __len__(self) -> int:
        return int(self._offsets[-1])

    def _locate(self, i: int) -> tuple[int, int]:
        if not 0 <= i < len(self):
            raise IndexError(i)
        shard = int(np.searchsorted(self._offsets, i, side="right") - 1)
        return shard, i - int(self._offsets[shard])

    def __getitem__(self, i: int) -> np.ndarray:
        shard, row = self._locate(i)
        return np.asarray(self._tokens[shard][row])

    def mask(self, i: int) -> np.ndarray | None:
        shard, row = self._locate(i)
        m = self._masks[shard]
        return None if m is None else np.asarray(m[row])

    def doc_starts(self, i: int) -> np.ndarray:
        """Positions (0..seq_len-1) in row i where a new document starts (for per-document attention)."""
        shard, row = self._locate(i)
        path = self.root / f"{self.shards[shard].name}.starts.npy"
        try:
            starts = np.load(path, mmap_mode="r")
        except (OSError, ValueError) as e:
            raise ValueError(f"{path}: unreadable document starts ({e})") from None
        lo, hi = row * self.seq_len, (row + 1) * self.seq_len
        a, b = np.searchsorted(starts, [lo, hi])
        return np.asarray(starts[a:b]) - lo
