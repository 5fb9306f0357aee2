"""Write one split of the packed format (see packed.py): exactly ``rows`` rows of ``seq_len``
tokens, cut into shard files, with document starts (and optionally a loss mask)."""

from __future__ import annotations

import os
import shutil
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator, Optional

import numpy as np

from tpt.prepare.config import PrepareError

BUFFER = 1 << 22  # write buffer per open file: few large writes instead of one per document


class SplitWriter:
    """``rows=None``: as many rows as are added (SFT, where each add is one whole padded row)."""

    def __init__(
        self, root: Path, split: str, seq_len: int, dtype: np.dtype, rows: Optional[int], shard_rows: int, with_mask: bool = False
    ):
        self.root, self.split, self.seq_len, self.dtype = Path(root), split, seq_len, np.dtype(dtype)
        self.rows, self.shard_rows, self.with_mask = rows, max(1, shard_rows), with_mask
        self.remaining = rows * seq_len if rows is not None else None  # tokens still to write in this split
        self.written = 0  # tokens written in this split
        self.docs = 0  # documents started
        self.docs_across_rows = 0  # documents that continue into the next row (attention can reset there)
        self.shards: list[dict] = []
        self._files = None
        self._starts: list[int] = []
        self._shard_pos = 0

    @property
    def full(self) -> bool:
        return self.remaining == 0 if self.rows is not None else False

    def add(self, ids: np.ndarray, mask: Optional[np.ndarray] = None) -> int:
        """Append one document (it starts here); returns how many of its tokens fit (the rest of
        the last document is cut when the split is full)."""
        if self.full or not len(ids):
            return 0
        take_total = len(ids) if self.rows is None else min(len(ids), self.remaining)
        first_row, last_row = self.written // self.seq_len, (self.written + take_total - 1) // self.seq_len
        self.docs += 1
        self.docs_across_rows += int(first_row != last_row)
        pos = 0
        while pos < take_total:
            if self._files is None:
                self._open_shard()
            take = min(take_total - pos, self._capacity() - self._shard_pos)
            if pos == 0:
                self._starts.append(self._shard_pos)
            self._files[0].write(np.ascontiguousarray(ids[pos : pos + take], dtype=self.dtype).tobytes())
            if self.with_mask:
                self._files[1].write(np.ascontiguousarray(mask[pos : pos + take], dtype=np.uint8).tobytes())
            pos += take
            self._shard_pos += take
            if self._shard_pos == self._capacity():
                self._close_shard()
        if self.rows is not None:
            self.remaining -= take_total
        self.written += take_total
        return take_total

    def _capacity(self) -> int:
        if self.rows is None:
            return self.shard_rows * self.seq_len
        rows_left = self.rows - sum(s["num_sequences"] for s in self.shards)
        return min(self.shard_rows, rows_left) * self.seq_len

    def _open_shard(self) -> None:
        name = f"{self.split}-{len(self.shards):05d}"
        tokens = open(self.root / f"{name}.tokens.bin", "wb", buffering=BUFFER)
        mask = open(self.root / f"{name}.mask.bin", "wb", buffering=BUFFER) if self.with_mask else None
        self._files, self._name, self._starts, self._shard_pos = (tokens, mask), name, [], 0

    def _close_shard(self) -> None:
        for f in self._files:
            if f is not None:
                f.close()
        np.save(self.root / f"{self._name}.starts.npy", np.asarray(self._starts, dtype=np.int64))
        self.shards.append({"name": self._name, "num_sequences": self._shard_pos // self.seq_len, "has_mask": self.with_mask})
        self._files = None

    def close(self) -> list[dict]:
        if self.rows is None:
            if self._shard_pos % self.seq_len:
                raise RuntimeError(f"split {self.split}: a partial row at the end (rows=None needs whole rows)")
            if self._files is not None:
                self._close_shard()
            return self.shards
        if not self.full:
            raise RuntimeError(f"split {self.split}: {self.remaining} tokens short of {self.rows} rows (writer closed early)")
        return self.shards


@contextmanager
def atomic_folder(out: Path, overwrite: bool) -> Iterator[Path]:
    """Yield a temp folder next to ``out``; rename it to ``out`` only if the block succeeds."""
    tmp = out.parent / f".{out.name}.tmp-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    try:
        yield tmp
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    if out.exists():
        if not overwrite:
            shutil.rmtree(tmp, ignore_errors=True)
            raise PrepareError(f"--out {out}: appeared while preparing; not replaced")
        old = out.parent / f".{out.name}.old-{os.getpid()}"
        out.rename(old)
        tmp.rename(out)
        shutil.rmtree(old)
    else:
        tmp.rename(out)
