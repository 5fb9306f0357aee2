"""Quality flags for one thinking record: plain functions, thresholds in ``QualityConfig``.

Flags (name -> what it means):
  truncated   generation hit the thinking budget (finish_reason == "length")
  empty       the thinking has fewer than --min-thinking-chars non-whitespace characters
  repetition  a repetition loop: more than --max-repeat-fraction of the thinking's word n-grams
              (n = --repeat-ngram) repeat an n-gram seen earlier in the same thinking
  copy        more than --max-copy-fraction of the thinking's word n-grams (n = --copy-ngram)
              occur in the document: the "analysis" is mostly a copy of its input
  template    leftover prompt/template text: chat special tokens, the prompt's own sentences
              (unless the document itself contains them: then it is a quote)
  script      wrong writing system: less than --min-script-match of the thinking's letters are
              in the document's dominant script (Latin, Cyrillic, CJK, ...)
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import numpy as np

from tpt.config import field

FLAGS = ("truncated", "empty", "repetition", "copy", "template", "script")

# Chat special tokens and sentences of the paper's prompts (tpt.augment.prompts): in a clean
# trajectory none of them appears verbatim.
DEFAULT_TEMPLATE_PATTERNS = (
    "<think>",
    "</think>",
    "<|im_start|>",
    "<|im_end|>",
    "<|endoftext|>",
    "{{CONTEXT}}",
    "<<<READING HERE>>>",
    "## End of the context",
    "Simulate an expert's in-depth thought process",
    "Use Feynman technique whenever possible to ensure a deep understanding",
)

_CJK = "\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uac00-\ud7af\uf900-\ufaff"
# A "word": one CJK character (those scripts do not separate words by spaces) or a run of other
# word characters.  Punctuation is ignored.
_WORD = re.compile(f"[{_CJK}]|[^\\W{_CJK}]+")
_SPACE = re.compile(r"\s+")
# Letter ranges of each script, (first, last) code point inclusive.
SCRIPT_RANGES = {
    "latin": [(0x41, 0x5A), (0x61, 0x7A), (0xC0, 0xD6), (0xD8, 0xF6), (0xF8, 0x24F)],
    "greek": [(0x370, 0x3FF)],
    "cyrillic": [(0x400, 0x4FF)],
    "hebrew": [(0x590, 0x5FF)],
    "arabic": [(0x600, 0x6FF)],
    "devanagari": [(0x900, 0x97F)],
    "thai": [(0xE00, 0xE7F)],
    "hangul": [(0x1100, 0x11FF), (0xAC00, 0xD7AF)],
    "cjk": [(0x3040, 0x30FF), (0x3400, 0x4DBF), (0x4E00, 0x9FFF), (0xF900, 0xFAFF)],
}
SCRIPT_NAMES = list(SCRIPT_RANGES)
# code point (BMP) -> 1 + script index, 0 for anything that is not a letter of a known script
_SCRIPT_OF = np.zeros(0x10000, dtype=np.uint8)
for _i, _name in enumerate(SCRIPT_NAMES):
    for _lo, _hi in SCRIPT_RANGES[_name]:
        _SCRIPT_OF[_lo : _hi + 1] = _i + 1
SCRIPT_SAMPLE_CHARS = 20_000  # the script of a text is judged on its first 20k characters
MIN_SCRIPT_LETTERS = 20  # fewer letters than this: too little text to judge the script


@dataclass
class QualityConfig:
    """Thresholds of the quality flags."""

    min_thinking_chars: int = field(50, help="'empty': fewer non-whitespace characters than this in the thinking")
    repeat_ngram: int = field(10, help="'repetition': n, in words, of the n-grams checked for loops")
    max_repeat_fraction: float = field(
        0.3, help="'repetition': flag above this fraction of n-grams that repeat an earlier one"
    )
    copy_ngram: int = field(8, help="'copy': n, in words, of the n-grams looked up in the document")
    max_copy_fraction: float = field(
        0.6, help="'copy': flag above this fraction of the thinking's n-grams found in the document"
    )
    min_script_match: float = field(
        0.5, help="'script': flag below this fraction of thinking letters in the document's main script"
    )
    template_pattern: list[str] = field(
        default_factory=list, repeat=True, help="'template': extra literal strings that mark leftover prompt text"
    )


def words(text: str) -> list[str]:
    return _WORD.findall(text.lower())


def ngrams(tokens: list[str], n: int) -> list[tuple[str, ...]]:
    # zip of n shifted views builds the tuples in C: several times faster than slicing per position
    return list(zip(*(tokens[i:] for i in range(n)))) if len(tokens) >= n else []


def repeat_fraction(thinking: str | list[str], n: int) -> float:
    """Fraction of the word n-grams that already occurred earlier in the text (0 if none fit)."""
    grams = ngrams(words(thinking) if isinstance(thinking, str) else thinking, n)
    return 1.0 - len(set(grams)) / len(grams) if grams else 0.0


def copy_fraction(thinking: str | list[str], document: str, n: int) -> float:
    """Fraction of the thinking's word n-grams that occur anywhere in the document."""
    grams = ngrams(words(thinking) if isinstance(thinking, str) else thinking, n)
    if not grams:
        return 0.0
    in_doc = set(ngrams(words(document), n))
    return sum(map(in_doc.__contains__, grams)) / len(grams)


def script_counts(text: str) -> dict[str, int]:
    """Letters per script, counted vectorised over the text's code points."""
    points = np.frombuffer(text[:SCRIPT_SAMPLE_CHARS].encode("utf-32-le"), dtype=np.uint32)
    counts = np.bincount(_SCRIPT_OF[points[points < 0x10000]], minlength=len(SCRIPT_NAMES) + 1)
    return {name: int(c) for name, c in zip(SCRIPT_NAMES, counts[1:])}


def script_match(thinking: str, document: str) -> tuple[str, float] | None:
    """(document's dominant script, share of the thinking's letters in it); None if too little text."""
    doc, think = script_counts(document), script_counts(thinking)
    doc_letters, think_letters = sum(doc.values()), sum(think.values())
    if doc_letters < MIN_SCRIPT_LETTERS or think_letters < MIN_SCRIPT_LETTERS:
        return None
    main = max(doc, key=doc.get)
    return main, think[main] / think_letters


def template_leftovers(thinking: str, patterns: Iterable[str], document: str = "") -> list[str]:
    """Patterns found in the thinking; one the document itself contains is a quote, not a leftover."""
    return [p for p in patterns if p and p in thinking and p not in document]


def non_space_chars(text: str) -> int:
    return len(_SPACE.sub("", text))


def flag_record(
    text: str,
    thinking: str,
    finish_reason: str,
    cfg: QualityConfig,
    patterns: Iterable[str] = DEFAULT_TEMPLATE_PATTERNS,
) -> dict[str, str]:
    """The flags a record raises, each with a human-readable detail ({} for a clean record)."""
    text, thinking = text or "", thinking or ""
    flags: dict[str, str] = {}
    if finish_reason == "length":
        flags["truncated"] = "finish_reason=length"
    chars = non_space_chars(thinking)
    if chars < cfg.min_thinking_chars:
        flags["empty"] = f"{chars} non-whitespace chars < {cfg.min_thinking_chars}"
        return flags  # the text checks below say nothing useful about (near-)empty text
    tokens = words(thinking)
    rep = repeat_fraction(tokens, cfg.repeat_ngram)
    if rep > cfg.max_repeat_fraction:
        flags["repetition"] = f"{rep:.3f} of {cfg.repeat_ngram}-grams repeated > {cfg.max_repeat_fraction}"
    copied = copy_fraction(tokens, text, cfg.copy_ngram)
    if copied > cfg.max_copy_fraction:
        flags["copy"] = f"{copied:.3f} of {cfg.copy_ngram}-grams in the document > {cfg.max_copy_fraction}"
    leftovers = template_leftovers(thinking, patterns, text)
    if leftovers:
        flags["template"] = "contains " + ", ".join(repr(p) for p in leftovers[:3])
    match = script_match(thinking, text)
    if match is not None and match[1] < cfg.min_script_match:
        flags["script"] = f"{match[1]:.3f} of letters in the document's script ({match[0]}) < {cfg.min_script_match}"
    return flags


def template_patterns(cfg: QualityConfig, manifest: dict | None = None) -> list[str]:
    """Default patterns + --template-pattern + the sentences of any prompt template in the run's manifest."""
    patterns = list(DEFAULT_TEMPLATE_PATTERNS) + list(cfg.template_pattern)
    for template in _manifest_templates(manifest or {}):
        for sentence in re.split(r"(?<=[.!?])\s+|\n+", template):
            sentence = sentence.strip()
            # long literal sentences only: a short phrase could legitimately appear in an analysis
            if len(sentence) >= 40 and "{" not in sentence and "<<<" not in sentence:
                patterns.append(sentence)
    return list(dict.fromkeys(patterns))


def _manifest_templates(obj: Any, key: str = "") -> list[str]:
    """String values under keys named like *template* or *prompt* anywhere in the manifest."""
    if isinstance(obj, dict):
        return [s for k, v in obj.items() for s in _manifest_templates(v, str(k).lower())]
    if isinstance(obj, list):
        return [s for v in obj for s in _manifest_templates(v, key)]
    if isinstance(obj, str) and ("template" in key or "prompt" in key) and len(obj) >= 40:
        return [obj]
    return []
