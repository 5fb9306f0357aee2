"""Back-thinking: the generator writes the thinking given a question *and its final response*.

One template renders both sides of the recipe, so they cannot drift apart:

* SFT data (``tpt prepare back-thinking``): a reasoning dataset's (question, thinking, response)
  becomes the conversation ``user: render_prompt(question, response)`` ->
  ``assistant: assistant_target(thinking)``;
* augmentation (``tpt augment --strategy back-thinking``): a pre-training document is the
  *response*, with the question ``NO_QUESTION`` (as the paper does: documents have no question);
  the backend wraps the prompt in the generator's chat template as ``tpt train --mode sft`` did.

The template is ``templates/back_thinking.txt`` (``{question}`` and ``{response}`` placeholders),
or a file of the user's with ``--strategy back-thinking:PATH`` / ``--template PATH``.
"""

from __future__ import annotations

import re
from importlib import resources
from pathlib import Path

STRATEGY_NAME = "back-thinking"
# What a pre-training document's missing question renders as; SFT rows can be shown it too
# (``--no-question-rate``) so the generator has seen the form it meets at augmentation time.
NO_QUESTION = "(none: the response is a document; infer what it answers)"
PLACEHOLDERS = ("{question}", "{response}")
_SLOT = re.compile(r"\{question\}|\{response\}")


def default_template() -> str:
    return _clean(resources.files("tpt.augment").joinpath("templates/back_thinking.txt").read_text(encoding="utf-8"))


def load_template(path: str | Path | None = None) -> str:
    """The packaged template, or the one in ``path``; it must hold both placeholders once each."""
    if path is None or str(path) == "":
        return default_template()
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"back-thinking template {path}: no such file")
    text = _clean(path.read_text(encoding="utf-8"))
    if "{{CONTEXT}}" in text:
        raise ValueError(
            f"back-thinking template {path}: {{{{CONTEXT}}}} is reserved; use {{question}} and {{response}}"
        )
    for slot in PLACEHOLDERS:
        if text.count(slot) != 1:
            raise ValueError(
                f"back-thinking template {path}: needs exactly one {slot} placeholder (found {text.count(slot)})"
            )
    return text


def _clean(text: str) -> str:
    # A text file's final newline is an editor's habit, not part of the prompt.
    return text.removesuffix("\n")


def render_prompt(template: str, question: str, response: str) -> str:
    """The user prompt.  One pass over the template: a question or response that itself contains
    ``{response}`` (code, LaTeX) is never substituted again; no str.format (documents are full of
    braces)."""
    values = {"{question}": question.strip() or NO_QUESTION, "{response}": response}
    return _SLOT.sub(lambda m: values[m.group(0)], template)


def assistant_target(thinking: str) -> str:
    """The assistant turn the generator learns to write: the thinking in ``<think>`` tags.
    ``tpt augment`` stops generating at ``</think>`` and strips the tags back off."""
    return f"<think>\n{thinking.strip()}\n</think>"


def document_template(template: str) -> str:
    """The template for a pre-training document: question = NO_QUESTION, response = the
    document (the ``{{CONTEXT}}`` slot that ``PromptStrategy.build`` fills)."""
    return render_prompt(template, "", "{{CONTEXT}}")


def template_path_of(spec: str) -> str | None:
    """``back-thinking`` -> None (packaged template); ``back-thinking:PATH`` -> PATH."""
    if spec == STRATEGY_NAME:
        return None
    if spec.startswith(STRATEGY_NAME + ":") and spec[len(STRATEGY_NAME) + 1 :]:
        return spec[len(STRATEGY_NAME) + 1 :]
    raise ValueError(f"--strategy {spec!r}: expected back-thinking or back-thinking:PATH")
