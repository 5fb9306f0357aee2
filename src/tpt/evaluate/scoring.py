"""Answer extraction and scoring: plain functions, called by the task YAMLs and by the tests.

Each generative task's ``process_results(doc, results)`` lives here; lm-eval hands it the
model's (filtered) generations for one document and averages the returned per-document values.
Log-likelihood tasks (BoolQ, MMLU) use lm-eval's built-in ``acc`` and need nothing here.
"""

from __future__ import annotations

import re

# --------------------------------------------------------------------------- numbers (GSM8K)

_GSM8K_STRICT = re.compile(r"#### (\-?[0-9\.\,]+)")
# lm-eval's gsm8k "flexible-extract": the last number-looking span in the generation.
_GSM8K_FLEXIBLE = re.compile(r"(-?[$0-9.,]{2,})|(-?[0-9]+)")


def normalize_number(text: str | None) -> str | None:
    """'$1,234.' -> '1234'; '18.00' -> '18'; None when nothing numeric is left."""
    if text is None:
        return None
    cleaned = text.replace(",", "").replace("$", "").strip().rstrip(".")
    if not cleaned or not re.search(r"\d", cleaned):
        return None
    try:
        value = float(cleaned)
    except ValueError:
        return cleaned
    return str(int(value)) if value == int(value) else repr(value)


def gsm8k_gold(doc: dict) -> str | None:
    """The reference answer: the text after '####' in the GSM8K answer field."""
    return normalize_number(doc["answer"].split("####")[-1])


def extract_gsm8k_strict(generation: str) -> str | None:
    """The number after '#### ' (the few-shot answers' format); None when absent."""
    match = _GSM8K_STRICT.search(generation)
    return normalize_number(match.group(1)) if match else None


def extract_gsm8k_flexible(generation: str) -> str | None:
    """The last number in the generation, whatever the format."""
    spans = [a or b for a, b in _GSM8K_FLEXIBLE.findall(generation)]
    for span in reversed(spans):
        number = normalize_number(span)
        if number is not None:
            return number
    return None


def gsm8k_process_results(doc: dict, results: list[str]) -> dict[str, float]:
    gold, generation = gsm8k_gold(doc), results[0]
    return {
        "exact_match_strict": float(extract_gsm8k_strict(generation) == gold),
        "exact_match_flexible": float(extract_gsm8k_flexible(generation) == gold),
    }


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


def math_process_results(doc: dict, results: list[str]) -> dict[str, float]:
    return {"math_verify": float(math_equivalent(extract_math_answer(results[0]), math_gold(doc)))}


def pass_at_1_process_results(doc: dict, results: list[str]) -> dict[str, float]:
    """pass@1 = the fraction of the sampled generations (``--samples`` draws) that are right."""
    gold = math_gold(doc)
    # lm-eval hands the k draws of the one request as [[draw_1, ..., draw_k]] (take_first_k filter)
    draws = results[0] if results and isinstance(results[0], list) else results
    correct = [math_equivalent(extract_math_answer(text), gold) for text in draws]
    return {"pass@1": sum(correct) / len(correct)}


# --------------------------------------------------------------------------- letters (MMLU-Pro)

LETTERS = "ABCDEFGHIJ"
_ANSWER_IS = re.compile(r"answer is \(?([A-J])(?:\)|\b)")
_LEADING_LETTER = re.compile(r"^\s*\(?([A-J])\)?(?:[.):\s]|$)")


def extract_choice_letter(generation: str) -> str | None:
    """'... the answer is (C)' (the few-shot format), else a bare leading 'C.' / '(C)'."""
    match = _ANSWER_IS.search(generation) or _LEADING_LETTER.search(generation)
    return match.group(1) if match else None


def mmlu_pro_process_results(doc: dict, results: list[str]) -> dict[str, float]:
    return {"exact_match": float(extract_choice_letter(results[0]) == doc["answer"])}
