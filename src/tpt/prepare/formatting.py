"""Samples -> token ids: vanilla = d + EOS; TPT = template(d, t) + EOS.

The template's literal parts (``<think>``, separators) are encoded once, with special tokens
recognised; the document and the thinking are encoded as *plain text* (``encode_special_tokens``),
so a document that happens to contain "<think>" or "<|endoftext|>" cannot forge the format.
"""

from __future__ import annotations

import array
import re
from dataclasses import dataclass

import numpy as np

from tpt.prepare.config import PrepareError
from tpt.prepare.sources import Sample
from tpt.prepare.tokenizer import missing_special_tokens, template_special_tokens

FIELDS = ("{text}", "{thinking}")
# A sentence ends at . ! ? (or their CJK forms) followed by whitespace, a closing quote/bracket, or the end.
_SENTENCE_END = re.compile(r"[.!?\u3002\uff01\uff1f][\"')\]]*(?=\s|$)")
# uint32 holds any vocabulary; callers that know the vocab size pass a narrower dtype.
DEFAULT_IDS_DTYPE = np.dtype(np.uint32)
_UINT32 = next(code for code in "IL" if array.array(code).itemsize == 4)  # C type sizes vary by platform


def check_tokenizer(tokenizer, template: str, need_template: bool, where: str, add_missing: bool = False) -> list[str]:
    """Clear errors, before any compute, for a tokenizer that cannot express the format.

    Returns the template's special tokens the tokenizer lacks (only when ``add_missing``: the
    caller adds them; otherwise a lacking token is an error that says how to fix it)."""
    if tokenizer.eos_token_id is None:
        raise PrepareError(f"--tokenizer {where}: has no eos_token (needed between samples)")
    if not need_template:
        return []
    for f in FIELDS:
        if template.count(f) != 1:
            raise PrepareError(f"--template {template!r}: must contain {f} exactly once")
    missing = missing_special_tokens(tokenizer, template_special_tokens(template))
    if missing and not add_missing:
        raise PrepareError(
            f"--tokenizer {where}: lacks special token(s) {missing} used by --template {template!r}. Fix: rerun with "
            "--add-think-tokens (adds them to the tokenizer saved with the data; `tpt train --init` then resizes the "
            "model's embeddings), or use a template without them, or train a tokenizer with `tpt tokenizer train`"
        )
    return missing


def cut_at_sentence(text: str) -> str:
    """``text`` up to and including its last complete sentence ('' when it has none)."""
    last = None
    for match in _SENTENCE_END.finditer(text):
        last = match
    return text[: last.end()] if last else ""


@dataclass
class LengthStats:
    dropped: int = 0  # finish_reason=length records dropped (--on-length drop, or cut with no full sentence)
    cut: int = 0  # finish_reason=length records cut at a sentence


def apply_length_policy(sample: Sample, policy: str, stats: LengthStats) -> Sample | None:
    if sample.thinking is None or sample.finish_reason != "length" or policy == "keep":
        return sample
    if policy == "cut":
        thinking = cut_at_sentence(sample.thinking)
        if thinking.strip():
            stats.cut += 1
            return Sample(sample.id, sample.text, thinking, sample.finish_reason)
    stats.dropped += 1
    return None


class SampleEncoder:
    """Encodes batches of samples into one flat id array plus per-sample lengths (EOS included)."""

    def __init__(self, tokenizer, template: str, dtype: np.dtype = DEFAULT_IDS_DTYPE):
        from tokenizers import Tokenizer

        self.dtype = np.dtype(dtype)
        self.eos_id = int(tokenizer.eos_token_id)
        backend = tokenizer.backend_tokenizer
        self._plain = Tokenizer.from_str(backend.to_str())  # a copy: the caller's tokenizer is left as it was
        self._plain.encode_special_tokens = True
        self._encode = getattr(self._plain, "encode_batch_fast", self._plain.encode_batch)  # fast = no offsets
        # template -> [literal ids | 0 (the text) | 1 (the thinking)], literals encoded once with specials recognised
        self._parts: list[list[int] | int] = []
        for piece in re.split(r"(\{text\}|\{thinking\})", template):
            if piece in FIELDS:
                self._parts.append(FIELDS.index(piece))
            elif piece:
                self._parts.append(backend.encode(piece, add_special_tokens=False).ids)

    def encode(self, samples: list[Sample]) -> tuple[np.ndarray, np.ndarray]:
        """-> (ids (sum of lengths,) self.dtype, lengths (len(samples),) int64)."""
        return self.assemble(samples, self.encode_texts(samples))

    def encode_texts(self, samples: list[Sample]) -> list:
        """The Rust part (releases the GIL): one encoding per document and per thinking."""
        texts: list[str] = []
        for s in samples:
            texts.append(s.text)
            if s.thinking is not None:
                texts.append(s.thinking)
        return self._encode(texts, add_special_tokens=False)

    def assemble(self, samples: list[Sample], encodings: list) -> tuple[np.ndarray, np.ndarray]:
        """The Python part: template literals + encodings + EOS, flattened.

        Each piece's ids go straight into one typed array (``array.fromlist``, a C loop) and the
        piece's Python list is freed at once: 3x faster than ``np.fromiter`` over chained lists,
        and no batch of million-int lists stays alive for the garbage collector to walk (that
        walk was a fifth of the main thread's time).  The array is 32-bit whatever ``self.dtype``:
        ``fromlist`` into it is 3x faster than into a 16-bit one, numpy's narrowing after is cheap."""
        ids = array.array(_UINT32)
        lengths = np.empty(len(samples), dtype=np.int64)
        encoded = iter(encodings)
        for i, s in enumerate(samples):
            start = len(ids)
            if s.thinking is None:
                ids.fromlist(next(encoded).ids)
            else:
                fields = (next(encoded).ids, next(encoded).ids)  # (text, thinking), in encode_texts' order
                for part in self._parts:
                    ids.fromlist(fields[part] if isinstance(part, int) else part)
            ids.append(self.eos_id)
            lengths[i] = len(ids) - start
        wide = np.frombuffer(ids, dtype=np.uint32)
        if self.dtype.itemsize < wide.itemsize and len(wide) and int(wide.max()) > np.iinfo(self.dtype).max:
            # the dtype comes from len(tokenizer): a tokenizer with gaps in its ids could exceed it
            raise PrepareError(
                f"--tokenizer: token id {int(wide.max())} does not fit {self.dtype}, chosen from the tokenizer's "
                "length: its ids exceed its length (gaps in the vocabulary); renumber the vocabulary"
            )
        return wide.astype(self.dtype, copy=False), lengths
