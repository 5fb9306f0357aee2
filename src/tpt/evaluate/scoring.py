"""Scoring of tpt's own competition protocol (AIME 2024, AMC 2023): pass@1 with math-verify.

The tasks that mirror lm-eval's score as lm-eval does: GSM8K and MMLU-Pro with lm-eval's own regex
filters and ``exact_match`` (named in their YAMLs), BoolQ and MMLU with its ``acc``, MATH with
``tpt.evaluate.minerva`` (a checked copy of lm-eval's minerva_math scorer).
"""

from __future__ import annotations

import re

# --------------------------------------------------------------------------- LaTeX answers (MATH, AIME, AMC)


def last_boxed(text: str) -> str | None:
    """Content of the last \\boxed{...} (or \\fbox{...}), braces balanced; None when absent."""
    start = max(text.rfind("\\boxed{"), text.rfind("\\fbox{"))
    if start < 0:
        match = re.search(r"\\boxed (\S+)", text)  # '\boxed 5' without braces
        return match.group(1).rstrip("$.") if match else None
    open_at = text.index("{", start)
    depth = 0
    for i in range(open_at, len(text)):
        depth += {"{": 1, "}": -1}.get(text[i], 0)
        if depth == 0:
            return text[open_at + 1 : i]
    return None


_MINERVA_FINAL = re.compile(r"final answer is (.+?)\. I hope it is correct", re.DOTALL)


def extract_math_answer(generation: str) -> str | None:
    """Minerva's 'Final Answer: The final answer is X. I hope it is correct.', else the last \\boxed{}."""
    match = _MINERVA_FINAL.search(generation)
    if match:
        return match.group(1).strip().strip("$").strip()
    return last_boxed(generation)


def format_gold(answer) -> str:
    """Gold answers come as strings ('025'), ints or floats (AMC's 27.0): one LaTeX-ready string."""
    if isinstance(answer, float) and answer.is_integer():
        return str(int(answer))
    return str(answer).strip()


def math_gold(doc: dict) -> str:
    """MATH-500 / AIME / AMC carry an 'answer' field; full MATH only has the boxed solution."""
    if doc.get("answer") not in (None, ""):
        return format_gold(doc["answer"])
    boxed = last_boxed(doc["solution"])
    if boxed is None:
        raise ValueError(f"no \\boxed{{}} answer in the solution of problem {doc.get('idx', '?')}")
    return boxed


def math_equivalent(predicted: str | None, gold: str) -> bool:
    """math-verify equivalence (symbolic / numeric) of two LaTeX answers."""
    if predicted is None or not predicted.strip():
        return False
    from math_verify import parse, verify

    try:
        return bool(verify(parse(f"${gold}$"), parse(f"${predicted}$")))
    except Exception:  # math-verify raises on pathological LaTeX; an unparsable answer is wrong
        return False


def pass_at_1_process_results(doc: dict, results: list[str]) -> dict[str, float]:
    """pass@1 = the fraction of the sampled generations (``--samples`` draws) that are right."""
    gold = math_gold(doc)
    # lm-eval hands the k draws of the one request as [[draw_1, ..., draw_k]] (take_first_k filter)
    draws = results[0] if results and isinstance(results[0], list) else results
    correct = [math_equivalent(extract_math_answer(text), gold) for text in draws]
    return {"pass@1": sum(correct) / len(correct)}


LETTERS = "ABCDEFGHIJ"  # MMLU-Pro's option letters
