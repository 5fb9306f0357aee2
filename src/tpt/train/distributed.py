"""Process-group setup and model wrapping for `torchrun`; the model code knows nothing of this.

One process: nothing is wrapped.  Under torchrun: DDP (CPU with gloo, or GPU with NCCL) or
FSDP2 (``fully_shard`` per decoder layer, GPU).  The checkpoint helpers gather full, unsharded
state dicts so a checkpoint does not depend on the world size it was written with.
"""

from __future__ import annotations

import contextlib
import os
from dataclasses import dataclass

import torch
import torch.distributed as torch_dist


@dataclass(frozen=True)
class Dist:
    rank: int
    world: int
    local_rank: int
    device: torch.device

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def setup(device: str = "auto") -> Dist:
    """Join the torchrun process group when WORLD_SIZE > 1; pick the device."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    use_cuda = torch.cuda.is_available() if device == "auto" else device == "cuda"
    if use_cuda and not torch.cuda.is_available():
        raise RuntimeError("--device cuda: no CUDA device is available")
    dev = torch.device(f"cuda:{local_rank}" if use_cuda else "cpu")
    if use_cuda:
        torch.cuda.set_device(dev)
    if world > 1 and not torch_dist.is_initialized():
        torch_dist.init_process_group(backend="nccl" if use_cuda else "gloo", device_id=dev if use_cuda else None)
    return Dist(rank=rank, world=world, local_rank=local_rank, device=dev)


def teardown(dist: Dist) -> None:
    if dist.world > 1 and torch_dist.is_initialized():
        torch_dist.destroy_process_group()


def choose_parallel(requested: str, dist: Dist) -> str:
    """'none' for one process; else DDP, or FSDP2 (auto on GPU)."""
    if dist.world == 1:
        return "none"
    if requested == "auto":
        return "fsdp" if dist.device.type == "cuda" else "ddp"
    return requested


def wrap(model: torch.nn.Module, kind: str, dist: Dist) -> torch.nn.Module:
    if kind == "ddp":
        from torch.nn.parallel import DistributedDataParallel

        return DistributedDataParallel(model, device_ids=[dist.device.index] if dist.device.type == "cuda" else None)
    if kind == "fsdp":
        from torch.distributed.fsdp import MixedPrecisionPolicy, fully_shard

        # bf16 compute with fp32 master weights and fp32 gradient reduction.
        policy = (
            MixedPrecisionPolicy(param_dtype=torch.bfloat16, reduce_dtype=torch.float32)
            if dist.device.type == "cuda"
            else MixedPrecisionPolicy()
        )
        for layer in decoder_layers(model):
            fully_shard(layer, mp_policy=policy)
        fully_shard(model, mp_policy=policy)
        return model
    return model


def decoder_layers(model: torch.nn.Module) -> list[torch.nn.Module]:
    """The repeated transformer blocks of an HF causal LM (model.model.layers for Llama/Qwen)."""
    base = getattr(model, getattr(model, "base_model_prefix", "model"), None)
    layers = getattr(base, "layers", None)
    if layers is None:
        raise RuntimeError(f"FSDP: cannot find the decoder layers of {type(model).__name__}")
    return list(layers)


def no_sync(model: torch.nn.Module, kind: str, sync: bool):
    """Skip the gradient all-reduce on all but the last micro-batch of a step."""
    if kind == "ddp" and not sync:
        return model.no_sync()
    if kind == "fsdp":
        model.set_requires_gradient_sync(sync)
    return contextlib.nullcontext()


def all_reduce_sum(tensor: torch.Tensor, dist: Dist) -> torch.Tensor:
    if dist.world > 1:
        torch_dist.all_reduce(tensor, op=torch_dist.ReduceOp.SUM)
    return tensor


def barrier(dist: Dist) -> None:
    if dist.world > 1:
        torch_dist.barrier()


def full_model_state(model: torch.nn.Module, kind: str) -> dict | None:
    """Full (unsharded, CPU) model state dict under FSDP (a collective); None otherwise."""
    if kind != "fsdp":
        return None
    from torch.distributed.checkpoint.state_dict import StateDictOptions, get_model_state_dict

    state = get_model_state_dict(model, options=StateDictOptions(full_state_dict=True, cpu_offload=True))
    # Tied weights (lm_head = embed_tokens) come back as two keys; HF folders store one.
    unique = {name for name, _ in model.named_parameters()}
    tied = {name for name, _ in model.named_parameters(remove_duplicate=False)} - unique
    return {k: v for k, v in state.items() if k not in tied}


def optimizer_state(model: torch.nn.Module, base: torch.nn.Module, optimizer: torch.optim.Optimizer, kind: str) -> dict:
    """Full optimizer state keyed by parameter name (the same format for 1 process, DDP and FSDP,
    so a run can resume under another world size or parallelism)."""
    if kind == "fsdp":
        from torch.distributed.checkpoint.state_dict import StateDictOptions, get_optimizer_state_dict

        return get_optimizer_state_dict(
            model, optimizer, options=StateDictOptions(full_state_dict=True, cpu_offload=True)
        )
    names = _param_names_in_optimizer_order(base, optimizer)
    raw = optimizer.state_dict()  # keyed by position: 0..n-1 in param_groups order
    return {
        "state": {names[i]: state for i, state in raw["state"].items()},
        "param_groups": [{**group, "params": [names[i] for i in group["params"]]} for group in raw["param_groups"]],
    }


def load_optimizer_state(
    model: torch.nn.Module, base: torch.nn.Module, optimizer: torch.optim.Optimizer, state: dict, kind: str
) -> None:
    if kind == "fsdp":
        from torch.distributed.checkpoint.state_dict import StateDictOptions, set_optimizer_state_dict

        set_optimizer_state_dict(
            model, optimizer, optim_state_dict=state, options=StateDictOptions(full_state_dict=True)
        )
        return
    position = {name: i for i, name in enumerate(_param_names_in_optimizer_order(base, optimizer))}
    optimizer.load_state_dict(
        {
            "state": {position[name]: s for name, s in state["state"].items()},
            "param_groups": [
                {**group, "params": [position[n] for n in group["params"]]} for group in state["param_groups"]
            ],
        }
    )


def _param_names_in_optimizer_order(base: torch.nn.Module, optimizer: torch.optim.Optimizer) -> list[str]:
    names = {id(p): name for name, p in base.named_parameters()}
    return [names[id(p)] for group in optimizer.param_groups for p in group["params"]]
