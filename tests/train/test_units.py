"""Pure pieces of tpt train: counts, presets, batch layout, data order, schedule, masked loss."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from tpt.train.config import format_count, parse_count, parse_counts
from tpt.train.data import BatchLayout, DataOrder
from tpt.train.plan import Schedule
from tpt.train.presets import PRESETS, preset_config


def test_counts_parse_and_format():
    assert parse_count("50M") == 50_000_000
    assert parse_count("1.5B") == 1_500_000_000
    assert parse_count("2048") == 2048 and parse_count(300) == 300
    assert parse_counts(["1M,2M", "500K"], "--save-at") == [500_000, 1_000_000, 2_000_000]
    assert [format_count(n) for n in (1_000_000, 2_500_000, 1234, 10_000, 999)] == [
        "1M",
        "2.5M",
        "1.234K",
        "10K",
        "999",
    ]
    with pytest.raises(ValueError, match="cannot read"):
        parse_count("lots")


@pytest.mark.parametrize("name", [n for n in PRESETS if n != "0.1m"])
def test_preset_names_match_their_non_embedding_size(name):
    size = float(name[:-1]) * (1e6 if name.endswith("m") else 1e9)
    assert abs(PRESETS[name].non_embedding_params() - size) / size < 0.25


@pytest.mark.parametrize("name", ["0.1m", "0.5m", "1m"])
def test_preset_parameter_formula_matches_the_real_model(name):
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_config(preset_config(name, vocab_size=320, seq_len=64, eos_id=0, pad_id=1))
    hidden = PRESETS[name].hidden
    assert sum(p.numel() for p in model.parameters()) == PRESETS[name].non_embedding_params() + 320 * hidden


def test_batch_layout_fills_the_global_batch_exactly():
    layout = BatchLayout.plan(global_batch=24, micro=5, world=2)  # 12 per process: micro 4 x accum 3
    assert (layout.global_batch, layout.micro, layout.accum) == (24, 4, 3)
    odd = BatchLayout.plan(global_batch=7, micro=8, world=2)  # rounded up to a multiple of world
    assert odd.global_batch == 8 and odd.micro * odd.accum * odd.world == 8


def test_data_order_is_epoch_permutations_and_ranks_partition_a_step():
    order = DataOrder(np.arange(10, 20), seed=3)
    first, second = order.rows_at(0, 10), order.rows_at(10, 10)
    assert sorted(first) == list(range(10, 20)) and sorted(second) == list(range(10, 20))
    assert not np.array_equal(first, second)  # a new shuffle each epoch
    assert np.array_equal(order.rows_at(7, 6), np.concatenate([first[7:], second[:3]]))
    assert np.array_equal(DataOrder(np.arange(10, 20), seed=3).rows_at(13, 4), order.rows_at(13, 4))  # pure function
    single = BatchLayout.plan(8, 2, 1).micro_rows(order, 4, rank=0)
    ranks = [BatchLayout.plan(8, 2, 2).micro_rows(order, 4, rank=r) for r in (0, 1)]
    assert np.array_equal(np.concatenate(single), np.concatenate([np.concatenate(r) for r in ranks]))


def test_schedule_warms_up_then_decays_to_the_floor():
    s = Schedule(peak=1.0, min_ratio=0.1, warmup=4, total=20)
    assert s.lr(0) == pytest.approx(0.25) and s.lr(3) == pytest.approx(1.0)
    lrs = [s.lr(k) for k in range(4, 21)]
    assert all(a >= b for a, b in zip(lrs, lrs[1:])) and lrs[-1] == pytest.approx(0.1)


def test_masked_loss_ignores_targets_outside_the_mask():
    from transformers import AutoModelForCausalLM

    from tpt.train.loop import token_loss_sum

    torch.manual_seed(0)
    model = AutoModelForCausalLM.from_config(
        preset_config("0.1m", vocab_size=64, seq_len=16, eos_id=0, pad_id=1)
    ).eval()
    tokens = torch.randint(0, 64, (2, 16))
    mask = torch.zeros(2, 16, dtype=torch.bool)
    mask[:, :8] = True  # targets 1..7 count; a causal model's loss on them cannot see tokens 8..15
    with torch.no_grad():
        base = token_loss_sum(model, tokens, mask, torch.no_grad)
        tail_changed = tokens.clone()
        tail_changed[:, 8:] = (tail_changed[:, 8:] + 1) % 64
        head_changed = tokens.clone()
        head_changed[:, 3] = (head_changed[:, 3] + 1) % 64
        full = token_loss_sum(model, tokens, None, torch.no_grad)
        logits = model(input_ids=tokens[:, :-1]).logits
    assert torch.allclose(token_loss_sum(model, tail_changed, mask, torch.no_grad), base)
    assert not torch.allclose(token_loss_sum(model, head_changed, mask, torch.no_grad), base)
    manual = torch.nn.functional.cross_entropy(logits[:, :7].flatten(0, 1), tokens[:, 1:8].flatten(), reduction="sum")
    assert torch.allclose(base, manual, rtol=1e-5)
    assert full > base  # all 2 x 15 targets vs 2 x 7
