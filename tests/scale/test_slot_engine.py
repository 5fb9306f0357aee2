"""tpt's slot engine (the `transformers-slots` backend): same tokens as `generate`, slots reused,
stops honoured, fallbacks that keep it correct, and on a GPU the flash kernel and the CUDA-graph
step compute what the reference does (a whole run: test_continuous_batching_backends.py)."""

from __future__ import annotations

import random

import pytest
import torch

from tpt.augment.backends.slot_attention import StepPlan
from tpt.augment.backends.slot_engine import SlotEngine, SlotRequest, sample


def small_model(device: str = "cpu", dtype=torch.float32, layers: int = 2):
    from transformers import Qwen2Config, Qwen2ForCausalLM

    config = Qwen2Config(vocab_size=512, hidden_size=64, intermediate_size=128, num_hidden_layers=layers,
                         num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=512,
                         bos_token_id=0, eos_token_id=1, pad_token_id=2)
    torch.manual_seed(0)
    return Qwen2ForCausalLM(config).to(device=device, dtype=dtype).eval()


def random_requests(n: int, seed: int = 0) -> list[SlotRequest]:
    rng = random.Random(seed)
    return [SlotRequest([rng.randrange(3, 512) for _ in range(rng.randrange(1, 24))], rng.randrange(1, 14)) for _ in range(n)]


@pytest.mark.parametrize("slots", [3, 12])  # fewer slots than requests (reuse), more (free slots decoded too)
def test_greedy_tokens_equal_generate(slots):
    model = small_model()
    requests = random_requests(9)
    engine = SlotEngine(model, slots=slots, max_len=40, temperature=0)
    finished = list(engine.run(requests))
    assert sorted(i for i, _, _ in finished) == list(range(9))  # each exactly once
    for i, tokens, reason in finished:
        ids = torch.tensor([requests[i].prompt])
        n = requests[i].max_new_tokens
        reference = model.generate(ids, attention_mask=torch.ones_like(ids), do_sample=False, max_new_tokens=n,
                                   min_new_tokens=n, pad_token_id=2)[0, ids.shape[1]:].tolist()
        assert tokens == reference, f"request {i}"
        assert reason == "length"
    # The engine leaves the model as it found it.
    assert model.config._attn_implementation != "tpt_slots"


def test_stop_tokens_and_sequences_end_a_request_early():
    model = small_model()
    prompt = [5, 6, 7, 8]
    free_run = next(SlotEngine(model, 2, 32, temperature=0).run([SlotRequest(prompt, 12)]))[1]
    stop_at = free_run[4]
    first = free_run.index(stop_at)
    engine = SlotEngine(model, 2, 32, temperature=0)
    by_id = {i: (t, r) for i, t, r in engine.run([
        SlotRequest(prompt, 12, stop_ids=frozenset({stop_at})),
        SlotRequest(prompt, 12, stop_sequences=(tuple(free_run[2:4]),)),
        SlotRequest(prompt, 3),
    ])}
    assert by_id[0] == (free_run[: first + 1], "stop")
    assert by_id[1][0][-2:] == free_run[2:4] and by_id[1][1] == "stop" and len(by_id[1][0]) <= 4
    assert by_id[2] == (free_run[:3], "length")


def test_a_request_that_cannot_fit_a_slot_is_refused_with_its_sizes():
    engine = SlotEngine(small_model(), 2, 16, temperature=0)
    with pytest.raises(ValueError, match="request 1: prompt 10 \\+ 8 new tokens does not fit a slot of 16"):
        list(engine.run([SlotRequest([5] * 4, 4), SlotRequest([5] * 10, 8)]))


def test_top_p_keeps_only_the_nucleus():
    logits = torch.log(torch.tensor([[0.5, 0.3, 0.15, 0.05]] * 2000))
    draws = sample(logits, 1.0, 0.7, torch.Generator().manual_seed(0))
    assert set(draws.tolist()) == {0, 1}  # 0.5 + 0.3 covers 0.7: tokens 2 and 3 are never drawn
    assert 0.55 < (draws == 0).float().mean().item() < 0.70  # renormalised 0.5 / 0.8 = 0.625


@pytest.mark.gpu
def test_flash_kernel_matches_reference_attention_on_gpu():
    model = small_model("cuda", torch.bfloat16)
    engine = SlotEngine(model, slots=4, max_len=64, temperature=0)
    cache = engine.cache
    assert cache.use_flash, "the start-up check rejected torch's flash kernel on this GPU"
    heads, dim = 4, 16
    torch.manual_seed(1)
    for decode, lengths in ((False, [5, 17, 9]), (True, [1, 1, 1])):
        slots = torch.tensor([0, 2, 3], device="cuda")
        used = torch.tensor([5, 30, 12] if decode else lengths, device="cuda", dtype=torch.int32)
        starts = slots * 64
        rows = torch.cat([starts[i] + used[i] - lengths[i] + torch.arange(lengths[i], device="cuda") for i in range(3)])
        groups = cache.groups if decode else 1
        cu_q = torch.tensor([0] + [sum(lengths[: i + 1]) * groups for i in range(3)], device="cuda", dtype=torch.int32)
        plan = StepPlan(cache, rows, cu_q, torch.cat([starts, starts[-1:] + 64]).int(), used, max(lengths) * groups, decode)
        for keys, values in cache.layers:
            keys.normal_(), values.normal_()
        q = torch.randn(sum(lengths), heads, dim, device="cuda", dtype=torch.bfloat16)
        k = torch.randn(sum(lengths), 2, dim, device="cuda", dtype=torch.bfloat16)
        v = torch.randn_like(k)
        cache.use_flash = True
        fast = cache.attend(0, q, k, v, plan, dim**-0.5)
        cache.use_flash = False
        slow = cache.attend(0, q, k, v, plan, dim**-0.5)
        torch.testing.assert_close(fast.float(), slow.float(), atol=2e-2, rtol=2e-2)


@pytest.mark.gpu
def test_cuda_graph_decode_gives_the_eager_tokens_on_gpu():
    model = small_model("cuda", torch.bfloat16)
    requests = random_requests(10)
    outputs = []
    for graph in (False, True):
        engine = SlotEngine(model, slots=4, max_len=48, temperature=0, cuda_graph=graph)
        outputs.append(sorted(engine.run(requests)))
        assert (engine._graph is not None) == graph, "the decode step was not captured"
    assert outputs[0] == outputs[1]
    assert sorted(len(t) for _, t, _ in outputs[1]) == sorted(r.max_new_tokens for r in requests)


def test_sampling_is_reproducible_from_the_engine_seed():
    model = small_model()
    runs = [sorted(SlotEngine(model, 3, 40, temperature=0.6, top_p=0.9, seed=seed).run(random_requests(5)))
            for seed in (7, 7, 8)]
    assert runs[0] == runs[1]
    assert runs[0] != runs[2]


def test_an_unusable_flash_kernel_falls_back_to_the_reference_with_a_warning():
    # On CPU the flash kernel does not exist: the start-up check must catch that, not the first step.
    engine = SlotEngine(small_model(dtype=torch.bfloat16), 2, 16, temperature=0)
    with pytest.warns(UserWarning, match="flash varlen kernel is unusable here"):
        assert engine.cache.flash_agrees() is False
    assert not engine.use_flash
    assert [len(t) for _, t, _ in engine.run([SlotRequest([5, 6], 3)])] == [3]


def test_slots_backend_fails_only_the_request_it_cannot_run(tiny_model_dir):
    from tpt.augment.backends.base import GenRequest, SamplingParams
    from tpt.augment.backends.hf_slots import SlotBackend
    from tpt.records import Document

    backend = SlotBackend(str(tiny_model_dir), batch_size=2, device="cpu", raw_prompt=True)
    requests = [GenRequest(Document(f"d{i}", text), 0, text, i) for i, text in enumerate(["one two", "", "three"])]
    results = backend.generate(requests, SamplingParams(max_tokens=4))
    assert results[1].error == "empty prompt: nothing to generate from"
    assert [r.error for r in (results[0], results[2])] == [None, None]
    assert all(1 <= r.completion_tokens <= 4 for r in (results[0], results[2]))


def test_a_sliding_window_model_is_refused():
    model = small_model()
    model.config.layer_types = ["sliding_attention", "full_attention"]
    with pytest.raises(ValueError, match="sliding-window layers are not supported"):
        SlotEngine(model, 2, 16)


def test_a_failed_graph_capture_leaves_the_engine_eager_and_correct():
    # No CUDA here: capturing must fail, say so once, and the same tokens must still come out.
    model = small_model()
    expected = sorted(SlotEngine(model, 3, 40, temperature=0).run(random_requests(4)))
    engine = SlotEngine(model, 3, 40, temperature=0)
    engine.use_graph = True
    with pytest.warns(UserWarning, match="not captured as a CUDA graph"):
        assert sorted(engine.run(random_requests(4))) == expected
    assert engine.use_graph is False and engine._graph is None


def test_freed_slots_are_refilled_in_groups_with_the_same_tokens():
    model = small_model()
    requests = random_requests(12)
    expected = sorted(SlotEngine(model, 6, 40, temperature=0).run(requests))
    engine = SlotEngine(model, 6, 40, temperature=0, refill_batch=3)
    prefills = []
    original = engine._prefill
    engine._prefill = lambda runs: prefills.append(len(runs)) or original(runs)
    assert sorted(engine.run(requests)) == expected
    assert prefills[0] == 6 and sum(prefills) == 12
    # After the first fill, a pass waits for 3 free slots, unless the queue is shorter than that.
    assert all(n >= 3 for n in prefills[1:-1]), prefills
