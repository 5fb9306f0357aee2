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

from tpt.config import build
from tpt.train import TrainConfig, train

COMMON = dict(
    model_preset="0.1m", batch_tokens="256", micro_batch=4, lr=3e-3, eval_sequences=16, log_every=1, progress=False
)


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


def start_and_kill_9(cmd: list[str], out: Path, at_step: int) -> int:
    """Run ``cmd`` (a training process), SIGKILL it once OUT/state has reached ``at_step``; the state's step."""
    proc = subprocess.Popen(cmd, env=child_env(), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    info, deadline = out / "state" / "tpt_checkpoint.json", time.time() + 240
    while time.time() < deadline and proc.poll() is None:
        if info.exists() and json.loads(info.read_text())["step"] >= at_step:
            break
        time.sleep(0.02)
    assert proc.poll() is None, f"the run ended before it could be killed: {proc.stderr.read().decode()[-2000:]}"
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert not (out / "tpt_train_done.json").exists()
    return json.loads(info.read_text())["step"]


def assert_same_run(a: Path, b: Path, rtol: float) -> None:
    la, lb = losses(a), losses(b)
    assert [s for s, _ in la] == [s for s, _ in lb]
    assert torch.allclose(torch.tensor([x for _, x in la]), torch.tensor([x for _, x in lb]), rtol=rtol, atol=rtol / 10)
    wa, wb = weights(a), weights(b)
    assert sorted(wa) == sorted(wb) and all(torch.allclose(wa[k], wb[k], atol=rtol) for k in wa)
    va, vb = (json.loads((d / "tpt_train_done.json").read_text())["val_loss"] for d in (a, b))
    assert va == pytest.approx(vb, rel=rtol)


def test_kill_9_mid_run_then_resume_reproduces_the_straight_run(packed_dir, tmp_path):
    cfg = dict(COMMON, tokens="12K", save_every=5, eval_every=0, threads=1)  # 47 steps
    straight = train(build(TrainConfig, data=packed_dir, out=tmp_path / "straight", **cfg))
    out = tmp_path / "killed"
    killed_at = start_and_kill_9(
        [sys.executable, "-m", "tpt", "train", *cli_args(cfg, packed_dir, out)], out, at_step=5
    )
    assert 5 <= killed_at < straight.steps
    resumed = train(build(TrainConfig, data=packed_dir, out=out, **cfg))
    assert resumed.steps == straight.steps and [s for s, _ in losses(out)] == list(range(1, straight.steps + 1))
    assert_same_run(tmp_path / "straight", out, rtol=1e-5)


DIST = dict(COMMON, tokens="4K", save_every=4, eval_every=8)  # 16 steps, global batch 8 sequences


@pytest.fixture(scope="module")
def single_process_run(packed_dir, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("single") / "out"
    train(build(TrainConfig, data=packed_dir, out=out, threads=1, **DIST))  # 1 process x accum 2 x micro 4
    return out


def torchrun(args: list[str], parallel: str) -> None:
    cmd = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--standalone",
        "--nproc-per-node",
        "2",
        "-m",
        "tpt",
        "train",
        *args,
        "--parallel",
        parallel,
    ]  # 2 processes x accum 1 x micro 4
    proc = subprocess.run(cmd, env=child_env(), capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]


def test_ddp_two_processes_match_one_process_with_the_same_global_batch(packed_dir, single_process_run, tmp_path):
    out = tmp_path / "ddp"
    torchrun(cli_args(DIST, packed_dir, out), "ddp")
    plan = json.loads((out / "train_config.json").read_text())["plan"]
    assert (plan["world"], plan["parallel"], plan["accum"]) == (2, "ddp", 1)
    assert_same_run(single_process_run, out, rtol=1e-4)


def test_fsdp_resumes_a_killed_single_process_run_exactly(packed_dir, single_process_run, tmp_path):
    """kill -9 a 1-process run, resume it with FSDP2 on 2 processes (gloo, CPU): the same run."""
    out = tmp_path / "fsdp"
    start_and_kill_9(
        [sys.executable, "-m", "tpt", "train", *cli_args({**DIST, "threads": 1}, packed_dir, out)], out, at_step=4
    )
    torchrun(cli_args(DIST, packed_dir, out), "fsdp")
    assert json.loads((out / "train_config.json").read_text())["plan"]["parallel"] == "fsdp"
    assert_same_run(single_process_run, out, rtol=1e-4)
