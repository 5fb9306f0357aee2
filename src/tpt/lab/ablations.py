"""`tpt lab run --ablations`: the paper's other claims, each as a curve, on the test seeds.

Arms added to the core two (each one `tpt train` run with checkpoints, evaluated like the core):
  vanilla-pool   constrained data: only the raw documents TPT read once, repeated by vanilla to
                 vanilla_multiple x B; its checkpoints are 1, 2, ... N epochs of that pool
  tpt-noisy10    generator quality: [d; t] from an expert whose every step is wrong with
  tpt-noisy30      probability 0.1 / 0.3 (errors propagate), B tokens
  tpt-other      content vs length: [d; t_other], another training document's trajectory
  tpt-filler     content vs length: [d; filler], as many filler tokens as the real trajectory
and `tpt analyze stats` on the seed's own augment run (analyze/ in the seed folder), the tool a
user runs on real trajectories (in the lab, length follows difficulty by construction).
"""

from __future__ import annotations

import json
from pathlib import Path

from tpt.lab.config import Profile

VARIANTS = {
    "tpt-noisy10": "noisy10",
    "tpt-noisy30": "noisy30",
    "tpt-other": "other",
    "tpt-filler": "filler",
    "tpt-para": "para",
    "tpt-para-noisy30": "para-noisy30",
}
ABLATION_ARMS = ("vanilla-pool", *VARIANTS)


def prepare_ablations(root: Path, prof: Profile, seed: int, think_budget: int) -> list:
    """Augment runs of the expert's variants, the pool arm's data, `tpt analyze stats`; the jobs.
    Incremental: ablations.json lists the arms already prepared, and only missing ones are added
    (so a finished run gains a new ablation arm without redoing the others)."""
    from tpt.analyze.cli import StatsConfig, run_stats
    from tpt.lab.experiment import Job, curve_points, log
    from tpt.lab.stages import augment, data_facts, prepare_arm

    ready = root / "ablations.json"
    state = json.loads(ready.read_text()) if ready.exists() else {"jobs": [], "data": {}}
    missing = [arm for arm in ABLATION_ARMS if arm not in state["data"]]
    if missing:
        tokenizer = root / "tokenizer"
        if any(VARIANTS.get(arm, "").startswith("para") for arm in missing):
            rewrite_heldout_identity(root, prof, seed)
        manifests = {}
        for arm in missing:
            if arm == "vanilla-pool":
                manifests[arm] = prepare_pool(root, tokenizer, prof, seed)
                continue
            log(f"seed {seed}: augment with the {VARIANTS[arm]} expert")
            augment(root, tokenizer, name=f"augment-{VARIANTS[arm]}", backend=f"tpt.lab.expert:{factory(arm)}")
            manifests[arm] = prepare_arm(
                root, arm, tokenizer, prof, seed, prof.tokens, source=root / f"augment-{VARIANTS[arm]}"
            )
        if not (root / "analyze" / "stats.json").exists():
            run_stats(
                StatsConfig(runs=[root / "augment"], by=["family", "difficulty"], out=root / "analyze", plots=True)
            )
        for arm, m in manifests.items():
            kind = "vanilla" if arm == "vanilla-pool" else "tpt"
            job = Job(seed, root, arm, int(m["train"]["tokens_budget"]), curve_points(prof, kind), think_budget)
            state["jobs"].append(job.__dict__ | {"root": str(root)})
            state["data"][arm] = data_facts(m)
        ready.write_text(json.dumps(state, indent=1))
    return [Job(**(j | {"root": root})) for j in state["jobs"]]


def factory(arm: str) -> str:
    return "make_" + VARIANTS[arm].replace("-", "_")


def prepare_pool(root: Path, tokenizer: Path, prof: Profile, seed: int) -> dict:
    """The pool arm's data: as many raw-document tokens as TPT read documents once (vanilla's
    tokens per document), repeated to vanilla's budget."""
    from tpt.lab.stages import prepare_arm

    facts = json.loads((root / "prepared.json").read_text())["data"]
    v, t = facts["vanilla"], facts["tpt"]
    pool = int(t["unique_docs"] * v["docs_tokens"] / max(v["docs_read"], 1))
    budget = int(prof.tokens * prof.vanilla_multiple)
    return prepare_arm(root, "vanilla-pool", tokenizer, prof, seed, budget, pool_tokens=pool)


def rewrite_heldout_identity(root: Path, prof: Profile, seed: int) -> None:
    """heldout.jsonl with every wording's sub-results in each problem's identity (the paraphrased
    experts' noisy slips are checked against it, and the leakage scan reads it).  The same problems:
    a wording states the same sub-result in other words, so the split itself does not change."""
    from tpt.lab import corpus
    from tpt.lab.experiment import families_for

    path = root / "heldout.jsonl"
    corpus.write_heldout(path, corpus.read_heldout(path), families_for(prof, seed))
