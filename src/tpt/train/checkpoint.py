"""Checkpoints: HF save_pretrained folders, plus trainer_state.pt for exact resume.

Layout of ``--out``::

    config.json, model.safetensors, tokenizer files   the final model (written when training ends)
    train_config.json                                 the run's TrainConfig
    metrics.jsonl                                     one line per logged step / evaluation
    state/                                            the latest resumable checkpoint: HF folder + trainer_state.pt
    state.prev/                                       the one before it, kept until a newer one is written and verified
    tokens-1M/, tokens-2M/ ...                        --save-at snapshots (HF folders)

Every folder is written in a temp folder and swapped in (tpt.io.atomic), so a kill -9 at any
moment leaves the previous or the new checkpoint, never half of one.  A new state is verified
(its files read back) before it replaces the old one, and the old one is kept as state.prev; a
state that is corrupt later (a truncated file on a full disk) is skipped with a warning naming
the file, and the run resumes from state.prev.
"""

from __future__ import annotations

import json
import os
import random
import shutil
import sys
import zipfile
from pathlib import Path
from typing import Any

import numpy as np
import torch

from tpt import formats
from tpt.io.atomic import (
    atomic_folder,
    atomic_write_text,
    fsync_dir,
    fsync_tree,
    recover_folder,
    remove_stale_temps,
    temp_name,
)

STATE_DIR = "state"
PREV_STATE_DIR = "state.prev"
CORRUPT_STATE_DIR = "state.corrupt"  # a state found unreadable, kept for inspection
STATE_FILE = "trainer_state.pt"
WEIGHTS_FILE = "model.safetensors"
INFO_FILE = formats.CHECKPOINT_INFO_FILE
DONE_FILE = "tpt_train_done.json"


class CheckpointError(RuntimeError):
    """A checkpoint file that cannot be read back (names the file)."""


def save_hf(
    model: torch.nn.Module,
    tokenizer,
    folder: Path,
    state_dict: dict | None = None,
    info: dict | None = None,
    dtype: torch.dtype | None = None,
) -> None:
    """An HF folder transformers / lm-eval / vLLM load unchanged: weights, config, tokenizer.

    ``dtype``: write floating weights (and config.json's dtype) in this dtype, e.g. the --init
    model's own bf16, whatever precision training kept them in."""
    from transformers.utils import logging as hf_logging

    if dtype is not None:
        source = state_dict or model.state_dict()
        state_dict = {k: v.to(dtype) if v.is_floating_point() else v for k, v in source.items()}
    bars = hf_logging.is_progress_bar_enabled()
    hf_logging.disable_progress_bar()  # one "Writing model shards" bar per checkpoint is noise
    try:
        model.save_pretrained(folder, state_dict=state_dict, safe_serialization=True)
    finally:
        if bars:
            hf_logging.enable_progress_bar()
    if dtype is not None:  # save_pretrained records the dtype the model trained in; say what the file holds
        config = json.loads((folder / "config.json").read_text())
        config["dtype"] = str(dtype).removeprefix("torch.")
        (folder / "config.json").write_text(json.dumps(config, indent=2, sort_keys=True) + "\n")
    tokenizer.save_pretrained(folder)
    if info is not None:
        formats.write_checkpoint_info(folder, formats.CheckpointInfo.from_dict(info, folder / INFO_FILE))


def save_snapshot(folder: Path, model, tokenizer, state_dict: dict | None, info: dict, dtype=None) -> Path:
    """A --save-at snapshot: an HF folder swapped in whole."""
    with atomic_folder(folder) as tmp:
        save_hf(model, tokenizer, tmp, state_dict, info, dtype)
    return folder


def save_final(out: Path, model: torch.nn.Module, tokenizer, state_dict: dict | None, info: dict, dtype=None) -> None:
    """The final model at the top of ``out``: written to a temp folder, then files moved in; the
    done marker last, so a folder without it is never taken for a finished run."""
    tmp = out / temp_name(out / "final")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    save_hf(model, tokenizer, tmp, state_dict, info, dtype)
    fsync_tree(tmp)  # the files' contents on disk before the renames and the done marker
    for path in tmp.iterdir():
        os.replace(path, out / path.name)
    tmp.rmdir()
    fsync_dir(out)
    formats.write_json(out / DONE_FILE, info, formats.CHECKPOINT_INFO)


def clean_leftovers(out: Path) -> None:
    """Before a run: temp folders of dead writers go, a state cut between two renames comes back."""
    remove_stale_temps(out)
    recover_folder(out / STATE_DIR)


def rng_states() -> dict[str, Any]:
    states: dict[str, Any] = {
        "python": random.getstate(),
        "numpy": np.random.get_state(),
        "torch": torch.get_rng_state(),
    }
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
    """The resumable checkpoint OUT/state: HF folder + trainer_state.pt (optimizer, RNG, data cursor).

    Written and verified in a temp folder first; the state it replaces becomes OUT/state.prev
    (the one before is deleted only then), so two good states exist at every moment after the
    second save, whatever gets cut."""
    final, prev = out / STATE_DIR, out / PREV_STATE_DIR
    with atomic_folder(final) as tmp:
        info = {k: trainer_state[k] for k in ("step", "tokens_seen", "cursor")}
        save_hf(model, tokenizer, tmp, model_state, info)
        torch.save(trainer_state, tmp / STATE_FILE)
        verify_state(tmp)
        if final.exists():  # a crash from here on leaves state.prev, which find_state falls back to
            shutil.rmtree(prev, ignore_errors=True)
            final.rename(prev)
    return final


def verify_state(folder: Path) -> None:
    """Cheap read-back of a state folder: the zip directory of trainer_state.pt (at the file's end)
    and the safetensors header, whose offsets must cover the file exactly."""
    from safetensors import safe_open

    path = folder / STATE_FILE
    try:
        with zipfile.ZipFile(path) as z:
            z.namelist()
        path = folder / WEIGHTS_FILE
        if path.exists():  # sharded checkpoints (large models) name their files in an index
            with safe_open(str(path), framework="pt") as f:
                f.keys()
    except Exception as e:  # zipfile / safetensors raise several types for cut files
        raise CheckpointError(f"{path}: unreadable ({type(e).__name__}: {e})") from None


def find_state(out: Path, repair: bool = True) -> tuple[Path, dict] | None:
    """The newest readable resumable state: (folder, trainer_state), or None when there is none.

    OUT/state first, then OUT/state.prev; one that cannot be read is skipped with a warning naming
    the file and (``repair``: the main process only) moved aside to OUT/state.corrupt, so the next
    save cannot make it the fallback.  States exist but none is readable: CheckpointError."""
    if repair:
        recover_folder(out / STATE_DIR)
    errors = []
    for folder in (out / STATE_DIR, out / PREV_STATE_DIR):
        if not (folder / STATE_FILE).exists():
            continue
        try:
            verify_state(folder)
            found = folder, load_trainer_state(folder)
        except CheckpointError as e:
            errors.append(str(e))
            print(f"tpt train: warning: {e}; falling back to the previous state", file=sys.stderr, flush=True)
            continue
        if errors and repair:  # the corrupt one goes aside only once there is a good one to resume from
            shutil.rmtree(out / CORRUPT_STATE_DIR, ignore_errors=True)
            (out / STATE_DIR).rename(out / CORRUPT_STATE_DIR)  # the good one is state.prev
        return found
    if errors:
        raise CheckpointError("no readable resumable state: " + "; ".join(errors) + f". Remove {out} to start over")
    return None


def load_trainer_state(state_dir: Path) -> dict:
    """trainer_state.pt; CheckpointError naming the file when it cannot be read."""
    path = state_dir / STATE_FILE
    try:
        # weights_only=False: the file holds python/numpy RNG states next to tensors; it is our own file.
        return torch.load(path, map_location="cpu", weights_only=False)
    except Exception as e:  # torch raises RuntimeError / EOFError / pickle errors for a cut file
        raise CheckpointError(f"{path}: unreadable ({type(e).__name__}: {e})") from None


def config_differences(saved: dict, current: dict) -> list[str]:
    """Fields of the run fingerprint that changed since the checkpoint was written."""
    keys = sorted(set(saved) | set(current))
    return [
        f"{k}: checkpoint has {saved.get(k)!r}, now {current.get(k)!r}" for k in keys if saved.get(k) != current.get(k)
    ]


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
    atomic_write_text(path, "".join(line + "\n" for line in kept))
