"""Multi-hop facts over a synthetic knowledge base: "Who is the mentor of the boss of Kavo?".

The world (people and two relations) is drawn from the experiment seed; every arm trains on the
same atomic facts (``background()``: "The boss of Kavo is Lomu."), the documents ask composed
questions.  Difficulty d = number of hops (2..3; one hop is an atomic fact, known to every arm by
design).  The expert states each hop in the background's own words, so both arms see the facts'
wording alike; TPT's trajectories repeat facts, which is what thinking does.

Held-out problems are compositions no training trajectory states: every walk of >= 2 hops a
trajectory contains (at any position) is part of its identity.  The world has 200 people, so the
2- and 3-hop walks (800 and 1,600) are not all stated by a few thousand training documents.
"""

from __future__ import annotations

import random

from tpt.lab.families.base import Problem, TaskFamily

_SYLLABLES = ["ka", "vo", "ri", "mu", "te", "lo", "sa", "ne", "pi", "do", "zu", "ha", "be", "fi", "go", "ly"]
_RELATIONS = ("boss", "mentor")


class TwoHop(TaskFamily):
    name = "two_hop"
    kind = "knowledge composition (multi-hop over learned facts)"
    difficulties = (2, 3)

    def __init__(self, people: int = 200):
        self.people_count = people
        self.setup(0)

    def setup(self, seed: int) -> None:
        rng = random.Random(f"two_hop-world-{seed}")
        names: set[str] = set()
        while len(names) < self.people_count:
            names.add((rng.choice(_SYLLABLES) + rng.choice(_SYLLABLES)).capitalize())
        self.people = sorted(names)
        # each relation maps every person to someone else
        self.world = {
            rel: {p: rng.choice([q for q in self.people if q != p]) for p in self.people} for rel in _RELATIONS
        }

    def fact(self, rel: str, who: str, whom: str | None = None) -> str:
        return f"The {rel} of {who} is {whom or self.world[rel][who]}."

    def background(self) -> list[str]:
        return [self.fact(rel, p) for rel in _RELATIONS for p in self.people]

    def sample(self, rng: random.Random, difficulty: int) -> Problem:
        return {"person": rng.choice(self.people), "path": [rng.choice(_RELATIONS) for _ in range(difficulty)]}

    def question(self, problem: Problem) -> str:
        # "the mentor of the boss of X": the facts' own phrasing, nested (last hop first)
        said = " of ".join(f"the {rel}" for rel in reversed(problem["path"]))
        return f"Who is {said} of {problem['person']}?"

    def solve(self, problem: Problem, slip=None) -> tuple[list[str], str]:
        who, steps = problem["person"], []
        for rel in problem["path"]:
            nxt = slip(self.world[rel][who], self.people) if slip else self.world[rel][who]
            steps.append(self.fact(rel, who, nxt))
            who = nxt
        return steps, who

    def sub_results(self, problem: Problem) -> list[str]:
        steps = self.solve(problem)[0]
        return [" ".join(steps[i:j]) for i in range(len(steps)) for j in range(i + 2, len(steps) + 1)]


FAMILY = TwoHop()
