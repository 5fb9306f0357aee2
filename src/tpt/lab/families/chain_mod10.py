"""Chained arithmetic mod 10: "start at 3 , then +7 , then *3 , then -4 -> 6".

Difficulty d = number of operations (2..5); the expert writes one step per operation
("+7 =0"), so the trajectory grows linearly with d.  Answering directly needs all d steps in
one forward pass.

The format is *aligned* (docs/lab.md): every question has MAX_OPS operation slots ("then + 0"
fills the unused ones: adding 0 changes nothing, and the expert skips it as trivial), and a
question slot ("then +7 ,") has as many tokens as a trajectory step ("+7 =0").  So the operand
that step j needs sits at the same distance behind it in every document: a tiny model can fetch
it with a fixed-offset attention head instead of a content-matching copy circuit.
"""

from __future__ import annotations

import random

from tpt.lab.families.base import Problem, TaskFamily

MAX_OPS = 5
# (start, step) templates: wording 0 is the aligned default; the others are 5(c)'s paraphrases
WORDINGS = (
    ("start at {v}", "{op}{k} ={v}"),
    ("begin with {v}", "{op}{k} gives {v}"),
    ("the value is {v}", "then {op}{k} makes it {v}"),
)
_SYMBOL = {"add": "+", "sub": "-", "mul": "*"}
_PAD = ["add", 0]  # identity: fills the unused slots


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
    wordings = len(WORDINGS)

    def sample(self, rng: random.Random, difficulty: int) -> Problem:
        ops = [[rng.choice(list(_SYMBOL)), rng.randint(2, 9)] for _ in range(difficulty)]
        return {"start": rng.randint(0, 9), "ops": ops}

    def question(self, problem: Problem) -> str:
        slots = problem["ops"] + [_PAD] * (MAX_OPS - len(problem["ops"]))
        said = " ".join(f"then {_SYMBOL[op]}{k} ," for op, k in slots)
        return f"Working mod 10 , start at {problem['start']} , {said}"

    def values(self, problem: Problem, slip=None) -> list[int]:
        """The running value before the first and after every operation (``slip``: see noisy_trajectory)."""
        out = [problem["start"]]
        for op, k in problem["ops"]:
            value = apply(op, out[-1], k)
            out.append(slip(value, range(10)) if slip else value)
        return out

    def solve(self, problem: Problem, slip=None, wording: int = 0) -> tuple[list[str], str]:
        # "start at 3" then one 4-token step per real operation: "+7 =0".  The previous value
        # is always 3 tokens back, the operation and operand at one fixed distance in the question.
        # Other wordings (5(c) paraphrases) say the same with other, longer words: not aligned.
        start, step = WORDINGS[wording]
        values = self.values(problem, slip)
        steps = [start.format(v=problem["start"])]
        steps += [step.format(op=_SYMBOL[op], k=k, v=v) for (op, k), v in zip(problem["ops"], values[1:])]
        return steps, str(values[-1])

    def sub_results(self, problem: Problem) -> list[str]:
        """Every run of >= 2 consecutive operations from the value it starts at ("7 *3 =1 +4 =5"),
        in every wording: a trajectory stating it, at any position, computes that chain for a model to copy."""
        values, out = self.values(problem), []
        for wording in range(self.wordings):
            steps = self.solve(problem, wording=wording)[0][1:]
            out += [" ".join([str(values[i]), *steps[i:j]]) for i in range(len(steps))
                    for j in range(i + 2, len(steps) + 1)]  # fmt: skip
        return out


FAMILY = ChainMod10()
