"""Prompt strategies: how a (truncated) document becomes the generator's user prompt.

``default`` and ``random-focus`` are the paper's prompts, verbatim; ``file:PATH`` reads a template
with a ``{context}`` placeholder; ``back-thinking[:PATH]`` renders the document as the *response*
of the back-thinking template a generator was fine-tuned on (see ``tpt.augment.back_thinking``).
Strategies are plugins (``tpt.registry``): ``--strategy mypkg.prompts:make`` or an entry point in
group ``tpt.strategies`` adds one without touching tpt.  Every choice that involves chance is drawn
from a seeded RNG keyed by the document id, so reruns (and resumed runs) build the same prompts.
"""

from __future__ import annotations

import hashlib
import random
from dataclasses import dataclass
from pathlib import Path

from tpt.registry import Registry

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
    """What ``--strategy`` resolves to.  A plugin strategy may be any object with ``name``, ``template``
    (recorded in the manifest: a different template is a different run) and ``build(doc_id, context)``."""

    name: str  # the --strategy spec: "default" | "random-focus" | "file:PATH" | "back-thinking[:PATH]" | a plugin's
    template: str  # contains {{CONTEXT}}
    seed: int = 0
    focus: bool = False  # random-focus: a focus mark at a seeded word boundary

    def build(self, doc_id: str, context: str) -> str:
        if self.focus:
            context = insert_focus(context, random.Random(stable_int("focus", self.seed, doc_id)))
        # str.replace, not format(): documents are full of braces.
        return self.template.replace("{{CONTEXT}}", context)


def insert_focus(context: str, rng: random.Random) -> str:
    """Insert the focus mark at a word boundary drawn uniformly (start, between words, or end)."""
    cuts = [0] + [i + 1 for i, ch in enumerate(context) if ch.isspace()] + [len(context)]
    at = rng.choice(cuts)
    return context[:at] + FOCUS_MARK + context[at:]


# A strategy factory takes (argument after "NAME:" or None, seed) and returns a strategy.
def _no_argument(name: str, arg: str | None) -> None:
    if arg is not None:
        raise ValueError(f"--strategy {name}:{arg}: {name} takes no argument")


def default_strategy(arg: str | None, seed: int) -> PromptStrategy:
    _no_argument("default", arg)
    return PromptStrategy("default", DEFAULT_TEMPLATE, seed)


def random_focus_strategy(arg: str | None, seed: int) -> PromptStrategy:
    _no_argument("random-focus", arg)
    return PromptStrategy("random-focus", RANDOM_FOCUS_TEMPLATE, seed, focus=True)


def file_strategy(arg: str | None, seed: int) -> PromptStrategy:
    spec, path = f"file:{arg or ''}", Path(arg or "")
    if not arg or not path.is_file():
        raise ValueError(f"--strategy {spec}: no such template file {path}")
    text = path.read_text(encoding="utf-8")
    if "{context}" not in text:
        raise ValueError(f"--strategy {spec}: template {path} has no {{context}} placeholder")
    return PromptStrategy(spec, text.replace("{context}", "{{CONTEXT}}"), seed)


def back_thinking_strategy(arg: str | None, seed: int) -> PromptStrategy:
    from tpt.augment import back_thinking as bt  # lazily: only this strategy needs its template files

    spec = bt.STRATEGY_NAME if arg is None else f"{bt.STRATEGY_NAME}:{arg}"
    return PromptStrategy(spec, bt.document_template(bt.load_template(bt.template_path_of(spec))), seed)


STRATEGIES = Registry(
    "strategy",
    "--strategy",
    {
        "default": default_strategy,
        "random-focus": random_focus_strategy,
        "back-thinking": back_thinking_strategy,
        "file": file_strategy,
    },
)


def load_strategy(spec: str, seed: int = 0):
    """The prompt strategy ``--strategy SPEC`` names: built-in, entry point (tpt.strategies) or module:object."""
    factory, parsed = STRATEGIES.resolve(spec)
    strategy = factory(parsed.arg, seed)
    missing = [a for a in ("name", "template", "build") if not hasattr(strategy, a)]
    if missing:
        raise ValueError(
            f"--strategy {spec}: {parsed.name} returned {type(strategy).__name__}, "
            f"which lacks {', '.join(missing)} (see tpt.augment.prompts.PromptStrategy)"
        )
    return strategy


def strip_thinking_tags(text: str) -> str:
    """The trajectory without a leading <think> and anything from </think> on."""
    text = text.lstrip()
    if text.startswith("<think>"):
        text = text[len("<think>") :]
    end = text.find("</think>")
    if end >= 0:
        text = text[:end]
    return text.strip()
