"""`tpt lab run --generators`: the thinking written by small language models that tpt trains,
instead of by the programmatic expert (issue 19, item 2; docs/generators.md, "In the lab").

Per seed, after the core arms' data is ready:

1. **Generator problems**: a problem stream of its own, disjoint from the held-out problems (by
   their whole identity: question and every sub-result, as for any training text) and from the
   TPT corpus's problems (by question).  Checked again after drawing (`disjointness`).
2. **Pre-training**: the expert's ``[d; t]`` on those problems (a real `tpt augment --backend
   lab-expert` run, `tpt prepare`, `tpt train`), one generator per size, with its own tokenizer
   (trained on the same text plus the two prompt templates, so a prompt is ~100 tokens, not ~400).
3. **SFT** (`tpt train --mode sft --init`) in two forms, on the same problems:
   forward   user = the paper's default prompt around the document, assistant =
             ``assistant_target(trajectory)`` (what `tpt augment --strategy default` asks);
   back      `build_back_thinking_sft` over (question, thinking, response = the document), half
             the rows shown without their question (the form `--strategy back-thinking` uses).
4. **Augment** TPT's own corpus with every (size, form) generator: a real `tpt augment --backend
   transformers` run (greedy) into ``seed-N/augment-gen-SIZE-FORM``; each becomes a student arm
   ``gen-SIZE-FORM`` trained like the expert's ``tpt`` arm at the same budget B.
5. **The generator on the task itself**: the same generator, same prompt form, on every held-out
   question *without* its answer (an augment run outside the seed folder, which the leakage
   scan reads: held-out questions must never sit where training texts do).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, replace
from pathlib import Path

from tpt.lab import corpus
from tpt.lab.config import LabConfig, Profile
from tpt.lab.evaluate import HeldOut
from tpt.lab.experiment import run_augment_checked

FORMS = ("forward", "back")
STRATEGY = {"forward": "default", "back": "back-thinking"}
GEN_STREAM_OFFSET = 1_000_003  # the generator problems' stream seed: seed + this (not the corpus's)


@dataclass(frozen=True)
class GenSizes:
    """What sizes the generator ablation, per lab profile (``--quick`` / default / ``--full``)."""

    sizes: tuple[str, ...]  # `tpt train` presets of the generators
    problems: int  # disjoint problems the generators learn from (pre-training and SFT)
    pretrain_tokens: int
    sft_examples: int  # per form, drawn from the same problems
    sft_epochs: float
    vocab_size: int = 1024  # the generators' own tokenizer: lab text + the two prompt templates
    batch_size: int = 128  # augment: sequences per generate() call


GEN_PROFILES = {
    "quick": GenSizes(
        sizes=("0.1m", "0.5m"), problems=300, pretrain_tokens=32_000, sft_examples=64, sft_epochs=4.0, batch_size=64
    ),
    "default": GenSizes(
        sizes=("0.1m", "0.5m"), problems=12_000, pretrain_tokens=1_500_000, sft_examples=2_000, sft_epochs=2.0
    ),
    "full": GenSizes(
        sizes=("1m", "5m"),
        problems=100_000,
        pretrain_tokens=16_000_000,
        sft_examples=8_000,
        sft_epochs=2.0,
        batch_size=512,
    ),
}


def gen_profile(lab: LabConfig) -> GenSizes:
    return GEN_PROFILES["quick" if lab.quick else "full" if lab.full else "default"]


def arm_name(size: str, form: str) -> str:
    return f"gen-{size}-{form}"


def generator_arms(lab: LabConfig) -> list[str]:
    return [arm_name(size, form) for size in gen_profile(lab).sizes for form in FORMS]


def eval_dir(lab: LabConfig, seed: int) -> Path:
    """The generators' runs over held-out questions: outside the seed folder on purpose."""
    return Path(lab.out) / "generator-eval" / f"seed-{seed}"


# --- 1. problems --------------------------------------------------------------------------------


def generator_rows(families: dict, heldout: list[HeldOut], tpt_questions: set[str], n: int, seed: int) -> list[dict]:
    """``n`` distinct generator problems: identity-disjoint from held-out, question-disjoint from
    TPT's corpus.  Rows in the lab corpus format (the lab-expert backend reads their meta)."""
    stream = corpus.training_problems(families, corpus.heldout_identity(families, heldout), seed + GEN_STREAM_OFFSET)
    rows, seen = [], set()
    for _ in range(n * 200):
        if len(rows) == n:
            break
        family, level, problem = next(stream)
        question = family.question(problem)
        if question in tpt_questions or question in seen:
            continue
        seen.add(question)
        rows.append(
            {
                "id": f"gen-{family.name}-{len(rows):07d}",
                "text": family.document(problem),
                "family": family.name,
                "difficulty": level,
                "problem": problem,
                "world_seed": seed,
            }
        )
    if len(rows) < n:
        raise ValueError(
            f"seed {seed}: only {len(rows)} of {n} generator problems are disjoint from held-out and TPT's corpus"
        )
    return rows


def disjointness(families: dict, heldout: list[HeldOut], gen_rows: list[dict], tpt_rows: list[dict]) -> dict:
    """Counts of generator problems that share an identity text with a held-out problem, or a
    question with a TPT corpus document (both must be 0)."""
    held = corpus.heldout_identity(families, heldout)
    tpt_q = {families[r["family"]].question(r["problem"]) for r in tpt_rows}
    shared_held = sum(1 for r in gen_rows if corpus.identity(families[r["family"]], r["problem"]) & held)
    shared_tpt = sum(1 for r in gen_rows if families[r["family"]].question(r["problem"]) in tpt_q)
    return {
        "generator_problems": len(gen_rows),
        "sharing_heldout_identity": shared_held,
        "sharing_tpt_question": shared_tpt,
    }


# --- 2-3. the generators' data ------------------------------------------------------------------


def forward_prompt(document: str) -> str:
    from tpt.augment.prompts import load_strategy

    return load_strategy("default").build("", document)


def write_sft_forward(path: Path, rows: list[dict], families: dict) -> Path:
    from tpt.augment.back_thinking import assistant_target

    def chat(r: dict) -> dict:
        thinking = families[r["family"]].trajectory(r["problem"])
        return {
            "messages": [
                {"role": "user", "content": forward_prompt(r["text"])},
                {"role": "assistant", "content": assistant_target(thinking)},
            ]
        }

    corpus.write_jsonl(path, (chat(r) for r in rows))
    return path


def write_sft_back(path: Path, rows: list[dict], families: dict, tokenizer: Path, seed: int) -> Path:
    """Through `tpt prepare back-thinking` itself: (question, thinking, response) columns; the
    response is the document, as a pre-training document is the response at augmentation."""
    from tpt.prepare.back_thinking import build_back_thinking_sft

    source = path.with_name(path.stem + "-rows.jsonl")
    corpus.write_jsonl(
        source,
        (
            {
                "question": families[r["family"]].question(r["problem"]),
                "response": r["text"],
                "thinking": families[r["family"]].trajectory(r["problem"]),
            }
            for r in rows
        ),
    )
    summary = build_back_thinking_sft(
        [str(source)],
        path,
        tokenizer=str(tokenizer),
        max_doc_tokens=4096,
        no_question_rate=0.5,
        seed=seed,
        overwrite=True,
    )
    if summary.get("rejected"):
        raise RuntimeError(
            f"{path}: tpt prepare back-thinking set {summary['rejected']} rows aside (see its .rejected.parquet)"
        )
    return path


def make_gen_tokenizer(folder: Path, rows: list[dict], families: dict, gs: GenSizes) -> Path:
    from tpt.augment.back_thinking import default_template
    from tpt.prepare.tokenizer import train_tokenizer

    texts = [r["text"] + " " + families[r["family"]].trajectory(r["problem"]) for r in rows[:3000]]
    texts += [forward_prompt(r["text"]) for r in rows[:300]] + [default_template()] * 300
    return train_tokenizer(texts, folder, vocab_size=gs.vocab_size, min_frequency=2)


def longest_tokens(tokenizer: Path, texts: list[str]) -> int:
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(tokenizer)
    return max(len(ids) for ids in tok(texts, add_special_tokens=False)["input_ids"])


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

    local = LocalConfig(batch_size=batch_size, device=device, dtype="float32")
    cfg = AugmentConfig(
        inputs=[str(inputs)],
        out=out,
        backend=BackendConfig(name=backend, model=model, tokenizer=str(tokenizer), local=local),
        prompt=PromptConfig(strategy=strategy, max_doc_tokens=4096),
        sampling=SamplingConfig(temperature=0.0, max_thinking_tokens=max_thinking_tokens),
        executor=ExecutorConfig(shard_size=50_000, checkpoint_records=2048, checkpoint_seconds=120.0),
        progress=False,
    )
    return run_augment_checked(cfg)


def sft_generator(
    data: Path, init: Path, out: Path, prof: Profile, lab: LabConfig, gs: GenSizes, seq_len: int, seed: int
) -> Path:
    from tpt.prepare.config import SFT_KIND, PrepareConfig, SourceSpec
    from tpt.prepare.run import prepare
    from tpt.train import config as tc
    from tpt.train.loop import train

    if done(out):
        return out
    prepared = out.parent / f"{out.name}-data"  # tpt prepare --sft: train reads prepared data only
    if not (prepared / "index.json").exists():
        # no val split: train holds out its validation rows from the tail of train, as before
        sources = [SourceSpec(data, SFT_KIND)]
        prepare(PrepareConfig(source=sources, out=prepared, tokenizer=str(init), seq_len=seq_len, sft=True,
                              val_sequences=0, seed=seed, overwrite=True))  # fmt: skip
    cfg = tc.TrainConfig(
        data=prepared, out=out, mode="sft", seed=seed, device=lab.device, eval_every=0, log_every=200,
        progress=False, threads=lab.threads,
        model=tc.ModelConfig(init=init),
        optimizer=tc.OptimizerConfig(lr=prof.lr / 2),
        schedule=tc.ScheduleConfig(epochs=gs.sft_epochs, warmup=0.05),
        batch=tc.BatchConfig(batch_tokens=16 * seq_len, micro_batch=16, eval_sequences=8),
        checkpoint=tc.CheckpointConfig(save_every=0),
    )  # fmt: skip
    return train(cfg).checkpoint


def done(folder: Path) -> bool:
    """A finished `tpt train` output: the final model is written and no resumable state is left."""
    from tpt.train.checkpoint import DONE_FILE

    return (folder / DONE_FILE).exists()


# --- the whole preparation of one seed ----------------------------------------------------------


def prepare_generators(lab: LabConfig, prof: Profile, root: Path, seed: int, think_budget: int) -> list:
    """Generators trained, TPT's corpus augmented by each, the student arms' data; their Jobs.
    The sizes run in parallel processes (``workers``): each is a chain of train -> SFT -> augment."""
    from concurrent.futures import ProcessPoolExecutor
    from multiprocessing import get_context

    from tpt.lab.experiment import Job, data_facts

    ready = root / "generators.json"
    if ready.exists():
        return [Job(**(j | {"root": Path(j["root"])})) for j in json.loads(ready.read_text())["jobs"]]
    shared = prepare_shared(lab, prof, root, seed)
    sizes = gen_profile(lab).sizes
    if prof.workers > 1 and len(sizes) > 1:
        with ProcessPoolExecutor(min(prof.workers, len(sizes)), mp_context=get_context("spawn")) as pool:
            done_sizes = list(pool.map(prepare_size, *zip(*[(lab, prof, root, seed, size, shared) for size in sizes])))
    else:
        done_sizes = [prepare_size(lab, prof, root, seed, size, shared) for size in sizes]
    manifests = {arm: m for found, _ in done_sizes for arm, m in found.items()}
    timing = {"shared": shared["seconds"]} | {k: v for _, t in done_sizes for k, v in t.items()}
    stats_by_difficulty(root, list(manifests))
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
        "heldout_docs": write_heldout_questions(eval_dir(lab, seed) / "questions.jsonl", heldout, families),
        "seconds": round(time_now() - started, 1),
    }


def prepare_size(lab: LabConfig, prof: Profile, root: Path, seed: int, size: str, shared: dict) -> tuple[dict, dict]:
    """One generator size: pre-train, then per form SFT, augment TPT's corpus and the held-out
    questions, and prepare the student's data.  -> ({arm: prepare manifest}, {stage: seconds})."""
    import torch

    from tpt.lab.experiment import log, prepare_arm, train_arm

    if lab.threads > 0:
        torch.set_num_threads(lab.threads)  # the augment backend runs in this process too
    gs, gen, tokenizer = gen_profile(lab), root / "generators", shared["tokenizer"]
    manifests, timing, started = {}, {}, time_now()
    pre = gen / "ckpt" / f"{size}-pretrain"
    if not done(pre):
        log(f"seed {seed}: pre-train the {size} generator on {gs.pretrain_tokens:,} tokens")
        train_arm(shared["pretrain_data"], pre, replace(prof, model_preset=size), lab, seed, gs.pretrain_tokens, [])
    timing[f"{size}-pretrain"] = round(time_now() - started, 1)
    evaluate_pretrained(pre, root, prof, seed, shared["think"], lab.device)
    for form in FORMS:
        arm, started = arm_name(size, form), time_now()
        ckpt = sft_generator(
            shared["sft"][form], pre, gen / "ckpt" / f"{size}-{form}", prof, lab, gs, shared["sft_seq_len"], seed
        )
        timing[f"{arm}-sft"] = round(time_now() - started, 1)
        started = time_now()
        log(f"seed {seed}: augment TPT's corpus with the {size} {form} generator")
        run_augment_into(
            root / "corpus-tpt.jsonl",
            root / f"augment-{arm}",
            "transformers",
            tokenizer,
            str(ckpt),
            STRATEGY[form],
            shared["think"],
            gs.batch_size,
            lab.device,
        )
        timing[f"{arm}-augment"] = round(time_now() - started, 1)
        run_augment_into(
            shared["heldout_docs"],
            eval_dir(lab, seed) / arm,
            "transformers",
            tokenizer,
            str(ckpt),
            STRATEGY[form],
            shared["think"],
            gs.batch_size,
            lab.device,
        )
        manifests[arm] = prepare_arm(
            root, arm, root / "tokenizer", prof, seed, prof.tokens, source=root / f"augment-{arm}"
        )
    return manifests, timing


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


def sft_seq_len(tokenizer: Path, files: dict[str, Path]) -> int:
    """The longest SFT conversation (chat template applied), rounded up: none is cut."""
    from transformers import AutoTokenizer

    from tpt.prepare.sft import chat_ids_and_mask

    tok = AutoTokenizer.from_pretrained(tokenizer)
    longest = 0
    for path in files.values():
        for line in path.read_text(encoding="utf-8").splitlines()[:500]:
            longest = max(longest, len(chat_ids_and_mask(tok, json.loads(line)["messages"])[0]))
    return -(-(longest + 8) // 32) * 32


def write_heldout_questions(path: Path, heldout: list[HeldOut], families: dict) -> Path:
    """Held-out problems as documents *without* their answer: the generator must solve them."""
    rows = [
        {
            "id": f"h-{i:05d}",
            "text": families[h.family].question(h.problem),
            "family": h.family,
            "difficulty": h.difficulty,
        }
        for i, h in enumerate(heldout)
    ]
    corpus.write_jsonl(path, rows)
    return path


def stats_by_difficulty(root: Path, arms: list[str]) -> None:
    """`tpt analyze stats --by family,difficulty` on the expert's and every generator's augment run."""
    from tpt.analyze.cli import StatsConfig, run_stats

    for name in ["augment", *(f"augment-{arm}" for arm in arms)]:
        run_stats(
            StatsConfig(runs=[root / name], by=["family", "difficulty"], out=root / "analyze-gen" / name, plots=False)
        )
