"""``openai`` backend: any OpenAI-compatible server (vLLM, SGLang, llama.cpp, ``transformers serve``).

Requests run asynchronously with ``--concurrency`` in flight.  Retries with exponential backoff
and jitter on 429, 5xx, timeouts and dropped connections; other 4xx fail at once.  The API key is
read from the environment variable named by ``--api-key-env`` and is scrubbed from every error.

Servers that put the thinking in a separate field (``reasoning_content`` / ``reasoning``, as vLLM
and SGLang do with a reasoning parser) are handled.  ``transformers serve`` only samples when the
*model's* generation config says ``do_sample``; it ignores a request's temperature otherwise but
accepts a ``generation_config`` JSON field in the body.  ``--server-sampling auto`` probes the
server once and sends that field when (and only when) it is needed, or stops with a clear error.
"""

from __future__ import annotations

import asyncio
import json
import os
import random
import sys
from typing import Any, Optional

import httpx

from tpt.augment.backends.base import GenRequest, GenResult, SamplingParams
from tpt.augment.backends.tokenize import TokenizerOps, require_tokenizer_path

RETRY_STATUS = {408, 409, 425, 429, 500, 502, 503, 504}
PROBE_PROMPT = "Write one sentence about any topic you like."


class SamplingIgnored(RuntimeError):
    """The server returns identical text for different seeds at temperature > 0."""


class OpenAIBackend(TokenizerOps):
    name = "openai"

    def __init__(self, config):
        if not config.base_url:
            raise ValueError("openai backend: --base-url (or --serve) is required")
        super().__init__(require_tokenizer_path(config.tokenizer_path(), "openai backend"))
        self.base_url = config.base_url.rstrip("/")
        self.model = config.model
        self.api = config.api
        self.raw_prompt = config.raw_prompt
        self.parallelism = self.concurrency = max(1, config.concurrency)
        self.timeout = config.timeout
        self.max_retries = config.max_retries
        self.retry_backoff = config.retry_backoff
        self._api_key = os.environ.get(config.api_key_env) or None
        self.send_generation_config = config.server_sampling == "generation-config"
        self._loop = asyncio.new_event_loop()
        self._client: Optional[httpx.AsyncClient] = None
        if config.server_sampling == "auto" and config.temperature > 0:
            self.send_generation_config = self._probe_sampling(config.sampling())

    # ---- public contract
    def generate(self, requests: list[GenRequest], sampling: SamplingParams) -> list[GenResult]:
        return self._loop.run_until_complete(self._generate_all(requests, sampling))

    def generate_stream(self, requests: list[GenRequest], sampling: SamplingParams):
        """Yield (index, result) as each request finishes, ``concurrency`` always in flight: a slow
        trajectory never holds back the others (nor the runner's checkpoints)."""
        self._loop.run_until_complete(self._open_client())
        gate = asyncio.Semaphore(self.concurrency)

        async def one(i: int, request: GenRequest) -> tuple[int, GenResult]:
            async with gate:
                return i, await self._with_retries(self._body(request.prompt, sampling, request.seed))

        pending = {self._loop.create_task(one(i, r)) for i, r in enumerate(requests)}
        try:
            while pending:
                done, pending = self._loop.run_until_complete(asyncio.wait(pending, return_when=asyncio.FIRST_COMPLETED))
                for task in done:
                    yield task.result()
        finally:  # the consumer stopped early (error, Ctrl-C): cancel what is still queued or in flight
            for task in pending:
                task.cancel()
            if pending:
                self._loop.run_until_complete(asyncio.gather(*pending, return_exceptions=True))

    def close(self) -> None:
        if self._client is not None:
            self._loop.run_until_complete(self._client.aclose())
            self._client = None
        self._loop.close()

    # ---- requests
    async def _open_client(self) -> None:
        if self._client is None:
            headers = {"Authorization": f"Bearer {self._api_key}"} if self._api_key else {}
            limits = httpx.Limits(max_connections=self.concurrency, max_keepalive_connections=self.concurrency)
            self._client = httpx.AsyncClient(headers=headers, timeout=self.timeout, limits=limits)

    async def _generate_all(self, requests: list[GenRequest], sampling: SamplingParams) -> list[GenResult]:
        await self._open_client()
        gate = asyncio.Semaphore(self.concurrency)

        async def one(request: GenRequest) -> GenResult:
            async with gate:
                return await self._with_retries(self._body(request.prompt, sampling, request.seed))

        return await asyncio.gather(*(one(r) for r in requests))

    def _body(self, prompt: str, sampling: SamplingParams, seed: int) -> dict[str, Any]:
        body: dict[str, Any] = {
            "model": self.model,
            "temperature": sampling.temperature,
            "top_p": sampling.top_p,
            "max_tokens": sampling.max_tokens,
            "stop": sampling.stop,
            "seed": seed,
        }
        if self.api == "chat":
            body["messages"] = [{"role": "user", "content": prompt}]
        else:
            body["prompt"] = prompt if self.raw_prompt else self.chat_prompt(prompt)
        if self.send_generation_config:
            # transformers serve builds its GenerationConfig from this JSON instead of the model's.
            body["generation_config"] = json.dumps({
                "do_sample": sampling.temperature > 0,
                "temperature": sampling.temperature,
                "top_p": sampling.top_p,
                "max_new_tokens": sampling.max_tokens,
            })
        return body

    async def _with_retries(self, body: dict[str, Any]) -> GenResult:
        path = "chat/completions" if self.api == "chat" else "completions"
        error = ""
        for attempt in range(1, self.max_retries + 2):
            delay = self.retry_backoff * 2 ** (attempt - 1) * (0.5 + random.random())
            try:
                response = await self._post(path, body)
                if response.status_code == 200:
                    result = self._parse(response.json())
                    result.attempts = attempt
                    return result
                error = f"HTTP {response.status_code}: {response.text}"  # truncated by _scrub, after scrubbing
                if response.status_code not in RETRY_STATUS:
                    return GenResult(error=self._scrub(error), attempts=attempt)
                delay = max(delay, _retry_after(response))
            except (httpx.TimeoutException, httpx.TransportError) as exc:
                error = f"{type(exc).__name__}: {exc}"
            except (ValueError, KeyError, IndexError, TypeError) as exc:  # a 200 with an unusable body
                error = f"bad response: {type(exc).__name__}: {exc}"
            if attempt <= self.max_retries:
                await asyncio.sleep(min(delay, 60.0))
        return GenResult(error=self._scrub(error), attempts=self.max_retries + 1)

    async def _post(self, path: str, body: dict[str, Any]) -> httpx.Response:
        # One attempt; tpt.augment.endpoints overrides this to pick one of several servers per attempt.
        return await self._client.post(f"{self.base_url}/{path}", json=body)

    def _parse(self, data: dict[str, Any]) -> GenResult:
        choice = data["choices"][0]
        if self.api == "chat":
            message = choice["message"]
            reasoning = message.get("reasoning_content") or message.get("reasoning")
            text = reasoning if reasoning else (message.get("content") or "")
        else:
            text = choice["text"]
        usage = data.get("usage") or {}
        completion_tokens = usage.get("completion_tokens")
        return GenResult(
            text=text,
            finish_reason="length" if choice.get("finish_reason") == "length" else "stop",
            prompt_tokens=int(usage.get("prompt_tokens") or 0),
            completion_tokens=int(completion_tokens if completion_tokens is not None else self.count_tokens(text)),
        )

    def _scrub(self, text: str) -> str:
        from tpt.io.scrub import scrub

        return scrub(text, [self._api_key])[:300]  # scrub first: a cut can leave a piece of the key

    # ---- does the server honour temperature?
    def _probe_sampling(self, sampling: SamplingParams) -> bool:
        """False: the server samples as asked.  True: it needs ``generation_config`` in the body."""
        probe = SamplingParams(temperature=1.0, top_p=1.0, max_tokens=32, stop=sampling.stop)
        for with_config in (False, True):
            self.send_generation_config = with_config
            texts = set()
            for seed in (1, 2, 3):
                res = self._loop.run_until_complete(self._generate_all([_probe_request(seed)], probe))[0]
                if res.error:
                    raise RuntimeError(f"openai backend: probe request to {self.base_url} failed: {res.error}")
                texts.add(res.text)
            if len(texts) > 1:
                if with_config:
                    print("tpt augment: the server ignores temperature/top_p unless the request carries a "
                          "generation_config (transformers serve); sending it with every request.", file=sys.stderr)
                return with_config
        raise SamplingIgnored(
            f"{self.base_url} returned identical text for 3 different seeds at temperature 1.0, with and without a "
            "generation_config field: it ignores sampling parameters, so --temperature/--top-p cannot be honoured. "
            "Enable sampling on the server (e.g. do_sample in the model's generation_config.json) or pass "
            "--server-sampling native to proceed with what the server does."
        )


def _probe_request(seed: int) -> GenRequest:
    from tpt.records import Document

    return GenRequest(doc=Document(id="probe", text=PROBE_PROMPT), sample=0, prompt=PROBE_PROMPT, seed=seed)


def _retry_after(response: httpx.Response) -> float:
    try:
        return min(float(response.headers.get("retry-after", 0)), 60.0)
    except ValueError:
        return 0.0


def make_backend(config) -> OpenAIBackend:
    if config.base_url and "," in config.base_url:  # several servers, balanced by load
        from tpt.augment.endpoints import BalancedOpenAIBackend

        return BalancedOpenAIBackend(config)
    return OpenAIBackend(config)
