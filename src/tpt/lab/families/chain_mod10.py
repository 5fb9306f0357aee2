"""Chained arithmetic mod 10: "Start at 3, add 7, times 3, minus 4 -> 6".

Difficulty d = number of operations; the expert writes one step per operation, so the
trajectory grows linearly with d.  Answering directly needs all d steps in one forward pass.
"""

from __future__ import annotations

import random

from tpt.lab.families.base import Problem, TaskFamily

_OPS = {"add": "add {k}", "sub": "subtract {k}", "mul": "multiply by {k}"}


def apply(op: str, value: int, k: int) -> int:
    if op == "add":
        return (value + k) % 10
    if op == "sub":
        return (value - k) % 10
    return (value * k) % 10


class ChainMod10(TaskFamily):
    name = "chain_mod10"
    kind = "sequential composition (arithmetic mod 10)"
    difficulties = (2, 3, 4, 5)

    def sample(self, rng: random.Random, difficulty: int) -> Problem:
        ops = [[rng.choice(list(_OPS)), rng.randint(2, 9)] for _ in range(difficulty)]
        return {"start": rng.randint(0, 9), "ops": ops}

    def question(self, problem: Problem) -> str:
        said = ", then ".join(_OPS[op].format(k=k) for op, k in problem["ops"])
        return f"Working mod 10, start at {problem['start']}, {said}. What is the result?"

    def solve(self, problem: Problem) -> tuple[list[str], str]:
        # Each step repeats the operation's own words: finding the next operation is then a copy
        # of what follows the previous one in the question (learnable by a tiny model), and the
        # arithmetic is local: previous value, operation -> new value.
        value, steps = problem["start"], [f"start at {problem['start']}."]
        for op, k in problem["ops"]:
            value = apply(op, value, k)
            steps.append(f"{_OPS[op].format(k=k)} gives {value}.")
        return steps, str(value)


FAMILY = ChainMod10()
