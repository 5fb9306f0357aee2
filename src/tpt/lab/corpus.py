"""Lab corpora: held-out problems first, then training documents that never repeat them.

Written files (all JSONL, one row per line):

  heldout.jsonl      {"family", "difficulty", "problem"}        evaluation only, never trained on
  corpus.jsonl       {"id", "text", "family", "difficulty", "problem", "world_seed"}
                     the raw documents; the extra fields become ``doc.meta`` in `tpt augment`,
                     which is how the lab-expert backend reads each problem's structure
  background.jsonl   {"id", "text"}  facts every arm trains on (e.g. the two-hop knowledge base)
  sft.jsonl          {"messages": [...]}  think-then-answer chat examples for post-training
"""

from __future__ import annotations

import json
import random
from pathlib import Path
from typing import Iterable, Iterator

from tpt.lab.evaluate import HeldOut
from tpt.lab.families import TaskFamily


def problem_key(family: TaskFamily, problem: dict) -> tuple[str, str]:
    return family.name, family.key(problem)


def draw_heldout(families: dict[str, TaskFamily], per_level: int, seed: int) -> list[HeldOut]:
    """``per_level`` distinct problems for every (family, difficulty)."""
    rng = random.Random(f"heldout-{seed}")
    out: list[HeldOut] = []
    for name, family in families.items():
        for level in family.difficulties:
            seen: set[tuple[str, str]] = set()
            for _ in range(per_level * 50):  # small spaces (e.g. 1-hop facts) may hold fewer than asked
                if len(seen) == per_level:
                    break
                problem = family.sample(rng, level)
                key = problem_key(family, problem)
                if key not in seen:
                    seen.add(key)
                    out.append(HeldOut(name, level, problem))
    return out


def training_problems(
    families: dict[str, TaskFamily], excluded: set[tuple[str, str]], seed: int
) -> Iterator[tuple[TaskFamily, int, dict]]:
    """An endless stream of (family, difficulty, problem), uniform over families and levels,
    skipping every held-out problem (by key)."""
    rng = random.Random(f"train-{seed}")
    names = sorted(families)
    while True:
        family = families[rng.choice(names)]
        level = rng.choice(family.difficulties)
        problem = family.sample(rng, level)
        if problem_key(family, problem) not in excluded:
            yield family, level, problem


def corpus_rows(families: dict[str, TaskFamily], heldout: list[HeldOut], n_docs: int, seed: int) -> Iterator[dict]:
    excluded = {problem_key(families[h.family], h.problem) for h in heldout}
    stream = training_problems(families, excluded, seed)
    for i in range(n_docs):
        family, level, problem = next(stream)
        yield {
            "id": f"{family.name}-{i:07d}",
            "text": family.document(problem),
            "family": family.name,
            "difficulty": level,
            "problem": problem,
            "world_seed": seed,
        }


def sft_rows(families: dict[str, TaskFamily], heldout: list[HeldOut], n_examples: int, seed: int) -> Iterator[dict]:
    """Think-then-answer chat examples (the post-training set both arms get), disjoint from held-out."""
    excluded = {problem_key(families[h.family], h.problem) for h in heldout}
    stream = training_problems(families, excluded, seed + 7919)  # a different stream from the corpus
    for _ in range(n_examples):
        family, _, problem = next(stream)
        reply = f"<think> {family.trajectory(problem)} </think> The answer is {family.answer(problem)}."
        yield {"messages": [{"role": "user", "content": family.question(problem)}, {"role": "assistant", "content": reply}]}


def background_rows(families: dict[str, TaskFamily]) -> list[dict]:
    return [{"id": f"{name}-fact-{i:05d}", "text": text} for name, fam in families.items() for i, text in enumerate(fam.background())]


def write_jsonl(path: Path, rows: Iterable[dict]) -> int:
    path.parent.mkdir(parents=True, exist_ok=True)
    n = 0
    with path.open("w", encoding="utf-8") as f:
        for row in rows:
            f.write(json.dumps(row, ensure_ascii=False) + "\n")
            n += 1
    return n


def read_heldout(path: Path) -> list[HeldOut]:
    return [HeldOut(**json.loads(line)) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def write_heldout(path: Path, heldout: list[HeldOut]) -> int:
    return write_jsonl(path, ({"family": h.family, "difficulty": h.difficulty, "problem": h.problem} for h in heldout))
