"""Token counting and token-boundary truncation with a local tokenizer (shared by backends).

Counting and truncation use the Rust ``tokenizers`` library directly when the folder has a
``tokenizer.json`` (fast to load; no transformers/torch import in a client-only process); the
chat template needs ``transformers.AutoTokenizer`` and is loaded only when used.
"""

from __future__ import annotations

from pathlib import Path


def require_tokenizer_path(path: str | None, what: str) -> str:
    if not path or not Path(path).is_dir():
        raise ValueError(
            f"{what}: a local tokenizer folder is needed to count and truncate on token boundaries; "
            f"pass --tokenizer PATH (got {path!r})"
        )
    return path


class TokenizerOps:
    """``count_tokens`` / ``truncate`` / ``chat_prompt`` for a backend that owns a tokenizer folder."""

    def __init__(self, path: str, hf_tokenizer=None):
        self.tokenizer_path = path
        self._hf = hf_tokenizer
        self._fast = None
        if (Path(path) / "tokenizer.json").is_file():
            from tokenizers import Tokenizer

            self._fast = Tokenizer.from_file(str(Path(path) / "tokenizer.json"))

    @property
    def hf_tokenizer(self):
        if self._hf is None:
            from transformers import AutoTokenizer

            self._hf = AutoTokenizer.from_pretrained(self.tokenizer_path)
        return self._hf

    def _ids_and_offsets(self, text: str) -> tuple[list[int], list[tuple[int, int]]]:
        if self._fast is not None:
            enc = self._fast.encode(text, add_special_tokens=False)
            return enc.ids, enc.offsets
        enc = self.hf_tokenizer(text, add_special_tokens=False, return_offsets_mapping=True)
        return enc["input_ids"], enc["offset_mapping"]

    def count_tokens(self, text: str) -> int:
        return len(self._ids_and_offsets(text)[0])

    def truncate(self, text: str, max_tokens: int) -> tuple[str, int, bool]:
        ids, offsets = self._ids_and_offsets(text)
        if len(ids) <= max_tokens:
            return text, len(ids), False
        return text[: cut_point(offsets[max_tokens - 1], offsets[max_tokens])], len(ids), True

    def truncate_batch(self, texts: list[str], max_tokens: int) -> list[tuple[str, int, bool]]:
        """``truncate`` for many texts at once (the Rust tokenizer spreads a batch over the cores)."""
        if self._fast is None:
            return [self.truncate(t, max_tokens) for t in texts]
        out = []
        for text, enc in zip(texts, self._fast.encode_batch(texts, add_special_tokens=False)):
            # len(enc) and token_to_chars() avoid materialising the id and offset lists in Python
            # (that conversion cost as much as a fifth of the pipeline's time on long documents).
            n = len(enc)
            if n <= max_tokens:
                out.append((text, n, False))
            else:
                out.append(
                    (text[: cut_point(enc.token_to_chars(max_tokens - 1), enc.token_to_chars(max_tokens))], n, True)
                )
        return out

    def chat_prompt(self, user_prompt: str) -> str:
        """The user prompt inside the model's chat template, opening the assistant turn."""
        messages = [{"role": "user", "content": user_prompt}]
        return self.hf_tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)


def cut_point(last_kept: tuple[int, int], first_dropped: tuple[int, int]) -> int:
    """Where to cut the text so it keeps at most the first tokens: where the last kept token ends,
    unless that token is only part of a character (byte-level BPE splits a character it has no
    merge for into byte tokens, all mapped to the whole character): then before that character.
    No re-decoding, so the kept text is an exact prefix of the document."""
    return min(last_kept[1], first_dropped[0])
