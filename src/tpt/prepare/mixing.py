"""Pass 2 planning: the validation split, each source's training pool and token target, and a
deterministic interleaving of documents from all sources (epochs reshuffled from the seed).

Budget rules (all in tokens, EOS included):
* an ``xN`` source contributes exactly N passes over its pool;
* weighted sources share what is left of the budget in proportion to their weights;
* without ``--tokens`` the budget is the largest one that repeats no weighted source
  (the source with the least data per unit of weight is read exactly once).
The budget is then rounded down to whole sequences, taken from the weighted sources' targets
(all targets are scaled when there are only xN sources).
"""

from __future__ import annotations

import heapq
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np

from tpt.prepare.cache import SourceCache
from tpt.prepare.config import PrepareError, SourceSpec


def val_threshold(caches: list[SourceCache], val_tokens: int) -> int | None:
    """The smallest split key k such that documents with key <= k hold >= ``val_tokens`` tokens."""
    if val_tokens <= 0:
        return None
    keys = np.concatenate([c.keys for c in caches])
    lengths = np.concatenate([c.lengths for c in caches])
    order = np.argsort(keys, kind="stable")
    cumulative = np.cumsum(lengths[order])
    pos = int(np.searchsorted(cumulative, val_tokens))
    if pos >= len(keys):
        have = int(cumulative[-1]) if len(cumulative) else 0
        raise PrepareError(
            f"validation split needs {val_tokens} tokens but all sources together hold {have}: lower --val-sequences"
        )
    return int(keys[order[pos]])


def is_val(cache: SourceCache, threshold: int | None) -> np.ndarray:
    if threshold is None:
        return np.zeros(cache.num_docs, dtype=bool)
    return cache.keys <= np.uint64(threshold)


def epoch_order(docs: np.ndarray, seed: int, source: int, epoch: int) -> np.ndarray:
    return np.random.default_rng([seed, source, epoch]).permutation(docs)


def training_pool(cache: SourceCache, source: int, threshold: int | None, seed: int, cap: int | None) -> np.ndarray:
    """Training document indices of one source in epoch-0 order; with ``cap``, only a fixed pool of
    about ``cap`` unique tokens (the constrained-data setting): the first documents of that order."""
    docs = epoch_order(np.flatnonzero(~is_val(cache, threshold)), seed, source, 0)
    if not len(docs):
        raise PrepareError(
            f"source {cache.spec.describe()}: no training documents left (read {cache.num_docs}, all held out or "
            "rejected)"
        )
    if cap is not None:
        keep = int(np.searchsorted(np.cumsum(cache.lengths[docs]), cap, side="right"))
        docs = docs[: max(keep, 1)]
    return docs


def assign_targets(
    specs: list[SourceSpec], pool_tokens: list[int], budget: int | None, seq_len: int
) -> tuple[list[float], int]:
    """-> (training tokens per source, number of training sequences)."""
    fixed = sum(s.epochs * p for s, p in zip(specs, pool_tokens) if s.epochs is not None)
    weighted = [(i, s.weight) for i, s in enumerate(specs) if s.weight is not None]
    total_weight = sum(w for _, w in weighted)
    if budget is None:
        total = fixed + (min(pool_tokens[i] * total_weight / w for i, w in weighted) if weighted else 0)
    elif weighted and budget <= fixed:
        raise PrepareError(
            f"--tokens {budget}: the xN sources alone need {fixed:.0f} tokens, leaving nothing for the weighted ones"
        )
    elif not weighted and budget > fixed:
        raise PrepareError(
            f"--tokens {budget}: the xN sources give only {fixed:.0f} tokens; raise their epochs or add a weighted "
            "source"
        )
    else:
        total = budget
    rows = int(total // seq_len)
    if rows < 1:
        raise PrepareError(f"the budget ({total:.0f} tokens) is smaller than one --seq-len {seq_len} sequence")
    written = rows * seq_len  # the budget rounded down to whole sequences
    targets = [s.epochs * p if s.epochs is not None else 0.0 for s, p in zip(specs, pool_tokens)]
    if not weighted:  # only xN sources: the rounding is shared by all
        return [t * written / fixed for t in targets], rows
    if written <= fixed:
        raise PrepareError(
            f"the budget rounded to whole sequences ({written} tokens) leaves nothing for the weighted sources"
        )
    for i, w in weighted:  # the weighted sources absorb the rounding: xN sources stay exact
        targets[i] = (written - fixed) * w / total_weight
    return targets, rows


@dataclass
class SourceProgress:
    pool: np.ndarray  # doc indices, epoch-0 order
    pool_tokens: int
    target: float
    emitted: int = 0  # tokens handed out (whole documents)
    epoch: int = 0
    position: int = 0  # next document in the current epoch's order
    order: np.ndarray | None = None


class Mixer:
    """Yields (source index, document ids), always from the source whose next document would end
    earliest relative to its target (fair queuing on "finish time"), so the sources stay evenly
    interleaved; a source that has met its target waits until every source has, so an xN source
    gives exactly its N passes.  A source's epochs are reshuffled from (seed, source, epoch)."""

    def __init__(self, caches: list[SourceCache], pools: list[np.ndarray], targets: list[float], seed: int):
        self.caches, self.seed = caches, seed
        self.progress = [
            SourceProgress(p, int(c.lengths[p].sum()), t, order=p) for c, p, t in zip(caches, pools, targets)
        ]

    def __iter__(self) -> Iterator[tuple[int, np.ndarray]]:
        heap = [self._schedule(i) for i in range(len(self.progress))]
        heapq.heapify(heap)
        while True:
            *_, i, doc = heapq.heappop(heap)
            ids = self.caches[i].doc(doc)
            self.progress[i].emitted += len(ids)
            heapq.heappush(heap, self._schedule(i))
            yield i, ids

    def _schedule(self, i: int) -> tuple[bool, float, int, int]:
        p = self.progress[i]
        doc = self._next_doc(i)
        return p.emitted >= p.target, (p.emitted + self.caches[i].doc_length(doc)) / p.target, i, doc

    def _next_doc(self, i: int) -> int:
        p = self.progress[i]
        if p.position == len(p.pool):
            p.epoch, p.position = p.epoch + 1, 0
            p.order = epoch_order(p.pool, self.seed, i, p.epoch)
        p.position += 1
        return int(p.order[p.position - 1])

    def unique_docs(self, i: int) -> int:
        p = self.progress[i]
        return len(p.pool) if p.epoch else p.position
