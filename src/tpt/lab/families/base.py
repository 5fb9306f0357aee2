"""The task-family interface: what a lab family must provide.

A family is one Python module exposing ``FAMILY``, an instance of a ``TaskFamily`` subclass.  It
knows how to draw a problem at a difficulty level, write it as a natural-text document whose key
token (the answer) needs several reasoning steps, write the expert's step-by-step trajectory,
and check an answer.  Problems are plain JSON-able dicts: they travel through the augment stage
as document metadata (``doc.meta["problem"]``), so the expert backend can rebuild the steps.

Every document has the same shape, so one evaluation protocol serves all families::

    <question>  The answer is <answer>.

and every trajectory ends with ``So the answer is <answer>.`` (the think-first prompt reads it).
"""

from __future__ import annotations

import random
import re
from abc import ABC, abstractmethod
from typing import Any

Problem = dict[str, Any]

ANSWER_PREFIX = "The answer is"
ANSWER_RE = re.compile(r"answer is\s*(-?[A-Za-z0-9]+)")


class TaskFamily(ABC):
    """Subclass this in a module and expose an instance as ``FAMILY`` (see docs/lab.md)."""

    name: str = ""  # registry key, also stored in every document's meta
    kind: str = ""  # one line: what sort of reasoning it exercises
    difficulties: tuple[int, ...] = (1, 2, 3)  # levels; trajectory length must grow with them
    # paraphrased step templates (claim 5(c)): a family with wordings > 1 takes ``wording=k``
    # (0 <= k < wordings) in ``solve`` and states every wording's sub-results in ``sub_results``
    wordings: int = 1

    @abstractmethod
    def sample(self, rng: random.Random, difficulty: int) -> Problem:
        """A random problem of this difficulty (a JSON-able dict)."""

    @abstractmethod
    def question(self, problem: Problem) -> str:
        """The problem in natural text, without its answer."""

    @abstractmethod
    def solve(self, problem: Problem) -> tuple[list[str], str]:
        """(reasoning steps, answer): the expert's decomposition of the key token."""

    def sub_results(self, problem: Problem) -> list[str]:
        """Every multi-step sub-result the expert's trajectory states, as the text that states it
        (e.g. two consecutive hops, a chain of two operations from some value).  Together with the
        question these are the problem's *identity*: a training problem that shares any of them
        with a held-out problem is left out, and the leakage scan looks for them verbatim in
        every text the run trains on.  Default: none beyond the question."""
        return []

    def identity(self, problem: Problem) -> set[str]:
        return {self.question(problem), *self.sub_results(problem)}

    def setup(self, seed: int) -> None:  # noqa: B027 (an optional hook: most families need no shared world)
        """Build any shared world (e.g. a knowledge base) from the experiment seed."""

    def background(self) -> list[str]:
        """Extra training documents every arm sees (e.g. atomic facts); none by default."""
        return []

    # --- derived: the same for every family -------------------------------------------------
    def answer(self, problem: Problem) -> str:
        return self.solve(problem)[1]

    def document(self, problem: Problem) -> str:
        return f"{self.question(problem)} {ANSWER_PREFIX} {self.answer(problem)}."

    def trajectory(self, problem: Problem) -> str:
        steps, answer = self.solve(problem)
        return " ".join(steps + [f"So the answer is {answer}."])

    def trajectories(self, problem: Problem) -> list[str]:
        """The clean trajectory in every wording (the first is ``trajectory``)."""
        if self.wordings == 1:
            return [self.trajectory(problem)]
        solved = [self.solve(problem, wording=w) for w in range(self.wordings)]  # type: ignore[call-arg]
        return [" ".join(steps + [f"So the answer is {answer}."]) for steps, answer in solved]

    def noisy_trajectory(
        self, problem: Problem, rng: random.Random, error_rate: float, paraphrase: bool = False
    ) -> str:
        """The trajectory of a worse generator: each step's result is wrong with probability
        ``error_rate`` and the error propagates (later steps compute from the wrong value).  The
        family's ``solve`` must accept ``slip``: a function (right value, possible values) -> the
        value written.  ``paraphrase``: the steps in one of the family's wordings, drawn from ``rng``
        (the same wording for the whole trajectory, as one writer would keep it)."""

        def slip(value, alternatives):
            if rng.random() >= error_rate:
                return value
            wrong = [a for a in alternatives if a != value]
            return rng.choice(wrong) if wrong else value

        extra = {"wording": rng.randrange(self.wordings)} if paraphrase and self.wordings > 1 else {}
        try:
            steps, answer = self.solve(problem, slip=slip if error_rate else None, **extra)  # type: ignore[call-arg]
        except TypeError as e:
            raise ValueError(f"lab family {self.name}: solve() takes no slip=..., so it has no noisy expert") from e
        return " ".join(steps + [f"So the answer is {answer}."])

    def check(self, problem: Problem, completion: str) -> bool:
        """Does ``completion`` state the right answer (the last "answer is X" in it, or its first word)?"""
        return extract_answer(completion) == self.answer(problem)


def extract_answer(completion: str) -> str | None:
    """The last "answer is X" in the text; else the first word (a direct prompt ends in "The answer is")."""
    found = ANSWER_RE.findall(completion)
    if found:
        return found[-1]
    head = re.match(r"\s*(-?[A-Za-z0-9]+)", completion)
    return head.group(1) if head else None
