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
        self._frame: tuple[str, str] | bool | None = None  # chat_prompt's (prefix, suffix); False: render each
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
        """The user prompt inside the model's chat template, opening the assistant turn.

        Rendering the Jinja template costs ~1 ms of Python per request, on the thread that keeps a
        server's requests flowing; so the template is rendered once around placeholders and each
        prompt is placed between the two halves -- when that is provably the same text (the frame
        reproduces the template's rendering of probes with edge whitespace, and of the first real
        prompt).  Templates that transform the content (trim it, branch on it) are rendered per call."""
        if self._frame is None:
            self._frame = chat_frame(self._render_chat) or False
            if self._frame and self._render_chat(user_prompt) != self._frame[0] + user_prompt + self._frame[1]:
                self._frame = False
        if self._frame:
            return self._frame[0] + user_prompt + self._frame[1]
        return self._render_chat(user_prompt)

    def _render_chat(self, user_prompt: str) -> str:
        messages = [{"role": "user", "content": user_prompt}]
        return self.hf_tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)


# Probes for chat_frame: content a template could alter (edge whitespace, newlines, braces, a tag).
FRAME_PROBES = ("\x00tpt-probe-a\x00", " \n\ttpt probe {b} <think> 2 + 2\n\n ")


def chat_frame(render) -> tuple[str, str] | None:
    """(prefix, suffix) such that ``render(c) == prefix + c + suffix`` for every probe ``c``, or None
    when the template does not place the content verbatim (or places it more than once)."""
    first = FRAME_PROBES[0]
    text = render(first)
    if text.count(first) != 1:
        return None
    prefix, suffix = text.split(first)
    if any(render(probe) != prefix + probe + suffix for probe in FRAME_PROBES[1:]):
        return None
    return prefix, suffix


def cut_point(last_kept: tuple[int, int], first_dropped: tuple[int, int]) -> int:
    """Where to cut the text so it keeps at most the first tokens: where the last kept token ends,
    unless that token is only part of a character (byte-level BPE splits a character it has no
    merge for into byte tokens, all mapped to the whole character): then before that character.
    No re-decoding, so the kept text is an exact prefix of the document."""
    return min(last_kept[1], first_dropped[0])
