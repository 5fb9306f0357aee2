"""The stages fit together: augment -> analyze/filter -> prepare -> train -> eval -> curves, all
through the real `tpt` command, on a tiny locally built model.  Each stage reads only what the
previous one wrote to disk, so this is the contract the README promises."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pyarrow.parquet as pq

DOCS = [
    "If n cubed plus 100 is divisible by n plus 10, then n plus 10 divides 900, so the largest n is 890.",
    "To multiply 37 by 24, compute 37 times 20 plus 37 times 4, which is 740 plus 148, or 888.",
    "A prime number has exactly two divisors: one and itself. Two is the only even prime.",
    "Water boils at 100 degrees Celsius at sea level; at altitude the pressure is lower.",
] * 6


def tpt(*args: str, ok: tuple[int, ...] = (0,), cwd: Path | None = None) -> subprocess.CompletedProcess:
    env = dict(os.environ, HF_HUB_OFFLINE="1", HF_DATASETS_OFFLINE="1", TRANSFORMERS_OFFLINE="1")
    proc = subprocess.run(
        [sys.executable, "-m", "tpt", *args], capture_output=True, text=True, env=env, cwd=cwd, timeout=600
    )
    assert proc.returncode in ok, (
        f"tpt {' '.join(args)} -> {proc.returncode}\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
    )
    return proc


def test_stages_chain_through_the_cli(tmp_path, tiny_model_dir, eval_data_dir):
    corpus = tmp_path / "corpus.jsonl"
    corpus.write_text(
        "".join(
            json.dumps({"id": f"d{i}", "text": t, "domain": ["math", "science"][i % 2]}) + "\n"
            for i, t in enumerate(DOCS)
        )
    )
    aug = tmp_path / "aug"
    tpt(
        "augment",
        str(corpus),
        "--out",
        str(aug),
        "--backend",
        "transformers",
        "--model",
        str(tiny_model_dir),
        "--max-thinking-tokens",
        "24",
        "--shard-size",
        "10",
        "--no-progress",
    )
    records = pq.read_table(aug / "data").to_pylist()
    assert sorted((r["id"], r["sample"]) for r in records) == sorted((f"d{i}", 0) for i in range(len(DOCS)))
    assert all(json.loads(r["meta"])["domain"] in ("math", "science") for r in records)

    stats = json.loads(tpt("analyze", "stats", str(aug), "--by", "domain", "--json").stdout)
    assert "domain" in json.dumps(stats)
    clean = tmp_path / "clean"
    # Random-weight thinking is noise: the filter may keep or drop rows, but it must account for each.
    tpt("filter", str(aug), "--out", str(clean), "--remove", "empty")
    kept = pq.read_table(clean / "data").num_rows
    removed = pq.read_table(clean / "removed").num_rows if (clean / "removed").exists() else 0
    assert kept + removed == len(DOCS)

    data = tmp_path / "data"
    tpt(
        "prepare",
        "--source",
        f"{aug}:tpt:1.0",
        "--source",
        f"{corpus}:vanilla:0.5",
        "--tokenizer",
        str(tiny_model_dir),
        "--seq-len",
        "64",
        "--val-sequences",
        "2",
        "--out",
        str(data),
    )
    index = json.loads((data / "index.json").read_text())
    assert index["seq_len"] == 64

    ckpt = tmp_path / "ckpt"
    tpt(
        "train",
        "--data",
        str(data),
        "--out",
        str(ckpt),
        "--model-preset",
        "0.1m",
        "--epochs",
        "2",
        "--batch-tokens",
        "256",
        "--micro-batch",
        "4",
        "--lr",
        "3e-3",
        "--threads",
        "1",
        "--no-progress",
        "--eval-every",
        "5",
    )
    metrics = [json.loads(line) for line in (ckpt / "metrics.jsonl").read_text().splitlines() if line.strip()]
    assert metrics and all(m.get("tokens", 0) >= 0 for m in metrics)
    assert (ckpt / "config.json").exists()

    results = tmp_path / "results"
    tpt(
        "eval",
        str(ckpt),
        "--tasks",
        "gsm8k",
        "--limit",
        "2",
        "--max-gen-toks",
        "8",
        "--data-dir",
        str(eval_data_dir),
        "--out",
        str(results),
    )
    (result_json,) = [p for p in results.glob("*.json")]
    assert "gsm8k" in json.dumps(json.loads(result_json.read_text()))

    curves = json.loads(tpt("analyze", "curves", "--run", f"tpt={ckpt}", "--json").stdout)
    assert curves
