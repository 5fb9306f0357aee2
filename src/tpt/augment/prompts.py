"""Prompt strategies: how a (truncated) document becomes the generator's user prompt.

``default`` and ``random-focus`` are the paper's prompts, verbatim; ``file:PATH`` reads a template
with a ``{context}`` placeholder; ``back-thinking[:PATH]`` renders the document as the *response*
of the back-thinking template a generator was fine-tuned on (see ``tpt.augment.back_thinking``).
Every choice that involves chance is drawn from a seeded RNG keyed by the document id, so reruns
(and resumed runs) build the same prompts.
"""

from __future__ import annotations

import hashlib
import random
from dataclasses import dataclass
from pathlib import Path

DEFAULT_TEMPLATE = (
    "{{CONTEXT}}\n\n## End of the context\n\n"
    "Simulate an expert's in-depth thought process as they analyze the above context, focusing on complex "
    "and informative aspects. Skip trivial details. Use Feynman technique whenever possible to ensure a "
    "deep understanding."
)
FOCUS_MARK = "<<<READING HERE>>>"
RANDOM_FOCUS_TEMPLATE = (
    "{{CONTEXT}}\n\n## End of the context\n\n"
    "An expert is focused at the <<<READING HERE>>> position. Simulate the expert's in-depth thought process "
    "as they analyze the above context, focusing on complex and informative aspects. Skip trivial details. "
    "Use Feynman technique whenever possible to ensure a deep understanding."
)


def stable_int(*parts: object) -> int:
    """A 63-bit integer from the parts, identical across processes (unlike hash())."""
    digest = hashlib.blake2b("\x1f".join(map(str, parts)).encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") >> 1


@dataclass(frozen=True)
class PromptStrategy:
    name: str  # "default" | "random-focus" | "file:PATH" | "back-thinking[:PATH]"
    template: str  # contains {{CONTEXT}}
    seed: int = 0

    def build(self, doc_id: str, context: str) -> str:
        if self.name == "random-focus":
            context = insert_focus(context, random.Random(stable_int("focus", self.seed, doc_id)))
        # str.replace, not format(): documents are full of braces.
        return self.template.replace("{{CONTEXT}}", context)


def insert_focus(context: str, rng: random.Random) -> str:
    """Insert the focus mark at a word boundary drawn uniformly (start, between words, or end)."""
    cuts = [0] + [i + 1 for i, ch in enumerate(context) if ch.isspace()] + [len(context)]
    at = rng.choice(cuts)
    return context[:at] + FOCUS_MARK + context[at:]


def load_strategy(spec: str, seed: int = 0) -> PromptStrategy:
    if spec == "default":
        return PromptStrategy("default", DEFAULT_TEMPLATE, seed)
    if spec == "random-focus":
        return PromptStrategy("random-focus", RANDOM_FOCUS_TEMPLATE, seed)
    if spec.startswith("file:"):
        path = Path(spec[5:])
        if not path.is_file():
            raise ValueError(f"--strategy {spec}: no such template file {path}")
        text = path.read_text(encoding="utf-8")
        if "{context}" not in text:
            raise ValueError(f"--strategy {spec}: template {path} has no {{context}} placeholder")
        return PromptStrategy(spec, text.replace("{context}", "{{CONTEXT}}"), seed)
    if spec.split(":", 1)[0] == "back-thinking":
        from tpt.augment import back_thinking as bt

        return PromptStrategy(spec, bt.document_template(bt.load_template(bt.template_path_of(spec))), seed)
    raise ValueError(f"unknown --strategy {spec!r}; use default, random-focus, back-thinking[:PATH] or file:PATH")


def strip_thinking_tags(text: str) -> str:
    """The trajectory without a leading <think> and anything from </think> on."""
    text = text.lstrip()
    if text.startswith("<think>"):
        text = text[len("<think>"):]
    end = text.find("</think>")
    if end >= 0:
        text = text[:end]
    return text.strip()
