"""MATH scoring as lm-eval's ``minerva_math`` computes it (lm-eval 0.4.13, task version 3.1).

Two metrics per problem, both lm-eval's:

- ``exact_match``: Minerva's (Lewkowycz et al. 2022) -- the text between "Final Answer: The final
  answer is" and "I hope it is correct." is normalised (units, ``\\text``, ``$`` removed) and compared
  with the normalised last ``\\boxed{}`` of the reference solution, by string or by sympy's LaTeX
  parser (which needs antlr4 4.11; see the ``eval`` extra).
- ``math_verify``: math-verify run on the *whole* generation against the *whole* reference
  solution (math-verify finds the answers itself), not on an extracted answer.

This is a copy, not an import, on purpose: tpt's numbers must not move when lm-eval changes its
scorer.  tests/eval/test_eval_fidelity.py checks it against the installed lm-eval, so a drift on
either side fails a test instead of silently changing scores.
"""

from __future__ import annotations

import logging
import re
import signal

log = logging.getLogger(__name__)

INVALID_ANSWER = "[invalidanswer]"


def process_docs(dataset):
    """The reference answer: Minerva-normalised last ``\\boxed{}`` of the solution (MATH-500's own
    ``answer`` field is replaced too, as lm-eval's ``minerva_math500`` does)."""

    def _process_doc(doc: dict) -> dict:
        return {
            "problem": doc["problem"],
            "solution": doc["solution"],
            "answer": normalize_final_answer(remove_boxed(last_boxed_only_string(doc["solution"]))),
        }

    return dataset.map(_process_doc)


def process_results(doc: dict, results: list[str]) -> dict[str, int]:
    generation = results[0]
    answer = normalize_final_answer(get_unnormalized_answer(generation))
    exact = is_equiv(answer, doc["answer"])
    return {"exact_match": int(exact), "math_verify": int(whole_generation_verify(doc, generation))}


def whole_generation_verify(doc: dict, generation: str) -> bool:
    from math_verify import parse, verify

    return bool(verify(gold=parse(doc["solution"]), target=parse(generation)))


def get_unnormalized_answer(text: str) -> str:
    match = re.search(r"Final Answer: The final answer is(.*?). I hope it is correct.", text + "I hope it is correct.")
    return match.group(1).strip() if match else INVALID_ANSWER


def last_boxed_only_string(string: str) -> str | None:
    idx = string.rfind("\\boxed")
    if "\\boxed " in string:
        return "\\boxed " + string.split("\\boxed ")[-1].split("$")[0]
    if idx < 0:
        idx = string.rfind("\\fbox")
        if idx < 0:
            return None
    depth = 0
    for i in range(idx, len(string)):
        depth += {"{": 1, "}": -1}.get(string[i], 0)
        if string[i] == "}" and depth == 0:
            return string[idx : i + 1]
    return None


def remove_boxed(s: str) -> str:
    if "\\boxed " in s:
        assert s.startswith("\\boxed ")
        return s[len("\\boxed ") :]
    assert s.startswith("\\boxed{") and s.endswith("}")
    return s[len("\\boxed{") : -1]


class _Timeout:
    """SIGALRM-based, as lm-eval's: sympy can hang on pathological LaTeX (main thread only)."""

    def __init__(self, seconds: int):
        self.seconds = seconds

    def _raise(self, signum, frame):
        raise TimeoutError

    def __enter__(self):
        signal.signal(signal.SIGALRM, self._raise)
        signal.alarm(self.seconds)

    def __exit__(self, *exc):
        signal.alarm(0)


def is_equiv(x1: str, x2: str) -> bool:
    """Equal strings, or sympy-equal LaTeX (x1 - x2 simplifies to 0); anything unparsable is unequal."""
    if isinstance(x1, str) and x1 and x1 == x2:
        return True
    import sympy
    from sympy.parsing.latex import parse_latex

    try:
        with _Timeout(5):
            try:
                diff = parse_latex(x1) - parse_latex(x2)
            except (sympy.parsing.latex.errors.LaTeXParsingError, sympy.SympifyError, TypeError):
                return False
            try:
                return sympy.simplify(diff) == 0
            except ValueError:
                return False
    except TimeoutError:
        return False
    except ImportError:
        raise
    except Exception as err:  # noqa: BLE001 - lm-eval treats any other sympy failure as "not equal"
        log.debug("failed comparing %s and %s: %s", x1, x2, err)
        return False


SUBSTITUTIONS = [
    ("an ", ""),
    ("a ", ""),
    (".$", "$"),
    ("\\$", ""),
    (r"\ ", ""),
    (" ", ""),
    ("mbox", "text"),
    (",\\text{and}", ","),
    ("\\text{and}", ","),
    ("\\text{m}", "\\text{}"),
]
REMOVED_EXPRESSIONS = [
    "square",
    "ways",
    "integers",
    "dollars",
    "mph",
    "inches",
    "ft",
    "hours",
    "km",
    "units",
    "\\ldots",
    "sue",
    "points",
    "feet",
    "minutes",
    "digits",
    "cents",
    "degrees",
    "cm",
    "gm",
    "pounds",
    "meters",
    "meals",
    "edges",
    "students",
    "childrentickets",
    "multiples",
    "\\text{s}",
    "\\text{.}",
    "\\text{\ns}",
    "\\text{}^2",
    "\\text{}^3",
    "\\text{\n}",
    "\\text{}",
    r"\mathrm{th}",
    r"^\circ",
    r"^{\circ}",
    r"\;",
    r",\!",
    "{,}",
    '"',
    "\\dots",
]


def normalize_final_answer(final_answer: str) -> str:
    """Minerva's normalisation (appendix D of Lewkowycz et al. 2022) with lm-eval 0.4.13's fixes."""
    final_answer = final_answer.split("=")[-1]
    # unit words first, while whitespace still delimits them ("2\pi cm" loses "cm", "\left" keeps "ft")
    for expr in REMOVED_EXPRESSIONS:
        if expr.isalpha():
            final_answer = re.sub(rf"(?<!\\)\b{expr}\b", "", final_answer)
    for before, after in SUBSTITUTIONS:
        final_answer = final_answer.replace(before, after)
    for expr in REMOVED_EXPRESSIONS:
        if expr.isalpha():
            # units glued to their neighbours, outside LaTeX command names
            segments = re.split(r"(\\[a-zA-Z]+)", final_answer)
            for i in range(0, len(segments), 2):
                segments[i] = segments[i].replace(expr, "")
            final_answer = "".join(segments)
        else:
            final_answer = final_answer.replace(expr, "")
    final_answer = re.sub(r"(.*?)(\$)(.*?)(\$)(.*)", "$\\3$", final_answer)
    final_answer = re.sub(r"(\\text\{)(.*?)(\})", "\\2", final_answer)
    final_answer = re.sub(r"(\\textbf\{)(.*?)(\})", "\\2", final_answer)
    final_answer = re.sub(r"(\\overline\{)(.*?)(\})", "\\2", final_answer)
    final_answer = re.sub(r"(\\boxed\{)(.*)(\})", "\\2", final_answer)
    # shorthand TeX: \fracab -> \frac{a}{b}, \sqrt[3]a -> \sqrt[3]{a}, \sqrta -> \sqrt{a}
    final_answer = re.sub(r"(frac)([^{])(.)", "frac{\\2}{\\3}", final_answer)
    final_answer = re.sub(r"(sqrt)(\[[^\]]*\])(\w)", "\\1\\2{\\3}", final_answer)
    final_answer = re.sub(r"(sqrt)(?!\[)([^{])", "sqrt{\\2}", final_answer)
    final_answer = final_answer.replace("$", "")
    # 100,000 -> 100000, but a tuple "0,1" stays a tuple
    if re.fullmatch(r"-?\d{1,3}(,\d{3})+", final_answer):
        final_answer = final_answer.replace(",", "")
    return final_answer
