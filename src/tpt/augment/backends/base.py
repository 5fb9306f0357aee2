"""The generator-backend contract shared by every backend (openai, transformers, plugins).

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
    "transformers-cb": "tpt.augment.backends.hf_cb:make_backend",  # transformers' continuous batching (opt-in)
    "transformers-slots": "tpt.augment.backends.hf_slots:make_backend",  # tpt's continuous batching (fast on a GPU)
}
# Plugins are found like any third-party backend: an entry
# point in this group (`[project.entry-points."tpt.backends"] name = "module:factory"`), or a
# "module:factory" path given as the backend name.  A factory may set ``needs_model = False``.
ENTRY_POINT_GROUP = "tpt.backends"


def _plugin_targets() -> dict[str, str]:
    from importlib.metadata import entry_points

    return {ep.name: ep.value for ep in entry_points(group=ENTRY_POINT_GROUP)}


def load_backend_factory(name: str) -> Any:
    target = BACKENDS.get(name) or _plugin_targets().get(name) or (name if ":" in name else None)
    if target is None:
        known = ", ".join([*BACKENDS, *_plugin_targets()])
        raise ValueError(f"unknown backend {name!r}; known: {known}; or give a plugin as 'module:factory'")
    module, _, attr = target.partition(":")
    try:
        return getattr(importlib.import_module(module), attr)
    except (ImportError, AttributeError) as e:
        raise ValueError(f"backend {name!r}: cannot load {target!r} ({e})") from e


def backend_needs_model(name: str) -> bool:
    """Model backends need --model; a programmatic plugin says otherwise with ``needs_model = False``.
    Built-in backends all need one (and are not imported here: validation stays light)."""
    return name in BACKENDS or bool(getattr(load_backend_factory(name), "needs_model", True))
