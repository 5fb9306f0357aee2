"""Exact resume after kill -9, and DDP (2 gloo processes under torchrun) == 1 process."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from tpt.train import TrainConfig, train

COMMON = dict(model_preset="0.1m", batch_tokens="256", micro_batch=4, lr=3e-3, eval_sequences=16, log_every=1, progress=False)


def losses(out: Path) -> list[tuple[int, float]]:
    rows = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    return [(r["step"], r["loss"]) for r in rows if "loss" in r]


def weights(folder: Path) -> dict[str, torch.Tensor]:
    from safetensors.torch import load_file

    return load_file(folder / "model.safetensors")


def cli_args(cfg: dict, data: Path, out: Path) -> list[str]:
    args = ["--data", str(data), "--out", str(out)]
    for key, value in cfg.items():
        flag = "--" + key.replace("_", "-")
        args += [flag if value else "--no-" + flag[2:]] if isinstance(value, bool) else [flag, str(value)]
    return args


def child_env() -> dict[str, str]:
    src = str(Path(__file__).resolve().parents[2] / "src")
    return {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": src + os.pathsep + os.environ.get("PYTHONPATH", "")}


def test_kill_9_mid_run_then_resume_reproduces_the_straight_run(packed_dir, tmp_path):
    cfg = dict(COMMON, tokens="24K", save_every=5, eval_every=0, threads=1)  # 94 steps
    straight = train(TrainConfig(data=packed_dir, out=tmp_path / "straight", **cfg))

    out = tmp_path / "killed"
    proc = subprocess.Popen([sys.executable, "-m", "tpt", "train", *cli_args(cfg, packed_dir, out)], env=child_env(),
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    info, deadline = out / "state" / "tpt_checkpoint.json", time.time() + 240
    while time.time() < deadline and proc.poll() is None:
        if info.exists() and json.loads(info.read_text())["step"] >= 10:
            break
        time.sleep(0.02)
    assert proc.poll() is None, f"the run ended before it could be killed: {proc.stderr.read().decode()[-2000:]}"
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    killed_at = json.loads(info.read_text())["step"]
    assert killed_at < straight.steps and not (out / "tpt_train_done.json").exists()

    resumed = train(TrainConfig(data=packed_dir, out=out, **cfg))
    assert resumed.steps == straight.steps
    a, b = losses(tmp_path / "straight"), losses(out)
    assert [s for s, _ in a] == [s for s, _ in b] == list(range(1, straight.steps + 1))
    assert torch.allclose(torch.tensor([x for _, x in a]), torch.tensor([x for _, x in b]), rtol=1e-5, atol=1e-6)
    wa, wb = weights(straight.checkpoint), weights(resumed.checkpoint)
    assert all(torch.allclose(wa[k], wb[k], atol=1e-5) for k in wa)
    assert resumed.val_loss == pytest.approx(straight.val_loss, rel=1e-5)


def test_ddp_two_processes_match_one_process_with_the_same_global_batch(packed_dir, tmp_path):
    cfg = dict(COMMON, tokens="3K", save_every=0, eval_every=6)  # 12 steps, global batch 8 sequences
    single = train(TrainConfig(data=packed_dir, out=tmp_path / "single", threads=1, **cfg))  # 1 x accum 2 x micro 4
    out = tmp_path / "ddp"
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2", "-m", "tpt", "train",
           *cli_args(cfg, packed_dir, out)]  # 2 processes x accum 1 x micro 4
    proc = subprocess.run(cmd, env=child_env(), capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    plan = json.loads((out / "train_config.json").read_text())["plan"]
    assert (plan["world"], plan["parallel"], plan["accum"]) == (2, "ddp", 1)
    a, b = losses(tmp_path / "single"), losses(out)
    assert [s for s, _ in a] == [s for s, _ in b]
    assert torch.allclose(torch.tensor([x for _, x in a]), torch.tensor([x for _, x in b]), rtol=1e-4, atol=1e-5)
    wa, wb = weights(single.checkpoint), weights(out)
    assert all(torch.allclose(wa[k], wb[k], atol=1e-4) for k in wa)
    done = json.loads((out / "tpt_train_done.json").read_text())
    assert done["val_loss"] == pytest.approx(single.val_loss, rel=1e-4)
