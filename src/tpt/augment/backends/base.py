"""The generator-backend contract shared by every backend (openai, transformers, plugins).

The runner builds prompts and hands a batch of requests to ``Backend.generate``; the backend
returns one result per request, in order.  A backend raises nothing for a single bad request:
it returns a ``GenResult`` with ``error`` set, so one failure never costs the batch.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol

from tpt.records import Document
from tpt.registry import Registry


@dataclass
class SamplingParams:
    temperature: float = 0.6
    top_p: float = 0.9
    max_tokens: int = 8192  # thinking-token budget
    stop: list[str] = field(default_factory=lambda: ["</think>"])


@dataclass
class GenRequest:
    doc: Document  # the untruncated document (structure-aware backends use it)
    sample: int  # 0..n-1
    prompt: str  # user prompt: template applied to the (possibly truncated) document
    seed: int  # per-(document, sample) seed, stable across reruns


@dataclass
class GenResult:
    text: str = ""  # raw completion; the runner strips <think> ... </think>
    finish_reason: str = "stop"  # "stop" | "length"
    prompt_tokens: int = 0
    completion_tokens: int = 0
    error: str | None = None  # set when generation failed after the backend's own retries
    attempts: int = 1


class EngineDied(RuntimeError):
    """The generation engine (a server tpt talks to, or vLLM in-process) is gone: every further
    request would fail.  Raised instead of recording each pending request as failed; the runner
    keeps what finished, and with ``--serve`` restarts the server and carries on."""


class Backend(Protocol):
    name: str

    def generate(self, requests: list[GenRequest], sampling: SamplingParams) -> list[GenResult]: ...

    def count_tokens(self, text: str) -> int: ...

    def truncate(self, text: str, max_tokens: int) -> tuple[str, int, bool]:
        """(text cut on a token boundary, token count of the full text, was it cut)."""
        ...

    def close(self) -> None: ...

    # Optional, used when present:
    #   truncate_batch(texts, max_tokens) -> list of truncate() results (faster for many documents)
    #   parallelism: int  requests the backend works on at once (generate() is called on slices
    #                     of this size when there is no generate_stream)
    #   generate_stream(requests, sampling) -> iterator of (request index, GenResult) in the
    #                     order they finish; lets the runner checkpoint while requests are in flight


# Built-in backends, imported only when asked for (a user without one backend's dependencies can
# still use the others).  Factories take (config) and return a Backend.  Plugins come from entry
# points in group tpt.backends or a "module:factory" name:
# tpt.registry, the one mechanism for every kind of plugin.  A factory may set ``needs_model = False``.
BACKENDS = Registry(
    "backend",
    "--backend",
    {
        "openai": "tpt.augment.backends.openai:make_backend",  # any OpenAI-compatible server (vLLM, SGLang, ...)
        "transformers": "tpt.augment.backends.hf:make_backend",  # in-process, no server: CPU and small runs
        "vllm": "tpt.augment.backends.vllm:make_backend",  # vLLM's offline engine in-process
    },
)


def load_backend_factory(name: str) -> Any:
    return BACKENDS.load(name)


def backend_needs_model(name: str) -> bool:
    """Model backends need --model; a programmatic plugin says otherwise with ``needs_model = False``.
    Built-in backends all need one (and are not imported here: validation stays light)."""
    return name in BACKENDS.builtins or bool(getattr(load_backend_factory(name), "needs_model", True))
