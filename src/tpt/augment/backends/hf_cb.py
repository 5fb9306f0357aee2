"""``transformers-cb`` backend: the in-process model with transformers' continuous batching (opt-in).

Static batches (the ``transformers`` backend) decode until their longest member is done, so
short trajectories leave their slots idle; continuous batching (paged KV cache) gives a finished
request's slot to the next one at once, which is what matters when thinking lengths vary from a
few hundred to 8k tokens.  One manager (a background generation thread) lives as long as the
backend and is fed every chunk's requests at once: ``parallelism`` (``--batch-size``) sets how
many requests a chunk holds, so use a large value (e.g. 256-1024 on a GPU).

Differences from ``transformers``: generation stops on EOS and on ``</think>`` when it is one
token (as in R1-style tokenizers); a multi-token stop string is cut after the fact.  Sampling is
seeded once per backend (``--seed``), not per request: reruns are not bit-identical.
"""

from __future__ import annotations

import math
import time

from tpt.augment.backends.base import GenRequest, GenResult, SamplingParams
from tpt.augment.backends.hf import TransformersBackend, backend_kwargs

PAGE_SIZE = 256  # ContinuousBatchingConfig's default tokens per page
CPU_PROMPT_TOKENS = 4096  # prompt room per request in a CPU cache (2,048 document tokens + template)
RESULT_TIMEOUT_S = 3600.0  # no result at all for this long: the generation thread is stuck


class ContinuousBatchingBackend(TransformersBackend):
    name = "transformers-cb"

    def __init__(self, *args, seed: int = 0, max_batch_tokens: int | None = None, **kwargs):
        super().__init__(*args, **kwargs)
        self.seed = seed
        self.max_batch_tokens = max_batch_tokens
        self._manager = None
        self._manager_sampling: SamplingParams | None = None

    def generate(self, requests: list[GenRequest], sampling: SamplingParams) -> list[GenResult]:
        prompts = [r.prompt if self.raw_prompt else self.chat_prompt(r.prompt) for r in requests]
        ids = [self.tokenizer(p, add_special_tokens=False)["input_ids"] for p in prompts]
        try:
            manager = self._manager_for(sampling)
            stop_ids = sorted(self.stop_tokens(sampling)[0])  # multi-token stops: cut after the fact
            order = {manager.add_request(p, max_new_tokens=sampling.max_tokens, eos_token_id=stop_ids): i for i, p in enumerate(ids)}
            outputs = self._collect(manager, set(order))
        except Exception as exc:  # the manager failed: the whole chunk goes to failed/ and is retried
            self.close_manager()
            return [GenResult(error=f"{type(exc).__name__}: {exc}") for _ in requests]
        results: list[GenResult] = [GenResult(error="no result")] * len(requests)
        for request_id, out in outputs.items():
            i = order[request_id]
            if out.error:
                results[i] = GenResult(error=str(out.error))
            else:
                tokens = list(out.generated_tokens)
                results[i] = self.completion(tokens, bool(tokens) and tokens[-1] in stop_ids, sampling, len(ids[i]))
        return results

    def _manager_for(self, sampling: SamplingParams):
        """One long-lived manager; rebuilt only if the sampling settings change."""
        if self._manager is not None and self._manager_sampling == sampling and self._manager.is_running():
            return self._manager
        self.close_manager()
        from transformers import ContinuousBatchingConfig, GenerationConfig

        sample = sampling.temperature > 0
        gen = GenerationConfig(
            do_sample=sample,
            temperature=sampling.temperature if sample else None,
            top_p=sampling.top_p if sample else None,
            max_new_tokens=sampling.max_tokens,
            eos_token_id=self.tokenizer.eos_token_id,
            pad_token_id=self.tokenizer.pad_token_id,
        )
        sizes = {"max_batch_tokens": self.max_batch_tokens, **self._cpu_cache_size(sampling)}
        cb = ContinuousBatchingConfig(seed=self.seed, **sizes)
        self._manager = self.model.init_continuous_batching(generation_config=gen, continuous_batching_config=cb)
        self._manager.start()
        self._manager_sampling = sampling
        return self._manager

    def _cpu_cache_size(self, sampling: SamplingParams) -> dict:
        """On a GPU the KV cache is sized from free GPU memory (the point); on CPU transformers would
        take 90% of *system* RAM, so size it for one chunk of ``parallelism`` requests instead."""
        if self.device != "cpu":
            return {}
        pages_per_request = math.ceil((CPU_PROMPT_TOKENS + sampling.max_tokens) / PAGE_SIZE)
        return {"num_blocks": self.parallelism * pages_per_request, "max_batch_tokens": self.max_batch_tokens or 512}

    @staticmethod
    def _collect(manager, pending: set[str]) -> dict:
        outputs, last = {}, time.monotonic()
        while pending:
            result = manager.get_result(timeout=1)
            if result is None:
                if not manager.is_running():
                    raise RuntimeError("continuous batching thread stopped")
                if time.monotonic() - last > RESULT_TIMEOUT_S:
                    raise TimeoutError(f"no result for {RESULT_TIMEOUT_S:.0f} s")
                continue
            last = time.monotonic()
            if result.is_finished() and result.request_id in pending:
                outputs[result.request_id] = result
                pending.discard(result.request_id)
        return outputs

    def close_manager(self) -> None:
        if self._manager is not None:
            try:
                self._manager.stop(block=True, timeout=30)
            finally:
                self._manager = None

    def close(self) -> None:
        self.close_manager()
        super().close()


def make_backend(config) -> ContinuousBatchingBackend:
    return ContinuousBatchingBackend(config.model, seed=config.seed, **backend_kwargs(config))
