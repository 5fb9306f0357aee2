"""The lab's calls into tpt's own stages, each a real run with typed configs: `tpt tokenizer`
(make_tokenizer), `tpt augment` (augment, run_augment_checked), `tpt prepare` (prepare_arm),
`tpt train` (train_arm), and the facts the report reads back from their outputs."""

from __future__ import annotations

from pathlib import Path

from tpt.lab import corpus
from tpt.lab.config import LabConfig, Profile
from tpt.lab.evaluate import HeldOut
from tpt.lab.families import TaskFamily

BACKGROUND_SHARE = 0.05  # token share of background facts in every arm


def make_tokenizer(root: Path, rows: list[dict], families: dict[str, TaskFamily], prof: Profile) -> Path:
    """A small BPE trained on the seed's own training text (written to tokenizer_text.txt, which
    the leakage scan reads): the first documents of the stream with their trajectories, and the background."""
    from tpt.prepare.tokenizer import train_tokenizer

    texts = [row["text"] + " " + families[row["family"]].trajectory(row["problem"]) for row in rows]
    texts += [r["text"] for r in corpus.background_rows(families)]
    root.mkdir(parents=True, exist_ok=True)
    (root / "tokenizer_text.txt").write_text("\n".join(texts), encoding="utf-8")
    return train_tokenizer(texts, root / "tokenizer", vocab_size=prof.vocab_size, min_frequency=2)


def mean_lengths(tokenizer: Path, rows: list[dict], families: dict[str, TaskFamily]) -> tuple[float, float]:
    """Mean tokens of a document and of a TPT sample "d <think> t </think>" (plus EOS each)."""
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(tokenizer)

    def mean_tokens(texts: list[str]) -> float:
        return sum(len(ids) + 1 for ids in tok(texts, add_special_tokens=False)["input_ids"]) / len(texts)

    samples = [f"{r['text']} <think> {families[r['family']].trajectory(r['problem'])} </think>" for r in rows]
    return mean_tokens([r["text"] for r in rows]), mean_tokens(samples)


def augment(root: Path, tokenizer: Path, name: str = "augment", backend: str = "lab-expert") -> Path:
    from tpt.augment.config import AugmentConfig, BackendConfig, ExecutorConfig, PromptConfig
    from tpt.augment.specs import InputSpec

    # the expert's variants must not state the held-out problems: they read them from this option
    options = {"heldout": str(root / "heldout.jsonl")}
    cfg = AugmentConfig(
        inputs=[InputSpec(root / "corpus-tpt.jsonl")],
        out=root / name,
        backend=BackendConfig(name=backend, tokenizer=str(tokenizer), options=options),
        prompt=PromptConfig(max_doc_tokens=4096),
        executor=ExecutorConfig(shard_size=50_000, checkpoint_records=50_000, checkpoint_seconds=600.0),
        progress=False,
    )
    return run_augment_checked(cfg)


def run_augment_checked(cfg) -> Path:
    """A real ``tpt augment`` run whose every row must succeed: a lab corpus has no bad rows to set aside."""
    from tpt.augment.run import run_augment

    summary = run_augment(cfg)
    if summary.failed or summary.rejected:
        raise RuntimeError(
            f"{cfg.out}: augment left {summary.failed} failed and {summary.rejected} rejected rows (see its failed/ "
            "and rejected/)"
        )
    return Path(cfg.out)


def prepare_arm(
    root: Path,
    arm: str,
    tokenizer: Path,
    prof: Profile,
    seed: int,
    tokens: int,
    pool_tokens: int | None = None,
    source: Path | None = None,
) -> dict:
    """Packed data of one arm: vanilla reads the raw corpus, TPT-like arms an augment run, the
    pool arm TPT's augment run as plain documents (so its pool is the documents TPT read)."""
    from tpt.prepare.config import PrepareConfig, SourceSpec
    from tpt.prepare.run import prepare

    if arm == "vanilla":
        main = SourceSpec(root / "corpus.jsonl", "vanilla", weight=1.0)
    else:
        main = SourceSpec(source or root / "augment", "vanilla" if arm == "vanilla-pool" else "tpt", weight=1.0)
    sources = [main]
    if (root / "background.jsonl").exists():  # the weight as the earlier "PATH:vanilla:%.6f" text gave it
        weight = float(f"{BACKGROUND_SHARE / (1 - BACKGROUND_SHARE):.6f}")
        sources.append(SourceSpec(root / "background.jsonl", "vanilla", weight=weight))
    cfg = PrepareConfig(
        source=sources,
        tokenizer=str(tokenizer),
        out=root / "data" / arm,
        seq_len=prof.seq_len,
        tokens=tokens,
        pool_tokens=pool_tokens or None,
        seed=seed,
        overwrite=True,
    )
    manifest = prepare(cfg)
    manifest["train"]["tokens_budget"] = tokens
    return manifest


def format_tokens(n: int) -> str:
    from tpt.counts import format_count

    return format_count(n)


def train_arm(data: Path, out: Path, prof: Profile, lab: LabConfig, seed: int, budget: int, save_at: list[int],
              lr: float) -> Path:  # fmt: skip
    """`tpt train` pre-training as the lab runs it, at peak ``lr``: the caller names it (an arm's is
    ``prof.lr_for(arm)``), because a folder name is no arm name (the generators' pre-training once took
    TPT's lr that way, docs/generators.md, "The 0.5m regression")."""
    from tpt.train import config as tc
    from tpt.train.loop import train

    cfg = tc.TrainConfig(
        data=data, out=out, mode="pretrain", seed=seed, device=lab.device, eval_every=0, log_every=200,
        progress=False, threads=lab.threads,
        model=tc.ModelConfig(preset=prof.model_preset, rope_theta=prof.rope_theta, doc_attention=lab.doc_attention),
        optimizer=tc.OptimizerConfig(lr=lr),
        schedule=tc.ScheduleConfig(tokens=budget, warmup=0.05),
        batch=tc.BatchConfig(batch_tokens=prof.batch_tokens, micro_batch=16, eval_sequences=8),
        checkpoint=tc.CheckpointConfig(save_every=0, save_at=sorted(save_at)),
    )  # fmt: skip
    return train(cfg).checkpoint


def unique_docs_at(facts: dict, tokens: int) -> float:
    """Unique lab documents seen after ``tokens`` training tokens (``facts``: data_facts of the
    arm): the lab source's share of the stream, at its pool's documents per token, capped by its
    pool (a repeated pool adds nothing new)."""
    share = facts["tokens"] / max(facts["train_tokens"], 1)
    return min(float(facts["unique_docs"]), tokens * share * facts["pool_docs"] / max(facts["pool_tokens"], 1))


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


def think_tokens_needed(tokenizer: Path, heldout: list[HeldOut], families: dict[str, TaskFamily]) -> int:
    """Generation budget for thinking answers: the longest expert trajectory among the held-out
    problems (in this tokenizer's tokens) plus slack, so no correct trajectory is cut off."""
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(tokenizer)
    longest = max(len(tok.encode(families[h.family].trajectory(h.problem), add_special_tokens=False)) for h in heldout)
    return int(longest * 1.25) + 8


def data_facts(manifest: dict) -> dict:
    main = manifest["sources"][0]
    keys = ("unique_docs", "pool_docs", "pool_tokens", "tokens", "epochs_seen", "docs_read", "docs_tokens")
    return {k: main[k] for k in keys} | {"train_tokens": manifest["train"]["tokens"]}
