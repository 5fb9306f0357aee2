"""The quality flags of quality.py for a whole Arrow batch at once (what `tpt filter` runs).

Same flags, thresholds and detail texts as ``quality.flag_record``; the work is done by
compiled kernels (numba, quality_kernel.py), pyarrow compute kernels (C++, GIL released) and
numpy over the batch's columns instead of Python per record:

* words and their hashes: one compiled pass over each column's Arrow buffers, in place (the rare
  non-ASCII records go through quality.words first);
* ``repetition`` = 1 - distinct / all n-grams per record, ``copy`` = share of the thinking's
  n-grams among the document's: one compiled pass per record over its word hashes (a sort of
  its n-gram hashes; a binary search in its document's);
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

MAX_BATCH = 1 << 16  # the filter's batches stay at most this (memory per batch, and the bound it has always had)


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
    think_codes, think_counts = _word_hashes(thinking, think_ascii)
    doc_codes, doc_counts = _word_hashes(text, text_ascii)
    repeat, copy = _kernels().fractions(
        think_codes, think_counts, doc_codes, doc_counts, cfg.repeat_ngram, cfg.copy_ngram
    )
    result = BatchFlags({}, repeat, copy)
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
    (bounded memory per call); what `tpt analyze stats --quality` counts."""
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


def _word_hashes(column: pa.Array, ascii_rows: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """-> (a 64-bit hash of each word of the batch, back to back; words per record).

    The words are exactly quality.words() per record.  ASCII records (nearly all) never become
    Python strings: the compiled kernel (quality_kernel.word_hashes) reads the column's Arrow
    buffers in place.  The rare records with other characters are normalised by words() itself
    (CJK, Unicode letters and punctuation) first.  ``ascii_rows``: pc.string_is_ascii of the
    column, when the caller has it already."""
    if ascii_rows is None:
        ascii_rows = pc.string_is_ascii(column).to_numpy(zero_copy_only=False)
    if not ascii_rows.all():
        rows = np.flatnonzero(~ascii_rows)
        normal = pa.array([" ".join(words(t)) for t in column.take(rows).to_pylist()], column.type)
        column = pc.replace_with_mask(column, pa.array(~ascii_rows), normal)
    offsets, data = _string_buffers(column)
    kernels = _kernels()
    return kernels.word_hashes(offsets, data, kernels.FOLD)


def _kernels():
    """quality_kernel, imported on first use: numba takes ~0.5 s to import, which `tpt filter --help`,
    a bad argument or `tpt analyze stats` without --quality need not pay."""
    from tpt.analyze import quality_kernel

    return quality_kernel


def _string_buffers(column: pa.Array) -> tuple[np.ndarray, np.ndarray]:
    """-> (offsets from 0, one per record and one past the end; the bytes they index) of a string array."""
    _, offsets, data = column.buffers()
    wide = pa.types.is_large_string(column.type)
    offsets = np.frombuffer(offsets, dtype=np.int64 if wide else np.int32)
    offsets = offsets[column.offset : column.offset + len(column) + 1].astype(np.int64)
    first, end = int(offsets[0]), int(offsets[-1])
    # read-only either way: numba compiles one version per array type, writable and read-only differ
    data = np.frombuffer(data, dtype=np.uint8, count=end)[first:] if end > first else np.frombuffer(b"", np.uint8)
    return offsets - first, data


def load_kernels() -> None:
    """Compiles the kernels, or loads them from numba's cache (a second or so either way; a fresh
    checkout's first run compiles, ~5-10 s): called before the filter forks its workers, so that
    they inherit them instead of each loading them again."""
    flag_batch(pa.array(["a b"]), pa.array(["a b c"]), pa.array(["stop"]), QualityConfig(), [])


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
