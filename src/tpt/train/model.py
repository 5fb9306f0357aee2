"""The model and optimizer a training run starts from: fresh from the plan's config, from
``--init`` (with embedding rows for tokens `tpt prepare --add-think-tokens` added), or from the
run's own resumable state; AdamW without weight decay on norms and biases."""

from __future__ import annotations

from pathlib import Path

import torch

from . import checks
from .checks import TrainInputError
from .config import TrainConfig
from .plan import RunPlan


def build_model(plan: RunPlan, cfg: TrainConfig, resume_dir: Path | None, device: torch.device) -> torch.nn.Module:
    from transformers import AutoModelForCausalLM

    source = resume_dir or cfg.model.init
    if source is None:
        torch.manual_seed(cfg.seed)  # same initial weights on every process
        return AutoModelForCausalLM.from_config(plan.model_config, dtype=torch.float32).to(device)
    try:
        model = AutoModelForCausalLM.from_pretrained(str(source), dtype=torch.float32, local_files_only=True)
    except Exception as e:  # transformers / safetensors raise many types for a cut or foreign file
        where = checks.weights_file(Path(source))
        raise TrainInputError(f"{where}: cannot be loaded ({type(e).__name__}: {e})") from None
    if resume_dir is None and plan.added_token_ids:
        extend_embeddings(model, plan.vocab_size, plan.added_token_ids)
    return model.to(device)


def extend_embeddings(model: torch.nn.Module, vocab_size: int, new_ids: list[int]) -> None:
    """Embedding rows for tokens `tpt prepare --add-think-tokens` added: grow the matrices to
    ``vocab_size`` when needed, and set the new tokens' rows (input and, when untied, output) to
    the mean of the existing rows, so they start as an "average token" rather than noise (and,
    in checkpoints padded past their tokenizer such as Qwen2.5's, not as an untrained row)."""
    old = model.get_input_embeddings().weight.shape[0]
    if vocab_size > old:
        model.resize_token_embeddings(vocab_size, mean_resizing=False)
    # rows of the new ids that the checkpoint already had (padding) are not part of the mean
    padded = [i for i in new_ids if i < old]
    layers = (model.get_input_embeddings(), model.get_output_embeddings())
    with torch.no_grad():
        for layer in {id(m): m for m in layers if m is not None}.values():  # once when tied
            weight = layer.weight
            total = weight[:old].sum(dim=0, dtype=torch.float64) - weight[padded].sum(dim=0, dtype=torch.float64)
            weight[new_ids] = (total / (old - len(padded))).to(weight.dtype)


def make_optimizer(model: torch.nn.Module, cfg: TrainConfig, device: torch.device) -> torch.optim.Optimizer:
    """AdamW; no weight decay on norms and biases (1-d tensors)."""
    params = [p for p in model.parameters() if p.requires_grad]
    groups = [
        {"params": [p for p in params if p.dim() >= 2], "weight_decay": cfg.optimizer.weight_decay},
        {"params": [p for p in params if p.dim() < 2], "weight_decay": 0.0},
    ]
    return torch.optim.AdamW(
        groups, lr=cfg.optimizer.lr, betas=(cfg.optimizer.beta1, cfg.optimizer.beta2), fused=device.type == "cuda"
    )
