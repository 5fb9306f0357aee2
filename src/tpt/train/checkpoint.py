"""Checkpoints: HF save_pretrained folders, plus trainer_state.pt for exact resume.

Layout of ``--out``::

    config.json, model.safetensors, tokenizer files   the final model (written when training ends)
    train_config.json                                 the run's TrainConfig
    metrics.jsonl                                     one line per logged step / evaluation
    state/                                            the latest resumable checkpoint: HF folder + trainer_state.pt
    tokens-1M/, tokens-2M/ ...                        --save-at snapshots (HF folders)

Every folder is written to ``NAME.tmp`` and renamed into place, so a kill -9 at any moment
leaves either the previous or the new checkpoint, never half of one.
"""

from __future__ import annotations

import json
import os
import random
import shutil
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch

STATE_DIR = "state"
STATE_FILE = "trainer_state.pt"
INFO_FILE = "tpt_checkpoint.json"
DONE_FILE = "tpt_train_done.json"


def write_folder_atomically(final: Path, write: Callable[[Path], None]) -> Path:
    """Run ``write(tmp)`` into a fresh temp folder, then swap it in for ``final``."""
    tmp, old = final.with_name(final.name + ".tmp"), final.with_name(final.name + ".old")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    write(tmp)
    shutil.rmtree(old, ignore_errors=True)
    if final.exists():
        final.rename(old)  # a crash between these renames leaves NAME.old: find_state recovers it
    tmp.rename(final)
    shutil.rmtree(old, ignore_errors=True)
    return final


def save_hf(model: torch.nn.Module, tokenizer, folder: Path, state_dict: dict | None = None, info: dict | None = None) -> None:
    """An HF folder transformers / lm-eval / vLLM load unchanged: weights, config, tokenizer."""
    from transformers.utils import logging as hf_logging

    bars = hf_logging.is_progress_bar_enabled()
    hf_logging.disable_progress_bar()  # one "Writing model shards" bar per checkpoint is noise
    try:
        model.save_pretrained(folder, state_dict=state_dict, safe_serialization=True)
    finally:
        if bars:
            hf_logging.enable_progress_bar()
    tokenizer.save_pretrained(folder)
    if info is not None:
        (folder / INFO_FILE).write_text(json.dumps(info, indent=2) + "\n")


def save_final(out: Path, model: torch.nn.Module, tokenizer, state_dict: dict | None, info: dict) -> None:
    """The final model at the top of ``out``: written to a temp folder, then files moved in."""
    tmp = out / "final.tmp"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    save_hf(model, tokenizer, tmp, state_dict, info)
    for path in tmp.iterdir():
        os.replace(path, out / path.name)
    tmp.rmdir()
    (out / DONE_FILE).write_text(json.dumps(info, indent=2) + "\n")


def rng_states() -> dict[str, Any]:
    states: dict[str, Any] = {"python": random.getstate(), "numpy": np.random.get_state(), "torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        states["cuda"] = torch.cuda.get_rng_state_all()
    return states


def restore_rng(states: dict[str, Any]) -> None:
    random.setstate(states["python"])
    np.random.set_state(states["numpy"])
    torch.set_rng_state(states["torch"])
    if "cuda" in states and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(states["cuda"])


def save_state(out: Path, model, tokenizer, model_state: dict | None, trainer_state: dict) -> Path:
    """The resumable checkpoint OUT/state: HF folder + trainer_state.pt (optimizer, RNG, data cursor)."""

    def write(tmp: Path) -> None:
        info = {k: trainer_state[k] for k in ("step", "tokens_seen", "cursor")}
        save_hf(model, tokenizer, tmp, model_state, info)
        torch.save(trainer_state, tmp / STATE_FILE)

    return write_folder_atomically(out / STATE_DIR, write)


def find_state(out: Path, repair: bool = True) -> Path | None:
    """OUT/state if complete; recovers OUT/state.old left by a crash in the middle of a swap
    (only when ``repair``: one process renames, the others read it where it is)."""
    state, old = out / STATE_DIR, out / (STATE_DIR + ".old")
    if (state / STATE_FILE).exists():
        return state
    if (old / STATE_FILE).exists():
        if not repair:
            return old
        shutil.rmtree(state, ignore_errors=True)
        old.rename(state)
        return state
    return None


def load_trainer_state(state_dir: Path) -> dict:
    # weights_only=False: the file holds python/numpy RNG states next to tensors; it is our own file.
    return torch.load(state_dir / STATE_FILE, map_location="cpu", weights_only=False)


def config_differences(saved: dict, current: dict) -> list[str]:
    """Fields of the run fingerprint that changed since the checkpoint was written."""
    keys = sorted(set(saved) | set(current))
    return [f"{k}: checkpoint has {saved.get(k)!r}, now {current.get(k)!r}" for k in keys if saved.get(k) != current.get(k)]


def truncate_metrics(path: Path, step: int) -> None:
    """Drop metric lines past ``step`` (logged after the checkpoint by a run that then died)."""
    if not path.exists():
        return
    kept = []
    for line in path.read_text().splitlines():
        try:
            if json.loads(line).get("step", 0) <= step:
                kept.append(line)
        except json.JSONDecodeError:
            continue  # a line cut short by kill -9
    path.write_text("".join(line + "\n" for line in kept))
