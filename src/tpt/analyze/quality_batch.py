"""The quality flags of quality.py for a whole Arrow batch at once (what `tpt filter` runs).

Same flags, thresholds and detail texts as ``quality.flag_record``; the work is done by pyarrow
compute kernels (C++, GIL released) and numpy over the batch's columns instead of Python per
record:

* words: lower-case, every non-word byte of ASCII records made a space by a table lookup (the
  rare non-ASCII records go through quality.words), one whitespace split; each distinct word of
  the batch numbered once (dictionary encoding);
* n-grams: a 64-bit polynomial hash of n consecutive word numbers, kept where all n words are in
  the same record; ``repetition`` = 1 - distinct / all per record, ``copy`` = share of the
  thinking's n-grams among the document's, both by one numpy sort (faster here than pyarrow's
  hash sets).  Hashes carry the record number in their low 16 bits, so one sort serves the whole
  batch; a false match needs two of a record's n-grams to agree on 47 bits;
* template: one RE2 alternation over the thinking; the few rows that match are resolved per
  pattern; script: rows where document and thinking are both ASCII are Latin on both sides (never
  flagged), the others go through ``quality.script_match``.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from tpt.analyze.quality import FLAGS, QualityConfig, non_space_chars, script_match, words

MAX_BATCH = 1 << 16  # record numbers live in the hashes' low 16 bits
_PRIME = np.uint64(0x9E3779B97F4A7C15)


@dataclass
class BatchFlags:
    """Per-record results of one batch: ``raised[flag]`` bool arrays, and what the details need."""

    raised: dict[str, np.ndarray]
    repeat: np.ndarray
    copy: np.ndarray
    chars: dict[int, int] = field(default_factory=dict)  # row -> non-space chars, for the empty rows
    template: dict[int, list[str]] = field(default_factory=dict)  # row -> leftover patterns
    script: dict[int, tuple[str, float]] = field(default_factory=dict)  # row -> (main script, share), flagged rows

    def names(self, row: int) -> list[str]:
        return [f for f in FLAGS if self.raised[f][row]]

    def details(self, row: int, cfg: QualityConfig) -> dict[str, str]:
        """The same {flag: detail} as quality.flag_record, for one row."""
        text = {
            "truncated": lambda: "finish_reason=length",
            "empty": lambda: f"{self.chars.get(row)} non-whitespace chars < {cfg.min_thinking_chars}",
            "repetition": lambda: (
                f"{self.repeat[row]:.3f} of {cfg.repeat_ngram}-grams repeated > {cfg.max_repeat_fraction}"
            ),
            "copy": lambda: f"{self.copy[row]:.3f} of {cfg.copy_ngram}-grams in the document > {cfg.max_copy_fraction}",
            "template": lambda: "contains " + ", ".join(repr(p) for p in self.template[row][:3]),
            "script": lambda: (
                f"{self.script[row][1]:.3f} of letters in the document's script ({self.script[row][0]}) "
                f"< {cfg.min_script_match}"
            ),
        }
        return {f: text[f]() for f in self.names(row)}


def flag_batch(
    text: pa.Array, thinking: pa.Array, finish_reason: pa.Array, cfg: QualityConfig, patterns: Iterable[str]
) -> BatchFlags:
    n = len(thinking)
    if n > MAX_BATCH:
        raise ValueError(f"batch of {n} records: at most {MAX_BATCH} (use a smaller --batch-size)")
    text, thinking = pc.fill_null(text, ""), pc.fill_null(thinking, "")
    think_words, think_rec, think_counts = _words(thinking)
    doc_words, doc_rec, _ = _words(text)
    codes = pa.concat_arrays([think_words, doc_words]).dictionary_encode().indices.to_numpy().astype(np.uint64)
    think_codes, doc_codes = codes[: len(think_words)], codes[len(think_words) :]
    result = BatchFlags(
        {},
        _repeat_fraction(think_codes, think_rec, cfg.repeat_ngram, n),
        _copy_fraction(think_codes, think_rec, doc_codes, doc_rec, cfg.copy_ngram, n),
    )
    raised = result.raised
    raised["truncated"] = pc.fill_null(pc.equal(finish_reason, "length"), False).to_numpy(zero_copy_only=False)
    raised["empty"] = _empty(thinking, think_counts, cfg.min_thinking_chars, result.chars)
    raised["repetition"] = result.repeat > cfg.max_repeat_fraction
    raised["copy"] = result.copy > cfg.max_copy_fraction
    raised["template"] = _template(text, thinking, list(patterns), result.template)
    raised["script"] = _script(text, thinking, cfg.min_script_match, result.script)
    for name in ("repetition", "copy", "template", "script"):  # as flag_record: nothing else for (near-)empty text
        raised[name] &= ~raised["empty"]
    return result


def _words(column: pa.Array) -> tuple[pa.Array, np.ndarray, np.ndarray]:
    """-> (the batch's words back to back, record number of each word, words per record).

    Exactly quality.words() per record: ASCII records are lower-cased and every byte outside
    [a-z0-9_] becomes a space by one table lookup over the column's bytes; the rare records with
    other characters are normalised by words() itself (CJK, Unicode letters and punctuation); then
    one whitespace split serves all."""
    lower = pc.utf8_lower(column)
    ascii_rows = pc.string_is_ascii(lower).to_numpy(zero_copy_only=False)
    if not ascii_rows.all():
        rows = np.flatnonzero(~ascii_rows)
        normal = pa.array([" ".join(words(t)) for t in lower.take(rows).to_pylist()], pa.string())
        lower = pc.replace_with_mask(lower, pa.array(~ascii_rows), normal)
    parts = pc.ascii_split_whitespace(pc.ascii_trim_whitespace(_ascii_word_bytes(lower)))
    found, records = pc.list_flatten(parts), pc.list_parent_indices(parts)
    keep = pc.greater(pc.binary_length(found), 0)  # an empty string splits into one empty word
    found, records = found.filter(keep), records.filter(keep).to_numpy()
    return found, records, np.bincount(records, minlength=len(column))


# byte -> itself for [a-z0-9_] and every non-ASCII byte (parts of characters words() kept), else a space
_WORD_BYTES = np.array(
    [
        b if (chr(b).isascii() and (chr(b).isalnum() and not chr(b).isupper() or b == 95)) or b >= 128 else 32
        for b in range(256)
    ],
    dtype=np.uint8,
)


def _ascii_word_bytes(column: pa.Array) -> pa.Array:
    """The same strings with every byte that is not part of a word replaced by a space (offsets kept)."""
    _, offsets, data = column.buffers()
    end = int(np.frombuffer(offsets, dtype=np.int32)[column.offset + len(column)])
    mapped = _WORD_BYTES[np.frombuffer(data, dtype=np.uint8, count=end)] if end else np.zeros(0, np.uint8)
    return pa.Array.from_buffers(pa.string(), len(column), [None, offsets, pa.py_buffer(mapped)], offset=column.offset)


def _ngram_keys(codes: np.ndarray, records: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray]:
    """-> (hash of each n-gram whose words lie in one record, with the record in the low 16 bits; its record)."""
    count = len(codes) - n + 1
    if count <= 0:
        return np.zeros(0, np.uint64), np.zeros(0, np.int64)
    h = codes[:count].copy()
    for j in range(1, n):
        h *= _PRIME
        h += codes[j : j + count]
    same = records[:count] == records[n - 1 :]
    rec = records[:count][same]
    return (h[same] << np.uint64(16)) | rec.astype(np.uint64), rec


def _repeat_fraction(codes: np.ndarray, records: np.ndarray, n: int, size: int) -> np.ndarray:
    keys, rec = _ngram_keys(codes, records, n)
    total = np.bincount(rec, minlength=size)
    ordered = np.sort(keys)  # numpy's vectorised sort: several times faster here than a hash set
    first = np.ones(len(ordered), dtype=bool)
    first[1:] = ordered[1:] != ordered[:-1]
    unique = np.bincount((ordered[first] & np.uint64(0xFFFF)).astype(np.int64), minlength=size)
    return np.where(total > 0, 1.0 - unique / np.maximum(total, 1), 0.0)


def _copy_fraction(codes, records, doc_codes, doc_records, n: int, size: int) -> np.ndarray:
    """Share of each record's thinking n-grams found among its document's: one sort of both sets,
    the document's n-grams marked 0 so they come first among equal keys."""
    keys, rec = _ngram_keys(codes, records, n)
    doc_keys, _ = _ngram_keys(doc_codes, doc_records, n)
    one = np.uint64(1)
    both = np.sort(np.concatenate([doc_keys << one, (keys << one) | one]))
    is_doc = (both & one) == 0
    last_doc = np.maximum.accumulate(np.where(is_doc, np.arange(len(both)), -1))  # nearest document key at or before
    found = ~is_doc & (last_doc >= 0) & ((both[np.maximum(last_doc, 0)] >> one) == (both >> one))
    hits = np.bincount(((both[found] >> one) & np.uint64(0xFFFF)).astype(np.int64), minlength=size)
    total = np.bincount(rec, minlength=size)
    return np.where(total > 0, hits / np.maximum(total, 1), 0.0)


def _empty(thinking: pa.Array, word_counts: np.ndarray, minimum: int, chars: dict[int, int]) -> np.ndarray:
    """A row of at least ``minimum`` words has that many non-space characters; the rest are counted exactly."""
    out = np.zeros(len(thinking), dtype=bool)
    for row in np.flatnonzero(word_counts < minimum):
        count = non_space_chars(thinking[int(row)].as_py())
        if count < minimum:
            out[row], chars[int(row)] = True, count
    return out


def _template(text: pa.Array, thinking: pa.Array, patterns: list[str], hits: dict[int, list[str]]) -> np.ndarray:
    out = np.zeros(len(thinking), dtype=bool)
    patterns = [p for p in patterns if p]
    if not patterns:
        return out
    any_hit = pc.match_substring_regex(thinking, pattern="|".join(_re2_literal(p) for p in patterns))
    for row in np.flatnonzero(any_hit.to_numpy(zero_copy_only=False)):
        doc, think = text[int(row)].as_py(), thinking[int(row)].as_py()
        found = [p for p in patterns if p in think and p not in doc]  # one the document holds is a quote
        if found:
            out[row], hits[int(row)] = True, found
    return out


def _re2_literal(pattern: str) -> str:
    return re.sub(r"([\\.^$|?*+()\[\]{}-])", r"\\\1", pattern)


def _script(text: pa.Array, thinking: pa.Array, minimum: float, found: dict[int, tuple[str, float]]) -> np.ndarray:
    out = np.zeros(len(thinking), dtype=bool)
    ascii_both = pc.and_(pc.string_is_ascii(text), pc.string_is_ascii(thinking)).to_numpy(zero_copy_only=False)
    for row in np.flatnonzero(~ascii_both):
        match = script_match(thinking[int(row)].as_py(), text[int(row)].as_py())
        if match is not None and match[1] < minimum:
            out[row], found[int(row)] = True, match
    return out
