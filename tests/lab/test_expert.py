"""The lab expert as a real `tpt augment` backend: records carry the family's trajectory, bad
rows become failed rows with a reason, and the thinking budget is honoured."""

from __future__ import annotations

import json

from tpt.augment.backends.base import GenRequest, SamplingParams, load_backend_factory
from tpt.augment.config import AugmentConfig
from tpt.augment.run import run_augment
from tpt.io.runs import iter_records
from tpt.lab import corpus
from tpt.lab.families import BUILTIN, load_family
from tpt.records import Document


def test_expert_through_the_augment_stage(tmp_path):
    families = {n: load_family(n, seed=2) for n in BUILTIN}
    rows = list(corpus.corpus_rows(families, [], 40, seed=2))
    bad = {"id": "bad-1", "text": "A document without a problem."}  # no lab meta: must fail, not vanish
    corpus.write_jsonl(tmp_path / "corpus.jsonl", rows + [bad])
    cfg = AugmentConfig(inputs=[str(tmp_path / "corpus.jsonl")], out=tmp_path / "run", backend="lab-expert", progress=False)
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
    expert = load_backend_factory("lab-expert")(AugmentConfig(inputs=["x"]))
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
