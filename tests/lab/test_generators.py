"""`tpt lab run --generators` at quick size: generators trained by tpt on problems disjoint from
the held-out set and from TPT's corpus, whose thinking reaches the students through real `tpt augment`."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tpt.lab import corpus
from tpt.lab.cli import main
from tpt.lab.config import LabConfig
from tpt.lab.families import load_family
from tpt.lab.gen_data import (
    FORMS,
    GEN_PROFILES,
    arm_name,
    disjointness,
    generator_rows,
)


def test_generator_problems_avoid_heldout_and_tpt_corpus():
    families = {"chain_mod10": load_family("chain_mod10", 5)}
    heldout = corpus.draw_heldout(families, 5, 5)
    tpt_rows = list(corpus.corpus_rows(families, heldout, 500, 5))
    tpt_q = {families["chain_mod10"].question(r["problem"]) for r in tpt_rows}
    rows = generator_rows(families, heldout, tpt_q, 300, 5)
    assert disjointness(families, heldout, rows, tpt_rows) == {
        "generator_problems": 300,
        "sharing_heldout_identity": 0,
        "sharing_tpt_question": 0,
    }
    # the check can fail: TPT's own rows as "generator problems" share every question
    assert disjointness(families, heldout, tpt_rows[:10], tpt_rows)["sharing_tpt_question"] == 10


PLANTED = "planted"  # the id suffix of the record each generator run gets with a held-out trajectory


def plant_heldout_trajectory(run: Path) -> None:
    """Make a generator's run on TPT's corpus state held-out problem h-00000, as a generator that
    miscopies its operands can: its first record's thinking becomes that problem's trajectory."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    heldout = json.loads((run.parents[2] / "seed-1" / "heldout.jsonl").read_text().splitlines()[0])
    path = sorted((run / "data").glob("*.parquet"))[0]
    rows = pq.read_table(path).to_pylist()
    rows[0] |= {"id": rows[0]["id"] + PLANTED, "thinking": heldout["trajectory"]}
    pq.write_table(pa.Table.from_pylist(rows, schema=pq.read_schema(path)), path)


@pytest.fixture(scope="module")
def gen_run(tmp_path_factory):
    """The quick run, in one process (``--workers 1``) so that every generator's run on TPT's corpus
    gets a planted held-out trajectory right after `tpt augment` wrote it."""
    from tpt.lab import generators

    real = generators.run_augment_into

    def augment_then_plant(inputs, out, *args, **kwargs):
        run = real(inputs, out, *args, **kwargs)
        if out.parent.parent.name == "generator-raw":
            plant_heldout_trajectory(run)
        return run

    out = tmp_path_factory.mktemp("lab") / "gen"
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(generators, "run_augment_into", augment_then_plant)
        argv = ["run", "--quick", "--generators", "--families", "chain_mod10", "--workers", "1", "--out", str(out)]
        assert main(argv) == 0
    return out


# the module's quick run takes ~1-2 min on an idle 2-core box; 10+ min were measured under load ~17
@pytest.mark.slow
@pytest.mark.timeout(1800)
def test_generators_learn_from_disjoint_problems(gen_run):
    seed_dir = gen_run / "seed-1"
    fam = load_family("chain_mod10", 1)
    held = [json.loads(line) for line in (seed_dir / "heldout.jsonl").read_text().splitlines()]
    held_identity = {t for h in held for t in h["identity"]}
    tpt_q = {
        fam.question(json.loads(line)["problem"]) for line in (seed_dir / "corpus-tpt.jsonl").read_text().splitlines()
    }
    gen = [json.loads(line) for line in (seed_dir / "generators" / "corpus.jsonl").read_text().splitlines()]
    assert len(gen) == GEN_PROFILES["quick"].problems
    assert not {fam.question(r["problem"]) for r in gen} & tpt_q
    assert not {t for r in gen for t in fam.identity(r["problem"])} & held_identity
    # the recipe chosen on the dev seed (docs/generators.md, "The fix"): doc-attention pre-training, the SFT lr
    ckpt = seed_dir / "generators" / "ckpt"
    for size in GEN_PROFILES["quick"].sizes:
        assert json.loads((ckpt / f"{size}-pretrain" / "train_config.json").read_text())["config"]["model"][
            "doc_attention"
        ]
        sft = json.loads((ckpt / f"{size}-forward" / "train_config.json").read_text())["config"]
        assert (sft["optimizer"]["lr"], sft["schedule"]["epochs"]) == (
            GEN_PROFILES["quick"].sft_lr,
            GEN_PROFILES["quick"].sft_epochs,
        )
    # their SFT data holds only those problems, in both forms
    gen_docs = {r["text"] for r in gen}
    for form in FORMS:
        chats = [
            json.loads(line)["messages"]
            for line in (seed_dir / "generators" / f"sft-{form}.jsonl").read_text().splitlines()
        ]
        assert chats and all(any(doc in m[0]["content"] for doc in gen_docs) for m in chats[:20])
    # the leakage scan read the generators' pre-training run and every generator-written augment run
    scan = json.loads((gen_run / "results.json").read_text())["leakage"]["1"]
    arms = [arm_name(size, form) for size in GEN_PROFILES["quick"].sizes for form in FORMS]
    assert {"generators/augment-expert", *(f"augment-{a}" for a in arms)} <= set(scan["sources"])
    assert scan["hit_count"] == 0


@pytest.mark.slow
@pytest.mark.timeout(1800)
def test_generator_records_stating_heldout_problems_are_set_aside(gen_run):
    """Each generator run got a record with a held-out trajectory: the lab set it (and any other
    record the leakage scanner matches) aside before `tpt prepare`, with its reason and held-out id;
    nothing else was dropped.  Without the set-aside the scan above finds the planted trajectories."""
    from tpt.io.runs import iter_records, read_manifest
    from tpt.lab.gen_data import SET_ASIDE_FILE, raw_dir, set_aside_leaks
    from tpt.lab.leakage import first_hits, heldout_patterns, record_text

    seed_dir = gen_run / "seed-1"
    patterns = heldout_patterns(seed_dir / "heldout.jsonl")
    report = json.loads((gen_run / "generators.json").read_text())
    for arm in arms_of(report):
        raw = list(iter_records(raw_dir(LabConfig(out=gen_run), 1) / arm))
        matched = {r.id: h for r, h in zip(raw, first_hits([record_text(r) for r in raw], patterns)) if h}
        clean = seed_dir / f"augment-{arm}"
        rows = [json.loads(line) for line in (clean / SET_ASIDE_FILE).read_text().splitlines()]
        planted = [row for row in rows if row["id"].endswith(PLANTED)]
        assert len(planted) == 1 and planted[0]["heldout_id"] == "h-00000", rows
        assert "held-out problem h-00000" in planted[0]["reason"]
        assert {row["id"]: row["heldout_id"] for row in rows} == {i: h[0] for i, h in matched.items()}
        kept = [r.id for r in iter_records(clean)]
        assert sorted(kept) == sorted(r.id for r in raw if r.id not in matched)  # nothing else lost or doubled
        counts = read_manifest(clean)["leakage_set_aside"]
        assert (counts["records"], counts["set_aside"]) == (len(raw), len(rows))
        assert report["leakage_set_aside"][arm]["1"]["set_aside"] == len(rows)
        # a rerun (the lab resumed) finds the finished copy and changes nothing
        assert set_aside_leaks(raw_dir(LabConfig(out=gen_run), 1) / arm, clean, seed_dir / "heldout.jsonl") == counts
    assert "set aside before TPT training" in (gen_run / "generators.md").read_text()


@pytest.mark.slow
@pytest.mark.timeout(1800)
def test_student_data_comes_from_the_learned_generator(gen_run):
    """Each generator arm's records were written by `tpt augment --backend transformers` with that
    generator: regenerating one record's prompt greedily from the checkpoint gives its thinking."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from tpt.augment.prompts import load_strategy
    from tpt.io.runs import iter_records

    seed_dir = gen_run / "seed-1"
    for size in GEN_PROFILES["quick"].sizes:
        for form, strategy in (("forward", "default"), ("back", "back-thinking")):
            arm = arm_name(size, form)
            manifest = json.loads((seed_dir / f"augment-{arm}" / "manifest.json").read_text())
            text = json.dumps(manifest)
            ckpt = seed_dir / "generators" / "ckpt" / f"{size}-{form}"
            assert '"transformers"' in text and str(ckpt) in text and strategy in text
            records = list(iter_records(seed_dir / f"augment-{arm}"))
            assert {(r.backend, r.strategy) for r in records} == {("transformers", strategy)}
            # not the expert's text: the expert's run of the same documents writes other trajectories
            expert = {r.id: r.thinking for r in iter_records(seed_dir / "augment")}
            assert sum(r.thinking != expert[r.id] for r in records) > len(records) // 2
            rec = next(r for r in records if r.thinking.strip())  # a generator that writes nothing fails here
            tok = AutoTokenizer.from_pretrained(seed_dir / "generators" / "tokenizer")
            model = AutoModelForCausalLM.from_pretrained(ckpt, dtype=torch.float32).eval()
            chat = tok.apply_chat_template(
                [{"role": "user", "content": load_strategy(strategy).build(rec.id, rec.text)}],
                add_generation_prompt=True,
                tokenize=False,
            )
            ids = tok(chat, return_tensors="pt", add_special_tokens=False)
            with torch.no_grad():
                new = model.generate(
                    **ids, do_sample=False, max_new_tokens=rec.thinking_tokens + 8, pad_token_id=tok.pad_token_id
                )
            written = tok.decode(new[0, ids["input_ids"].shape[1] :], skip_special_tokens=False)
            written = written.split("</think>")[0].removeprefix("<think>").strip()
            # a record cut at the thinking budget is a prefix of the longer regeneration
            assert (
                written == rec.thinking.strip()
                if rec.finish_reason == "stop"
                else written.startswith(rec.thinking.strip())
            ), (
                arm,
                written,
                rec.thinking,
            )
    # the students of those runs were trained and evaluated, and the report compares them with the expert's
    report = json.loads((gen_run / "generators.json").read_text())
    assert set(report["student_minus_expert_tpt"]) == set(arms_of(report))
    for arm in arms_of(report):
        cell = report["students"][arm]["chain_mod10"]
        assert cell["ci"][0] <= cell["acc"] <= cell["ci"][1]
        gen = report["generator_on_heldout"][arm]["chain_mod10"]
        assert gen["n"] == cell["n"] and gen["ci"][0] <= gen["acc"] <= gen["ci"][1]
        before = report["generator_before_sft_on_heldout"][arm]["chain_mod10"]
        assert before["n"] == cell["n"] and before["ci"][0] <= before["acc"] <= before["ci"][1]
        diff = report["student_minus_generator_before_sft"][arm]["chain_mod10"]
        assert diff["diff"] == pytest.approx(cell["acc"] - before["acc"])
        # the generator was asked in its trained form: each held-out problem's document, answer included
        asked = {r.id: r.text for r in iter_records(gen_run / "generator-eval" / "seed-1" / arm)}
        held = [json.loads(line) for line in (seed_dir / "heldout.jsonl").read_text().splitlines()]
        assert asked == {f"h-{i:05d}": f"{h['question']} The answer is {h['answer']}." for i, h in enumerate(held)}
        assert report["length_by_difficulty"][arm]["mean_thinking_tokens"]
    assert "Learned generator" in (gen_run / "generators.md").read_text()


def arms_of(report: dict) -> list[str]:
    return [a for a in report["students"] if a.startswith("gen-")]


def test_set_aside_leaks_keeps_clean_records_and_says_why_for_the_rest(tmp_path):
    """Fast and without a lab run: a three-record run where one thinking and one document state a
    held-out problem's strings; only the clean record is copied, the others are listed with reason and id."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    from tpt.io.runs import iter_records, read_manifest
    from tpt.lab.gen_data import SET_ASIDE_FILE, set_aside_leaks
    from tpt.records import THINKING_SCHEMA

    heldout = [
        {"family": "f", "question": "Q0?", "trajectory": "T0", "identity": ["Q0?"]},
        {"family": "f", "question": "Q1?", "trajectory": "T1", "identity": ["Q1?", "start 3, add 4 is 7"]},
    ]
    (tmp_path / "heldout.jsonl").write_text("".join(json.dumps(h) + "\n" for h in heldout))
    texts = [("clean doc", "start 3, add 5 is 8"), ("doc", "so start 3, add 4 is 7 here"), ("see Q0? now", "fine")]
    rows = [
        {"id": f"d{i}", "sample": 0, "text": d, "thinking": t, "finish_reason": "stop", "doc_tokens": 1,
         "thinking_tokens": 1, "doc_truncated": False, "strategy": "default", "model": "m", "backend": "b",
         "meta": "{}", "doc_cut_chars": None}
        for i, (d, t) in enumerate(texts)
    ]  # fmt: skip
    raw = tmp_path / "raw"
    (raw / "data").mkdir(parents=True)
    pq.write_table(pa.Table.from_pylist(rows, schema=THINKING_SCHEMA), raw / "data" / "shard-00000.parquet")
    (raw / "manifest.json").write_text(json.dumps({"config": {"backend": "b"}}))

    counts = set_aside_leaks(raw, tmp_path / "clean", tmp_path / "heldout.jsonl")
    assert (counts["records"], counts["kept"], counts["set_aside"]) == (3, 1, 2)
    assert [r.id for r in iter_records(tmp_path / "clean")] == ["d0"]
    removed = [json.loads(line) for line in (tmp_path / "clean" / SET_ASIDE_FILE).read_text().splitlines()]
    assert [(r["id"], r["heldout_id"], r["kind"]) for r in removed] == [
        ("d1", "h-00001", "sub-result"),
        ("d2", "h-00000", "question"),
    ]
    assert "its thinking states held-out problem h-00001" in removed[0]["reason"]
    assert "its document states held-out problem h-00000" in removed[1]["reason"]
    manifest = read_manifest(tmp_path / "clean")
    assert manifest["config"] == {"backend": "b"} and manifest["leakage_set_aside"]["set_aside"] == 2


def test_generator_pretraining_takes_the_generators_lr_not_the_tpt_arms(tmp_path, monkeypatch):
    """The default profile tunes its student arms' lr (TPT's 8e-3); the generators pre-train at their
    own recipe's lr (4e-3, GenSizes.pretrain_lr).  The lab once looked the lr up by the output folder's
    name, and every name that is not vanilla's took TPT's: the 0.5m generator then barely learned
    (docs/generators.md, "The 0.5m regression")."""
    import tpt.train.loop
    from tpt.lab.generators import pretrain_generator

    lab = LabConfig(out=tmp_path, generators=True)
    prof = lab.profile()
    seen = []
    monkeypatch.setattr(tpt.train.loop, "train", lambda cfg: seen.append(cfg) or type("R", (), {"checkpoint": None}))
    for size in GEN_PROFILES["default"].sizes:
        pretrain_generator(tmp_path / "data", tmp_path / f"{size}-pretrain", size, lab, prof, 1)
    assert prof.lr_for("tpt") != GEN_PROFILES["default"].pretrain_lr == 4e-3
    assert [(c.model.preset, c.optimizer.lr, c.model.doc_attention) for c in seen] == [
        ("0.1m", 4e-3, True),
        ("0.5m", 4e-3, True),
    ]
    assert {c.schedule.tokens for c in seen} == {GEN_PROFILES["default"].pretrain_tokens}


def test_generator_on_heldout_needs_every_step_right_not_the_stated_answer(tmp_path):
    """The generator is asked in its trained form (the held-out document, which states the answer), so
    a thinking that only repeats the answer, or gets an intermediate result wrong, does not count."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    from tpt.lab.evaluate import HeldOut
    from tpt.lab.gen_data import eval_dir, write_heldout_documents
    from tpt.lab.generators_report import heldout_task_correct
    from tpt.records import THINKING_SCHEMA

    fam = load_family("chain_mod10", 1)
    problem = {"start": 5, "ops": [["add", 7], ["sub", 6]]}  # 5 +7 =2 -6 =6
    heldout = [HeldOut("chain_mod10", 2, problem)] * 4
    lab = LabConfig(out=tmp_path)
    corpus.write_heldout(tmp_path / "seed-1" / "heldout.jsonl", heldout, {"chain_mod10": fam})
    docs = write_heldout_documents(tmp_path / "documents.jsonl", heldout, {"chain_mod10": fam})
    assert json.loads(docs.read_text().splitlines()[0])["text"] == fam.document(problem)  # the trained form
    thinking = ["start at 5 +7 =2 -6 =6 So the answer is 6.", "So the answer is 6.", "start at 5 +7 =3 -6 =6 So "
                "the answer is 6.", ""]  # fmt: skip
    rows = [
        {"id": f"h-{i:05d}", "sample": 0, "text": "d", "thinking": t, "finish_reason": "stop", "doc_tokens": 1,
         "thinking_tokens": 1, "doc_truncated": False, "strategy": "default", "model": "m", "backend": "b",
         "meta": "{}", "doc_cut_chars": None}
        for i, t in enumerate(thinking)
    ]  # fmt: skip
    run = eval_dir(lab, 1) / "gen-0.1m-forward"
    (run / "data").mkdir(parents=True)
    pq.write_table(pa.Table.from_pylist(rows, schema=THINKING_SCHEMA), run / "data" / "shard-00000.parquet")
    (run / "manifest.json").write_text(json.dumps({"config": {"backend": "b"}}))
    correct = heldout_task_correct(lab, 1, "gen-0.1m-forward", {"chain_mod10": fam})
    assert correct == [True, False, False, False]


def test_a_generator_pretrained_at_another_lr_is_not_reused(tmp_path):
    """An --out folder from before the lr fix holds finished generators pre-trained at TPT's lr: the
    lab names the folder and stops rather than build on them."""
    from tpt.lab.generators import check_reused_pretraining
    from tpt.train.checkpoint import DONE_FILE

    gs = GEN_PROFILES["default"]
    for lr, fails in ((0.008, True), (gs.pretrain_lr, False)):
        pre = tmp_path / f"lr{lr}" / "0.5m-pretrain"
        pre.mkdir(parents=True)
        (pre / DONE_FILE).write_text("{}")
        (pre / "train_config.json").write_text(json.dumps({"config": {"optimizer": {"lr": lr}}}))
        if fails:
            with pytest.raises(ValueError, match="pre-trained at lr 0.008, not the recipe's 0.004.*fresh --out"):
                check_reused_pretraining(pre, gs)
        else:
            check_reused_pretraining(pre, gs)


def test_a_reused_folder_is_checked_before_any_compute(tmp_path, monkeypatch):
    """`tpt lab run --generators` on an --out holding a generator pre-trained at another lr stops at
    start-up, naming the folder, before any seed is prepared."""
    from tpt.lab import experiment
    from tpt.lab.generators import pretrain_dir
    from tpt.train.checkpoint import DONE_FILE

    lab = LabConfig(out=tmp_path, generators=True)
    seed = lab.seeds(lab.profile())[-1]
    pre = pretrain_dir(tmp_path / f"seed-{seed}", GEN_PROFILES["default"].sizes[0])
    pre.mkdir(parents=True)
    (pre / DONE_FILE).write_text("{}")
    (pre / "train_config.json").write_text(json.dumps({"config": {"optimizer": {"lr": 0.008}}}))
    monkeypatch.setattr(experiment, "run_seeds", lambda *a: pytest.fail("compute started before the check"))
    with pytest.raises(ValueError, match=f"{pre}: this generator was pre-trained at lr 0.008"):
        experiment.run_lab(lab)
