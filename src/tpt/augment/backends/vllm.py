"""``vllm`` backend: vLLM's offline engine in-process, the fastest single-node path.

No HTTP and no server process: every pending request of a shard is queued in the engine at once
and vLLM's own scheduler batches them (prefix caching on: every prompt shares the template);
results stream back as they finish, so the runner checkpoints while the engine works.  Prompts are
the text the ``openai`` backend's chat endpoint would build (the model's chat template with the
assistant turn open), each request carries its own seed (same seed, same trajectory), and
generation stops at ``</think>``, EOS or ``--max-thinking-tokens``.

Engine settings come from ``tpt.vllm_launch`` (on a CPU: no prompt split by chunked prefill, which
crashes vLLM 0.32's CPU build when requests are seeded).  An exception from the engine fails the
requests still pending (retried on the next run); a dead engine raises ``EngineDied`` and stops the run.
"""

from __future__ import annotations

import itertools
import os
from pathlib import Path
from typing import TYPE_CHECKING

from tpt.augment.backends.base import EngineDied, GenRequest, GenResult, SamplingParams
from tpt.augment.backends.tokenize import TokenizerOps, require_tokenizer_path

if TYPE_CHECKING:
    from tpt.augment.config import BackendConfig, SamplingConfig


class VLLMBackend(TokenizerOps):
    name = "vllm"

    def __init__(self, config: BackendConfig, sampling: SamplingConfig):
        path = require_tokenizer_path(config.tokenizer_path(), "vllm backend")
        super().__init__(path)
        from tpt.vllm_launch import cpu_environment, engine_kwargs, guard_llvmlite_for_vllm, on_cpu, require_vllm

        require_vllm("--backend vllm")
        if on_cpu():  # read by vLLM at import: a small KV cache, its compile cache in the run folder
            cache = Path(config.cache_dir or "logs").resolve() / "vllm-cache"
            for key, value in cpu_environment(str(cache)).items():
                os.environ.setdefault(key, value)
        from vllm import LLM

        guard_llvmlite_for_vllm()
        kwargs = engine_kwargs(config.max_model_len)
        if config.local.dtype != "auto":
            kwargs["dtype"] = config.local.dtype
        self.llm = LLM(model=config.model, tokenizer=path, seed=sampling.seed, **kwargs)
        self.raw_prompt = config.raw_prompt
        self._ids = itertools.count()

    @property
    def max_model_len(self) -> int:
        return int(self.llm.llm_engine.model_config.max_model_len)

    def generate(self, requests: list[GenRequest], sampling: SamplingParams) -> list[GenResult]:
        results: list[GenResult] = [GenResult()] * len(requests)
        for i, result in self.generate_stream(requests, sampling):
            results[i] = result
        return results

    def generate_stream(self, requests: list[GenRequest], sampling: SamplingParams):
        """Yield (index, result) as the engine finishes each request.  All of them are queued in the
        engine at once, so its scheduler always has work and the runner checkpoints meanwhile."""
        from vllm.sampling_params import RequestOutputKind

        from vllm import SamplingParams as EngineSampling

        engine = self.llm.llm_engine
        pending: dict[str, int] = {}
        try:
            for i, request in enumerate(requests):
                params = EngineSampling(
                    temperature=sampling.temperature,
                    top_p=sampling.top_p,
                    seed=request.seed,
                    max_tokens=sampling.max_tokens,
                    stop=list(sampling.stop),
                    output_kind=RequestOutputKind.FINAL_ONLY,
                )
                prompt = request.prompt if self.raw_prompt else self.chat_prompt(request.prompt)
                request_id = f"tpt-{next(self._ids)}"  # outputs carry this id (the engine adds a suffix inside)
                engine.add_request(request_id, prompt, params)
                pending[request_id] = i
            while pending:
                if not engine.has_unfinished_requests():
                    raise RuntimeError(f"the engine finished its work without returning {len(pending)} requests")
                for out in engine.step():
                    if out.finished and out.request_id in pending:
                        yield pending.pop(out.request_id), _result(out)
        except Exception as exc:
            if _engine_dead(exc):
                raise EngineDied(f"vLLM's engine died in this process: {type(exc).__name__}: {exc}") from exc
            error = f"{type(exc).__name__}: {exc}"  # e.g. a prompt the engine refuses: the rest fail, retried next run
            for i in list(pending.values()):
                yield i, GenResult(error=error)
            pending.clear()
        finally:
            if pending:  # the consumer stopped early (error, Ctrl-C): the engine drops what is left
                engine.abort_request(list(pending))

    def close(self) -> None:
        llm, self.llm = getattr(self, "llm", None), None
        if llm is not None:
            engine = getattr(llm, "llm_engine", None)
            shutdown = getattr(getattr(engine, "engine_core", None), "shutdown", None)
            if callable(shutdown):
                shutdown()


def _result(out) -> GenResult:
    completion = out.outputs[0]
    return GenResult(
        text=completion.text,  # without the stop string, as an OpenAI server returns it
        finish_reason="length" if completion.finish_reason == "length" else "stop",
        prompt_tokens=len(out.prompt_token_ids or []),
        completion_tokens=len(completion.token_ids),
    )


def _engine_dead(exc: BaseException) -> bool:
    names = {type(e).__name__ for e in (exc, exc.__cause__, exc.__context__) if e is not None}
    return "EngineDeadError" in names or "EngineDeadError" in str(exc)


def make_backend(config: BackendConfig, sampling: SamplingConfig) -> VLLMBackend:
    return VLLMBackend(config, sampling)
