"""The generator-backend contract shared by every backend (openai, transformers, lab-expert).

The runner builds prompts and hands a batch of requests to ``Backend.generate``; the backend
returns one result per request, in order.  A backend raises nothing for a single bad request:
it returns a ``GenResult`` with ``error`` set, so one failure never costs the batch.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass, field
from typing import Any, Protocol

from tpt.records import Document


@dataclass
class SamplingParams:
    temperature: float = 0.6
    top_p: float = 0.9
    max_tokens: int = 8192  # thinking-token budget
    stop: list[str] = field(default_factory=lambda: ["</think>"])


@dataclass
class GenRequest:
    doc: Document  # the untruncated document (structure-aware backends like lab-expert use it)
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


# name -> "module:factory"; factories take (config) and return a Backend.  Imported lazily so a
# user without torch/httpx/etc. for one backend can still use the others.
BACKENDS: dict[str, str] = {
    "openai": "tpt.augment.backends.openai:make_backend",
    "transformers": "tpt.augment.backends.hf:make_backend",
    "vllm": "tpt.augment.backends.vllm:make_backend",  # vLLM's offline engine in-process
    "lab-expert": "tpt.lab.expert:make_backend",
}


def load_backend_factory(name: str) -> Any:
    if name not in BACKENDS:
        raise ValueError(f"unknown backend {name!r}; known: {', '.join(BACKENDS)}")
    module, attr = BACKENDS[name].split(":")
    return getattr(importlib.import_module(module), attr)
