"""Budget accounting with exact numbers, on in-memory source caches of known document lengths."""

import numpy as np
import pytest

from tpt.prepare.cache import SourceCache
from tpt.prepare.config import PrepareError, parse_source
from tpt.prepare.mixing import Mixer, assign_targets, training_pool, val_threshold


def cache(spec: str, lengths: list[int], first_id: int = 0, key_offset: int = 0) -> SourceCache:
    """Documents whose ids are (doc index + first_id) repeated over the document's length."""
    ids = np.concatenate([np.full(n, first_id + i, dtype=np.uint32) for i, n in enumerate(lengths)])
    offsets = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64)
    keys = np.arange(len(lengths), dtype=np.uint64) * 10 + key_offset
    return SourceCache(parse_source(spec), ids, offsets, keys)


def run_mixer(caches, pools, targets, total, seed=0):
    emitted, docs = [0] * len(caches), []
    for i, ids in Mixer(caches, pools, targets, seed):
        take = min(len(ids), total - sum(emitted))
        emitted[i] += take
        docs.append((i, int(ids[0])))
        if sum(emitted) == total:
            return emitted, docs


def test_weight_plus_epochs_exact_accounting():
    specs = [parse_source("a:tpt:1"), parse_source("b:vanilla:x2")]
    targets, rows = assign_targets(specs, [1000, 400], budget=2000, seq_len=100)
    assert rows == 20 and targets == [1200.0, 800.0]  # b: exactly 2 x 400; a: the rest
    # rounding down to whole sequences comes out of the weighted source, not the x2 one
    assert assign_targets(specs, [1000, 400], budget=2099, seq_len=100) == ([1200.0, 800.0], 20)
    a, b = cache("a:tpt", [10] * 100), cache("b:vanilla", [10] * 40, first_id=1000)
    pools = [np.arange(100), np.arange(40)]
    emitted, docs = run_mixer([a, b], pools, targets, rows * 100)
    assert emitted == [1200, 800]  # epochs seen: a 1.2, b 2.0
    b_docs = [d for i, d in docs if i == 1]
    assert sorted(b_docs) == sorted(list(range(1000, 1040)) * 2)  # every b document exactly twice
    assert b_docs[:40] != b_docs[40:]  # the second epoch is reshuffled


def test_weights_only_share_the_budget():
    specs = [parse_source("a:tpt:1.0"), parse_source("b:vanilla:0.125")]
    targets, rows = assign_targets(specs, [10_000, 10_000], budget=9_000, seq_len=100)
    assert rows == 90 and targets == [8000.0, 1000.0]


def test_budget_rounds_down_to_whole_sequences():
    specs = [parse_source("a:tpt:3"), parse_source("b:tpt:1")]
    targets, rows = assign_targets(specs, [10_000, 10_000], budget=1_050, seq_len=100)
    assert rows == 10 and targets == [750.0, 250.0]


def test_default_budget_reads_the_scarcest_weighted_source_once():
    specs = [parse_source("a:tpt:1.0"), parse_source("b:vanilla:0.125")]
    # a: 1000 tokens at weight 1 -> budget 1125 (b reads 125 of its 400); rounded to 11 x 100
    targets, rows = assign_targets(specs, [1000, 400], budget=None, seq_len=100)
    assert rows == 11
    assert targets == pytest.approx([1100 / 1.125, 1100 * 0.125 / 1.125])


def test_budget_that_does_not_fit_is_refused():
    with pytest.raises(PrepareError, match="xN sources alone need 800"):
        assign_targets([parse_source("a:tpt:1"), parse_source("b:tpt:x2")], [1000, 400], budget=500, seq_len=10)
    with pytest.raises(PrepareError, match="give only 800"):
        assign_targets([parse_source("b:tpt:x2")], [400], budget=5000, seq_len=10)
    with pytest.raises(PrepareError, match="smaller than one --seq-len 2048"):
        assign_targets([parse_source("b:tpt:x1")], [400], budget=None, seq_len=2048)


def test_constrained_pool_repeats_a_fixed_set_of_documents():
    a = cache("a:tpt", [10] * 100)
    pool = training_pool(a, 0, None, seed=0, cap=250)
    assert len(pool) == 25  # the first 250 tokens of the seeded order
    targets, rows = assign_targets([parse_source("a:tpt:1")], [250], budget=1000, seq_len=100)
    emitted, docs = run_mixer([a], [pool], targets, rows * 100)
    assert emitted == [1000]  # four epochs over the same 25 documents
    assert sorted(d for _, d in docs) == sorted(pool.tolist() * 4)


def test_validation_threshold_and_pool_exclusion():
    a, b = cache("a:tpt", [10] * 10), cache("b:vanilla", [10] * 10, key_offset=5)
    # keys: a 0,10,20..; b 5,15,25..: 35 tokens need 4 docs -> keys 0,5,10,15
    threshold = val_threshold([a, b], 35)
    assert threshold == 15
    assert len(training_pool(a, 0, threshold, 0, None)) == 8 and len(training_pool(b, 1, threshold, 0, None)) == 8
    with pytest.raises(PrepareError, match="needs 500 tokens but all sources together hold 200"):
        val_threshold([a, b], 500)


def test_mixer_is_deterministic_for_a_seed():
    a, b = cache("a:tpt", [7, 3, 9, 4] * 10), cache("b:tpt", [5] * 30, first_id=100)
    pools = [training_pool(a, 0, None, 1, None), training_pool(b, 1, None, 1, None)]
    first = run_mixer([a, b], pools, [300.0, 300.0], 600, seed=1)
    again = run_mixer(
        [a, b], [training_pool(a, 0, None, 1, None), training_pool(b, 1, None, 1, None)], [300.0, 300.0], 600, seed=1
    )
    other = run_mixer(
        [a, b], [training_pool(a, 0, None, 2, None), training_pool(b, 1, None, 2, None)], [300.0, 300.0], 600, seed=2
    )
    assert first == again and first[1] != other[1]
