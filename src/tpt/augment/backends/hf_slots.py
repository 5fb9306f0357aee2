"""``transformers-slots`` backend: the in-process model under tpt's own continuous batching.

Built for in-process generation on a GPU (see ``slot_engine``; its speed there is not measured yet,
docs/scale.md): ``--batch-size`` KV-cache slots, each refilled as soon as its trajectory ends,
attention through torch's built-in flash kernel, the decode step as a CUDA graph.  Results stream
back as they finish, so the runner checkpoints while the rest generate.

Each slot holds (longest prompt of the chunk, rounded up to 256) + ``--max-thinking-tokens``
tokens; when the slots do not fit in free GPU memory, fewer are used and a message says so.
Generation stops at EOS, at ``</think>`` and at the thinking budget; sampling is seeded once per
backend (``--seed``), not per request.
"""

from __future__ import annotations

import sys
from typing import Iterator

from tpt.augment.backends.base import GenRequest, GenResult, SamplingParams
from tpt.augment.backends.hf import TransformersBackend, backend_kwargs

PROMPT_ROUNDING = 256  # slot room for prompts grows in these steps, so most chunks reuse the cache
MEMORY_MARGIN_BYTES = 4 << 30  # activations of a prefill step, logits, the allocator's slack


class SlotBackend(TransformersBackend):
    name = "transformers-slots"

    def __init__(self, *args, seed: int = 0, **kwargs):
        super().__init__(*args, **kwargs)
        self.seed = seed
        self._engine = None
        self._engine_key: tuple | None = None

    def generate(self, requests: list[GenRequest], sampling: SamplingParams) -> list[GenResult]:
        results: list[GenResult] = [GenResult(error="no result")] * len(requests)
        for i, result in self.generate_stream(requests, sampling):
            results[i] = result
        return results

    def generate_stream(self, requests: list[GenRequest], sampling: SamplingParams) -> Iterator[tuple[int, GenResult]]:
        from tpt.augment.backends.slot_engine import SlotRequest

        prompts = [r.prompt if self.raw_prompt else self.chat_prompt(r.prompt) for r in requests]
        ids = [self.tokenizer(p, add_special_tokens=False)["input_ids"] for p in prompts]
        stop_ids, stop_sequences = self.stop_tokens(sampling)
        usable = [i for i, p in enumerate(ids) if p]
        for i in sorted(set(range(len(ids))) - set(usable)):  # one bad request costs itself only
            yield i, GenResult(error="empty prompt: nothing to generate from")
        work = [SlotRequest(ids[i], sampling.max_tokens, stop_ids, stop_sequences) for i in usable]
        pending = set(usable)
        try:
            engine = self._engine_for(sampling, max((len(ids[i]) for i in usable), default=1))
            for k, tokens, reason in engine.run(work):
                i = usable[k]
                pending.discard(i)
                yield i, self.completion(tokens, reason == "stop", sampling, len(ids[i]))
        except Exception as exc:  # e.g. out of memory: the unfinished rows go to failed/ and are retried
            self._engine, self._engine_key = None, None
            for i in sorted(pending):
                yield i, GenResult(error=f"{type(exc).__name__}: {exc}")

    def _engine_for(self, sampling: SamplingParams, longest_prompt: int):
        from tpt.augment.backends.slot_engine import SlotEngine

        prompt_room = -(-longest_prompt // PROMPT_ROUNDING) * PROMPT_ROUNDING
        key = (sampling.temperature, sampling.top_p, sampling.max_tokens)
        if self._engine is not None and self._engine_key == key and prompt_room + sampling.max_tokens <= self._engine.max_len:
            return self._engine
        self._engine = None  # free the old cache before sizing a new one
        max_len = prompt_room + sampling.max_tokens
        slots = self._slots_that_fit(max_len)
        self._engine = SlotEngine(self.model, slots, max_len, sampling.temperature, sampling.top_p, seed=self.seed)
        self._engine_key = key
        return self._engine

    def _slots_that_fit(self, max_len: int) -> int:
        import torch

        from tpt.augment.backends.slot_attention import SlotCache

        wanted = max(1, self.batch_size)
        if not str(self.device).startswith("cuda"):
            return wanted
        torch.cuda.empty_cache()
        free, _ = torch.cuda.mem_get_info()
        dtype_bytes = next(self.model.parameters()).element_size()
        per_slot = SlotCache.bytes_needed(self.model.config, 1, max_len, dtype_bytes)
        fits = int((free - MEMORY_MARGIN_BYTES) // per_slot)
        if fits < 1:
            raise MemoryError(f"one KV slot of {max_len} tokens needs {per_slot / 2**30:.1f} GiB; "
                              f"{free / 2**30:.1f} GiB free: lower --max-thinking-tokens")
        if fits < wanted:
            print(f"transformers-slots: {wanted} slots of {max_len} tokens need "
                  f"{wanted * per_slot / 2**30:.0f} GiB, {free / 2**30:.0f} GiB free: using {fits}", file=sys.stderr)
        return min(wanted, fits)

    def close(self) -> None:
        self._engine = None
        super().close()


def make_backend(config) -> SlotBackend:
    return SlotBackend(config.model, seed=config.seed, **backend_kwargs(config))
