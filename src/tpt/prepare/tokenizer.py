"""Byte-level BPE tokenizers with the special tokens TPT's formats need.

Saved as a plain HF tokenizer folder (``AutoTokenizer.from_pretrained`` loads it), with a
ChatML chat template so the same tokenizer serves pre-training, SFT and chat servers.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from pathlib import Path

EOS = "<|endoftext|>"
PAD = "<|pad|>"
THINK_OPEN, THINK_CLOSE = "<think>", "</think>"
IM_START, IM_END = "<|im_start|>", "<|im_end|>"
SPECIAL_TOKENS = [EOS, PAD, THINK_OPEN, THINK_CLOSE, IM_START, IM_END]

# ChatML; a generation prompt opens the assistant turn.  The assistant turn is wrapped in
# {% generation %} so apply_chat_template(return_assistant_tokens_mask=True) can mask SFT loss.
CHAT_TEMPLATE = (
    "{% for message in messages %}{% if message['role'] == 'assistant' %}{{ '<|im_start|>assistant\n' }}{% "
    "generation %}{{ message['content'] + '<|im_end|>' }}{% endgeneration %}{{ '\n' }}{% else %}{{ '<|im_start|>' + "
    "message['role'] + '\n' + message['content'] + '<|im_end|>\n' }}{% endif %}{% endfor %}{% if "
    "add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
)


def qwen2_pretokenize_regex() -> str:
    """The split pattern transformers' Qwen2Tokenizer applies (taken from the installed version)."""
    from transformers.models.qwen2.tokenization_qwen2 import PRETOKENIZE_REGEX

    return PRETOKENIZE_REGEX


def train_tokenizer(
    texts: Iterable[str], out: str | Path, vocab_size: int = 8192, min_frequency: int = 2, think_tokens: bool = True
) -> Path:
    """Train a byte-level BPE on ``texts`` and save an HF tokenizer folder at ``out``.

    ``think_tokens=False`` leaves out ``<think>``/``</think>``, as real base tokenizers do (tests
    of ``--add-think-tokens`` use it)."""
    from tokenizers import Regex, Tokenizer, decoders, models, normalizers, pre_tokenizers, processors, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE())
    # Qwen2's normalizer and pre-tokenizer, exactly: a checkpoint `tpt train` writes is a Qwen2
    # model, and transformers loads the tokenizer of any qwen2 folder as Qwen2Tokenizer, which
    # rebuilds these two from its own code whatever tokenizer.json says.  Any other choice here
    # would tokenize differently when the checkpoint is evaluated than when its data was
    # prepared (it did: digits after a space became two tokens at evaluation and one in training).
    tok.normalizer = normalizers.NFC()
    tok.pre_tokenizer = pre_tokenizers.Sequence(
        [
            pre_tokenizers.Split(Regex(qwen2_pretokenize_regex()), behavior="isolated", invert=False),
            pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False),
        ]
    )
    tok.decoder = decoders.ByteLevel()
    tok.post_processor = processors.ByteLevel(trim_offsets=False)
    specials = SPECIAL_TOKENS if think_tokens else [t for t in SPECIAL_TOKENS if t not in (THINK_OPEN, THINK_CLOSE)]
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        min_frequency=min_frequency,
        special_tokens=specials,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(texts, trainer=trainer)
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tok,
        eos_token=EOS,
        bos_token=EOS,
        pad_token=PAD,
        additional_special_tokens=[t for t in specials if t not in (EOS, PAD)],
    )
    fast.chat_template = CHAT_TEMPLATE
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    fast.save_pretrained(out)
    return out


# What a template's literal special tokens look like: <think>, </think>, <|im_start|>, <|x|>.
_SPECIAL_LIKE = re.compile(r"<\|?/?[\w.-]+\|?>")


def template_special_tokens(template: str) -> list[str]:
    """The special-token-like literals of a sample template (each must be one token of the tokenizer)."""
    return sorted(set(_SPECIAL_LIKE.findall(template)))


def add_special_tokens(tokenizer, tokens: Iterable[str]) -> dict[str, int]:
    """Add ``tokens`` to ``tokenizer`` as special tokens (new ids at the end); -> {token: id}.

    Special, so the Rust tokenizer never splits them and decoding can skip them, as for the
    tokens of ``tpt tokenizer train``."""
    tokens = list(tokens)
    tokenizer.add_tokens(tokens, special_tokens=True)
    return {t: int(tokenizer.convert_tokens_to_ids(t)) for t in tokens}


def missing_special_tokens(tokenizer, needed: Iterable[str] = (THINK_OPEN, THINK_CLOSE)) -> list[str]:
    """Special tokens a tokenizer lacks (each must encode to exactly one id)."""
    missing = []
    for token in needed:
        ids = tokenizer.convert_tokens_to_ids(token)
        if ids is None or ids == tokenizer.unk_token_id or len(tokenizer.encode(token, add_special_tokens=False)) != 1:
            missing.append(token)
    return missing


def load_tokenizer(path: str | Path):
    """A fast (Rust-backed) HF tokenizer from a local folder; ValueError with the reason otherwise."""
    from transformers import AutoTokenizer

    folder = Path(path)
    if not folder.is_dir():
        raise ValueError(f"tokenizer {folder}: not a folder (expected a local HF tokenizer or model folder)")
    try:
        tok = AutoTokenizer.from_pretrained(folder)
    except Exception as e:  # transformers raises OSError / ValueError / others for unusable folders
        raise ValueError(f"tokenizer {folder}: cannot be loaded ({e})") from e
    if not getattr(tok, "is_fast", False):
        raise ValueError(f"tokenizer {folder}: not a fast tokenizer (needs tokenizer.json)")
    return tok
