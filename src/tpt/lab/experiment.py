"""The lab experiment: corpus -> augment (lab-expert) -> prepare -> train -> evaluate, per seed.

Arms (one training run each; checkpoints along it are the learning curve):
  vanilla   fresh documents d, to vanilla_multiple x B tokens (4 x B by default)
  tpt       fresh [d; t] samples, B tokens (so it sees fewer unique documents)
Both get the same background documents (the two-hop knowledge base) at the same token share.

Seeds: a run is either the dev seed (``--dev``, for choosing settings) or the test seeds (the
default), never both.  Training runs go to a pool of ``workers`` processes (one CPU thread each:
these models are too small for intra-op parallelism to pay).
"""

from __future__ import annotations

import json
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tpt.lab import corpus
from tpt.lab.config import LabConfig, Profile
from tpt.lab.evaluate import evaluate_checkpoint
from tpt.lab.families import TaskFamily, load_family
from tpt.lab.sft import add_sft_arms
from tpt.lab.stages import (
    augment,
    data_facts,
    format_tokens,
    make_tokenizer,
    mean_lengths,
    prepare_arm,
    think_tokens_needed,
    train_arm,
    trajectory_lengths,
    unique_docs_at,
)
from tpt.parallel import process_pool

ARMS = ("vanilla", "tpt")
TOKENIZER_DOCS = 3000  # documents (with trajectories) the seed's tokenizer is trained on


def log(msg: str) -> None:
    print(f"[tpt lab {time.strftime('%H:%M:%S')}] {msg}", flush=True)


@dataclass
class Job:
    """One arm of one seed: train to ``budget`` tokens, evaluate every checkpoint."""

    seed: int
    root: Path
    arm: str
    budget: int
    points: list[int]
    think_budget: int

    @property
    def out(self) -> Path:
        return self.root / "train" / self.arm

    @property
    def curve_file(self) -> Path:
        return self.out / "curve.json"


def families_for(prof: Profile, seed: int) -> dict[str, TaskFamily]:
    return {name: load_family(name, seed) for name in prof.families}


def prepare_seed(lab: LabConfig, prof: Profile, seed: int) -> list[Job]:
    """Corpus, tokenizer, augment run and packed data of one seed (kept when already complete)."""
    root = Path(lab.out) / f"seed-{seed}"
    ready = root / "prepared.json"
    if ready.exists():
        log(f"seed {seed}: reusing its prepared data")
        return [
            Job(**(j | {"root": root})) for j in json.loads(ready.read_text())["jobs"]
        ]  # root: the folder may have moved
    if root.exists():  # a seed whose preparation did not finish: start it clean (redrawn identically)
        shutil.rmtree(root)
    families = families_for(prof, seed)
    started = time.perf_counter()
    heldout = corpus.draw_heldout(families, per_level_count(prof, families), seed)
    corpus.write_heldout(root / "heldout.jsonl", heldout, families)
    background = corpus.background_rows(families)
    if background:
        corpus.write_jsonl(root / "background.jsonl", background)
    # one stream of training documents: the tokenizer learns on its first rows, which also tell
    # how long documents and trajectories are, so each arm's corpus is just large enough
    stream = corpus.corpus_rows(families, heldout, 10**9, seed)
    rows = [next(stream) for _ in range(TOKENIZER_DOCS)]
    tokenizer = make_tokenizer(root, rows, families, prof)
    doc_len, sample_len = mean_lengths(tokenizer, rows, families)
    vanilla_tokens = int(prof.tokens * prof.vanilla_multiple)
    sizes = {"vanilla": int(1.15 * vanilla_tokens / doc_len) + 200, "tpt": int(1.15 * prof.tokens / sample_len) + 200}
    rows += [next(stream) for _ in range(max(sizes.values()) - len(rows))]
    log(
        f"seed {seed}: {len(heldout)} held-out problems; corpora of {sizes['vanilla']:,} (vanilla) and "
        f"{sizes['tpt']:,} (TPT) documents"
    )
    corpus.write_jsonl(root / "corpus.jsonl", rows[: sizes["vanilla"]])
    corpus.write_jsonl(root / "corpus-tpt.jsonl", rows[: sizes["tpt"]])  # TPT reads a prefix of the same stream
    augment(root, tokenizer)
    manifests = {
        arm: prepare_arm(root, arm, tokenizer, prof, seed, vanilla_tokens if arm == "vanilla" else prof.tokens)
        for arm in ARMS
    }
    think = think_tokens_needed(tokenizer, heldout, families)
    jobs = [
        Job(seed, root, arm, int(m["train"]["tokens_budget"]), curve_points(prof, arm), think)
        for arm, m in manifests.items()
    ]
    facts = {
        "jobs": [j.__dict__ | {"root": str(j.root)} for j in jobs],
        "seconds": round(time.perf_counter() - started, 1),
        "data": {arm: data_facts(m) for arm, m in manifests.items()},
        "trajectory_lengths": trajectory_lengths(root / "augment"),
    }
    ready.write_text(json.dumps(facts, indent=1))
    return jobs


def per_level_count(prof: Profile, families: dict[str, TaskFamily]) -> dict[str, int]:
    return {name: -(-prof.heldout_per_family // len(fam.difficulties)) for name, fam in families.items()}


def curve_points(prof: Profile, arm: str) -> list[int]:
    limit = prof.vanilla_multiple if arm == "vanilla" else 1.0
    return [int(prof.tokens * f) for f in prof.fractions if f <= limit + 1e-9]


def run_job(job: Job, prof: Profile, lab: LabConfig, families_seed: int) -> list[dict]:
    """Train one arm and evaluate its checkpoints (in a worker process); the curve is saved next
    to the checkpoints, so a rerun after a crash only redoes unfinished arms."""
    if job.curve_file.exists():
        return json.loads(job.curve_file.read_text())
    if lab.evaluate_saved:
        return evaluate_saved(job, prof, lab, families_seed)
    import torch

    if lab.threads > 0:
        torch.set_num_threads(lab.threads)
    started = time.perf_counter()
    save_at = [p for p in job.points if p < job.budget]
    lr = prof.lr_for(job.arm)
    final = train_arm(job.root / "data" / job.arm, job.out, prof, lab, job.seed, job.budget, save_at, lr)
    trained = time.perf_counter() - started
    families = families_for(prof, families_seed)
    heldout = corpus.read_heldout(job.root / "heldout.jsonl")
    curve = []
    for tokens in job.points:
        ckpt = final if tokens >= job.budget else job.out / f"tokens-{format_tokens(tokens)}"
        result = evaluate_checkpoint(ckpt, heldout, families, max_new_tokens_think=job.think_budget, device=lab.device)
        curve.append({"tokens": tokens, "eval": result})
        log(f"  seed {job.seed} {job.arm} @ {tokens:,} tokens: reflect accuracy {result['reflect']['accuracy']:.3f}")
    curve[-1]["train_seconds"] = round(trained, 1)
    curve[-1]["tokens_per_second"] = round(job.budget / trained, 1)
    curve[-1]["eval_seconds"] = round(time.perf_counter() - started - trained, 1)
    job.curve_file.write_text(json.dumps(curve))
    return curve


def evaluate_saved(job: Job, prof: Profile, lab: LabConfig, families_seed: int) -> list[dict]:
    """``--evaluate-saved``: no training; evaluate the checkpoints an interrupted arm already
    saved (kept in curve-saved.json, so a rerun does not redo them)."""
    cache = job.out / "curve-saved.json"
    done = {p["tokens"]: p for p in json.loads(cache.read_text())} if cache.exists() else {}
    families = families_for(prof, families_seed)
    heldout = corpus.read_heldout(job.root / "heldout.jsonl")
    curve = []
    for tokens in job.points:
        ckpt = job.out if tokens >= job.budget else job.out / f"tokens-{format_tokens(tokens)}"
        if tokens not in done and not (ckpt / "config.json").exists():
            continue
        if tokens not in done:
            done[tokens] = {
                "tokens": tokens,
                "eval": evaluate_checkpoint(
                    ckpt, heldout, families, max_new_tokens_think=job.think_budget, device=lab.device
                ),
            }
            log(
                f"  seed {job.seed} {job.arm} @ {tokens:,} tokens (saved): reflect accuracy "
                f"{done[tokens]['eval']['reflect']['accuracy']:.3f}"
            )
            cache.write_text(json.dumps(sorted(done.values(), key=lambda p: p["tokens"])))
        curve.append(done[tokens])
    return curve


def common_points(curves: dict[tuple[int, str], list[dict]]) -> dict[str, int]:
    """Cut every arm's curves to the token counts all its seeds reached (an --evaluate-saved run
    has uneven ones); returns arm -> its last common point."""
    last = {}
    for arm in {a for _, a in curves}:
        keys = [k for k in curves if k[1] == arm]
        common = set.intersection(*({p["tokens"] for p in curves[k]} for k in keys))
        for k in keys:
            curves[k] = [p for p in curves[k] if p["tokens"] in common]
        last[arm] = max(common) if common else 0
    return last


def run_seeds(lab: LabConfig, prof: Profile, seeds: list[int]) -> tuple[list[Job], dict[tuple[int, str], list[dict]]]:
    """Prepare every seed and run every (seed, arm) training job on ``workers`` processes: a
    seed's jobs are queued as soon as its data is ready (largest first), so every core stays busy."""
    from concurrent.futures import as_completed

    if prof.workers <= 1:
        jobs = [j for seed in seeds for j in all_jobs(lab, prof, seed)]
        return jobs, {(j.seed, j.arm): run_job(j, prof, lab, j.seed) for j in jobs}
    with process_pool(prof.workers, "spawn") as pool:
        preps = [pool.submit(all_jobs, lab, prof, seed) for seed in seeds]
        jobs, futures = [], {}
        for done in as_completed(preps):
            for j in sorted(done.result(), key=lambda j: -j.budget):
                jobs.append(j)
                futures[(j.seed, j.arm)] = pool.submit(run_job, j, prof, lab, j.seed)
        return jobs, {key: f.result() for key, f in futures.items()}


def all_jobs(lab: LabConfig, prof: Profile, seed: int) -> list[Job]:
    jobs = prepare_seed(lab, prof, seed)
    if lab.ablations:
        from tpt.lab.ablations import prepare_ablations

        jobs += prepare_ablations(Path(lab.out) / f"seed-{seed}", prof, seed, jobs[0].think_budget)
    if lab.generators:  # learned generators (issue 19): tpt.lab.generators
        from tpt.lab.generators import prepare_generators

        jobs += prepare_generators(lab, prof, Path(lab.out) / f"seed-{seed}", seed, jobs[0].think_budget)
    return jobs


def cpu_seconds() -> float:
    """CPU time of this process and its finished children (the workers): divided by the cores, the
    wall time an otherwise idle machine would need (docs/lab.md, "Budget")."""
    import resource

    me, kids = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return me.ru_utime + me.ru_stime + kids.ru_utime + kids.ru_stime


def run_lab(lab: LabConfig) -> dict[str, Any]:
    """Prepare every seed, train and evaluate every arm, scan for leakage, write the report."""
    from tpt.lab.leakage import scan
    from tpt.lab.report import write_report

    prof = lab.profile()
    seeds = lab.seeds(prof)
    started = time.perf_counter()
    log(
        f"{'DEV seed' if lab.dev else 'test seeds'} {seeds}; families {', '.join(prof.families)}; TPT "
        f"{prof.tokens:,} tokens, vanilla {int(prof.tokens * prof.vanilla_multiple):,}; {prof.workers} worker(s)"
    )
    if lab.generators:  # a reused folder's mistakes are refused before any compute
        from tpt.lab.generators import check_reused_pretrainings

        check_reused_pretrainings(lab, seeds)
    _, curves = run_seeds(lab, prof, seeds)
    reached = common_points(curves)
    for (seed, arm), curve in curves.items():
        root = Path(lab.out) / f"seed-{seed}"
        facts_file = (
            "prepared.json" if arm in ARMS else "generators.json" if arm.startswith("gen-") else "ablations.json"
        )
        facts = json.loads((root / facts_file).read_text())["data"][arm]
        for point in curve:
            point["unique_docs"] = unique_docs_at(facts, point["tokens"])
    if lab.ablations:  # post-training (5b): SFT from each core arm at B
        add_sft_arms(lab, prof, seeds, curves)
    trained = time.perf_counter() - started
    leakage = {seed: scan(Path(lab.out) / f"seed-{seed}") for seed in seeds}
    for seed, found in leakage.items():
        log(
            f"seed {seed}: leakage scan of {found['texts']:,} training texts for {found['patterns']:,} held-out "
            f"strings: {len(found['hits'])} hits"
        )
    wall = time.perf_counter() - started
    cpu = cpu_seconds()
    timing = {
        "prepare_train_eval_seconds": round(trained, 1),
        "scan_report_seconds": round(wall - trained, 1),
        "cpu_seconds": round(cpu, 1),
        "idle_2core_estimate_seconds": round(cpu / 2, 1),
    }
    timing["last_point"] = reached  # the budget each arm's curve reaches (less than planned only with --evaluate-saved)
    results = write_report(Path(lab.out), lab, prof, seeds, curves, leakage, wall, timing)
    if lab.generators:
        from tpt.lab.generators_report import write_generator_report

        write_generator_report(Path(lab.out), lab, prof, seeds, curves)
    log(f"done in {wall:.0f} s: {Path(lab.out) / 'report.md'}")
    return results
