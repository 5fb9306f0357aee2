"""A divisibility puzzle in the spirit of the paper's "n^3 + 100 divisible by n + 10 -> 890".

"Find the largest n such that n^2 + a is divisible by n + b": since n = -b mod (n + b),
n + b must divide b^2 + a, so the largest n is b^2 + a - b.  Kept to squares and small numbers
so a ~0.1M-parameter model can do the arithmetic.  Difficulty d picks the size of b (and so the
number of arithmetic steps written out: the square is expanded for larger b).  a runs to 99, so
each level has hundreds of problems, not the few dozen a model could memorise.
"""

from __future__ import annotations

import random

from tpt.lab.families.base import Problem, TaskFamily

A_MAX = 99
# step templates: wording 0 is the default; the others are 5(c)'s paraphrases.  "pair" and
# "tail" are the parts of "insight" and "result" that state (a, b)'s sub-results (identity);
# each starts with a word, so no pattern of a = 8 is a substring of one of a = 98
WORDINGS = (
    {
        "insight": "n is -{b} modulo n plus {b}, so n plus {b} divides {b} squared plus {a}.",
        "pair": "{b} squared plus {a}.",
        "square": "{b} squared is {s}.",
        "square_long": "{b} squared is {b} times {b} which is {s}.",
        "sum": "{s} plus {a} is {t}.",
        "divisor": "the largest divisor of {t} is {t} itself.",
        "result": "so n plus {b} is {t}, and n is {t} minus {b} which is {n}.",
        "tail": "n is {t} minus {b} which is {n}.",
    },
    {
        "insight": "by the remainder theorem n plus {b} must divide the square of {b} added to {a}.",
        "pair": "the square of {b} added to {a}.",
        "square": "the square of {b} is {s}.",
        "square_long": "{b} times {b} gives {s}.",
        "sum": "adding {a} to {s} gives {t}.",
        "divisor": "{t} is its own largest divisor.",
        "result": "hence n plus {b} equals {t}, so n equals {t} take away {b}, that is {n}.",
        "tail": "n equals {t} take away {b}, that is {n}.",
    },
    {
        "insight": "replace n by -{b}: n plus {b} has to divide {a} plus {b} squared.",
        "pair": "divide {a} plus {b} squared.",
        "square": "{b} squared makes {s}.",
        "square_long": "{b} squared means {b} times {b}, so {s}.",
        "sum": "so {a} more than {s} makes {t}.",
        "divisor": "take the biggest divisor of {t}, which is {t}.",
        "result": "then n plus {b} is {t} and n is {t} less {b}, giving {n}.",
        "tail": "n is {t} less {b}, giving {n}.",
    },
)


class Divisibility(TaskFamily):
    name = "divisibility"
    kind = "algebraic insight + arithmetic (remainder theorem)"
    difficulties = (1, 2, 3)
    wordings = len(WORDINGS)

    def sample(self, rng: random.Random, difficulty: int) -> Problem:
        b = rng.randint(*{1: (1, 3), 2: (4, 6), 3: (7, 9)}[difficulty])
        return {"a": rng.randint(1, A_MAX), "b": b, "d": difficulty}

    def question(self, problem: Problem) -> str:
        return f"Find the largest n such that n squared plus {problem['a']} is divisible by n plus {problem['b']}."

    def solve(self, problem: Problem, slip=None, wording: int = 0) -> tuple[list[str], str]:
        a, b = problem["a"], problem["b"]

        def noisy(value: int) -> int:  # a slip is an off-by-a-little arithmetic error
            return slip(value, range(max(1, value - 5), value + 6)) if slip else value

        square = noisy(b * b)
        total = noisy(square + a)
        answer = noisy(total - b)
        w = WORDINGS[wording]
        steps = [w["insight"].format(a=a, b=b)]
        # larger b: write the square out instead of recalling it
        steps.append((w["square_long"] if problem.get("d", 1) >= 2 else w["square"]).format(b=b, s=square))
        steps.append(w["sum"].format(s=square, a=a, t=total))
        if problem.get("d", 1) >= 3:
            steps.append(w["divisor"].format(t=total))
        steps.append(w["result"].format(b=b, t=total, n=answer))
        return steps, str(answer)

    def sub_results(self, problem: Problem) -> list[str]:
        """The (a, b) pair in every step that depends on both, in every wording: only the same (a, b) states them."""
        a, b = problem["a"], problem["b"]
        square, total = b * b, b * b + a
        out = []
        for w in WORDINGS:
            out += [w["pair"].format(a=a, b=b), w["sum"].format(s=square, a=a, t=total),
                    w["tail"].format(b=b, t=total, n=total - b)]  # fmt: skip
        return out


FAMILY = Divisibility()
