"""Model presets: Qwen2-style decoders (RMSNorm, SwiGLU, RoPE, GQA) from ~0.5M to ~1B parameters.

A preset is only a shape; the vocabulary comes from the data's tokenizer, so the names count
*non-embedding* parameters (embeddings are tied: one vocab x hidden matrix on top).  Every model
is a plain ``transformers`` Qwen2ForCausalLM, so checkpoints are ordinary HF folders.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Shape:
    hidden: int
    layers: int
    heads: int
    kv_heads: int
    intermediate: int

    def non_embedding_params(self) -> int:
        """Weights outside the (tied) embedding: attention, SwiGLU MLP, norms, q/k/v biases."""
        head_dim = self.hidden // self.heads
        kv = self.kv_heads * head_dim
        attention = self.hidden * self.hidden * 2 + self.hidden * kv * 2 + self.hidden + 2 * kv  # q,o + k,v + biases
        mlp = 3 * self.hidden * self.intermediate
        norms = 2 * self.hidden
        return self.layers * (attention + mlp + norms) + self.hidden  # + final norm


# name -> shape; the name is the approximate non-embedding parameter count.
PRESETS: dict[str, Shape] = {
    "0.1m": Shape(hidden=64, layers=2, heads=4, kv_heads=2, intermediate=192),  # tests and smoke runs
    "0.5m": Shape(hidden=96, layers=5, heads=4, kv_heads=2, intermediate=256),
    "1m": Shape(hidden=128, layers=4, heads=4, kv_heads=2, intermediate=384),
    "5m": Shape(hidden=256, layers=6, heads=8, kv_heads=4, intermediate=768),
    "20m": Shape(hidden=384, layers=12, heads=6, kv_heads=2, intermediate=1024),
    "50m": Shape(hidden=512, layers=14, heads=8, kv_heads=4, intermediate=1536),
    "150m": Shape(hidden=768, layers=18, heads=12, kv_heads=4, intermediate=2560),
    "400m": Shape(hidden=1024, layers=28, heads=16, kv_heads=8, intermediate=3584),
    "1b": Shape(hidden=2048, layers=16, heads=32, kv_heads=8, intermediate=8192),
}


def preset_config(
    name: str, vocab_size: int, seq_len: int, eos_id: int, pad_id: int | None, rope_theta: float | None = None
):
    """A transformers Qwen2Config for preset ``name`` sized to the data's vocabulary."""
    from transformers import Qwen2Config

    key = name.lower()
    if key not in PRESETS:
        raise ValueError(f"--model-preset: unknown preset {name!r} (have: {', '.join(PRESETS)})")
    s = PRESETS[key]
    return Qwen2Config(
        vocab_size=vocab_size,
        hidden_size=s.hidden,
        intermediate_size=s.intermediate,
        num_hidden_layers=s.layers,
        num_attention_heads=s.heads,
        num_key_value_heads=s.kv_heads,
        max_position_embeddings=max(seq_len, 2048),
        tie_word_embeddings=True,
        bos_token_id=eos_id,
        eos_token_id=eos_id,
        pad_token_id=pad_id,
        **({"rope_parameters": {"rope_type": "default", "rope_theta": float(rope_theta)}} if rope_theta else {}),
    )


def config_from_file(path: Path):
    """A transformers config from a config.json (any causal-LM model_type transformers knows)."""
    from transformers import AutoConfig

    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"--model-config: {path} does not exist")
    try:
        raw = json.loads(path.read_text())
    except json.JSONDecodeError as e:
        raise ValueError(f"--model-config: {path} line {e.lineno}: not valid JSON ({e.msg})") from e
    if "model_type" not in raw:
        raise ValueError(f'--model-config: {path} has no \'model_type\' field (e.g. "qwen2" or "llama")')
    model_type = raw.pop("model_type")
    return AutoConfig.for_model(model_type, **raw)


def preset_table(vocab_size: int = 32768) -> str:
    """Markdown table of the presets (for docs and --help)."""
    rows = [
        "| preset | hidden | layers | heads (kv) | MLP | non-embedding params | + tied embedding at vocab "
        f"{vocab_size} |",
        "|---|---|---|---|---|---|---|",
    ]
    for name, s in PRESETS.items():
        rows.append(
            f"| {name} | {s.hidden} | {s.layers} | {s.heads} ({s.kv_heads}) | {s.intermediate} | "
            f"{s.non_embedding_params() / 1e6:.2f}M | {(s.non_embedding_params() + vocab_size * s.hidden) / 1e6:.1f}M |"
        )
    return "\n".join(rows)
