"""The quality flags of quality.py for a whole Arrow batch at once (what `tpt filter` runs).

Same flags, thresholds and detail texts as ``quality.flag_record``; the work is done by pyarrow
compute kernels (C++, GIL released) and numpy over the batch's columns instead of Python per
record:

* words: a space is appended to every record (one pyarrow kernel), then one byte-table pass
  (bytes.translate) lower-cases ASCII records and zeroes the bytes between words (the rare
  non-ASCII records go through quality.words first); a word is a run of non-zero bytes, hashed
  from its bytes read 8 at a time;
* n-grams: a 64-bit polynomial hash of n consecutive word hashes, read off one prefix sum per
  column (shared by both n), in place; the n - 1 starts before each record's end are dropped
  (their n-gram would cross it), and the n-grams per record follow from its word count; ``repetition`` =
  1 - distinct / all per record, by one numpy sort (faster here than pyarrow's hash sets);
  ``copy`` = share of the thinking's n-grams among the document's (a slot table, then a binary
  search for the few candidates).  Hashes carry the record number in their low 16 bits, so one sort serves the whole
  batch; a false match needs two of a record's n-grams to agree on 47 bits;
* template: one RE2 alternation per first character over the thinking (RE2 skips ahead with
  memchr when all alternatives start alike; one alternation of every pattern is stepped byte by
  byte, ~3x slower per 512-record batch); the few rows that match are resolved per
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
    text, thinking = _no_nulls(text), _no_nulls(thinking)
    think_ascii = pc.string_is_ascii(thinking).to_numpy(zero_copy_only=False)
    text_ascii = pc.string_is_ascii(text).to_numpy(zero_copy_only=False)
    think_codes, think_rec, think_counts = _word_hashes(thinking, think_ascii)
    doc_codes, doc_rec, doc_counts = _word_hashes(text, text_ascii)
    think_prefix = _prefix_sums(think_codes)
    result = BatchFlags(
        {},
        _repeat_fraction(think_prefix, think_rec, think_counts, cfg.repeat_ngram),
        _copy_fraction(
            think_prefix, think_rec, think_counts, _prefix_sums(doc_codes), doc_rec, doc_counts, cfg.copy_ngram
        ),
    )
    raised = result.raised
    raised["truncated"] = pc.fill_null(pc.equal(finish_reason, "length"), False).to_numpy(zero_copy_only=False)
    raised["empty"] = _empty(thinking, think_counts, cfg.min_thinking_chars, result.chars)
    raised["repetition"] = result.repeat > cfg.max_repeat_fraction
    raised["copy"] = result.copy > cfg.max_copy_fraction
    raised["template"] = _template(text, thinking, list(patterns), result.template)
    raised["script"] = _script(text, thinking, think_ascii & text_ascii, cfg.min_script_match, result.script)
    for name in ("repetition", "copy", "template", "script"):  # as flag_record: nothing else for (near-)empty text
        raised[name] &= ~raised["empty"]
    return result


def raised_matrix(
    text: pa.Array, thinking: pa.Array, finish_reason: pa.Array, cfg: QualityConfig, patterns: Iterable[str], chunk=512
) -> np.ndarray:
    """(records, len(FLAGS)) bool: the flags each record raises, flagged ``chunk`` records at a time
    (small chunks keep the n-gram sorts in cache); what `tpt analyze stats --quality` counts."""
    patterns = list(patterns)
    out = np.zeros((len(thinking), len(FLAGS)), dtype=bool)
    for start in range(0, len(thinking), chunk):
        part = [column.slice(start, chunk) for column in (text, thinking, finish_reason)]
        flags = flag_batch(*part, cfg, patterns)
        out[start : start + chunk] = np.stack([flags.raised[name] for name in FLAGS], axis=1)
    return out


def _no_nulls(column: pa.Array) -> pa.Array:
    """Nulls as empty strings; a column without nulls as it is (pc.fill_null copies every byte even then)."""
    return pc.fill_null(column, "") if column.null_count else column


def _word_hashes(column: pa.Array, ascii_rows: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """-> (a 64-bit hash of each word of the batch, back to back; record number of each word; words per record).

    The words are exactly quality.words() per record.  ASCII records (nearly all) never become
    Python strings: one table lookup maps each byte of the column to its lower-case form, or to 0
    outside [A-Za-z0-9_] (non-ASCII bytes stay: they only occur in normalised rows), and a word
    is a run of non-zero bytes not crossing a record boundary.  A word's hash mixes its bytes read
    8 at a time as 64-bit integers (most words take one read).  The rare records with other
    characters are normalised by words() itself (CJK, Unicode letters and punctuation) first.
    ``ascii_rows``: pc.string_is_ascii of the column, when the caller has it already."""
    if ascii_rows is None:
        ascii_rows = pc.string_is_ascii(column).to_numpy(zero_copy_only=False)
    if not ascii_rows.all():
        rows = np.flatnonzero(~ascii_rows)
        normal = pa.array([" ".join(words(t)) for t in column.take(rows).to_pylist()], pa.string())
        column = pc.replace_with_mask(column, pa.array(~ascii_rows), normal)
    # one space after every record (a C++ pass of pyarrow): a word then never runs into the next
    # record's, so a word is simply a run of non-zero bytes of the folded column
    spaced = pc.binary_join_element_wise(
        column, pa.scalar("", column.type), pa.scalar(" ", column.type), null_handling="replace"
    )
    offsets, data = _string_buffers(spaced)
    # bytes.translate: one C loop over a 256-byte table (numpy's take widens every byte to an index first);
    # 8 bytes of padding: every word can be read 8 bytes at a time
    folded = np.frombuffer((data.tobytes() + bytes(8)).translate(_FOLD), np.uint8)
    starts, ends = _runs(folded[: len(data)])
    counts = np.diff(np.searchsorted(starts, offsets))
    return _hash_runs(folded, starts, ends), np.repeat(np.arange(len(column)), counts), counts


def _fold_table() -> bytes:
    """byte -> the byte in a lower-cased word, 0 for a byte that separates words."""
    ascii_bytes = [ord(chr(b).lower()) if chr(b).isalnum() or b == 95 else 0 for b in range(128)]
    return bytes(ascii_bytes + list(range(128, 256)))


_FOLD = _fold_table()


def _hash_runs(padded: np.ndarray, starts: np.ndarray, ends: np.ndarray) -> np.ndarray:
    """Hash of each byte run padded[start:end]: its bytes 8 at a time as little-endian integers (the
    bytes past the end masked to zero; word bytes are never zero), chained through a multiply-xorshift
    mixer (a bijection: distinct words of up to 8 bytes get distinct hashes)."""
    # one little-endian uint64 starting at every byte (an unaligned view, no copy)
    eights = np.ndarray(shape=(max(len(padded) - 7, 0),), dtype="<u8", buffer=padded, strides=(1,))
    lengths = ends - starts
    h = _mix(eights[starts] & _LOW_BYTES[np.minimum(lengths, 8)])
    todo, offset = np.flatnonzero(lengths > 8), 8
    while len(todo):  # the few words longer than 8 bytes: their next 8
        left = lengths[todo] - offset
        h[todo] = _mix(h[todo] * _PRIME + (eights[starts[todo] + offset] & _LOW_BYTES[np.minimum(left, 8)]))
        todo, offset = todo[left > 8], offset + 8
    return h


_LOW_BYTES = np.array([(1 << (8 * k)) - 1 for k in range(9)], dtype=np.uint64)


def _string_buffers(column: pa.Array) -> tuple[np.ndarray, np.ndarray]:
    """-> (offsets from 0, one per record and one past the end; the bytes they index) of a string array."""
    _, offsets, data = column.buffers()
    wide = pa.types.is_large_string(column.type)
    offsets = np.frombuffer(offsets, dtype=np.int64 if wide else np.int32)
    offsets = offsets[column.offset : column.offset + len(column) + 1].astype(np.int64)
    first, end = int(offsets[0]), int(offsets[-1])
    data = np.frombuffer(data, dtype=np.uint8, count=end)[first:] if end > first else np.zeros(0, np.uint8)
    return offsets - first, data


def _runs(folded: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """-> (first byte, one past the last byte) of every run of non-zero bytes."""
    is_word = np.zeros(len(folded) + 2, dtype=bool)
    np.not_equal(folded, 0, out=is_word[1:-1])
    edges = np.flatnonzero(is_word[1:] != is_word[:-1])  # alternately a word's start and its end
    return edges[0::2], edges[1::2]


_INVERSE = np.uint64(pow(int(_PRIME), -1, 1 << 64))
_POWERS: list[np.ndarray] = [np.ones(1, np.uint64), np.ones(1, np.uint64)]


def _powers(n: int) -> tuple[np.ndarray, np.ndarray]:
    """-> (PRIME**i, PRIME**-i) mod 2**64 for i < n at least; kept for the next batch (as long as the largest)."""
    powers, inverse = _POWERS
    if len(powers) < n:
        size = max(n, 2 * len(powers))
        powers, inverse = np.full(size, _PRIME), np.full(size, _INVERSE)
        powers[0] = inverse[0] = 1
        np.multiply.accumulate(powers, out=powers)
        np.multiply.accumulate(inverse, out=inverse)
        _POWERS[:] = [powers, inverse]  # one assignment: a thread still reading the old pair has a valid one
    return powers, inverse


def _mix(h: np.ndarray) -> np.ndarray:
    """Multiply, then fold the high half into the low half, in place: the low bits the n-gram keys
    keep then depend on every byte of the word (a multiply alone carries only upwards)."""
    h *= _PRIME
    h ^= h >> np.uint64(32)
    return h


def _prefix_sums(codes: np.ndarray) -> np.ndarray:
    """-> [0, code[0], code[0] + code[1] * PRIME, ...]: sum(code[i] * PRIME**i) for every prefix (mod 2**64)."""
    powers, _ = _powers(len(codes) + 1)
    prefix = np.zeros(len(codes) + 1, np.uint64)
    np.cumsum(np.multiply(codes, powers[: len(codes)], out=prefix[1:]), out=prefix[1:])
    return prefix


def _ngram_keys(prefix: np.ndarray, records: np.ndarray, counts: np.ndarray, n: int) -> np.ndarray:
    """-> the hash of each n-gram whose words lie in one record, with the record in the low 16 bits.

    The hash of words k..k+n-1 is sum(code[k+j] * PRIME**j), read off the prefix sums (_prefix_sums,
    shared by every n) and shifted back by PRIME**-k: a few in-place passes whatever n is.  The
    n-grams running past their record's end are the n - 1 before each record's end (``counts``:
    words per record), dropped by one boolean index."""
    count = len(prefix) - n
    if count <= 0:
        return np.zeros(0, np.uint64)
    _, inverse = _powers(len(prefix))
    h = np.subtract(prefix[n:], prefix[:count])
    h *= inverse[:count]
    h <<= np.uint64(16)
    h |= records[:count].view(np.uint64)  # record numbers are >= 0: a view
    crossing = (np.cumsum(counts)[:, None] - np.arange(1, n)).ravel()
    inside = np.ones(count, dtype=bool)
    inside[crossing[(crossing >= 0) & (crossing < count)]] = False
    return h[inside]


def _ngrams_per_record(counts: np.ndarray, n: int) -> np.ndarray:
    return np.maximum(counts - (n - 1), 0)


def _repeat_fraction(prefix: np.ndarray, records: np.ndarray, counts: np.ndarray, n: int) -> np.ndarray:
    keys = _ngram_keys(prefix, records, counts, n)
    total = _ngrams_per_record(counts, n)
    ordered = np.sort(keys)  # numpy's vectorised sort: several times faster here than a hash set
    first = np.ones(len(ordered), dtype=bool)
    np.not_equal(ordered[1:], ordered[:-1], out=first[1:])
    unique = np.bincount((ordered[first] & np.uint64(0xFFFF)).view(np.intp), minlength=len(counts))
    return np.where(total > 0, 1.0 - unique / np.maximum(total, 1), 0.0)


def _copy_fraction(prefix, records, counts, doc_prefix, doc_records, doc_counts, n: int) -> np.ndarray:
    """Share of each record's thinking n-grams found among its document's.  The document's keys mark
    a table of _SLOTS_PER_KEY slots per key (small enough to stay in cache; 64 was no faster); only
    the thinking keys whose slot is marked (the copies, plus ~6% false alarms) are looked up
    exactly, by binary search in the sorted document keys."""
    keys = _ngram_keys(prefix, records, counts, n)
    doc_keys = _ngram_keys(doc_prefix, doc_records, doc_counts, n)
    total = _ngrams_per_record(counts, n)
    if not len(keys) or not len(doc_keys):
        return np.zeros(len(counts))
    bits = max(10, int(len(doc_keys) * _SLOTS_PER_KEY).bit_length())
    table = np.zeros(1 << bits, dtype=bool)
    table[_slot(doc_keys, bits)] = True
    maybe = keys[table[_slot(keys, bits)]]
    doc_keys = np.sort(doc_keys)
    at = np.minimum(np.searchsorted(doc_keys, maybe), len(doc_keys) - 1)
    found = maybe[doc_keys[at] == maybe]
    hits = np.bincount((found & np.uint64(0xFFFF)).view(np.intp), minlength=len(counts))
    return np.where(total > 0, hits / np.maximum(total, 1), 0.0)


_SLOTS_PER_KEY = 16


def _slot(keys: np.ndarray, bits: int) -> np.ndarray:
    """A key's slot in a table of 2**bits: the top bits of key * PRIME (they depend on all of the key's bits)."""
    return ((keys * _PRIME) >> np.uint64(64 - bits)).view(np.intp)  # < 2**bits: a view is exact


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
    any_hit = np.zeros(len(thinking), dtype=bool)
    for group in _by_first_character(patterns):
        any_hit |= pc.match_substring_regex(thinking, pattern=group).to_numpy(zero_copy_only=False)
    for row in np.flatnonzero(any_hit):
        doc, think = text[int(row)].as_py(), thinking[int(row)].as_py()
        found = [p for p in patterns if p in think and p not in doc]  # one the document holds is a quote
        if found:
            out[row], hits[int(row)] = True, found
    return out


def _by_first_character(patterns: list[str]) -> list[str]:
    """RE2 alternations of the literal patterns, one per first character: RE2 skips to the candidates
    with memchr when every alternative starts alike, and otherwise steps its automaton byte by byte
    (the 10 default patterns in one alternation: ~3x the time of these 5 passes, batches of 512)."""
    groups: dict[str, list[str]] = {}
    for pattern in patterns:
        groups.setdefault(pattern[0], []).append(_re2_literal(pattern))
    return ["|".join(group) for group in groups.values()]


def _re2_literal(pattern: str) -> str:
    return re.sub(r"([\\.^$|?*+()\[\]{}-])", r"\\\1", pattern)


def _script(
    text: pa.Array, thinking: pa.Array, ascii_both: np.ndarray, minimum: float, found: dict[int, tuple[str, float]]
) -> np.ndarray:
    out = np.zeros(len(thinking), dtype=bool)
    for row in np.flatnonzero(~ascii_both):
        match = script_match(thinking[int(row)].as_py(), text[int(row)].as_py())
        if match is not None and match[1] < minimum:
            out[row], found[int(row)] = True, match
    return out
