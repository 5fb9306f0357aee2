"""Two-hop facts over a synthetic knowledge base: "Who do you reach from Kavo by taking the boss, then the mentor?".

The world (people and two relations) is drawn from the experiment seed; every arm trains on the
same atomic facts (``background()``), the documents ask composed questions.  Difficulty d = number
of hops (1..3); the expert states each hop, so the trajectory grows linearly with d.  Held-out
problems are compositions never asked in training (their atomic facts are known).
"""

from __future__ import annotations

import random

from tpt.lab.families.base import Problem, TaskFamily

_SYLLABLES = ["ka", "vo", "ri", "mu", "te", "lo", "sa", "ne", "pi", "do", "zu", "ha", "be", "fi", "go", "ly"]
_RELATIONS = ("boss", "mentor")


class TwoHop(TaskFamily):
    name = "two_hop"
    kind = "knowledge composition (multi-hop over learned facts)"
    difficulties = (1, 2, 3)

    def __init__(self, people: int = 40):
        self.people_count = people
        self.setup(0)

    def setup(self, seed: int) -> None:
        rng = random.Random(f"two_hop-world-{seed}")
        names: set[str] = set()
        while len(names) < self.people_count:
            names.add((rng.choice(_SYLLABLES) + rng.choice(_SYLLABLES)).capitalize())
        self.people = sorted(names)
        # each relation maps every person to someone else
        self.world = {rel: {p: rng.choice([q for q in self.people if q != p]) for p in self.people} for rel in _RELATIONS}

    def background(self) -> list[str]:
        return [f"The {rel} of {p} is {q}." for rel in _RELATIONS for p, q in self.world[rel].items()]

    def sample(self, rng: random.Random, difficulty: int) -> Problem:
        return {"person": rng.choice(self.people), "path": [rng.choice(_RELATIONS) for _ in range(difficulty)]}

    def question(self, problem: Problem) -> str:
        # hops named in the order they are taken ("the mentor of the boss of X" reverses them)
        return f"Who do you reach from {problem['person']} by taking the {', then the '.join(problem['path'])}?"

    def solve(self, problem: Problem) -> tuple[list[str], str]:
        who, steps = problem["person"], []
        for rel in problem["path"]:
            nxt = self.world[rel][who]
            steps.append(f"The {rel} of {who} is {nxt}.")
            who = nxt
        return steps, who


FAMILY = TwoHop()
