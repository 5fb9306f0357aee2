"""`tpt train`: pre-training from scratch, mid-training an HF checkpoint, SFT; exact resume; DDP/FSDP2.

Public API: ``train(TrainConfig(...)) -> TrainResult`` (imported lazily: torch loads on use).
"""

from __future__ import annotations

from .config import TrainConfig

__all__ = ["TrainConfig", "TrainResult", "TrainingDiverged", "TrainInputError", "train"]


def __getattr__(name: str):
    if name in ("train", "TrainResult", "TrainingDiverged"):
        from . import loop

        return getattr(loop, name)
    if name == "TrainInputError":
        from .config import TrainInputError

        return TrainInputError
    raise AttributeError(name)
