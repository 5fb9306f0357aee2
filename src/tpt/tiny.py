"""Tiny models built locally from a config with random weights, for tests, demos and benches.

Nothing here downloads anything: the tokenizer is trained on the given text and the model is a
randomly initialised Qwen2-style decoder saved with ``save_pretrained``.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

SAMPLE_TEXTS = [
    "The derivative of x squared is two x, because the slope grows linearly with x.",
    "If n cubed plus 100 is divisible by n plus 10, then n plus 10 divides 900, so n is at most 890.",
    "Photosynthesis converts light energy into chemical energy stored in glucose.",
    "A prime number has exactly two divisors: one and itself.",
    "Water boils at 100 degrees Celsius at sea level; at altitude the pressure is lower.",
    "To multiply 37 by 24, compute 37 times 20 plus 37 times 4, which is 740 plus 148, or 888.",
    "The mitochondria produce most of the cell's supply of adenosine triphosphate.",
    "An expert reads the context, asks what is non-trivial, and explains it simply.",
]


def build_tiny_model(
    out: str | Path,
    texts: Iterable[str] | None = None,
    vocab_size: int = 512,
    hidden_size: int = 64,
    num_layers: int = 2,
    num_heads: int = 4,
    num_kv_heads: int = 2,
    max_positions: int = 4096,
    seed: int = 0,
    do_sample: bool = True,
) -> Path:
    """Train a tokenizer and save a random-weight Qwen2 model + tokenizer at ``out``.

    ``do_sample`` goes into generation_config.json: some servers (``transformers serve``) only
    sample when the generation config says so, whatever the request's temperature.
    """
    import torch
    from transformers import AutoTokenizer, GenerationConfig, Qwen2Config, Qwen2ForCausalLM

    from tpt.prepare.tokenizer import train_tokenizer

    out = Path(out)
    corpus = list(texts) if texts is not None else SAMPLE_TEXTS * 20
    train_tokenizer(corpus, out, vocab_size=vocab_size, min_frequency=1)
    tok = AutoTokenizer.from_pretrained(out)
    config = Qwen2Config(
        vocab_size=len(tok),
        hidden_size=hidden_size,
        intermediate_size=hidden_size * 4,
        num_hidden_layers=num_layers,
        num_attention_heads=num_heads,
        num_key_value_heads=num_kv_heads,
        max_position_embeddings=max_positions,
        tie_word_embeddings=True,
        bos_token_id=tok.bos_token_id,
        eos_token_id=tok.eos_token_id,
        pad_token_id=tok.pad_token_id,
    )
    torch.manual_seed(seed)
    model = Qwen2ForCausalLM(config)
    model.generation_config = GenerationConfig(
        do_sample=do_sample,
        temperature=0.6 if do_sample else None,
        top_p=0.9 if do_sample else None,
        bos_token_id=tok.bos_token_id,
        eos_token_id=tok.eos_token_id,
        pad_token_id=tok.pad_token_id,
    )
    model.save_pretrained(out)
    return out


# Shapes of the base checkpoints people mid-train (Llama-3.1 8B, Qwen2.5 1.5B, Qwen3), shrunk:
# what matters for tpt is kept -- GQA, tied or untied embeddings, Llama-3.1's RoPE scaling,
# Qwen2.5's embedding padded past its tokenizer, Qwen3's q/k norms, bf16 weights, and a
# tokenizer without <think> / </think>.
ARCHITECTURES = ("llama3", "qwen2.5", "qwen3")
LLAMA3_ROPE = {
    "rope_type": "llama3",
    "factor": 8.0,
    "low_freq_factor": 1.0,
    "high_freq_factor": 4.0,
    "original_max_position_embeddings": 8192,
    "rope_theta": 500000.0,
}


def build_base_checkpoint(
    out: str | Path,
    arch: str,
    texts: Iterable[str] | None = None,
    vocab_size: int = 400,
    hidden_size: int = 64,
    seed: int = 0,
) -> Path:
    """A random-weight ``arch`` checkpoint saved by transformers, with a tokenizer lacking think tokens."""
    import torch

    if arch not in ARCHITECTURES:
        raise ValueError(f"unknown architecture {arch!r} (have: {', '.join(ARCHITECTURES)})")
    out = Path(out)
    corpus = list(texts) if texts is not None else SAMPLE_TEXTS * 20
    tok = _llama3_tokenizer(corpus, out, vocab_size) if arch == "llama3" else _qwen_tokenizer(corpus, out, vocab_size)
    torch.manual_seed(seed)
    model = _base_model(arch, tok, hidden_size).to(torch.bfloat16)
    model.config.dtype = torch.bfloat16
    model.save_pretrained(out)
    return out


def _base_model(arch: str, tok, hidden: int):
    common = dict(
        hidden_size=hidden,
        intermediate_size=hidden * 3,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=4096,
        bos_token_id=tok.bos_token_id,
        eos_token_id=tok.eos_token_id,
        pad_token_id=tok.pad_token_id,
    )
    if arch == "llama3":
        from transformers import LlamaConfig, LlamaForCausalLM

        config = LlamaConfig(
            vocab_size=len(tok),
            tie_word_embeddings=False,
            rope_parameters=dict(LLAMA3_ROPE),
            **{**common, "max_position_embeddings": 131072},
        )
        return LlamaForCausalLM(config)
    if arch == "qwen2.5":
        from transformers import Qwen2Config, Qwen2ForCausalLM

        # Qwen2.5's embedding has rows past its tokenizer (151,936 for 151,665 tokens): padding.
        config = Qwen2Config(
            vocab_size=len(tok) + 64,
            tie_word_embeddings=True,
            rope_parameters={"rope_type": "default", "rope_theta": 1000000.0},
            **common,
        )
        return Qwen2ForCausalLM(config)
    from transformers import Qwen3Config, Qwen3ForCausalLM

    config = Qwen3Config(
        vocab_size=len(tok),
        head_dim=hidden // 4,
        tie_word_embeddings=True,
        rope_parameters={"rope_type": "default", "rope_theta": 1000000.0},
        **common,
    )
    return Qwen3ForCausalLM(config)


def _qwen_tokenizer(corpus: list[str], out: Path, vocab_size: int):
    from transformers import AutoTokenizer

    from tpt.prepare.tokenizer import train_tokenizer

    train_tokenizer(corpus, out, vocab_size=vocab_size, min_frequency=1, think_tokens=False)
    return AutoTokenizer.from_pretrained(out)


def _llama3_tokenizer(corpus: list[str], out: Path, vocab_size: int):
    """Byte-level BPE with Llama-3's special tokens, saved as PreTrainedTokenizerFast as Meta's is."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    bos, eos = "<|begin_of_text|>", "<|end_of_text|>"
    t = Tokenizer(models.BPE())
    t.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    t.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        min_frequency=1,
        special_tokens=[bos, eos],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    t.train_from_iterator(corpus, trainer=trainer)
    tok = PreTrainedTokenizerFast(tokenizer_object=t, bos_token=bos, eos_token=eos)
    tok.save_pretrained(out)
    return tok


def build_reasoning_tiny_model(out: str | Path, think_close_weight: float = 4.0, **overrides) -> Path:
    """A tiny model shaped for vLLM's CPU engine and tokenized like real reasoning generators.

    head_dim 32 (hidden 64 / 2 heads): vLLM's CPU attention supports 32, 64, 80, ... and a model
    with head_dim 16 passes /health, then kills the engine on its first request.  ``<think>`` and
    ``</think>`` are *ordinary* added tokens, as in Qwen3 and R1-distill tokenizers: special ones
    are dropped by ``skip_special_tokens``, and a ``stop: ["</think>"]`` would then never fire.

    ``think_close_weight`` makes the random model close its thinking now and then, as a real one
    does: one coordinate of ``</think>``'s (tied) output embedding is set to it, so its logit is
    ``weight * h[0]`` for the normalised hidden state ``h``; trajectories then end at ``</think>``
    after a spread of lengths (a few to tens of tokens) instead of always running to the budget.
    """
    values = dict(hidden_size=64, num_heads=2, num_kv_heads=1)
    values.update(overrides)
    out = build_tiny_model(out, **values)
    _make_ordinary(out, ("<think>", "</think>"))
    if think_close_weight:
        _raise_token_logit(out, "</think>", think_close_weight)
    return out


def _raise_token_logit(folder: Path, token: str, weight: float) -> None:
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    token_id = AutoTokenizer.from_pretrained(folder).convert_tokens_to_ids(token)
    model = AutoModelForCausalLM.from_pretrained(folder)
    with torch.no_grad():
        model.get_output_embeddings().weight[token_id, 0] = weight
    model.save_pretrained(folder)


def _make_ordinary(folder: Path, tokens: tuple[str, ...]) -> None:
    """Turn added special tokens into ordinary added tokens (kept whole, decoded, never skipped)."""
    import json

    tok_file = folder / "tokenizer.json"
    data = json.loads(tok_file.read_text())
    for entry in data["added_tokens"]:
        if entry["content"] in tokens:
            entry["special"] = False
    tok_file.write_text(json.dumps(data, ensure_ascii=False))
    cfg_file = folder / "tokenizer_config.json"
    cfg = json.loads(cfg_file.read_text())
    for entry in cfg.get("added_tokens_decoder", {}).values():
        if entry["content"] in tokens:
            entry["special"] = False
    for key in ("additional_special_tokens", "extra_special_tokens"):
        if isinstance(cfg.get(key), list):
            cfg[key] = [t for t in cfg[key] if t not in tokens]
    cfg_file.write_text(json.dumps(cfg, ensure_ascii=False, indent=2))
