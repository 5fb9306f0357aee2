"""Accuracy of a checkpoint on held-out lab problems, by batched greedy generation.

The headline mode is fixed before any test seed runs, and is the same for every pre-trained arm:

  reflect      "<question> The answer is"        -> the model states a guess and may then open
                                                    <think> and reason; the thinking's final
                                                    answer counts (its guess when it does not think)

It is the shape of every training sample (``d`` ends with its answer; TPT's ``d <think> t
</think>`` then reasons), so neither arm is asked in a format it never saw: a vanilla model
answers after "The answer is" and stops, a TPT model may think.  Two diagnostics are recorded
but never reported as the headline (choosing the better of several modes per family on the test
problems is oracle selection):

  direct       "<question> The answer is"        -> the next few tokens only
  think        "<question><sep><think>"           -> the model writes steps, ends with "answer is X"

Models after SFT are asked inside the chat template and answer as trained ("chat": the reply
may think first; its last "answer is X" counts).  Every mode's per-problem correctness is kept
(``correct``: a "0"/"1" string in held-out order), so the report can bootstrap over problems.

Checkpoints are loaded exactly as `tpt train` saved them (an HF folder, via transformers).
Why not lm-evaluation-harness here: see docs/lab.md ("Evaluation").
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tpt.lab.families import TaskFamily
from tpt.lab.families.base import ANSWER_PREFIX, ANSWER_RE

HEADLINE_MODE = "reflect"  # fixed in advance for every pre-trained arm (see the module docstring)
MODES = ("reflect", "direct")  # what a pre-trained checkpoint is asked; "think" on request
THINKING_MODES = ("think", "reflect", "chat")


@dataclass
class HeldOut:
    """One held-out problem: which family, its difficulty, the problem dict."""

    family: str
    difficulty: int
    problem: dict[str, Any]


def prompts_for(family: TaskFamily, problem: dict, mode: str, think_separator: str, chat_prefix=None) -> str:
    """The prompt text; ``chat_prefix(question)`` (mode "chat") wraps the question as a user turn
    and opens the assistant turn, whose reply the model writes whole."""
    question = family.question(problem)
    if mode == "chat":
        return chat_prefix(question)
    if mode in ("direct", "reflect"):
        return f"{question} {ANSWER_PREFIX}"
    return f"{question}{think_separator}<think>"


def _generate(
    model, tokenizer, prompts: list[str], max_new_tokens: int, batch_size: int, stop_ids: list[int]
) -> list[str]:
    """Greedy completions of ``prompts`` (left-padded batches); special tokens kept for parsing."""
    import torch

    tokenizer.padding_side = "left"
    out: list[str] = []
    for i in range(0, len(prompts), batch_size):
        batch = tokenizer(prompts[i : i + batch_size], return_tensors="pt", padding=True, add_special_tokens=False).to(
            model.device
        )
        with torch.inference_mode():
            gen = model.generate(
                **batch,
                max_new_tokens=max_new_tokens,
                do_sample=False,
                eos_token_id=stop_ids,
                pad_token_id=tokenizer.pad_token_id,
            )
        new = gen[:, batch["input_ids"].shape[1] :]  # (batch, new_tokens)
        out += tokenizer.batch_decode(new, skip_special_tokens=False)
    return out


def evaluate_checkpoint(
    checkpoint: str | Path,
    problems: Sequence[HeldOut],
    families: dict[str, TaskFamily],
    think_separator: str = " ",  # `tpt prepare`'s default template: "{text} <think> {thinking} </think>"
    max_new_tokens_direct: int = 6,
    max_new_tokens_think: int = 96,
    batch_size: int = 256,
    modes: Sequence[str] = MODES,
    device: str = "auto",
) -> dict[str, Any]:
    """{mode: {"accuracy", "by_family": {fam: {"accuracy", "by_difficulty": {d: acc}}}, "correct": "0110..."}}."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(checkpoint)
    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    model = AutoModelForCausalLM.from_pretrained(checkpoint, dtype=torch.float32).to(device).eval()

    def chat_prefix(q: str) -> str:
        return tokenizer.apply_chat_template(
            [{"role": "user", "content": q}], add_generation_prompt=True, tokenize=False
        )

    stop_ids = [tokenizer.eos_token_id, tokenizer.convert_tokens_to_ids("</think>")]
    result: dict[str, Any] = {}
    for mode in modes:
        prompts = [prompts_for(families[p.family], p.problem, mode, think_separator, chat_prefix) for p in problems]
        budget = max_new_tokens_direct if mode == "direct" else max_new_tokens_think + 8
        # a chat reply closes its thinking and then answers: stop only at the end of the turn
        stops = [tokenizer.eos_token_id] if mode == "chat" else stop_ids
        completions = _generate(model, tokenizer, prompts, budget + (8 if mode == "chat" else 0), batch_size, stops)
        answered = [answer_text(text, mode) for text in completions]
        correct = [families[p.family].check(p.problem, text) for p, text in zip(problems, answered)]
        result[mode] = summarize(problems, correct)
        result[mode]["correct"] = "".join("1" if ok else "0" for ok in correct)
        if mode in THINKING_MODES:  # diagnostic: how much of the expert's reasoning the model reproduces
            result[mode]["steps_reproduced"] = steps_by_family(
                problems, families, [thinking_text(t) for t in completions]
            )
        result[mode]["examples"] = [
            {"prompt": pr, "completion": c, "correct": ok} for pr, c, ok in list(zip(prompts, completions, correct))[:3]
        ]
    return result


def thinking_text(completion: str) -> str:
    """What the model wrote inside <think> (the whole completion when the prompt opened it)."""
    text = completion.split("</think>")[0]
    return text.split("<think>", 1)[1] if "<think>" in text else text


def answer_text(completion: str, mode: str) -> str:
    """The part of a completion that states the answer: in "reflect" mode the thinking, when the
    model thought and concluded, else its stated guess; otherwise everything before </think>."""
    if mode == "chat":  # the reply's last "answer is X", inside or after its thinking
        return completion
    text = completion.split("</think>")[0]
    if mode != "reflect":
        return text
    guess, _, thought = text.partition("<think>")
    # the guess ends at its full stop: a model that runs on into another document must not be
    # credited with that document's "answer is"
    return thought if ANSWER_RE.search(thought) else guess.split(".")[0]


def summarize(problems: Sequence[HeldOut], correct: Sequence[bool]) -> dict[str, Any]:
    """Accuracy overall, per family, and per (family, difficulty)."""
    cells: dict[tuple[str, int], list[bool]] = defaultdict(list)
    for p, ok in zip(problems, correct):
        cells[(p.family, p.difficulty)].append(bool(ok))
    by_family: dict[str, Any] = {}
    for fam in sorted({f for f, _ in cells}):
        hits = [ok for (f, _), oks in cells.items() if f == fam for ok in oks]
        by_family[fam] = {
            "accuracy": sum(hits) / len(hits),
            "by_difficulty": {str(d): sum(oks) / len(oks) for (f, d), oks in sorted(cells.items()) if f == fam},
        }
    return {"accuracy": sum(map(bool, correct)) / max(len(correct), 1), "by_family": by_family}


def steps_reproduced(family: TaskFamily, problem: dict, completion: str) -> float:
    """Share of the expert's steps that the completion reproduces exactly, in order, from its start.

    Tells *why* think-first answers fail: 0 means even the first step (usually a copy of the
    question's first operand) is wrong; a middle value means the model follows the procedure but
    goes wrong at some step (docs/lab.md, "Measured")."""
    steps, _ = family.solve(problem)
    rest, matched = " ".join(completion.split()), 0
    for step in steps:
        if not rest.startswith(step):
            break
        matched, rest = matched + 1, rest[len(step) :].lstrip()
    return matched / len(steps)


def steps_by_family(
    problems: Sequence[HeldOut], families: dict[str, TaskFamily], completions: Sequence[str]
) -> dict[str, float]:
    """Mean ``steps_reproduced`` per family."""
    shares: dict[str, list[float]] = defaultdict(list)
    for p, text in zip(problems, completions):
        shares[p.family].append(steps_reproduced(families[p.family], p.problem, text))
    return {fam: sum(v) / len(v) for fam, v in sorted(shares.items())}
