"""The lab expert as a real `tpt augment` backend: records carry the family's trajectory, bad
rows become failed rows with a reason, and the thinking budget is honoured."""

from __future__ import annotations

import json

from tpt.augment.backends.base import GenRequest, SamplingParams, load_backend_factory
from tpt.augment.config import AugmentConfig
from tpt.augment.run import run_augment
from tpt.augment.specs import InputSpec
from tpt.config import build
from tpt.io.runs import iter_records
from tpt.lab import corpus
from tpt.lab.families import BUILTIN, load_family
from tpt.records import Document


def test_expert_through_the_augment_stage(tmp_path):
    families = {n: load_family(n, seed=2) for n in BUILTIN}
    rows = list(corpus.corpus_rows(families, [], 40, seed=2))
    bad = {"id": "bad-1", "text": "A document without a problem."}  # no lab meta: must fail, not vanish
    corpus.write_jsonl(tmp_path / "corpus.jsonl", rows + [bad])
    cfg = build(
        AugmentConfig,
        inputs=[InputSpec(tmp_path / "corpus.jsonl")],
        out=tmp_path / "run",
        backend="lab-expert",
        progress=False,
    )
    summary = run_augment(cfg)
    assert summary.records == 40 and summary.failed == 1
    by_id = {r["id"]: r for r in rows}
    for rec in iter_records(tmp_path / "run"):
        row = by_id[rec.id]
        family = families[row["family"]]
        assert rec.thinking == family.trajectory(row["problem"])
        assert family.check(row["problem"], rec.thinking)
        assert rec.meta["difficulty"] == row["difficulty"] and rec.backend == "lab-expert"
        assert rec.thinking_tokens == len(rec.thinking.split())  # no tokenizer given: words


def test_expert_reports_errors_and_length(tmp_path):
    expert = load_backend_factory("lab-expert")(build(AugmentConfig, inputs=[InputSpec("x")], out="o").backend)
    fam = load_family("chain_mod10")
    problem = {"start": 1, "ops": [["add", 2], ["mul", 3], ["sub", 4], ["add", 5]]}
    good = Document("a", fam.document(problem), {"family": "chain_mod10", "problem": problem, "difficulty": 4})
    mismatched = Document("b", "Some other text.", {"family": "chain_mod10", "problem": problem})
    unknown = Document("c", "x", {"family": "nope", "problem": {}})
    reqs = [GenRequest(doc=d, sample=0, prompt=d.text, seed=0) for d in (good, mismatched, unknown)]
    full, wrong_text, wrong_family = expert.generate(reqs, SamplingParams(max_tokens=1000))
    assert full.error is None and full.finish_reason == "stop" and full.text.endswith("So the answer is 0.")
    assert "does not state its problem" in wrong_text.error
    assert "unknown lab family" in wrong_family.error
    (cut,) = expert.generate(reqs[:1], SamplingParams(max_tokens=5))
    assert cut.finish_reason == "length" and cut.completion_tokens == 5
    assert expert.truncate("one two three", 2) == ("one two", 3, True)
    expert.close()
    json.dumps(full.__dict__)  # plain data


def test_expert_variants_noise_other_filler(tmp_path):
    from tpt.lab.expert import LabExpert

    fam = load_family("chain_mod10")
    heldout = corpus.draw_heldout({"chain_mod10": fam}, 40, seed=1)
    rows = list(corpus.corpus_rows({"chain_mod10": fam}, heldout, 400, seed=1))
    docs = [Document(r["id"], r["text"], {k: r[k] for k in ("family", "problem", "difficulty", "other")}) for r in rows]
    reqs = [GenRequest(doc=d, sample=0, prompt=d.text, seed=0) for d in docs]
    sampling = SamplingParams(max_tokens=1000)
    clean = [r.text for r in LabExpert().generate(reqs, sampling)]
    noisy = {v: [r.text for r in LabExpert(variant=v).generate(reqs, sampling)] for v in ("noisy10", "noisy30")}
    wrong = {
        v: sum(not fam.check(r["problem"], t) for r, t in zip(rows, texts)) / len(rows) for v, texts in noisy.items()
    }
    # a step is wrong with probability p and errors propagate: 2-5 steps, so 1-(1-p)^d of answers are wrong (about)
    assert 0.1 < wrong["noisy10"] < 0.5 < wrong["noisy30"] < 0.95, wrong
    assert all(len(n.split()) == len(c.split()) for n, c in zip(noisy["noisy30"], clean))  # same shape, other values
    other = [r.text for r in LabExpert(variant="other").generate(reqs, sampling)]
    assert all(t == fam.trajectory(r["other"]) for r, t in zip(rows, other)) and other[1:] == clean[:-1]
    filler = [r.text for r in LabExpert(variant="filler").generate(reqs, sampling)]
    assert all(set(f.split()) == {"."} and len(f.split()) == len(c.split()) for f, c in zip(filler, clean))
    # a noisy trajectory never states a held-out sub-result, even by accident
    corpus.write_heldout(tmp_path / "heldout.jsonl", heldout, {"chain_mod10": fam})
    blocked = corpus.heldout_identity({"chain_mod10": fam}, heldout)
    guarded = LabExpert(variant="noisy30", heldout=tmp_path / "heldout.jsonl").generate(reqs, sampling)
    assert not [t for r in guarded for _, t in blocked if t in r.text]


def test_paraphrased_expert_and_its_identity(tmp_path):
    """5(c): the para experts write one of the family's wordings per trajectory (seeded), every
    wording's sub-results are in the held-out identity, and no paraphrased (noisy) training
    trajectory states a held-out one."""
    from tpt.lab.expert import LabExpert

    for name in ("chain_mod10", "divisibility"):
        fam = load_family(name)
        heldout = corpus.draw_heldout({name: fam}, 20, seed=1)
        rows = list(corpus.corpus_rows({name: fam}, heldout, 300, seed=1))
        docs = [Document(r["id"], r["text"], {k: r[k] for k in ("family", "problem", "difficulty")}) for r in rows]
        reqs = [GenRequest(doc=d, sample=0, prompt=d.text, seed=0) for d in docs]
        corpus.write_heldout(tmp_path / "heldout.jsonl", heldout, {name: fam})
        texts = {
            v: [
                r.text
                for r in LabExpert(variant=v, heldout=tmp_path / "heldout.jsonl").generate(reqs, SamplingParams())
            ]
            for v in ("para", "para-noisy30")
        }
        # every wording is used, and a clean paraphrase is one of the problem's own trajectories
        assert all(t in fam.trajectories(r["problem"]) for r, t in zip(rows, texts["para"]))
        used = {fam.trajectories(r["problem"]).index(t) for r, t in zip(rows, texts["para"])}
        assert used == set(range(fam.wordings)) and fam.wordings >= 3
        assert all(fam.check(r["problem"], t) for r, t in zip(rows, texts["para"]))
        assert sum(not fam.check(r["problem"], t) for r, t in zip(rows, texts["para-noisy30"])) > len(rows) // 4
        # the held-out identity holds every wording's sub-results, and no training text states one
        row = json.loads((tmp_path / "heldout.jsonl").read_text().splitlines()[-1])
        assert len(row["trajectories"]) == fam.wordings and row["trajectory"] == row["trajectories"][0]
        blocked = corpus.heldout_identity({name: fam}, heldout)
        for w in range(fam.wordings):
            steps = fam.solve(heldout[-1].problem, wording=w)[0]
            assert any(t in " ".join(steps) for _, t in blocked if t != fam.question(heldout[-1].problem))
        assert not [t for v in texts.values() for text in v for _, t in blocked if t in text]


def test_paraphrases_do_not_change_the_split():
    """A wording states the same sub-results in other words, so two problems share a paraphrased
    sub-result exactly when they share the default wording's: the held-out split and the training
    stream are what they were before paraphrases existed."""
    import random

    for name in ("chain_mod10", "divisibility"):
        fam, rng = load_family(name), random.Random(5)
        problems = [fam.sample(rng, rng.choice(fam.difficulties)) for _ in range(300)]
        default = [_default_identity(fam, p) for p in problems]
        full = [fam.identity(p) for p in problems]
        for i in range(len(problems)):
            for j in range(i):
                assert bool(default[i] & default[j]) == bool(full[i] & full[j])


def _default_identity(fam, problem):
    """The identity as wording 0 alone states it (the question and its sub-results)."""
    texts = {fam.question(problem)}
    default_traj = fam.trajectories(problem)[0]
    texts |= {t for t in fam.sub_results(problem) if t in default_traj}
    return texts
