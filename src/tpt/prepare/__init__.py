"""`tpt prepare`: thinking records / raw text -> packed token shards; SFT data; tokenizers.

Public API (imported lazily, so ``tpt.prepare.tokenizer`` stays light):
``prepare(PrepareConfig) -> manifest``, ``prepare_sft(jsonl, tokenizer, seq_len, out) -> Path``,
``PackedDataset(folder, split)``.
"""

from __future__ import annotations

_EXPORTS = {
    "prepare": "tpt.prepare.run",
    "PrepareConfig": "tpt.prepare.config",
    "PrepareError": "tpt.prepare.config",
    "prepare_sft": "tpt.prepare.sft",
    "PackedDataset": "tpt.prepare.packed",
}


def __getattr__(name: str):
    if name in _EXPORTS:
        import importlib

        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'tpt.prepare' has no attribute {name!r}")
