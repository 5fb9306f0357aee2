"""--doc-attention: per-document attention and positions inside packed rows (issue 4)."""

from __future__ import annotations

import contextlib
import json

import numpy as np
import pytest
import torch

from tpt.config import build, flat_values
from tpt.prepare.packed import PackedDataset
from tpt.train import TrainConfig, TrainInputError, train
from tpt.train.data import document_positions, read_batch
from tpt.train.loop import token_loss_sum
from tpt.train.presets import preset_config

NO_AUTOCAST = contextlib.nullcontext


def test_positions_restart_at_every_document_start():
    rows = document_positions([np.array([0, 3, 4]), np.array([2]), np.array([], dtype=np.int64)], 6)
    assert rows.tolist() == [
        [0, 1, 2, 0, 0, 1],  # documents of 3, 1 and 2 tokens
        [0, 1, 0, 1, 2, 3],  # a fragment continuing the previous row's document, then a new one
        [0, 1, 2, 3, 4, 5],  # one document's middle
    ]


def tiny_model(attn: str):
    from transformers import AutoModelForCausalLM

    torch.manual_seed(0)
    config = preset_config("0.1m", vocab_size=64, seq_len=32, eos_id=0, pad_id=1)
    config._attn_implementation = attn
    return AutoModelForCausalLM.from_config(config).eval()


@pytest.mark.parametrize("attn", ["sdpa", "eager"])
def test_packed_row_loss_is_the_sum_of_the_documents_run_alone(attn):
    """Row 0 = doc a (12 tokens) + doc b (20); row 1 = doc c (5) + doc d (27): per-document
    attention gives the losses of the four documents run one by one.  The boundary target (first
    token of the next document, predicted from the last token of the previous one) does not
    count: an unpacked document has no target for its first token either."""
    model = tiny_model(attn)
    gen = torch.Generator().manual_seed(1)
    docs = [torch.randint(2, 64, (1, n), generator=gen) for n in (12, 20, 5, 27)]
    rows = torch.cat([torch.cat(docs[:2], 1), torch.cat(docs[2:], 1)])  # (2, 32)
    positions = document_positions([np.array([0, 12]), np.array([0, 5])], 32)  # (2, 32)
    targets = positions != 0  # what read_batch passes as the targets mask
    with torch.no_grad():
        packed = token_loss_sum(model, rows, targets, NO_AUTOCAST, positions)
        alone = sum(token_loss_sum(model, d, None, NO_AUTOCAST) for d in docs)
        crossing = token_loss_sum(model, rows, targets, NO_AUTOCAST)  # same targets, attention across documents
    assert int(targets[:, 1:].sum()) == sum(d.shape[1] - 1 for d in docs)  # the same 28 targets
    assert abs(float(packed - alone)) < 1e-3  # float32 sums of ~250
    assert abs(float(crossing - alone)) > 2e-2  # attention across documents is told apart (a random model: small)


def test_read_batch_drops_boundary_targets_and_restarts_positions(packed_dir):
    ds = PackedDataset(packed_dir, "train")
    rows = np.arange(6)
    tokens, mask, positions = read_batch(ds, rows, use_mask=False, doc_attention=True)
    eos = int(ds.index["eos_id"])
    plain_tokens, plain_mask, plain_positions = read_batch(ds, rows, use_mask=False)
    assert torch.equal(tokens, plain_tokens) and plain_mask is None and plain_positions is None
    assert sum(len(ds.doc_starts(int(row))) > 0 for row in rows) >= 3  # documents do begin inside these rows
    for b, row in enumerate(rows):
        starts = ds.doc_starts(int(row))
        assert positions[b, starts].eq(0).all()
        if len(starts) == 0:  # a row inside one long document: positions simply continue
            assert positions[b, 1:].sub(positions[b, :-1]).eq(1).all() and mask[b, 1:].all()
        after_start = [s for s in starts if s > 0]
        assert tokens[b, [s - 1 for s in after_start]].eq(eos).all()  # fixture documents end with EOS
        assert not mask[b, after_start].any() and int((~mask[b, 1:]).sum()) == len(after_start)


def test_training_with_doc_attention_learns_and_is_fingerprinted(packed_dir, tmp_path):
    from transformers import AutoModelForCausalLM

    cfg = build(
        TrainConfig,
        data=packed_dir,
        out=tmp_path / "out",
        model_preset="0.1m",
        batch_tokens="256",
        micro_batch=4,
        lr=3e-3,
        threads=1,
        progress=False,
        eval_sequences=16,
        tokens="3K",
        log_every=4,
        eval_every=0,
        doc_attention=True,
    )
    result = train(cfg)
    losses = [json.loads(line)["loss"] for line in result.metrics.read_text().splitlines() if '"loss"' in line]
    assert losses[-1] < losses[0] - 0.5
    assert result.steps == 12 and result.val_loss is not None and np.isfinite(result.val_loss)
    model = AutoModelForCausalLM.from_pretrained(result.checkpoint, local_files_only=True)
    assert model.config.model_type == "qwen2"  # a plain HF checkpoint
    with pytest.raises(TrainInputError, match="doc_attention"):
        train(build(TrainConfig, **{**flat_values(cfg), "doc_attention": False}))
    plain = train(build(TrainConfig, **{**flat_values(cfg), "doc_attention": False, "out": tmp_path / "plain"}))
    assert plain.val_loss != pytest.approx(result.val_loss, rel=1e-4)  # the flag reaches the model


def test_attention_implementations_that_would_ignore_the_documents_are_refused():
    from types import SimpleNamespace

    from tpt.train.checks import check_doc_attention

    check_doc_attention(SimpleNamespace(_attn_implementation="sdpa"), "preset 0.1m")
    with pytest.raises(TrainInputError, match="flash_attention_2"):
        check_doc_attention(SimpleNamespace(_attn_implementation="flash_attention_2"), "init ckpt")
