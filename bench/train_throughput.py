"""Benchmark (b): `tpt train` tokens/s against a minimal plain-PyTorch loop, same model and batch.

CPU (always): the 1m preset at seq_len 128, fp32.  Both loops train the same Qwen2 model on
the same batch shape for the same number of steps; the reference reads batches from a tensor
already in memory and does nothing but forward, loss, backward, clip and AdamW.  Rounds
alternate (ref, tpt, ref, tpt, ...) and the best round of each counts, since the machine is
shared.  Goal: ratio >= 1.0.

GPU (when CUDA is present): the 1b preset in bf16 at seq_len 2048; prints tokens/s and MFU
(6 * params * tokens/s / peak bf16 FLOP/s; goal >= 40%).  Skipped without CUDA.

    python bench/train_throughput.py [--steps 30] [--rounds 4] [--threads 1] [--preset 1m] [--seq-len 128] [--micro 16]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

os.environ.setdefault("HF_HUB_OFFLINE", "1")


def write_random_packed(root: Path, seq_len: int, rows: int, seed: int = 0) -> Path:
    """A prepared folder of random tokens (speed does not depend on the text)."""
    from tpt.prepare.packed import FORMAT, token_dtype
    from tpt.prepare.tokenizer import train_tokenizer
    from tpt.tiny import SAMPLE_TEXTS

    tok_dir = train_tokenizer(SAMPLE_TEXTS * 20, root / "tokenizer", vocab_size=512, min_frequency=1)
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(str(tok_dir))
    vocab, dtype = len(tok), token_dtype(len(tok))
    data = root / "data"
    data.mkdir()
    tokens = np.random.default_rng(seed).integers(0, vocab, size=(rows, seq_len))
    tokens.astype(dtype).tofile(data / "train-00000.tokens.bin")
    np.save(data / "train-00000.starts.npy", np.arange(0, rows * seq_len, seq_len, dtype=np.int64))
    index = {
        "format": FORMAT,
        "seq_len": seq_len,
        "dtype": dtype.name,
        "vocab_size": vocab,
        "eos_id": tok.eos_token_id,
        "tokenizer": str(tok_dir),
        "splits": {"train": [{"name": "train-00000", "num_sequences": rows, "has_mask": False}]},
        "sources": [{"path": "random", "kind": "vanilla"}],
    }
    (data / "index.json").write_text(json.dumps(index))
    return data


def reference_loop(data: Path, preset: str, steps: int, micro: int, device: str, bf16: bool) -> tuple[float, int]:
    """The minimal loop: (tokens/s, parameters)."""
    from transformers import AutoModelForCausalLM

    from tpt.prepare.packed import PackedDataset
    from tpt.train.presets import preset_config

    ds = PackedDataset(data)
    vocab = -(-ds.vocab_size // 64) * 64
    torch.manual_seed(0)
    model = AutoModelForCausalLM.from_config(preset_config(preset, vocab, ds.seq_len, 0, None), dtype=torch.float32).to(
        device
    )
    opt = torch.optim.AdamW(model.parameters(), lr=3e-4, betas=(0.9, 0.95), weight_decay=0.1, fused=device == "cuda")
    batches = (
        torch.from_numpy(np.stack([ds[i] for i in range(steps * micro)]).astype(np.int64))
        .to(device)
        .view(steps, micro, -1)
    )
    _sync(device)
    start = time.perf_counter()
    for step in range(steps):
        x = batches[step]
        with torch.autocast("cuda", dtype=torch.bfloat16, enabled=bf16):
            logits = model(input_ids=x[:, :-1]).logits
        loss = F.cross_entropy(logits.float().flatten(0, 1), x[:, 1:].flatten())
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        opt.zero_grad(set_to_none=True)
    _sync(device)
    elapsed = time.perf_counter() - start
    return steps * micro * ds.seq_len / elapsed, sum(p.numel() for p in model.parameters())


def tpt_loop(data: Path, out: Path, preset: str, steps: int, micro: int, device: str) -> float:
    """`tpt train` on the same data and batch; tokens/s as its own metrics report (setup excluded)."""
    from tpt.config import build
    from tpt.train import TrainConfig, train

    seq_len = json.loads((data / "index.json").read_text())["seq_len"]
    cfg = build(
        TrainConfig,
        data=data,
        out=out,
        model_preset=preset,
        tokens=str(steps * micro * seq_len),
        batch_tokens=str(micro * seq_len),
        micro_batch=micro,
        eval_every=0,
        eval_sequences=0,
        save_every=0,
        log_every=steps,
        progress=False,
        device=device,
    )
    result = train(cfg)
    # One metrics line, at the last step: tokens/s over all steps (data reads included), measured
    # like the reference's: from the first step to the last, setup and the final save excluded.
    lines = [json.loads(line) for line in result.metrics.read_text().splitlines()]
    return lines[-1]["tokens_per_s"]


def _sync(device: str) -> None:
    if device == "cuda":
        torch.cuda.synchronize()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=30)
    parser.add_argument("--rounds", type=int, default=4)
    parser.add_argument("--preset", default="1m")
    parser.add_argument("--seq-len", type=int, default=128)
    parser.add_argument("--micro", type=int, default=16)
    parser.add_argument("--gpu-preset", default="1b")
    parser.add_argument(
        "--peak-tflops", type=float, default=989.0, help="dense bf16 peak of the GPU (H100/H200 SXM: 989)"
    )
    parser.add_argument("--threads", type=int, default=0, help="torch CPU threads for both loops (0 = torch's default)")
    args = parser.parse_args()
    if args.threads > 0:
        torch.set_num_threads(args.threads)
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        data = write_random_packed(tmp, args.seq_len, args.steps * args.micro + 64)
        ref, ours = [], []
        for k in range(args.rounds):  # alternate which loop goes first: neither always runs on a warm process
            for which in ("ref", "tpt") if k % 2 == 0 else ("tpt", "ref"):
                if which == "ref":
                    ref.append(reference_loop(data, args.preset, args.steps, args.micro, "cpu", bf16=False)[0])
                else:
                    ours.append(tpt_loop(data, tmp / f"out-cpu-{k}", args.preset, args.steps, args.micro, "cpu"))
        print(
            f"CPU  preset {args.preset}, seq_len {args.seq_len}, batch {args.micro}, fp32, {torch.get_num_threads()} "
            "threads"
        )
        print(
            f"     best:   reference {max(ref):,.0f} tok/s   tpt train {max(ours):,.0f} tok/s   ratio "
            f"{max(ours) / max(ref):.2f}x  (goal >= 1.0)"
        )
        print(
            f"     median: reference {float(np.median(ref)):,.0f} tok/s   tpt train {float(np.median(ours)):,.0f} "
            f"tok/s   ratio {float(np.median(ours)) / float(np.median(ref)):.2f}x"
        )
        print(f"     all rounds: ref {[round(r) for r in ref]}  tpt {[round(r) for r in ours]}")
        if not torch.cuda.is_available():
            print("GPU  skipped: no CUDA device")
            return 0
        (tmp / "gpu").mkdir()
        gpu_data = write_random_packed(tmp / "gpu", 2048, 64 * 8 + 64)
        ref_tps, params = reference_loop(gpu_data, args.gpu_preset, 12, 4, "cuda", bf16=True)
        tps = tpt_loop(gpu_data, tmp / "out-gpu", args.gpu_preset, 12, 4, "cuda")
        mfu = 6 * params * tps / (args.peak_tflops * 1e12)
        print(
            f"GPU  preset {args.gpu_preset} ({params / 1e9:.2f}B), seq_len 2048, batch 4, bf16: reference "
            f"{ref_tps:,.0f} tok/s, tpt train {tps:,.0f} tok/s, ratio {tps / ref_tps:.2f}x, MFU {mfu:.1%} (goal >= "
            "40%)"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
