"""Lab corpora: held-out problems first, then training documents that never repeat them.

Written files (all JSONL, one row per line):

  heldout.jsonl      {"family", "difficulty", "problem", "question", "answer", "trajectory", "trajectories", "identity"}
                     evaluation only: no training text states its question, any of its
                     sub-results (``identity``) or its trajectory (rescan with tpt.lab.leakage)
  corpus.jsonl       {"id", "text", "family", "difficulty", "problem", "world_seed"}
                     the raw documents; the extra fields become ``doc.meta`` in `tpt augment`,
                     which is how the lab-expert backend reads each problem's structure
  background.jsonl   {"id", "text"}  facts every arm trains on (e.g. the two-hop knowledge base)
  sft.jsonl          {"messages": [...]}  think-then-answer chat examples for post-training
"""

from __future__ import annotations

import json
import random
from collections.abc import Iterable, Iterator
from pathlib import Path

from tpt.lab.evaluate import HeldOut
from tpt.lab.families import TaskFamily


def identity(family: TaskFamily, problem: dict) -> set[tuple[str, str]]:
    return {(family.name, text) for text in family.identity(problem)}


def draw_heldout(families: dict[str, TaskFamily], per_level: int | dict[str, int], seed: int) -> list[HeldOut]:
    """``per_level`` (one count, or one per family) problems for every (family, difficulty), no
    two sharing any identity text."""
    rng = random.Random(f"heldout-{seed}")
    out: list[HeldOut] = []
    for name, family in families.items():
        wanted = per_level[name] if isinstance(per_level, dict) else per_level
        for level in family.difficulties:
            taken: set[tuple[str, str]] = set()
            drawn = 0
            for _ in range(wanted * 50):  # small spaces may hold fewer than asked
                if drawn == wanted:
                    break
                problem = family.sample(rng, level)
                ident = identity(family, problem)
                if not ident & taken:
                    taken |= ident
                    drawn += 1
                    out.append(HeldOut(name, level, problem))
    return out


def heldout_identity(families: dict[str, TaskFamily], heldout: list[HeldOut]) -> set[tuple[str, str]]:
    return set().union(*(identity(families[h.family], h.problem) for h in heldout)) if heldout else set()


def training_problems(
    families: dict[str, TaskFamily], excluded: set[tuple[str, str]], seed: int
) -> Iterator[tuple[TaskFamily, int, dict]]:
    """An endless stream of (family, difficulty, problem), uniform over families and levels,
    skipping every problem that shares any identity text with a held-out one."""
    rng = random.Random(f"train-{seed}")
    names = sorted(families)
    while True:
        family = families[rng.choice(names)]
        level = rng.choice(family.difficulties)
        problem = family.sample(rng, level)
        if not identity(family, problem) & excluded:
            yield family, level, problem


def corpus_rows(families: dict[str, TaskFamily], heldout: list[HeldOut], n_docs: int, seed: int) -> Iterator[dict]:
    stream = training_problems(families, heldout_identity(families, heldout), seed)
    # "other": the previous training problem of the same family (the [d; t_other] control's
    # trajectory); a separate stream seeds it, so the documents are the same with or without it
    other_stream = training_problems(families, heldout_identity(families, heldout), seed + 104729)
    last: dict[str, dict] = {}
    while len(last) < len(families):
        family, _, problem = next(other_stream)
        last.setdefault(family.name, problem)
    for i in range(n_docs):
        family, level, problem = next(stream)
        yield {
            "id": f"{family.name}-{i:07d}",
            "text": family.document(problem),
            "family": family.name,
            "difficulty": level,
            "problem": problem,
            "world_seed": seed,
            "other": last[family.name],
        }
        last[family.name] = problem


def sft_rows(families: dict[str, TaskFamily], heldout: list[HeldOut], n_examples: int, seed: int) -> Iterator[dict]:
    """Think-then-answer chat examples (the post-training set both arms get), disjoint from held-out."""
    stream = training_problems(
        families, heldout_identity(families, heldout), seed + 7919
    )  # a different stream from the corpus
    for _ in range(n_examples):
        family, _, problem = next(stream)
        reply = f"<think> {family.trajectory(problem)} </think> The answer is {family.answer(problem)}."
        yield {
            "messages": [{"role": "user", "content": family.question(problem)}, {"role": "assistant", "content": reply}]
        }


def background_rows(families: dict[str, TaskFamily]) -> list[dict]:
    return [
        {"id": f"{name}-fact-{i:05d}", "text": text}
        for name, fam in families.items()
        for i, text in enumerate(fam.background())
    ]


def write_jsonl(path: Path, rows: Iterable[dict]) -> int:
    """One JSON row per line, written through the one atomic write: a reader (or a rerun's
    exists-check) never sees a half-written file."""
    from tpt.io.atomic import atomic_path

    n = 0
    with atomic_path(path) as tmp, open(tmp, "w", encoding="utf-8") as f:
        for row in rows:
            f.write(json.dumps(row, ensure_ascii=False) + "\n")
            n += 1
    return n


def read_heldout(path: Path) -> list[HeldOut]:
    rows = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    return [HeldOut(r["family"], r["difficulty"], r["problem"]) for r in rows]


def write_heldout(path: Path, heldout: list[HeldOut], families: dict[str, TaskFamily]) -> int:
    """One row per held-out problem with everything a leakage scan needs: its question, answer,
    the expert's full trajectory and the sub-results it must not share with any training text."""

    def row(h: HeldOut) -> dict:
        fam = families[h.family]
        return {
            "family": h.family,
            "difficulty": h.difficulty,
            "problem": h.problem,
            "question": fam.question(h.problem),
            "answer": fam.answer(h.problem),
            "trajectory": fam.trajectory(h.problem),
            "trajectories": fam.trajectories(h.problem),  # every wording (5(c) paraphrases)
            "identity": sorted(fam.identity(h.problem)),
        }

    return write_jsonl(path, (row(h) for h in heldout))
