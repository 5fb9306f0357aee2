"""Compiled (numba) kernels for quality_batch.py: words, word hashes, repetition and copy fractions.

One pass over a string column's Arrow buffers (offsets + bytes, zero copy) finds the words and
hashes them; one pass per record over its word hashes gives both fractions.  The hash definitions
are those of the earlier numpy code (kept so that the flags stay bit-identical):

* a word is a run of bytes that _FOLD maps to non-zero (lower-case ASCII letters, digits, ``_``;
  non-ASCII bytes stay, they only occur in rows quality.words() normalised first); its hash mixes
  its bytes 8 at a time as little-endian integers: h = mix(first 8), h = mix(h * PRIME + next 8);
* an n-gram's hash is sum(code[k + j] * PRIME**j) for j < n (mod 2**64), compared on its top 48
  bits (the numpy code kept the record number in the low 16);
* repetition = 1 - distinct / all n-grams of the thinking; copy = share of the thinking's n-grams
  (with multiplicity) that are among its document's.

``cache=True`` keeps the compiled code next to this module (__pycache__): only the first run in a
fresh checkout compiles (a few seconds, once); ``nogil=True`` lets the filter's reader and flagger
threads overlap with it.
"""

from __future__ import annotations

import numba
import numpy as np

PRIME = np.uint64(0x9E3779B97F4A7C15)
INVERSE = np.uint64(pow(0x9E3779B97F4A7C15, -1, 1 << 64))  # PRIME * INVERSE = 1 (mod 2**64)


def fold_table() -> np.ndarray:
    """byte -> the byte in a lower-cased word, 0 for a byte that separates words."""
    ascii_bytes = [ord(chr(b).lower()) if chr(b).isalnum() or b == 95 else 0 for b in range(128)]
    return np.array(ascii_bytes + list(range(128, 256)), dtype=np.uint8)


FOLD = fold_table()


@numba.njit(cache=True, nogil=True)
def _mix(h):
    h = h * PRIME
    return h ^ (h >> np.uint64(32))


@numba.njit(cache=True, nogil=True)
def word_hashes(offsets, data, fold):
    """-> (hash of every word, back to back; words per record).  ``offsets``: int64, one per record
    and one past the end, indexing ``data`` (uint8).  A word never crosses a record's end."""
    n = len(offsets) - 1
    codes = np.empty(len(data) // 2 + n + 1, dtype=np.uint64)  # a word takes >= 1 byte plus a separator
    counts = np.zeros(n, dtype=np.int64)
    w = 0
    for r in range(n):
        i, end = offsets[r], offsets[r + 1]
        while i < end:
            b = fold[data[i]]
            if b == 0:
                i += 1
                continue
            h = np.uint64(0)
            chunk = np.uint64(0)
            shift = np.uint64(0)
            first = True
            while i < end and b != 0:
                chunk |= np.uint64(b) << shift
                shift += np.uint64(8)
                i += 1
                if i < end:
                    b = fold[data[i]]
                if shift == np.uint64(64):
                    h = _mix(chunk) if first else _mix(h * PRIME + chunk)
                    first, chunk, shift = False, np.uint64(0), np.uint64(0)
            if shift != np.uint64(0):  # the last, partial 8 bytes (the bytes past the word as zeros)
                h = _mix(chunk) if first else _mix(h * PRIME + chunk)
            codes[w] = h
            w += 1
            counts[r] += 1
    return codes[:w], counts


@numba.njit(cache=True, nogil=True)
def _ngram_keys(codes, start, count, n, prefix, inverse, out):
    """Writes the n-gram keys of codes[start:start + count] into out; -> how many (count - n + 1, or 0).

    sum(code[k + j] * PRIME**j) = (prefix[k + n] - prefix[k]) * PRIME**-k, with prefix[i] the sum
    of code[m] * PRIME**m for m < i: three operations per n-gram whatever n is.  ``prefix`` holds
    the record's prefix sums (_prefix_sums)."""
    m = count - n + 1
    for k in range(max(m, 0)):
        out[k] = ((prefix[k + n] - prefix[k]) * inverse[k]) << np.uint64(16)
    return max(m, 0)


@numba.njit(cache=True, nogil=True)
def _prefix_sums(codes, start, count, powers, prefix):
    prefix[0] = 0
    for i in range(count):
        prefix[i + 1] = prefix[i] + codes[start + i] * powers[i]


@numba.njit(cache=True, nogil=True)
def _table_bits(m):
    """log2 of the hash table for m keys: at least 2 slots per key (linear probing stays short)."""
    bits = 4
    while (1 << bits) < 2 * m:
        bits += 1
    return bits


@numba.njit(cache=True, nogil=True)
def _insert(table, stamps, stamp, bits, key):
    """Adds key to the set of the slots stamped ``stamp`` (stale slots are free: no clearing
    between records); -> True if it was not there yet."""
    mask = (1 << bits) - 1
    slot = np.int64((key * PRIME) >> np.uint64(64 - bits))
    while stamps[slot] == stamp:
        if table[slot] == key:
            return False
        slot = (slot + 1) & mask
    stamps[slot], table[slot] = stamp, key
    return True


@numba.njit(cache=True, nogil=True)
def _contains(table, stamps, stamp, bits, key):
    mask = (1 << bits) - 1
    slot = np.int64((key * PRIME) >> np.uint64(64 - bits))
    while stamps[slot] == stamp:
        if table[slot] == key:
            return True
        slot = (slot + 1) & mask
    return False


@numba.njit(cache=True, nogil=True)
def fractions(think_codes, think_counts, doc_codes, doc_counts, repeat_n, copy_n):
    """-> (repetition fraction, copy fraction) of every record, float64, 0.0 where it has no n-gram."""
    records = len(think_counts)
    repeat = np.zeros(records, dtype=np.float64)
    copy = np.zeros(records, dtype=np.float64)
    longest = 1
    for r in range(records):
        longest = max(longest, think_counts[r], doc_counts[r])
    powers = np.empty(longest + 1, dtype=np.uint64)
    inverse = np.empty(longest + 1, dtype=np.uint64)
    powers[0] = inverse[0] = 1
    for i in range(1, longest + 1):
        powers[i], inverse[i] = powers[i - 1] * PRIME, inverse[i - 1] * INVERSE
    prefix = np.empty(longest + 1, dtype=np.uint64)
    keys = np.empty(longest, dtype=np.uint64)
    size = 1 << _table_bits(longest)
    table = np.empty(size, dtype=np.uint64)
    stamps = np.full(size, -1, dtype=np.int64)
    t, d = 0, 0
    for r in range(records):
        _prefix_sums(think_codes, t, think_counts[r], powers, prefix)
        m = _ngram_keys(think_codes, t, think_counts[r], repeat_n, prefix, inverse, keys)
        if m > 0:
            bits, distinct = _table_bits(m), 0
            for k in range(m):
                distinct += _insert(table, stamps, 2 * r, bits, keys[k])
            repeat[r] = 1.0 - distinct / m
        m = _ngram_keys(think_codes, t, think_counts[r], copy_n, prefix, inverse, keys)
        if m > 0 and doc_counts[r] >= copy_n:
            _prefix_sums(doc_codes, d, doc_counts[r], powers, prefix)  # the thinking's keys are in ``keys`` already
            dm = doc_counts[r] - copy_n + 1
            bits = _table_bits(dm)
            for k in range(dm):
                key = ((prefix[k + copy_n] - prefix[k]) * inverse[k]) << np.uint64(16)
                _insert(table, stamps, 2 * r + 1, bits, key)
            hits = 0
            for k in range(m):
                hits += _contains(table, stamps, 2 * r + 1, bits, keys[k])
            copy[r] = hits / m
        t += think_counts[r]
        d += doc_counts[r]
    return repeat, copy
