"""Deterministic data order over a packed dataset, and the batches each process reads.

The whole position in the data is one integer, the *global sample cursor*: the number of
training sequences consumed by all processes together.  Sample ``c`` is
``perm[c // N][c % N]`` where ``perm[e]`` is a permutation of the N training rows seeded by
(seed, e).  An optimizer step consumes ``global_batch`` consecutive cursor positions; process
``rank`` of ``world`` takes the ``rank``-th equal slice of them.  So the order is a pure function
of (seed, cursor, rank, world): resuming restores the cursor and nothing else, and a run
resumed under another world size with the same global batch sees the same samples per step.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from tpt.prepare.packed import PackedDataset


class DataOrder:
    """Maps a global sample cursor to a row of the training set (epoch-aware)."""

    def __init__(self, rows: np.ndarray, seed: int):
        self.rows = rows  # training row ids in the packed dataset (excludes held-out rows)
        self.seed = seed
        self._epoch = -1
        self._perm = rows

    def __len__(self) -> int:
        return len(self.rows)

    def _permutation(self, epoch: int) -> np.ndarray:
        if epoch != self._epoch:  # one permutation in memory at a time; epochs change rarely
            rng = np.random.default_rng([self.seed, epoch])
            self._perm = self.rows[rng.permutation(len(self.rows))]
            self._epoch = epoch
        return self._perm

    def rows_at(self, cursor: int, count: int) -> np.ndarray:
        """Dataset rows for cursor positions [cursor, cursor + count)."""
        out = np.empty(count, dtype=np.int64)
        n = len(self.rows)
        for k, c in enumerate(range(cursor, cursor + count)):
            out[k] = self._permutation(c // n)[c % n]
        return out


@dataclass(frozen=True)
class BatchLayout:
    """How one optimizer step's global batch is cut: world x accum micro-batches of micro sequences."""

    global_batch: int  # sequences per optimizer step, all processes together
    micro: int  # sequences per forward pass
    accum: int  # forward passes per step per process
    world: int

    @classmethod
    def plan(cls, global_batch: int, micro: int, world: int) -> BatchLayout:
        # Round the global batch up to a multiple of world, then take the largest micro-batch
        # (<= requested) that divides each process's share, so every step has the same shape.
        per_rank = -(-global_batch // world)
        micro = max(1, min(micro, per_rank))
        while per_rank % micro:
            micro -= 1
        return cls(global_batch=per_rank * world, micro=micro, accum=per_rank // micro, world=world)

    def micro_rows(self, order: DataOrder, cursor: int, rank: int) -> list[np.ndarray]:
        """This process's rows for the step starting at ``cursor``, one array per micro-batch."""
        share = self.global_batch // self.world
        rows = order.rows_at(cursor + rank * share, share)
        return [rows[i * self.micro : (i + 1) * self.micro] for i in range(self.accum)]


def read_batch(
    ds: PackedDataset, rows: np.ndarray, use_mask: bool, doc_attention: bool = False
) -> tuple[torch.Tensor, torch.Tensor | None, torch.Tensor | None]:
    """(tokens, targets mask, position ids) for ``rows``.

    tokens (B, T) int64.  mask (B, T) bool or None: which tokens count as targets (SFT: the
    assistant tokens; with ``doc_attention`` also never the first token of a document, see
    ``document_positions``); None = every token.  positions (B, T) int64 or None (plain 0..T-1).
    """
    tokens = torch.from_numpy(np.stack([ds[int(r)] for r in rows]).astype(np.int64))
    mask = torch.from_numpy(np.stack([ds.mask(int(r)) for r in rows]).astype(bool)) if use_mask else None
    if not doc_attention:
        return tokens, mask, None
    positions = document_positions([ds.doc_starts(int(r)) for r in rows], ds.seq_len)
    # A token at a document start (position 0 after index 0) would be predicted from the previous
    # document only: not a target, exactly as when the documents are run one by one.
    starts_doc = positions == 0
    mask = ~starts_doc if mask is None else mask & ~starts_doc
    return tokens, mask, positions


def document_positions(starts: list[np.ndarray], seq_len: int) -> torch.Tensor:
    """Position ids (B, seq_len) that restart at 0 at every document start of each row.

    ``starts[b]`` are row b's document starts (``PackedDataset.doc_starts``).  Tokens before the
    first start continue a document from the previous row; they count from 0 too, as a document
    whose beginning was cut off (positions never exceed seq_len - 1, the trained range).
    """
    index = np.arange(seq_len, dtype=np.int64)
    out = np.empty((len(starts), seq_len), dtype=np.int64)
    for b, row_starts in enumerate(starts):
        segment_start = np.zeros(seq_len, dtype=np.int64)
        segment_start[np.asarray(row_starts, dtype=np.int64)] = row_starts
        out[b] = index - np.maximum.accumulate(segment_start)  # distance to the last start <= j
    return torch.from_numpy(out)


def split_heldout(
    train: PackedDataset, val: PackedDataset | None, eval_sequences: int
) -> tuple[np.ndarray, np.ndarray, bool]:
    """(training rows, held-out rows, held-out rows come from the val split).

    Without a val split, the last rows of the training split are held out (at most 5%)."""
    all_rows = np.arange(len(train), dtype=np.int64)
    if val is not None and len(val) > 0:
        return all_rows, np.arange(min(eval_sequences, len(val)), dtype=np.int64), True
    heldout = min(eval_sequences, len(train) // 20)
    if heldout == 0:
        return all_rows, np.empty(0, dtype=np.int64), False
    return all_rows[:-heldout], all_rows[-heldout:], False


def max_token_id(ds: PackedDataset, sample_rows: int = 200_000) -> int:
    """Largest token id in the split (all rows up to ``sample_rows`` per shard, else an even sample)."""
    highest = 0
    for shard in ds.shards:
        if shard.num_sequences == 0:
            continue
        path = ds.root / f"{shard.name}.tokens.bin"  # the layout packed.py documents
        tokens = np.memmap(path, dtype=ds.dtype, mode="r", shape=(shard.num_sequences, ds.seq_len))
        if shard.num_sequences > sample_rows:
            tokens = tokens[np.linspace(0, shard.num_sequences - 1, sample_rows).astype(np.int64)]
        for start in range(0, len(tokens), 16384):  # chunked: bounded memory on big shards
            highest = max(highest, int(np.max(tokens[start : start + 16384])))
    return highest
