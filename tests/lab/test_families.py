"""Each family's expert is correct, its held-out split is disjoint from training, and its
trajectories grow with difficulty."""

from __future__ import annotations

import random
import re
import statistics

import pytest

from tpt.lab import corpus
from tpt.lab.families import BUILTIN, load_family
from tpt.lab.families.base import extract_answer

FAMILIES = sorted(BUILTIN)


def brute_force_answer(name: str, family, problem: dict) -> str:
    """The answer computed independently of the family's own solver."""
    if name == "chain_mod10":
        value = problem["start"]
        for op, k in problem["ops"]:
            value = {"add": value + k, "sub": value - k, "mul": value * k}[op] % 10
        return str(value)
    if name == "multiply":
        return str(problem["a"] * problem["b"])
    if name == "divisibility":
        a, b = problem["a"], problem["b"]
        return str(max(n for n in range(1, 1000) if (n * n + a) % (n + b) == 0))
    if name == "two_hop":  # read the chain off the knowledge base's own text
        facts = {}
        for fact in family.background():
            rel, who, whom = re.fullmatch(r"The (\w+) of (\w+) is (\w+)\.", fact).groups()
            facts[(rel, who)] = whom
        who = problem["person"]
        for rel in problem["path"]:
            who = facts[(rel, who)]
        return who
    raise AssertionError(name)


@pytest.mark.parametrize("name", FAMILIES)
def test_expert_answer_checks_out(name):
    family = load_family(name, seed=3)
    rng = random.Random(0)
    for level in family.difficulties:
        for _ in range(40):
            problem = family.sample(rng, level)
            truth = brute_force_answer(name, family, problem)
            assert family.answer(problem) == truth, (problem, family.answer(problem), truth)
            assert family.check(problem, family.trajectory(problem))  # the trajectory states it
            assert extract_answer(family.document(problem)) == truth  # and so does the document
            assert not family.check(problem, "So the answer is wrong.")


@pytest.mark.parametrize("name", FAMILIES)
def test_trajectory_length_grows_with_difficulty(name):
    family = load_family(name, seed=0)
    rng = random.Random(1)
    means = [
        statistics.fmean(len(family.trajectory(family.sample(rng, d)).split()) for _ in range(60))
        for d in family.difficulties
    ]
    assert all(a < b for a, b in zip(means, means[1:])), means


def test_heldout_never_in_training_or_sft():
    families = {n: load_family(n, seed=5) for n in FAMILIES}
    heldout = corpus.draw_heldout(families, per_level=10, seed=5)
    held = corpus.heldout_identity(families, heldout)
    held_questions = {families[h.family].question(h.problem) for h in heldout}
    assert len(held_questions) == len(heldout)  # distinct within the split too
    rows = list(corpus.corpus_rows(families, heldout, 3000, seed=5))
    assert rows and all(not corpus.identity(families[r["family"]], r["problem"]) & held for r in rows)
    assert all(not any(q in r["text"] for q in held_questions) for r in rows[:300])
    sft = list(corpus.sft_rows(families, heldout, 300, seed=5))
    assert all(m["messages"][0]["content"] not in held_questions for m in sft)


@pytest.mark.parametrize("name", FAMILIES)
def test_sub_results_are_what_the_trajectory_states(name):
    """Every identity text of a problem is stated verbatim by its own trajectory or question, and
    a longer problem that contains a shorter one's steps shares an identity text with it."""
    family = load_family(name, seed=1)
    rng = random.Random(2)
    for level in family.difficulties:
        for _ in range(30):
            problem = family.sample(rng, level)
            said = family.question(problem) + " " + " ".join(family.trajectories(problem))  # every wording
            assert all(text in said for text in family.identity(problem)), problem


def test_identity_catches_the_leaks_the_issue_found():
    chain = load_family("chain_mod10")
    held = {"start": 7, "ops": [["mul", 3], ["add", 4]]}  # 7 *3 =1 +4 =5
    inside = {"start": 5, "ops": [["add", 2], ["mul", 3], ["add", 4], ["sub", 2]]}  # 5 +2 =7 *3 =1 +4 =5 -2 =3
    assert chain.identity(held) & chain.identity(inside)
    mult = load_family("multiply")
    assert mult.identity({"a": 37, "b": 2}) & mult.identity({"a": 372, "b": 2})  # 37 x 2's steps inside 372 x 2's
    hop = load_family("two_hop", seed=0)
    a = hop.people[0]
    b = hop.world["boss"][a]
    held2 = {"person": b, "path": ["mentor", "boss"]}
    assert hop.identity(held2) & hop.identity({"person": a, "path": ["boss", "mentor", "boss"]})  # its walk, one hop in


def test_held_out_split_covers_every_level():
    families = {n: load_family(n, seed=0) for n in FAMILIES}
    heldout = corpus.draw_heldout(families, per_level=4, seed=0)
    cells = {(h.family, h.difficulty) for h in heldout}
    assert cells == {(n, d) for n, f in families.items() for d in f.difficulties}


def test_user_family_module_and_bad_name(tmp_path, monkeypatch):
    (tmp_path / "my_family.py").write_text(
        "from tpt.lab.families.base import TaskFamily\n"
        "class Parity(TaskFamily):\n"
        "    name = 'parity'\n    difficulties = (1, 2)\n"
        "    def sample(self, rng, d): return {'bits': [rng.randint(0, 1) for _ in range(2 * d)]}\n"
        "    def question(self, p): return 'Parity of ' + ' '.join(map(str, p['bits'])) + '?'\n"
        "    def solve(self, p): return [f'{b}' for b in p['bits']], str(sum(p['bits']) % 2)\n"
        "FAMILY = Parity()\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    fam = load_family("my_family")
    assert fam.name == "parity" and fam.check({"bits": [1, 1, 1]}, "So the answer is 1.")
    with pytest.raises(ValueError, match="unknown lab family"):
        load_family("no_such_family_xyz")


@pytest.mark.parametrize("name", FAMILIES)
def test_steps_reproduced_counts_leading_expert_steps(name):
    from tpt.lab.evaluate import steps_reproduced

    family = load_family(name, 0)
    problem = family.sample(random.Random(3), max(family.difficulties))
    steps, _ = family.solve(problem)
    assert steps_reproduced(family, problem, " " + family.trajectory(problem)) == 1.0
    # right first step, garbage after it: exactly one step's share
    assert steps_reproduced(family, problem, f" {steps[0]}  zzz {' '.join(steps[1:])}") == pytest.approx(1 / len(steps))
    assert steps_reproduced(family, problem, "zzz " + family.trajectory(problem)) == 0.0


def test_chain_mod10_is_aligned_in_the_lab_tokenizer(tmp_path):
    """chain_mod10's point (docs/lab.md, "Third round"): every question has the same token count and
    every trajectory step ("+7 =0") as many tokens as a question slot ("then +7 ,"), so the
    operand a step needs is always the same distance back.  Checked with the tokenizer the lab
    trains (same texts, same vocabulary size), not assumed."""
    from transformers import AutoTokenizer

    from tpt.lab.config import PROFILES
    from tpt.lab.stages import make_tokenizer

    prof = PROFILES["default"]
    families = {name: load_family(name, 0) for name in prof.families}
    rows = list(corpus.corpus_rows(families, [], 3000, 0))
    path = make_tokenizer(tmp_path / "seed-0", rows, families, prof)
    tok = AutoTokenizer.from_pretrained(path)
    chain, rng = families["chain_mod10"], random.Random(3)
    question_lengths, step_lengths = set(), set()
    for _ in range(300):
        problem = chain.sample(rng, rng.choice(chain.difficulties))
        question_lengths.add(len(tok.encode(chain.question(problem), add_special_tokens=False)))
        steps, _ = chain.solve(problem)
        step_lengths |= {len(tok.encode(" " + step, add_special_tokens=False)) for step in steps[1:]}
        slots = chain.question(problem).split(" , then ")[1:]
        step_lengths |= {
            len(tok.encode(" then " + slot.rstrip(" ,") + " ,", add_special_tokens=False)) for slot in slots
        }
    assert len(question_lengths) == 1, question_lengths
    assert step_lengths == {4}, step_lengths


def test_reflect_mode_reads_the_thinkings_conclusion_else_the_guess():
    from tpt.lab.evaluate import answer_text

    family, problem = load_family("chain_mod10"), {"start": 3, "ops": [["add", 7], ["mul", 3]]}  # -> 0
    thought = " 7. <think> start at 3 +7 =0 *3 =0 So the answer is 0. </think> junk"
    assert family.check(problem, answer_text(thought, "reflect"))  # the thinking overrides the wrong guess
    assert (
        answer_text(" 0. Working mod 10 , start at 1 , The answer is 4.", "reflect") == " 0"
    )  # no thinking: the guess
    assert answer_text(" 5. <think> start at 3 +7", "reflect") == " 5"  # thinking that never concludes: the guess
    assert (
        answer_text(" 5. Working mod 10 , The answer is 4. <think> start", "reflect") == " 5"
    )  # not the next document's
