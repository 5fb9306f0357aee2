"""Multi-digit multiplication by a one-digit number, written out with carries.

Difficulty d = digits of the first factor; the expert multiplies digit by digit from the right,
one step per digit (with its carry), so the trajectory grows linearly with d.
"""

from __future__ import annotations

import random

from tpt.lab.families.base import Problem, TaskFamily


class Multiply(TaskFamily):
    name = "multiply"
    kind = "long multiplication (digit-wise with carries)"
    difficulties = (1, 2, 3)

    def sample(self, rng: random.Random, difficulty: int) -> Problem:
        low = 10 ** (difficulty - 1) if difficulty > 1 else 2
        return {"a": rng.randint(low, 10**difficulty - 1), "b": rng.randint(2, 9)}

    def question(self, problem: Problem) -> str:
        return f"What is {problem['a']} times {problem['b']}?"

    def solve(self, problem: Problem) -> tuple[list[str], str]:
        a, b = problem["a"], problem["b"]
        digits, carry, out, steps = str(a)[::-1], 0, [], []
        for place, ch in enumerate(digits):
            prod = int(ch) * b + carry
            out.append(prod % 10)
            steps.append(f"digit {ch} times {b} plus carry {carry} is {prod}, write {prod % 10} carry {prod // 10}.")
            carry = prod // 10
        if carry:
            steps.append(f"write the last carry {carry}.")
            out.append(carry)
        answer = "".join(map(str, out[::-1]))
        assert int(answer) == a * b  # the written procedure must agree with Python
        return steps, answer


FAMILY = Multiply()
