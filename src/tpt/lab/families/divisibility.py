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


class Divisibility(TaskFamily):
    name = "divisibility"
    kind = "algebraic insight + arithmetic (remainder theorem)"
    difficulties = (1, 2, 3)

    def sample(self, rng: random.Random, difficulty: int) -> Problem:
        b = rng.randint(*{1: (1, 3), 2: (4, 6), 3: (7, 9)}[difficulty])
        return {"a": rng.randint(1, A_MAX), "b": b, "d": difficulty}

    def question(self, problem: Problem) -> str:
        return f"Find the largest n such that n squared plus {problem['a']} is divisible by n plus {problem['b']}."

    def solve(self, problem: Problem, slip=None) -> tuple[list[str], str]:
        a, b = problem["a"], problem["b"]

        def noisy(value: int) -> int:  # a slip is an off-by-a-little arithmetic error
            return slip(value, range(max(1, value - 5), value + 6)) if slip else value

        square = noisy(b * b)
        total = noisy(square + a)
        answer = noisy(total - b)
        steps = [f"n is -{b} modulo n plus {b}, so n plus {b} divides {b} squared plus {a}."]
        if problem.get("d", 1) >= 2:  # larger b: write the square out instead of recalling it
            steps.append(f"{b} squared is {b} times {b} which is {square}.")
        else:
            steps.append(f"{b} squared is {square}.")
        steps.append(f"{square} plus {a} is {total}.")
        if problem.get("d", 1) >= 3:
            steps.append(f"the largest divisor of {total} is {total} itself.")
        steps.append(f"so n plus {b} is {total}, and n is {total} minus {b} which is {answer}.")
        return steps, str(answer)

    def sub_results(self, problem: Problem) -> list[str]:
        """The (a, b) pair in every step that depends on both: only the same (a, b) states them."""
        a, b = problem["a"], problem["b"]
        square, total = b * b, b * b + a
        return [
            f"{b} squared plus {a}.",
            f"{square} plus {a} is {total}.",
            f"n is {total} minus {b} which is {total - b}.",
        ]


FAMILY = Divisibility()
