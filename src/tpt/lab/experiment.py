"""The lab experiment: corpus -> augment (lab-expert) -> prepare -> train -> evaluate, per seed.

Arms (one training run each, checkpoints at several token counts = the learning curve):
  vanilla       abundant data: fresh documents d, budget B
  tpt           abundant data: fresh [d; t] samples, budget B (sees fewer unique documents)
  vanilla-pool  constrained data: only the raw documents TPT saw, repeated to fill B
                (TPT saw each of them once: the paper's constrained-data comparison)
  *+sft         both final models fine-tuned on the same small think-then-answer chat set
Every arm gets the same background facts (the two-hop knowledge base) at the same token share.
"""

from __future__ import annotations

import json
import shutil
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable

from tpt.lab import corpus
from tpt.lab.config import LabConfig, Profile
from tpt.lab.evaluate import HeldOut, evaluate_checkpoint
from tpt.lab.families import TaskFamily, load_family

BACKGROUND_SHARE = 0.05  # token share of background facts in every arm
PRETRAIN_ARMS = ("vanilla", "tpt", "vanilla-pool")


@dataclass
class SeedRun:
    """Everything one seed produced, as plain data for the report."""

    seed: int
    curves: dict[str, list[dict]] = field(default_factory=dict)  # arm -> [{"tokens", "unique_docs", "eval"}]
    sft: dict[str, dict] = field(default_factory=dict)  # arm -> eval
    trajectory_lengths: dict[str, dict[str, float]] = field(default_factory=dict)  # family -> difficulty -> mean tokens
    data: dict[str, Any] = field(default_factory=dict)  # per-arm prepare facts
    seconds: dict[str, float] = field(default_factory=dict)


def log(msg: str) -> None:
    print(f"[tpt lab {time.strftime('%H:%M:%S')}] {msg}", flush=True)


def timed(run: SeedRun, name: str, fn: Callable[[], Any]) -> Any:
    started = time.perf_counter()
    result = fn()
    run.seconds[name] = run.seconds.get(name, 0.0) + round(time.perf_counter() - started, 2)
    return result


def make_corpus(root: Path, families: dict[str, TaskFamily], prof: Profile, seed: int, docs: int) -> list[HeldOut]:
    heldout = corpus.draw_heldout(families, prof.heldout_per_level, seed)
    corpus.write_heldout(root / "heldout.jsonl", heldout)
    corpus.write_jsonl(root / "corpus.jsonl", corpus.corpus_rows(families, heldout, docs, seed))
    background = corpus.background_rows(families)
    if background:  # families without a shared world have no background documents
        corpus.write_jsonl(root / "background.jsonl", background)
    corpus.write_jsonl(root / "sft.jsonl", corpus.sft_rows(families, heldout, prof.sft_examples, seed))
    return heldout


def make_tokenizer(root: Path, families: dict[str, TaskFamily], prof: Profile, seed: int, heldout: list[HeldOut]) -> Path:
    """A small BPE trained on a sample of the lab's own documents and trajectories (never held-out ones)."""
    from tpt.prepare.tokenizer import train_tokenizer

    rows = corpus.corpus_rows(families, heldout, 3000, seed + 1)
    texts = [r["text"] + " " + families[r["family"]].trajectory(r["problem"]) for r in rows]
    texts += [r["text"] for r in corpus.background_rows(families)]
    return train_tokenizer(texts, root / "tokenizer", vocab_size=prof.vocab_size, min_frequency=2)


def augment(root: Path, tokenizer: Path) -> Path:
    from tpt.augment.config import AugmentConfig
    from tpt.augment.run import run_augment

    cfg = AugmentConfig(inputs=[str(root / "corpus.jsonl")], out=root / "augment", backend="lab-expert", tokenizer=str(tokenizer),
                        shard_size=20_000, progress=False, max_doc_tokens=4096, checkpoint_records=20_000, checkpoint_seconds=600.0)  # fmt: skip
    summary = run_augment(cfg)
    if summary.failed or summary.rejected:
        raise RuntimeError(f"{cfg.out}: augment left {summary.failed} failed and {summary.rejected} rejected rows (see its failed/ and rejected/)")
    return cfg.out


def prepare_arm(root: Path, arm: str, tokenizer: Path, prof: Profile, seed: int, pool_tokens: int | None = None) -> dict:
    from tpt.prepare.config import PrepareConfig
    from tpt.prepare.run import prepare

    kind = "tpt" if arm == "tpt" else "vanilla"
    bg = 1.0 * BACKGROUND_SHARE / (1 - BACKGROUND_SHARE)
    sources = [f"{root / 'augment'}:{kind}:1"]
    if (root / "background.jsonl").exists():
        sources.append(f"{root / 'background.jsonl'}:vanilla:{bg:.6f}")
    cfg = PrepareConfig(source=sources, tokenizer=str(tokenizer), out=root / "data" / arm, seq_len=prof.seq_len, tokens=str(prof.tokens),
                        pool_tokens=str(pool_tokens) if pool_tokens else None, seed=seed, overwrite=True)  # fmt: skip
    return prepare(cfg)


def train_arm(data: Path, out: Path, prof: Profile, lab: LabConfig, seed: int, init: Path | None = None, tokens: int | None = None) -> Path:
    from tpt.train.config import TrainConfig
    from tpt.train.loop import train

    budget = tokens or prof.tokens
    save_at = [] if init else [str(int(budget * f)) for f in prof.fractions if f < 1]
    cfg = TrainConfig(data=data, out=out, mode="sft" if init else "pretrain", model_preset=prof.model_preset, init=init,
                      rope_theta=None if init else prof.rope_theta,
                      tokens=str(budget), batch_tokens=prof.batch_tokens, micro_batch=16, lr=prof.lr * (prof.sft_lr_scale if init else 1),
                      warmup=0.05, seed=seed, device=lab.device, eval_every=0, eval_sequences=8, save_every=0, save_at=save_at,
                      log_every=50, progress=False, threads=lab.threads, doc_attention=lab.doc_attention)  # fmt: skip
    return train(cfg).checkpoint


def checkpoints(run_dir: Path, prof: Profile) -> list[tuple[int, Path]]:
    from tpt.config import format_count

    points = [(int(prof.tokens * f), run_dir / f"tokens-{format_count(int(prof.tokens * f))}") for f in prof.fractions if f < 1]
    return points + [(prof.tokens, run_dir)]


def unique_docs_at(manifest: dict, tokens: int) -> float:
    """Unique lab documents seen after ``tokens`` training tokens: the lab source's share of the
    stream, at its pool's documents per token, capped by its pool (a repeated pool adds nothing new)."""
    main = manifest["sources"][0]
    share = main["tokens"] / manifest["train"]["tokens"]
    return min(float(main["unique_docs"]), tokens * share * main["pool_docs"] / max(main["pool_tokens"], 1))


def trajectory_lengths(augment_dir: Path) -> dict[str, dict[str, float]]:
    """Mean thinking tokens per (family, difficulty), from the augment run's records."""
    from tpt.io.runs import iter_records

    sums: dict[tuple[str, int], list[int]] = {}
    for rec in iter_records(augment_dir):
        sums.setdefault((rec.meta["family"], int(rec.meta["difficulty"])), []).append(rec.thinking_tokens)
    out: dict[str, dict[str, float]] = {}
    for (fam, level), lengths in sorted(sums.items()):
        out.setdefault(fam, {})[str(level)] = sum(lengths) / len(lengths)
    return out


def run_seed(lab: LabConfig, prof: Profile, seed: int) -> SeedRun:
    """One seed end to end; its results are kept in seed-N/seed_run.json (a rerun reuses them)."""
    root = Path(lab.out) / f"seed-{seed}"
    done = root / "seed_run.json"
    if done.exists():
        log(f"seed {seed}: reusing {done} (delete it to rerun the seed)")
        return SeedRun(**json.loads(done.read_text()))
    if root.exists():  # a seed that did not finish: start it clean (its corpus is redrawn identically)
        shutil.rmtree(root)
    run = _run_seed(lab, prof, seed, root)
    done.write_text(json.dumps(asdict(run), default=str))
    return run


def _run_seed(lab: LabConfig, prof: Profile, seed: int, root: Path) -> SeedRun:
    families = {name: load_family(name, seed) for name in lab.families}
    run = SeedRun(seed)
    docs = prof.tokens // 30 + 500  # more than any arm reads: lab documents are >= 30 tokens (mean ~40)
    log(f"seed {seed}: corpus of {docs} documents, {prof.heldout_per_level} held-out problems per level")
    heldout = timed(run, "corpus", lambda: make_corpus(root, families, prof, seed, docs))
    tokenizer = timed(run, "tokenizer", lambda: make_tokenizer(root, families, prof, seed, heldout))
    log("augment (lab-expert backend)")
    timed(run, "augment", lambda: augment(root, tokenizer))
    run.trajectory_lengths = trajectory_lengths(root / "augment")
    think_budget = think_tokens_needed(tokenizer, heldout, families)
    manifests: dict[str, dict] = {}
    for arm in PRETRAIN_ARMS:
        if arm == "vanilla-pool":
            if not lab.constrained:
                continue
            pool = pool_tokens_for(manifests["vanilla"], manifests["tpt"])
        else:
            pool = None
        log(f"prepare {arm}")
        manifests[arm] = timed(run, "prepare", lambda: prepare_arm(root, arm, tokenizer, prof, seed, pool))
        run.data[arm] = data_facts(manifests[arm])
        log(f"train {arm}: {prof.tokens} tokens, {prof.model_preset} preset")
        final = timed(run, "train", lambda: train_arm(root / "data" / arm, root / "train" / arm, prof, lab, seed))
        run.curves[arm] = []
        for tokens, ckpt in checkpoints(final, prof):
            result = timed(run, "eval", lambda: evaluate_checkpoint(ckpt, heldout, families, max_new_tokens_think=think_budget, device=lab.device))
            run.curves[arm].append({"tokens": tokens, "unique_docs": unique_docs_at(manifests[arm], tokens), "eval": result})
            log(f"  {arm} @ {tokens} tokens: accuracy {result['best']['accuracy']:.3f}")
    if lab.sft:
        run_sft(lab, prof, run, root, tokenizer, heldout, families, think_budget)
    return run


def think_tokens_needed(tokenizer: Path, heldout: list[HeldOut], families: dict[str, TaskFamily]) -> int:
    """Generation budget for think-first answers: the longest expert trajectory among the held-out
    problems (in this tokenizer's tokens) plus slack, so no correct trajectory is cut off."""
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(tokenizer)
    longest = max(len(tok.encode(families[h.family].trajectory(h.problem), add_special_tokens=False)) for h in heldout)
    return int(longest * 1.25) + 8


def run_sft(lab: LabConfig, prof: Profile, run: SeedRun, root: Path, tokenizer: Path, heldout, families, think_budget: int) -> None:
    from tpt.prepare.config import PrepareConfig
    from tpt.prepare.run import prepare

    data = root / "data" / "sft"
    cfg = PrepareConfig(source=[str(root / "sft.jsonl")], tokenizer=str(tokenizer), out=data, seq_len=prof.seq_len, sft=True,
                        val_sequences=2, seed=run.seed, overwrite=True)  # fmt: skip
    timed(run, "prepare", lambda: prepare(cfg))
    for arm in ("vanilla", "tpt"):
        log(f"sft {arm}")
        ckpt = timed(run, "train", lambda: train_arm(data, root / "train" / f"{arm}+sft", prof, lab, run.seed, init=root / "train" / arm, tokens=prof.sft_tokens))
        result = timed(run, "eval", lambda: evaluate_checkpoint(ckpt, heldout, families, max_new_tokens_think=think_budget + 8, chat=True, device=lab.device))
        run.sft[arm] = result
        log(f"  {arm}+sft: accuracy {result['best']['accuracy']:.3f}")


def pool_tokens_for(vanilla: dict, tpt: dict) -> int:
    """Vanilla tokens of as many raw documents as TPT read once (the constrained pool)."""
    v, t = vanilla["sources"][0], tpt["sources"][0]
    tokens_per_doc = v["docs_tokens"] / max(v["docs_read"], 1)
    return max(1, int(t["unique_docs"] * tokens_per_doc))


def data_facts(manifest: dict) -> dict:
    main = manifest["sources"][0]
    return {k: main[k] for k in ("unique_docs", "pool_docs", "pool_tokens", "tokens", "epochs_seen")} | {"train_tokens": manifest["train"]["tokens"]}


def run_lab(lab: LabConfig) -> dict:
    """Run every seed, then write the report; returns results.json's content."""
    from tpt.lab.report import write_report

    prof = lab.profile()
    if lab.threads > 0:
        import torch

        torch.set_num_threads(lab.threads)
    started = time.perf_counter()
    runs = [run_seed(lab, prof, seed) for seed in range(prof.seeds)]
    wall = time.perf_counter() - started
    results = write_report(Path(lab.out), lab, prof, runs, wall)
    log(f"done in {wall:.0f} s: {Path(lab.out) / 'report.md'}")
    return results
