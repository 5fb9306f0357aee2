"""Sampled requests to a server carry distinct (still reproducible) seeds; greedy ones are unchanged."""

from __future__ import annotations

from tpt.evaluate.server_lm import SeededLocalChatCompletions, SeededLocalCompletions


def payload_seeds(lm, gen_kwargs: dict, n: int, prompt) -> list[int]:
    return [lm._create_payload(prompt, generate=True, gen_kwargs=dict(gen_kwargs), seed=1234)["seed"] for _ in range(n)]


def test_sampled_draws_get_distinct_seeds():
    lm = SeededLocalCompletions(
        model="m",
        base_url="http://127.0.0.1:9/v1/completions",
        tokenizer_backend=None,
        tokenized_requests=False,
        seed=1234,
    )
    sampled = {"until": ["Problem:"], "do_sample": True, "temperature": 0.6, "max_gen_toks": 4}
    greedy = {"until": ["Question:"], "do_sample": False, "temperature": 0.0, "max_gen_toks": 4}
    assert payload_seeds(lm, greedy, 3, "q") == [1234, 1234, 1234]
    assert payload_seeds(lm, sampled, 3, "q") == [1234, 1235, 1236]
    payload = lm._create_payload("q", generate=True, gen_kwargs=dict(sampled), seed=1234)
    assert payload["temperature"] == 0.6 and payload["prompt"] == "q" and payload["stop"] == ["Problem:"]
    chat = SeededLocalChatCompletions(
        model="m",
        base_url="http://127.0.0.1:9/v1/chat/completions",
        tokenizer_backend=None,
        tokenized_requests=False,
        seed=7,
    )
    assert payload_seeds(chat, sampled, 2, [{"role": "user", "content": "q"}]) == [1234, 1235]
