"""`tpt lab run --generators`: the thinking written by small language models that tpt trains,
instead of by the programmatic expert (issue 19, item 2; docs/generators.md, "In the lab").
This module trains the generators and runs them; their problems and data are tpt.lab.gen_data.

Per seed, after the core arms' data is ready:

1. **Generator problems**: a problem stream of its own, disjoint from the held-out problems (by
   their whole identity: question and every sub-result, as for any training text) and from the
   TPT corpus's problems (by question).  Checked again after drawing (`disjointness`).
2. **Pre-training**: the expert's ``[d; t]`` on those problems (a real `tpt augment --backend
   lab-expert` run, `tpt prepare`, `tpt train --doc-attention`), one generator per size, with its
   own tokenizer (trained on the same text plus the two prompt templates, so a prompt is ~100
   tokens, not ~400).  Doc attention because, packed without it, the 0.1m generator never learned
   to copy the document's numbers into its thinking (dev seed: docs/generators.md, "The fix").
3. **SFT** (`tpt train --mode sft --init`) in two forms, on the same problems:
   forward   user = the paper's default prompt around the document, assistant =
             ``assistant_target(trajectory)`` (what `tpt augment --strategy default` asks);
   back      `build_back_thinking_sft` over (question, thinking, response = the document), half
             the rows shown without their question (the form `--strategy back-thinking` uses).
4. **Augment** TPT's own corpus with every (size, form) generator: a real `tpt augment --backend
   transformers` run (greedy) into ``DIR/generator-raw/seed-N/gen-SIZE-FORM``.  Every record
   whose text states a held-out problem (the lab's leakage scanner decides) is set aside with its
   reason (`gen_data.set_aside_leaks`); the rest is ``seed-N/augment-gen-SIZE-FORM``, which
   becomes a student arm ``gen-SIZE-FORM`` trained like the expert's ``tpt`` arm at the same budget B.
5. **The generator on the task itself**: the same generator, same prompt form, on every held-out
   problem as a document (question and answer, the form it was trained on), scored by whether its
   thinking gets every step right (an augment run outside the seed folder: held-out problems must
   never sit where training texts do).  Its skill asked as the students are is the pre-trained
   generator's ``reflect`` score (`evaluate_pretrained`).
"""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

from tpt.lab import corpus
from tpt.lab.config import LabConfig, Profile
from tpt.lab.gen_data import (
    FORMS,
    STRATEGY,
    GenSizes,
    arm_name,
    disjointness,
    eval_dir,
    gen_profile,
    generator_rows,
    longest_tokens,
    make_gen_tokenizer,
    raw_dir,
    set_aside_leaks,
    sft_seq_len,
    write_heldout_documents,
    write_sft_back,
    write_sft_forward,
)
from tpt.lab.stages import run_augment_checked

# --- stage calls --------------------------------------------------------------------------------


def run_augment_into(inputs: Path, out: Path, backend: str, tokenizer: Path, model: str = "", strategy: str = "default",
                     max_thinking_tokens: int = 8192, batch_size: int = 8, device: str = "auto") -> Path:  # fmt: skip
    from tpt.augment.config import (
        AugmentConfig,
        BackendConfig,
        ExecutorConfig,
        LocalConfig,
        PromptConfig,
        SamplingConfig,
    )
    from tpt.augment.specs import InputSpec

    local = LocalConfig(batch_size=batch_size, device=device, dtype="float32")
    cfg = AugmentConfig(
        inputs=[InputSpec(inputs)],
        out=out,
        backend=BackendConfig(name=backend, model=model, tokenizer=str(tokenizer), local=local),
        prompt=PromptConfig(strategy=strategy, max_doc_tokens=4096),
        sampling=SamplingConfig(temperature=0.0, max_thinking_tokens=max_thinking_tokens),
        executor=ExecutorConfig(shard_size=50_000, checkpoint_records=2048, checkpoint_seconds=120.0),
        progress=False,
    )
    return run_augment_checked(cfg)


def sft_generator(data: Path, init: Path, out: Path, lab: LabConfig, gs: GenSizes, seq_len: int, seed: int) -> Path:
    from tpt.lab.sft import sft_train_config
    from tpt.prepare.config import SFT_KIND, PrepareConfig, SourceSpec
    from tpt.prepare.run import prepare
    from tpt.train.loop import train

    if done(out):
        return out
    prepared = out.parent / f"{out.name}-data"  # tpt prepare --sft: train reads prepared data only
    if not (prepared / "index.json").exists():
        # no val split: train holds out its validation rows from the tail of train, as before
        sources = [SourceSpec(data, SFT_KIND)]
        prepare(PrepareConfig(source=sources, out=prepared, tokenizer=str(init), seq_len=seq_len, sft=True,
                              val_sequences=0, seed=seed, overwrite=True))  # fmt: skip
    cfg = sft_train_config(prepared, out, init, gs.sft_lr, gs.sft_epochs, seq_len, seed, lab)
    return train(cfg).checkpoint


def done(folder: Path) -> bool:
    """A finished `tpt train` output: the final model is written and no resumable state is left."""
    from tpt.train.checkpoint import DONE_FILE

    return (folder / DONE_FILE).exists()


# --- the whole preparation of one seed ----------------------------------------------------------


def prepare_generators(lab: LabConfig, prof: Profile, root: Path, seed: int, think_budget: int) -> list:
    """Generators trained, TPT's corpus augmented by each, the student arms' data; their Jobs.
    The sizes run in parallel processes (``workers``): each is a chain of train -> SFT -> augment."""
    from tpt.lab.experiment import Job
    from tpt.lab.stages import data_facts
    from tpt.parallel import spawn_map

    ready = root / "generators.json"
    if ready.exists():
        return [Job(**(j | {"root": Path(j["root"])})) for j in json.loads(ready.read_text())["jobs"]]
    shared = prepare_shared(lab, prof, root, seed)
    sizes = gen_profile(lab).sizes
    done_sizes = list(spawn_map(prepare_size, [(lab, prof, root, seed, size, shared) for size in sizes], prof.workers))
    manifests = {arm: m for found, _ in done_sizes for arm, m in found.items()}
    timing = {"shared": shared["seconds"]} | {k: v for _, t in done_sizes for k, v in t.items()}
    stats_by_difficulty(root, raw_dir(lab, seed), list(manifests))
    # students are evaluated at B only (the expert's arm has its curve): evaluation is the slow part
    jobs = [Job(seed, root, arm, int(m["train"]["tokens_budget"]), [int(m["train"]["tokens_budget"])], think_budget)
            for arm, m in manifests.items()]  # fmt: skip
    ready.write_text(
        json.dumps(
            {
                "jobs": [j.__dict__ | {"root": str(j.root)} for j in jobs],
                "disjointness": shared["disjointness"],
                "timing": timing,
                "data": {arm: data_facts(m) for arm, m in manifests.items()},
            },
            indent=1,
        )
    )
    return jobs


def prepare_shared(lab: LabConfig, prof: Profile, root: Path, seed: int) -> dict:
    """What every generator size uses: problems, tokenizer, pre-training data, SFT files."""
    from tpt.lab.experiment import families_for, log

    started, gs, gen = time_now(), gen_profile(lab), root / "generators"
    families = families_for(prof, seed)
    heldout = corpus.read_heldout(root / "heldout.jsonl")
    tpt_rows = [json.loads(line) for line in (root / "corpus-tpt.jsonl").read_text(encoding="utf-8").splitlines()]
    tpt_q = {families[r["family"]].question(r["problem"]) for r in tpt_rows}
    rows = generator_rows(families, heldout, tpt_q, gs.problems, seed)
    checks = disjointness(families, heldout, rows, tpt_rows)
    if checks["sharing_heldout_identity"] or checks["sharing_tpt_question"]:
        raise RuntimeError(f"seed {seed}: generator problems overlap held-out or TPT's corpus: {checks}")
    corpus.write_jsonl(gen / "corpus.jsonl", rows)
    tokenizer = make_gen_tokenizer(gen / "tokenizer", rows, families, gs)
    think = int(longest_tokens(tokenizer, [families[r["family"]].trajectory(r["problem"]) for r in rows]) * 1.25) + 8
    log(f"seed {seed}: {len(rows):,} generator problems (disjoint: {checks}); expert [d; t] for their pre-training")
    run_augment_into(gen / "corpus.jsonl", gen / "augment-expert", "lab-expert", tokenizer)
    sft = {
        "forward": write_sft_forward(gen / "sft-forward.jsonl", rows[: gs.sft_examples], families),
        "back": write_sft_back(gen / "sft-back.jsonl", rows[: gs.sft_examples], families, tokenizer, seed),
    }
    return {
        "tokenizer": tokenizer,
        "think": think,
        "pretrain_data": prepare_pretrain(gen, tokenizer, prof, seed, gs),
        "sft": sft,
        "sft_seq_len": sft_seq_len(tokenizer, sft),
        "disjointness": checks,
        "heldout_docs": write_heldout_documents(eval_dir(lab, seed) / "documents.jsonl", heldout, families),
        "seconds": round(time_now() - started, 1),
    }


def prepare_size(lab: LabConfig, prof: Profile, root: Path, seed: int, size: str, shared: dict) -> tuple[dict, dict]:
    """One generator size: pre-train, then per form SFT, augment TPT's corpus and the held-out
    questions, and prepare the student's data.  -> ({arm: prepare manifest}, {stage: seconds})."""
    import torch

    from tpt.lab.experiment import log
    from tpt.lab.stages import prepare_arm

    if lab.threads > 0:
        torch.set_num_threads(lab.threads)  # the augment backend runs in this process too
    gs, gen, tokenizer = gen_profile(lab), root / "generators", shared["tokenizer"]
    manifests, timing, started = {}, {}, time_now()
    pre = pretrain_dir(root, size)  # a finished one was checked at start-up (check_reused_pretrainings)
    if not done(pre):
        log(f"seed {seed}: pre-train the {size} generator on {gs.pretrain_tokens:,} tokens")
        pretrain_generator(shared["pretrain_data"], pre, size, lab, prof, seed)
    timing[f"{size}-pretrain"] = round(time_now() - started, 1)
    evaluate_pretrained(pre, root, prof, seed, shared["think"], lab.device)
    for form in FORMS:
        arm, started = arm_name(size, form), time_now()
        ckpt = sft_generator(
            shared["sft"][form], pre, gen / "ckpt" / f"{size}-{form}", lab, gs, shared["sft_seq_len"], seed
        )
        timing[f"{arm}-sft"] = round(time_now() - started, 1)
        started = time_now()
        log(f"seed {seed}: augment TPT's corpus with the {size} {form} generator")
        raw = raw_dir(lab, seed) / arm
        for inputs, out in ((root / "corpus-tpt.jsonl", raw), (shared["heldout_docs"], eval_dir(lab, seed) / arm)):
            run_augment_into(inputs, out, "transformers", tokenizer, str(ckpt), STRATEGY[form], shared["think"],
                             gs.batch_size, lab.device)  # fmt: skip
        timing[f"{arm}-augment"] = round(time_now() - started, 1)
        # the student never reads a record that states a held-out problem (the leakage scan must find none)
        removed = set_aside_leaks(raw, root / f"augment-{arm}", root / "heldout.jsonl")
        log(f"seed {seed}: {arm}: {removed['set_aside']} of {removed['records']:,} records set aside (held-out text)")
        manifests[arm] = prepare_arm(
            root, arm, root / "tokenizer", prof, seed, prof.tokens, source=root / f"augment-{arm}"
        )
    return manifests, timing


def pretrain_generator(data: Path, out: Path, size: str, lab: LabConfig, prof: Profile, seed: int) -> Path:
    """`tpt train` on the expert's [d; t] of the generator problems, at the generators' own lr and
    doc attention (GenSizes), whatever lr the profile tuned for its student arms."""
    from tpt.lab.stages import train_arm

    gs = gen_profile(lab)
    gen_lab = replace(lab, doc_attention=gs.pretrain_doc_attention)
    return train_arm(data, out, replace(prof, model_preset=size), gen_lab, seed, gs.pretrain_tokens, [], gs.pretrain_lr)


def pretrain_dir(root: Path, size: str) -> Path:
    """Where one seed's ``size`` generator is pre-trained (``root``: the seed's folder)."""
    return root / "generators" / "ckpt" / f"{size}-pretrain"


def check_reused_pretrainings(lab: LabConfig, seeds: list[int]) -> None:
    """Before any compute: every finished generator pre-training this run would reuse passes
    ``check_reused_pretraining`` (found at a seed's generator stage, it came minutes in)."""
    gs = gen_profile(lab)
    for seed in seeds:
        for size in gs.sizes:
            pre = pretrain_dir(Path(lab.out) / f"seed-{seed}", size)
            if done(pre):
                check_reused_pretraining(pre, gs)


def check_reused_pretraining(pre: Path, gs) -> None:
    """A finished pre-training is reused only if it ran at the generators' lr: folders from the third
    round's runs hold generators pre-trained at TPT's lr by mistake (docs/generators.md)."""
    lr = json.loads((pre / "train_config.json").read_text())["config"]["optimizer"]["lr"]
    if lr != gs.pretrain_lr:
        raise ValueError(
            f"{pre}: this generator was pre-trained at lr {lr}, not the recipe's {gs.pretrain_lr} (an --out folder "
            "from before the fix of docs/generators.md, 'The 0.5m regression'); give the run a fresh --out"
        )


def evaluate_pretrained(ckpt: Path, root: Path, prof: Profile, seed: int, think: int, device: str) -> None:
    """The pre-trained generator on the held-out problems, asked as every student is (the lab
    evaluator's ``reflect`` mode): its skill at the task before SFT taught it a prompt form."""
    from tpt.lab.evaluate import evaluate_checkpoint
    from tpt.lab.experiment import families_for

    out = ckpt.parent / f"{ckpt.name}-heldout.json"
    if not out.exists():
        heldout = corpus.read_heldout(root / "heldout.jsonl")
        result = evaluate_checkpoint(ckpt, heldout, families_for(prof, seed), max_new_tokens_think=think, device=device)
        out.write_text(json.dumps({"reflect": result["reflect"]["correct"]}))


def time_now() -> float:
    import time

    return time.perf_counter()


def prepare_pretrain(gen: Path, tokenizer: Path, prof: Profile, seed: int, gs: GenSizes) -> Path:
    from tpt.prepare.config import PrepareConfig, SourceSpec
    from tpt.prepare.run import prepare

    out = gen / "data" / "pretrain"
    prepare(
        PrepareConfig(
            source=[SourceSpec(gen / "augment-expert", "tpt", weight=1.0)],
            tokenizer=str(tokenizer),
            out=out,
            seq_len=prof.seq_len,
            tokens=gs.pretrain_tokens,
            seed=seed,
            overwrite=True,
        )
    )
    return out


def stats_by_difficulty(root: Path, raw: Path, arms: list[str]) -> None:
    """`tpt analyze stats --by family,difficulty` on the expert's and every generator's augment run
    (as written, before any record was set aside: the generator's own output)."""
    from tpt.analyze.cli import StatsConfig, run_stats

    for name, run in [("augment", root / "augment"), *((f"augment-{arm}", raw / arm) for arm in arms)]:
        run_stats(StatsConfig(runs=[run], by=["family", "difficulty"], out=root / "analyze-gen" / name, plots=False))
