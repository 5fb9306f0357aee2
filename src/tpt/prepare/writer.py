"""Write one split of the packed format (see packed.py): exactly ``rows`` rows of ``seq_len``
tokens, cut into shard files, with document starts (and optionally a loss mask)."""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np

from tpt.io.atomic import atomic_folder, pid_alive, recover_folder, remove_stale_temps
from tpt.io.lock import FileLock
from tpt.prepare.config import PrepareError

BUFFER = 1 << 22  # write buffer per open file: few large writes instead of one per document


class SplitWriter:
    """``rows=None``: as many rows as are added (SFT, where each add is one whole padded row)."""

    def __init__(
        self,
        root: Path,
        split: str,
        seq_len: int,
        dtype: np.dtype,
        rows: int | None,
        shard_rows: int,
        with_mask: bool = False,
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

    def add(self, ids: np.ndarray, mask: np.ndarray | None = None) -> int:
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
            take = min(take_total - pos, self._shard_capacity - self._shard_pos)
            if pos == 0:
                self._starts.append(self._shard_pos)
            self._files[0].write(np.ascontiguousarray(ids[pos : pos + take], dtype=self.dtype).data)  # no copy
            if self.with_mask:
                self._files[1].write(np.ascontiguousarray(mask[pos : pos + take], dtype=np.uint8).data)
            pos += take
            self._shard_pos += take
            if self._shard_pos == self._shard_capacity:
                self._close_shard()
        if self.rows is not None:
            self.remaining -= take_total
        self.written += take_total
        return take_total

    def _next_capacity(self) -> int:
        """Tokens the shard being opened holds (computed once per shard: add() needs it per document)."""
        if self.rows is None:
            return self.shard_rows * self.seq_len
        rows_left = self.rows - sum(s["num_sequences"] for s in self.shards)
        return min(self.shard_rows, rows_left) * self.seq_len

    def _open_shard(self) -> None:
        name = f"{self.split}-{len(self.shards):05d}"
        tokens = open(self.root / f"{name}.tokens.bin", "wb", buffering=BUFFER)
        mask = open(self.root / f"{name}.mask.bin", "wb", buffering=BUFFER) if self.with_mask else None
        self._files, self._name, self._starts, self._shard_pos = (tokens, mask), name, [], 0
        self._shard_capacity = self._next_capacity()

    def _close_shard(self) -> None:
        for f in self._files:
            if f is not None:
                f.close()
        np.save(self.root / f"{self._name}.starts.npy", np.asarray(self._starts, dtype=np.int64))
        self.shards.append(
            {"name": self._name, "num_sequences": self._shard_pos // self.seq_len, "has_mask": self.with_mask}
        )
        self._files = None

    def close(self) -> list[dict]:
        if self.rows is None:
            if self._shard_pos % self.seq_len:
                raise RuntimeError(f"split {self.split}: a partial row at the end (rows=None needs whole rows)")
            if self._files is not None:
                self._close_shard()
            return self.shards
        if not self.full:
            raise RuntimeError(
                f"split {self.split}: {self.remaining} tokens short of {self.rows} rows (writer closed early)"
            )
        return self.shards


def lock_path(out: Path) -> Path:
    """The lock of an output folder lives beside it: the folder itself is swapped as a whole."""
    return out.parent / f".{out.name}.tpt-lock"


@contextmanager
def output_folder(out: Path, overwrite: bool) -> Iterator[Path]:
    """Lock ``out`` (a second prepare refuses, naming the holder), put back a folder a crash left
    mid-swap, delete temp folders of dead prepare runs, and yield a temp folder that replaces
    ``out`` only when the block succeeds (tpt.io.atomic)."""
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    with FileLock(lock_path(out), what=f"--out {out}"):
        recover_folder(out)
        remove_stale_temps(out.parent)
        _remove_legacy_temps(out)
        check_out(out, overwrite)
        try:
            with atomic_folder(out, replace=overwrite) as tmp:
                yield tmp
        except FileExistsError as e:
            raise PrepareError(f"--out {out}: appeared while preparing; not replaced ({e})") from None


def check_out(out: Path, overwrite: bool) -> None:
    """``out`` must not exist, or (with ``overwrite``) be an earlier tpt prepare output or empty:
    never replace a folder of something else."""
    if not out.exists():
        return
    if not overwrite:
        raise PrepareError(f"--out {out}: already exists (pass --overwrite to replace it)")
    if not out.is_dir():
        raise PrepareError(f"--out {out}: is a file, not a folder; refusing to replace it")
    index = out / "index.json"
    try:
        ours = str(json.loads(index.read_text()).get("format", "")).startswith("tpt-")
    except (OSError, ValueError, AttributeError):
        ours = False
    if not ours and any(out.iterdir()):
        first = sorted(p.name for p in out.iterdir())[:3]
        raise PrepareError(
            f"--out {out}: holds files that are not a tpt prepare output ({', '.join(first)} ...; no {index.name} "
            "of a tpt format); refusing to replace it even with --overwrite: choose another --out"
        )


def _remove_legacy_temps(out: Path) -> None:
    """``.NAME.tmp-PID`` folders of dead processes, left by tpt versions before tpt.io.atomic."""
    for tmp in out.parent.glob(f".{out.name}.tmp-*"):
        pid = tmp.name.rsplit("-", 1)[-1]
        if tmp.is_dir() and pid.isdigit() and not pid_alive(int(pid)):
            shutil.rmtree(tmp, ignore_errors=True)
