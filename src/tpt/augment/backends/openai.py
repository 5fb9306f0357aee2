"""``openai`` backend: any OpenAI-compatible server (vLLM, SGLang, llama.cpp, ``transformers serve``).

Requests run asynchronously with ``--concurrency`` in flight.  Retries with exponential backoff
and jitter on 429, 5xx, timeouts and dropped connections; other 4xx fail at once.  The API key is
read from the environment variable named by ``--api-key-env`` and is scrubbed from every error.

Servers that put the thinking in a separate field (``reasoning`` in vLLM >= 0.10 with a reasoning
parser, ``reasoning_content`` in SGLang and older vLLM) are handled.

A dead server is one event, not thousands of failures: when a request finds nothing listening
(connection refused) or the engine reports itself dead, the backend checks the server (its process
under ``--serve``, else ``/health``); if it is gone, ``EngineDied`` stops the run with the server's
last log lines, what finished is kept, and nothing is written to the failed table for it.

``transformers serve`` only samples when the *model's* generation config says ``do_sample``; it
ignores a request's temperature otherwise but accepts a ``generation_config`` JSON field in the body.
``--server-sampling auto`` probes the server once and sends that field when (and only when) it is
needed, or stops with a clear error.  vLLM and SGLang (they say so in their model list's ``owned_by``)
apply a request's temperature, top-p and seed as sent, so they are not probed: the probe is a
generation round trip inside every run's start-up, and on a short run that is time the server idles.

Requests are sent by ``--concurrency`` worker tasks that take the shard's requests in order, so the
client's work per finished request stays the same whether the shard holds 300 documents or 300,000;
the event loop runs in its own thread while the runner writes records (``generate_stream``).
"""

from __future__ import annotations

import asyncio
import json
import os
import queue
import random
import sys
import threading
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import httpx

from tpt.augment.backends.base import EngineDied, GenRequest, GenResult, SamplingParams

if TYPE_CHECKING:
    from tpt.augment.config import BackendConfig, SamplingConfig
from tpt.augment.backends.tokenize import TokenizerOps, require_tokenizer_path

RETRY_STATUS = {408, 409, 425, 429, 500, 502, 503, 504}
PROBE_PROMPT = "Write one sentence about any topic you like."
# Tokenized here and by the server (``/tokenize``): words, digits, punctuation, accents, a think tag.
TOKENIZER_PROBE = "Thinking-Augmented Pre-Training, step 3: 12 × 7 = 84 (naïve café). <think>Why?</think> Done."
# What vLLM answers (HTTP 500) once its engine core has died; the server then stops listening.
DEAD_ENGINE_MARKERS = ("EngineDeadError", "EngineCore encountered an issue", "engine is dead")
HEALTH_PROBES = 3  # /health checks, a second apart, before a server that refuses connections is declared dead
# Servers that honour a request's sampling parameters and seed as sent (``owned_by`` in their model list).
SAMPLING_SERVERS = ("vllm", "sglang")
_SENT_ALL = object()  # generate_stream's end of stream


class SamplingIgnored(RuntimeError):
    """The server returns identical text for different seeds at temperature > 0."""


class OpenAIBackend(TokenizerOps):
    name = "openai"

    def __init__(self, config: BackendConfig, sampling: SamplingConfig | None = None):
        server = config.openai
        if not server.base_url:
            raise ValueError("openai backend: --base-url (or --serve) is required")
        super().__init__(require_tokenizer_path(config.tokenizer_path(), "openai backend"))
        self.base_url = server.base_url[0]  # one server; several go to endpoints.BalancedOpenAIBackend
        self.model = config.model
        self.api = server.api
        self.raw_prompt = config.raw_prompt
        self.parallelism = self.concurrency = max(1, server.concurrency)
        self.timeout = server.timeout
        self.max_retries = server.max_retries
        self.retry_backoff = server.retry_backoff
        self._api_key = os.environ.get(server.api_key_env) or None
        self.send_generation_config = server.server_sampling == "generation-config"
        self._loop = asyncio.new_event_loop()
        self._client: httpx.AsyncClient | None = None
        # Set under --serve: returns None while the server lives, else what to tell the user.
        self.server_status: Callable[[], str | None] | None = None
        self._dead: str | None = None
        self._engine_check: asyncio.Lock | None = None
        self.max_model_len: int | None = None  # from the server's model list, for the run's pre-flight check
        self.server_kind: str | None = None  # the model list's ``owned_by`` (vllm, sglang, ...), when given
        headers = {"Authorization": f"Bearer {self._api_key}"} if self._api_key else {}
        with httpx.Client(headers=headers, timeout=30) as preflight:  # one client (and TLS setup) for both checks
            self._check_served_model(preflight)
            self._check_tokenizer(preflight)
        probe = server.server_sampling == "auto" and sampling is not None and sampling.temperature > 0
        if probe and self.server_kind not in SAMPLING_SERVERS:
            self.send_generation_config = self._probe_sampling(sampling.params())

    # ---- public contract
    def generate(self, requests: list[GenRequest], sampling: SamplingParams) -> list[GenResult]:
        return self._loop.run_until_complete(self._generate_all(requests, sampling))

    def generate_stream(self, requests: list[GenRequest], sampling: SamplingParams):
        """Yield (index, result) as each request finishes, ``concurrency`` always in flight: a slow
        trajectory never holds back the others (nor the runner's checkpoints).

        The event loop runs in a thread of its own for the whole stream, so answers are read and the
        next requests sent while the consumer writes records and checkpoints (a stopped loop would
        leave the server's finished answers waiting in the sockets, and its batch short)."""
        finished: queue.SimpleQueue = queue.SimpleQueue()
        sender = self._loop.create_task(self._send_all(requests, sampling, finished))
        thread = threading.Thread(target=_run_until_done, args=(self._loop, sender), daemon=True)
        thread.start()
        try:
            while (item := finished.get()) is not _SENT_ALL:
                if isinstance(item, BaseException):  # e.g. EngineDied: what finished before it was yielded
                    raise item
                yield item
        finally:  # the consumer stopped early (error, Ctrl-C): cancel what is still queued or in flight
            self._loop.call_soon_threadsafe(sender.cancel)
            thread.join()

    async def _send_all(self, requests: list[GenRequest], sampling: SamplingParams, finished) -> None:
        """``concurrency`` workers take the requests in order (at most that many tasks ever exist: the
        client's work per answer does not grow with the shard) and put each (index, result) on
        ``finished``; then ``_SENT_ALL``, or the exception that stopped them."""
        not_sent = iter(enumerate(requests))

        async def worker() -> None:
            for i, request in not_sent:
                finished.put((i, await self._with_retries(self._body(request.prompt, sampling, request.seed))))

        workers: list[asyncio.Task] = []
        try:
            await self._open_client()
            workers = [asyncio.ensure_future(worker()) for _ in range(min(self.concurrency, len(requests)))]
            await asyncio.gather(*workers)
        except asyncio.CancelledError:
            pass  # the consumer is gone
        except BaseException as exc:  # handed to the consumer's thread, raised there
            finished.put(exc)
        finally:
            for task in workers:
                task.cancel()
            await asyncio.gather(*workers, return_exceptions=True)
            finished.put(_SENT_ALL)

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
            body["generation_config"] = json.dumps(
                {
                    "do_sample": sampling.temperature > 0,
                    "temperature": sampling.temperature,
                    "top_p": sampling.top_p,
                    "max_new_tokens": sampling.max_tokens,
                }
            )
        return body

    async def _with_retries(self, body: dict[str, Any]) -> GenResult:
        path = "chat/completions" if self.api == "chat" else "completions"
        error = ""
        for attempt in range(1, self.max_retries + 2):
            if self._dead:
                raise EngineDied(self._dead)
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
                if any(marker in response.text for marker in DEAD_ENGINE_MARKERS):
                    await self._check_engine(error)
                delay = max(delay, _retry_after(response))
            except httpx.ConnectError as exc:  # nothing listening: is the server gone?
                error = f"{type(exc).__name__}: {exc}"
                await self._check_engine(error)
            except (httpx.TimeoutException, httpx.TransportError) as exc:
                error = f"{type(exc).__name__}: {exc}"
            except (ValueError, KeyError, IndexError, TypeError) as exc:  # a 200 with an unusable body
                error = f"bad response: {type(exc).__name__}: {exc}"
            if attempt <= self.max_retries:
                await asyncio.sleep(min(delay, 60.0))
        return GenResult(error=self._scrub(error), attempts=self.max_retries + 1)

    def _check_served_model(self, client: httpx.Client) -> None:
        """vLLM and SGLang list the model they serve with its context length: check the name now (a
        wrong --model would fail every request with 404) and keep ``max_model_len`` and ``owned_by``."""
        url = self.server_urls()[0]
        try:
            models = client.get(f"{url}/models").json().get("data") or []
            limits = {m["id"]: m.get("max_model_len") for m in models}
            owners = {m["id"]: m.get("owned_by") for m in models}
        except (httpx.HTTPError, ValueError, AttributeError, KeyError, TypeError):
            return  # no usable list: the requests will tell
        if not limits or not all(limits.values()):
            return  # e.g. transformers serve lists cached models without a context length and loads any on demand
        if self.model not in limits:
            raise ValueError(
                f"{url} serves {', '.join(map(repr, limits))}, not {self.model!r}: "
                "pass the served name as --model (vLLM: --served-model-name, default the model path)"
            )
        self.max_model_len = int(limits[self.model])
        self.server_kind = str(owners[self.model] or "").lower() or None

    def _check_tokenizer(self, client: httpx.Client) -> None:
        """tpt counts and truncates documents with the local tokenizer: it must split text as the
        served model does, or ``--max-doc-tokens`` and the context check are wrong.  Servers with
        vLLM's ``/tokenize`` endpoint are asked; others (transformers serve, hosted APIs) are trusted."""
        url = self.server_urls()[0]
        root = url.removesuffix("/v1")
        body = {"model": self.model, "prompt": TOKENIZER_PROBE, "add_special_tokens": False}
        try:
            response = client.post(f"{root}/tokenize", json=body)
            served = [int(t) for t in response.json()["tokens"]] if response.status_code == 200 else None
        except (httpx.HTTPError, ValueError, AttributeError, KeyError, TypeError):
            served = None
        if served is None:
            return  # no /tokenize here: nothing to compare with
        if self._fast is not None:
            local = list(self._fast.encode(TOKENIZER_PROBE, add_special_tokens=False).ids)
        else:
            local = list(self.hf_tokenizer.encode(TOKENIZER_PROBE, add_special_tokens=False))
        if local != served:
            raise ValueError(
                f"the local tokenizer {self.tokenizer_path} does not split text as {url} does for model "
                f"{self.model!r}: a probe text is {len(local)} tokens here and {len(served)} on the server "
                f"(first ids {local[:8]} vs {served[:8]}). tpt counts and truncates documents with the local "
                "one, so --max-doc-tokens and the context check would be wrong: pass --tokenizer FOLDER with the "
                "served model's tokenizer files (default: --model, when it is a local folder)."
            )

    # ---- is the engine alive?
    def server_urls(self) -> list[str]:
        return [self.base_url]

    async def _check_engine(self, error: str) -> None:
        """Raise ``EngineDied`` when the server is gone; return when it still answers (then the
        request is retried as usual).  One check at a time: the other requests wait for its verdict."""
        if self._engine_check is None:
            self._engine_check = asyncio.Lock()
        async with self._engine_check:
            if not self._dead:
                self._dead = await self._death_report(error)
        if self._dead:
            raise EngineDied(self._dead)

    async def _death_report(self, error: str) -> str | None:
        if self.server_status is not None:  # --serve: the process tells at once
            report = self.server_status()
            if report:
                return f"{report}\n(last request error: {self._scrub(error)})"
        for probe in range(HEALTH_PROBES):
            if probe:
                await asyncio.sleep(1.0)
            if await self._any_server_answers():
                return None
        where = ", ".join(self.server_urls())
        return (
            f"the server at {where} does not answer any more ({self._scrub(error)}; /health and /models fail "
            f"{HEALTH_PROBES} times): it died or was stopped. Finished records are kept; start it again and "
            "rerun the same command to carry on."
        )

    async def _any_server_answers(self) -> bool:
        for url in self.server_urls():
            root = url.rstrip("/").removesuffix("/v1")
            for probe_url in (f"{root}/health", f"{url}/models"):
                try:
                    if (await self._client.get(probe_url, timeout=5.0)).status_code == 200:
                        return True
                except httpx.HTTPError:
                    pass
        return False

    async def _post(self, path: str, body: dict[str, Any]) -> httpx.Response:
        # One attempt; tpt.augment.endpoints overrides this to pick one of several servers per attempt.
        return await self._client.post(f"{self.base_url}/{path}", json=body)

    def _parse(self, data: dict[str, Any]) -> GenResult:
        choice = data["choices"][0]
        if self.api == "chat":
            message = choice["message"]
            # With a reasoning parser the thinking is in its own field (vLLM >= 0.10: `reasoning`);
            # without one, or when the model never opened a think block, it is the content.
            reasoning = message.get("reasoning") or message.get("reasoning_content")
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
            # The three draws at once: the probe is part of every run's start-up, so it costs one request's time.
            results = self._loop.run_until_complete(self._generate_all([_probe_request(s) for s in (1, 2, 3)], probe))
            for res in results:
                if res.error:
                    raise RuntimeError(f"openai backend: probe request to {self.base_url} failed: {res.error}")
            texts = {res.text for res in results}
            if len(texts) > 1:
                if with_config:
                    print(
                        "tpt augment: the server ignores temperature/top_p unless the request carries a "
                        "generation_config (transformers serve); sending it with every request.",
                        file=sys.stderr,
                    )
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


def _run_until_done(loop: asyncio.AbstractEventLoop, task: asyncio.Task) -> None:
    try:
        loop.run_until_complete(task)
    except asyncio.CancelledError:  # cancelled before it started: the consumer stopped at once
        pass


def _retry_after(response: httpx.Response) -> float:
    try:
        return min(float(response.headers.get("retry-after", 0)), 60.0)
    except ValueError:
        return 0.0


def make_backend(config: BackendConfig, sampling: SamplingConfig) -> OpenAIBackend:
    if len(config.openai.base_url) > 1:  # several servers, balanced by load
        from tpt.augment.endpoints import BalancedOpenAIBackend

        return BalancedOpenAIBackend(config, sampling)
    return OpenAIBackend(config, sampling)
