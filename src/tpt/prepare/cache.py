"""Pass 1: tokenize each source once into an on-disk cache (flat ids + per-document offsets).

Mixing, epochs and the validation split need every document's length before packing, and
repeating a source for N epochs must not re-tokenize it; so each source is streamed through the
tokenizer once, its ids appended to a flat file.  Memory stays bounded: one batch of text at a
time, plus 16 bytes per document (offset + split key).
"""

from __future__ import annotations

import hashlib
import queue
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import TypeVar

import numpy as np

from tpt.io.readers import Rejection
from tpt.prepare.config import SourceSpec
from tpt.prepare.formatting import LengthStats, SampleEncoder, apply_length_policy
from tpt.prepare.sources import iter_sample_batches
from tpt.progress import progress_bar

T = TypeVar("T")


@dataclass
class SourceCache:
    spec: SourceSpec
    tokens: np.ndarray  # (total_tokens,) memmap: every document's ids, EOS included, back to back
    offsets: np.ndarray  # (num_docs + 1,) int64: document i is tokens[offsets[i]:offsets[i+1]]
    keys: np.ndarray  # (num_docs,) uint64: seeded hash of the document id; decides the validation split
    rejected: int = 0
    length: LengthStats = field(default_factory=LengthStats)

    @property
    def num_docs(self) -> int:
        return len(self.keys)

    @cached_property
    def lengths(self) -> np.ndarray:  # (num_docs,) int64
        return np.diff(self.offsets)

    def doc_length(self, i: int) -> int:
        return int(self.offsets[i + 1] - self.offsets[i])

    def doc(self, i: int) -> np.ndarray:
        return self.tokens[self.offsets[i] : self.offsets[i + 1]]


def split_key(doc_id: str, seed: int) -> int:
    """The same id gets the same key in every source, so a held-out document is held out everywhere."""
    return int.from_bytes(hashlib.blake2b(f"{seed}\0{doc_id}".encode(), digest_size=8).digest(), "little")


def prefetch(items: Iterator[T], depth: int = 4) -> Iterator[T]:
    """Run ``items`` in a thread: reading/parsing overlaps tokenization (which releases the GIL)."""
    q: queue.Queue = queue.Queue(maxsize=depth)
    done = object()

    def produce() -> None:
        try:
            for item in items:
                q.put(item)
        except BaseException as e:  # re-raised in the consumer, with its traceback
            q.put(e)
        q.put(done)

    threading.Thread(target=produce, daemon=True).start()
    while (item := q.get()) is not done:
        if isinstance(item, BaseException):
            raise item
        yield item


def tokenize_source(
    spec: SourceSpec,
    encoder: SampleEncoder,
    path: Path,
    rejected: list[Rejection],
    *,
    seed: int,
    on_length: str = "keep",
    batch_docs: int = 1024,
    text_field: str = "text",
    id_field: str | None = None,
    duplicates: frozenset = frozenset(),
    cutter: Callable[[list], list] | None = None,
) -> SourceCache:
    """Stream ``spec`` through ``encoder`` into ``path`` (raw ids of ``encoder.dtype``).

    ``duplicates``: repeated (id, sample) key hashes to set aside; ``cutter``: applied to each batch
    (``--doc-cut prefix``)."""
    stats, rejected_before = LengthStats(), len(rejected)
    batches = iter_sample_batches(spec, rejected, batch_docs, text_field, id_field, duplicates)
    batches = prefetch(map(cutter, batches) if cutter else batches)
    # Encode, then append, one batch after the other, as a plain encode_batch loop does: the Rust
    # pool already uses every core, and appending batch k while it encodes batch k+1 (as before)
    # only put a third thread on two cores.
    with _CacheFile(path, encoder, seed) as cache, \
            progress_bar(None, f"tokenize {spec.describe()}", " docs", leave=False) as bar:  # fmt: skip
        for batch in batches:
            kept = [k for s in batch if (k := apply_length_policy(s, on_length, stats)) is not None]
            cache.append(kept, encoder.encode_texts(kept))
            bar.update(len(batch))
    return SourceCache(spec, *cache.arrays(), rejected=len(rejected) - rejected_before, length=stats)


class _CacheFile:
    """Appends encoded batches to a flat id file; keeps document offsets and split keys."""

    def __init__(self, path: Path, encoder: SampleEncoder, seed: int):
        self.path, self.encoder, self.seed = path, encoder, seed
        self.total = 0
        self.offsets: list[np.ndarray] = [np.zeros(1, dtype=np.int64)]
        self.keys: list[np.ndarray] = [np.zeros(0, dtype=np.uint64)]

    def __enter__(self) -> _CacheFile:
        self.file = open(self.path, "wb")
        return self

    def __exit__(self, *exc) -> None:
        self.file.close()

    def append(self, samples: list, encodings: list) -> None:
        ids, lengths = self.encoder.assemble(samples, encodings)
        self.file.write(ids)  # the buffer itself: no copy
        self.offsets.append(self.total + np.cumsum(lengths))
        self.keys.append(
            np.fromiter((split_key(s.id, self.seed) for s in samples), dtype=np.uint64, count=len(samples))
        )
        self.total += int(lengths.sum())

    def arrays(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """-> (tokens memmap, offsets, keys), once the file is closed."""
        dtype = self.encoder.dtype
        # a plain ndarray over the mapping: slicing a np.memmap subclass costs ~10 us per document in packing
        tokens = np.asarray(np.memmap(self.path, dtype=dtype, mode="r", shape=(self.total,))) if self.total else None
        tokens = tokens if tokens is not None else np.zeros(0, dtype)
        return tokens, np.concatenate(self.offsets), np.concatenate(self.keys)
