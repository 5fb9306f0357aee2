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

VARIANTS = {"tpt-noisy10": "noisy10", "tpt-noisy30": "noisy30", "tpt-other": "other", "tpt-filler": "filler"}
ABLATION_ARMS = ("vanilla-pool", *VARIANTS)


def prepare_ablations(root: Path, prof: Profile, seed: int, think_budget: int) -> list:
    """Augment runs of the expert's variants, the pool arm's data, `tpt analyze stats`; the jobs."""
    from tpt.analyze.cli import StatsConfig, run_stats
    from tpt.lab.experiment import Job, augment, curve_points, data_facts, log, prepare_arm

    ready = root / "ablations.json"
    if ready.exists():
        return [Job(**(j | {"root": root})) for j in json.loads(ready.read_text())["jobs"]]
    tokenizer = root / "tokenizer"
    facts = json.loads((root / "prepared.json").read_text())["data"]
    manifests = {}
    for arm, variant in VARIANTS.items():
        log(f"seed {seed}: augment with the {variant} expert")
        augment(root, tokenizer, name=f"augment-{variant}", backend=f"tpt.lab.expert:make_{variant}")
        manifests[arm] = prepare_arm(root, arm, tokenizer, prof, seed, prof.tokens, source=root / f"augment-{variant}")
    # the pool: as many raw-document tokens as TPT read documents once (vanilla's tokens per document)
    v, t = facts["vanilla"], facts["tpt"]
    pool = int(t["unique_docs"] * v["docs_tokens"] / max(v["docs_read"], 1))
    budget = int(prof.tokens * prof.vanilla_multiple)
    manifests["vanilla-pool"] = prepare_arm(root, "vanilla-pool", tokenizer, prof, seed, budget, pool_tokens=pool)
    run_stats(StatsConfig(runs=[root / "augment"], by=["family", "difficulty"], out=root / "analyze", plots=True))
    jobs = [
        Job(
            seed,
            root,
            arm,
            int(m["train"]["tokens_budget"]),
            curve_points(prof, "vanilla" if arm == "vanilla-pool" else "tpt"),
            think_budget,
        )
        for arm, m in manifests.items()
    ]
    ready.write_text(json.dumps({"jobs": [j.__dict__ | {"root": str(j.root)} for j in jobs],
                                 "data": {arm: data_facts(m) for arm, m in manifests.items()}}, indent=1))  # fmt: skip
    return jobs
