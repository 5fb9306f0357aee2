"""Multi-digit multiplication by a one-digit number, written out with carries.

Difficulty d = digits of the first factor (2..3); the expert multiplies digit by digit from the
right, one step per digit (with its carry), so the trajectory grows linearly with d.  One-digit
products are not a level: the 64 of them are a times table every trajectory states, so no
held-out split of them can be clean.
"""

from __future__ import annotations

import random

from tpt.lab.families.base import Problem, TaskFamily


class Multiply(TaskFamily):
    name = "multiply"
    kind = "long multiplication (digit-wise with carries)"
    difficulties = (2, 3)

    def sample(self, rng: random.Random, difficulty: int) -> Problem:
        return {"a": rng.randint(10 ** (difficulty - 1), 10**difficulty - 1), "b": rng.randint(2, 9)}

    def question(self, problem: Problem) -> str:
        return f"What is {problem['a']} times {problem['b']}?"

    def solve(self, problem: Problem, slip=None) -> tuple[list[str], str]:
        a, b = problem["a"], problem["b"]
        digits, carry, out, steps = str(a)[::-1], 0, [], []
        for ch in digits:
            prod = int(ch) * b + carry
            prod = slip(prod, range(9 * b + carry + 1)) if slip else prod
            out.append(prod % 10)
            steps.append(f"digit {ch} times {b} plus carry {carry} is {prod}, write {prod % 10} carry {prod // 10}.")
            carry = prod // 10
        if carry:
            steps.append(f"write the last carry {carry}.")
            out.append(carry)
        answer = "".join(map(str, out[::-1]))
        assert slip or int(answer) == a * b  # the written procedure must agree with Python
        return steps, answer

    def sub_results(self, problem: Problem) -> list[str]:
        """Every run of >= 2 consecutive digit steps (a partial product of >= 2 digits with its
        carry in, wherever it sits in a longer factor), and the last digit step with the final carry."""
        steps = self.solve(problem)[0]
        return [" ".join(steps[i:j]) for i in range(len(steps)) for j in range(i + 2, len(steps) + 1)]


FAMILY = Multiply()
