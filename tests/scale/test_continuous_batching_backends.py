"""The continuous-batching in-process backends (transformers' own, and tpt's slot engine) through a whole run."""

from __future__ import annotations

import pyarrow.parquet as pq
import pytest

from tpt.augment.config import AugmentConfig
from tpt.augment.run import run_augment


@pytest.mark.parametrize("backend", ["transformers-cb", "transformers-slots"])
def test_backend_writes_one_record_per_key(tmp_path, corpus, tiny_model_dir, backend):
    config = AugmentConfig(
        inputs=[str(corpus(3))], out=tmp_path / "run", backend=backend, model=str(tiny_model_dir),
        max_thinking_tokens=8, samples=2, shard_size=3, batch_size=4, device="cpu", progress=False,
    )
    summary = run_augment(config)
    assert (summary.records, summary.failed, summary.rejected) == (6, 0, 0)
    rows = [r for p in sorted((tmp_path / "run" / "data").glob("*.parquet")) for r in pq.read_table(p).to_pylist()]
    assert sorted((r["id"], r["sample"]) for r in rows) == sorted((f"doc-{i}", s) for i in range(3) for s in range(2))
    for row in rows:
        assert 1 <= row["thinking_tokens"] <= 8
        assert row["backend"] == backend
        # Short of the budget means a stop token ended it; "length" means the budget was used up.
        if row["thinking_tokens"] < 8:
            assert row["finish_reason"] == "stop"
        if row["finish_reason"] == "length":
            assert row["thinking_tokens"] == 8
    # A second run finds everything done and generates nothing.
    assert run_augment(config).nothing_to_do
