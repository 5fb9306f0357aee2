"""The learned generators' problems and data (`tpt lab run --generators`, orchestrated by
tpt.lab.generators): per-profile sizes, the disjoint generator problems, their SFT files in the
forward and back-thinking forms, the generators' tokenizer and the held-out documents they write thinking for."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from tpt.lab import corpus
from tpt.lab.config import LabConfig
from tpt.lab.evaluate import HeldOut

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
    sft_lr: float  # peak lr of the SFT from the pre-trained generator (chosen on the dev seed: docs/generators.md)
    # peak lr of the pre-training: the lab profile's base lr when the recipe was measured (second round), not
    # the TPT arm's tuned lr, at which the 0.5m generator barely learns (docs/generators.md, "The 0.5m regression")
    pretrain_lr: float
    # `tpt train --doc-attention` for the pre-training: each [d; t] attends only to itself, from position 0,
    # as a prompt does at augmentation (chosen on the dev seed: docs/generators.md)
    pretrain_doc_attention: bool = True
    vocab_size: int = 1024  # the generators' own tokenizer: lab text + the two prompt templates
    batch_size: int = 128  # augment: sequences per generate() call


GEN_PROFILES = {
    "quick": GenSizes(
        sizes=("0.1m", "0.5m"),
        problems=300,
        pretrain_tokens=32_000,
        sft_examples=64,
        sft_epochs=4.0,
        sft_lr=1.5e-3,
        pretrain_lr=3e-3,
        batch_size=64,
    ),
    # the smallest measured size (docs/generators.md, "Budget"): with `--tokens 250k`, one test seed
    "default": GenSizes(
        sizes=("0.1m", "0.5m"),
        problems=6_000,
        pretrain_tokens=750_000,
        sft_examples=1_000,
        sft_epochs=4.0,
        sft_lr=2e-3,
        pretrain_lr=4e-3,
    ),
    "full": GenSizes(
        sizes=("1m", "5m"),
        problems=100_000,
        pretrain_tokens=16_000_000,
        sft_examples=8_000,
        sft_epochs=4.0,
        sft_lr=2e-3,
        pretrain_lr=4e-3,
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


def raw_dir(lab: LabConfig, seed: int) -> Path:
    """The generators' runs over TPT's corpus as written, before the records that state a held-out
    problem are set aside (`set_aside_leaks`): outside the seed folder, which holds only training text."""
    return Path(lab.out) / "generator-raw" / f"seed-{seed}"


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


def write_heldout_documents(path: Path, heldout: list[HeldOut], families: dict) -> Path:
    """Held-out problems as documents, exactly as TPT's corpus states its problems (question and
    answer): the form every generator was trained on, in either prompt (forward: the document;
    back-thinking: the document as the response).  A question alone, without "The answer is N.",
    is a form no generator ever saw.  Scored by whether the thinking gets every step right
    (generators_report.heldout_task_correct): the answer is in the document, the steps are not."""
    rows = [
        {
            "id": f"h-{i:05d}",
            "text": families[h.family].document(h.problem),
            "family": h.family,
            "difficulty": h.difficulty,
        }
        for i, h in enumerate(heldout)
    ]
    corpus.write_jsonl(path, rows)
    return path


# --- 4. the generators' output, before students train on it ----------------------------------

SET_ASIDE_FILE = "set_aside.jsonl"


def set_aside_leaks(raw: Path, clean: Path, heldout_file: Path) -> dict:
    """A copy of a generator's augment run without the records whose document or thinking states a
    held-out problem, as the lab's leakage scanner (tpt.lab.leakage) matches them; every record set
    aside is a row of ``CLEAN/set_aside.jsonl`` (id, sample, reason, matched held-out id).  A
    generator that miscopies an operand can write another problem's steps, sometimes a held-out
    one's: disjoint inputs cannot prevent that, so the student's data is cleaned before `tpt prepare`.
    -> counts {"records", "kept", "set_aside", "by_kind"}, also kept in the copy's manifest."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    from tpt.io.atomic import atomic_write, atomic_write_text
    from tpt.io.runs import data_files, read_manifest
    from tpt.lab.leakage import first_hits, heldout_patterns, record_text
    from tpt.records import ThinkingRecord

    if (clean / "manifest.json").exists():  # written last: the copy is complete
        return read_manifest(clean)["leakage_set_aside"]
    (clean / "data").mkdir(parents=True, exist_ok=True)
    for stale in (clean / "data").glob("*.parquet"):
        stale.unlink()  # from a copy that was interrupted: it would be read as part of this run
    patterns, rows = heldout_patterns(heldout_file), []
    counts: dict = {"records": 0, "kept": 0, "set_aside": 0, "by_kind": {}}
    for path in data_files(raw):
        table = pq.read_table(path)
        records = [ThinkingRecord.from_row(r) for r in table.to_pylist()]
        hits = first_hits([record_text(r) for r in records], patterns)
        kept = table.filter(pa.array([h is None for h in hits]))
        atomic_write(clean / "data" / path.name, lambda tmp, t=kept: pq.write_table(t, tmp, compression="zstd"))
        for rec, (hid, family, kind, text) in ((r, h) for r, h in zip(records, hits) if h):
            where = "document" if text in rec.text else "thinking"
            rows.append({"id": rec.id, "sample": rec.sample, "heldout_id": hid, "family": family, "kind": kind,
                         "reason": f"its {where} states held-out problem {hid}'s {kind}: {text!r}"})  # fmt: skip
            counts["by_kind"][kind] = counts["by_kind"].get(kind, 0) + 1
        counts["records"] += len(records)
        counts["kept"] += kept.num_rows
    counts["set_aside"] = len(rows)
    atomic_write_text(clean / SET_ASIDE_FILE, "".join(json.dumps(r) + "\n" for r in rows))
    atomic_write_text(clean / "stats.json", json.dumps({"records": counts["kept"], "leakage_set_aside": counts}))
    manifest = read_manifest(raw) | {"leakage_set_aside": counts | {"source": str(raw), "rejects": SET_ASIDE_FILE}}
    atomic_write_text(clean / "manifest.json", json.dumps(manifest, indent=1))
    return manifest["leakage_set_aside"]
