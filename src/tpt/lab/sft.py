"""Post-training in the lab (claim 5(b), `tpt lab run --ablations`): SFT of each arm, before/after.

Each core arm's checkpoint at B (vanilla and TPT after the same pre-training tokens) gets two
SFT runs, on the same problems (the last ``sft_examples`` documents of the seed's corpus, hence
identity-filtered against the held-out set like every training text):

  think    user: question -> assistant: "<think> trajectory </think> The answer is X."
  answer   user: question -> assistant: "The answer is X."  (the answer-only control)

Each (arm, form) has its own lr, chosen on the dev seed (`tpt lab tune --sft`, docs/lab.md), so
neither arm is judged at an lr picked for the other.  Every model is scored before and after SFT
in the *same* prompt formats: ``reflect`` (the pre-training format: did SFT destroy what the arm
knew?) and ``chat`` (the SFT format: what SFT taught).  The SFT'd models enter the report as the
arms ``vanilla+sft-think`` etc., one curve point at B whose eval holds ``reflect``, ``chat`` and
``chat_before`` (the base checkpoint asked in the chat format).

The data goes through the public stages: `tpt prepare` (SFT mode) then `tpt train --mode sft`;
``prepare_sft_data`` is the one place that calls the former.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from tpt.lab import corpus
from tpt.lab.config import LabConfig, Profile
from tpt.lab.families.base import ANSWER_PREFIX

BASE_ARMS = ("vanilla", "tpt")
FORMS = ("think", "answer")
EVAL_MODES = ("reflect", "chat")


def sft_arm(arm: str, form: str) -> str:
    return f"{arm}+sft-{form}"


def is_sft_arm(arm: str) -> bool:
    return "+sft-" in arm


@dataclass
class SftJob:
    """One SFT run from ``arm``'s checkpoint at B, then its evaluation (its folder names the lr, so
    a rerun with another lr, e.g. the dev sweep's, never reuses this one's result)."""

    seed: int
    root: Path  # the seed folder
    arm: str
    form: str
    lr: float
    budget: int  # B: the pre-training tokens of the base checkpoint
    think_budget: int

    @property
    def out(self) -> Path:
        return self.root / "sft" / f"{self.arm}-{self.form}-lr{self.lr:g}"


def chat_rows(rows: list[dict], families: dict, form: str) -> list[dict]:
    def reply(row: dict) -> str:
        fam = families[row["family"]]
        answer = f"{ANSWER_PREFIX} {fam.answer(row['problem'])}."
        return answer if form == "answer" else f"<think>\n{fam.trajectory(row['problem'])}\n</think>\n{answer}"

    return [
        {"messages": [{"role": "user", "content": families[r["family"]].question(r["problem"])},
                      {"role": "assistant", "content": reply(r)}]}
        for r in rows
    ]  # fmt: skip


def write_sft_chats(root: Path, families: dict, examples: int) -> dict[str, Path]:
    """``sft-think.jsonl`` / ``sft-answer.jsonl`` in the seed folder (the leakage scan reads sft*.jsonl)."""
    lines = (root / "corpus.jsonl").read_text(encoding="utf-8").splitlines()
    rows = [json.loads(line) for line in lines[-examples:]]
    paths = {}
    for form in FORMS:
        paths[form] = root / f"sft-{form}.jsonl"
        if not paths[form].exists():
            corpus.write_jsonl(paths[form], chat_rows(rows, families, form))
    return paths


def prepare_sft_data(chats: Path, tokenizer: Path, out: Path, seed: int) -> Path:
    """`tpt prepare --sft`: the chat file -> padded rows with a loss mask (the one call site)."""
    from tpt.prepare.config import PrepareConfig
    from tpt.prepare.run import prepare

    if not (out / "index.json").exists():
        seq_len = longest_chat(chats, tokenizer)
        prepare(PrepareConfig(source=[str(chats)], sft=True, tokenizer=str(tokenizer), out=out, seq_len=seq_len,
                              seed=seed, overwrite=True))  # fmt: skip
    return out


def longest_chat(chats: Path, tokenizer: Path) -> int:
    """The longest conversation in tokens (chat template applied), rounded up to 16: none is cut."""
    from transformers import AutoTokenizer

    from tpt.prepare.sft import chat_ids_and_mask

    tok = AutoTokenizer.from_pretrained(tokenizer)
    lines = chats.read_text(encoding="utf-8").splitlines()
    longest = max(len(chat_ids_and_mask(tok, json.loads(line)["messages"])[0]) for line in lines)
    return -(-longest // 16) * 16


def base_checkpoint(root: Path, arm: str, budget: int) -> Path:
    """``arm``'s checkpoint after ``budget`` tokens: the final model, or the snapshot saved there."""
    from tpt.lab.stages import format_tokens

    snapshot = root / "train" / arm / f"tokens-{format_tokens(budget)}"
    return snapshot if (snapshot / "config.json").exists() else root / "train" / arm


def sft_train_config(
    data: Path, out: Path, init: Path, lr: float, epochs: float, seq_len: int, seed: int, lab: LabConfig
):
    """`tpt train --mode sft --init` as the lab runs it (the arms' SFT here, the generators' SFT): batches
    of 16 whole conversations, no periodic saves or evals, the lab's device and threads."""
    from tpt.train import config as tc

    return tc.TrainConfig(
        data=data, out=out, mode="sft", seed=seed, device=lab.device, eval_every=0, log_every=200,
        progress=False, threads=lab.threads,
        model=tc.ModelConfig(init=init),
        optimizer=tc.OptimizerConfig(lr=lr),
        schedule=tc.ScheduleConfig(epochs=epochs, warmup=0.05),
        batch=tc.BatchConfig(batch_tokens=16 * seq_len, micro_batch=16, eval_sequences=8),
        checkpoint=tc.CheckpointConfig(save_every=0),
    )  # fmt: skip


def run_sft_job(job: SftJob, prof: Profile, lab: LabConfig) -> dict:
    """SFT one arm in one form, evaluate before/after; the result is cached in ``job.out``."""
    import torch

    from tpt.lab.evaluate import evaluate_checkpoint
    from tpt.lab.experiment import families_for
    from tpt.train.loop import train

    done = job.out / "result.json"
    if done.exists():
        return json.loads(done.read_text())
    if lab.threads > 0:
        torch.set_num_threads(lab.threads)
    families = families_for(prof, job.seed)
    heldout = corpus.read_heldout(job.root / "heldout.jsonl")
    chats = write_sft_chats(job.root, families, prof.sft_examples)[job.form]
    data = prepare_sft_data(chats, job.root / "tokenizer", job.root / "data" / f"sft-{job.form}", job.seed)
    seq_len = json.loads((data / "index.json").read_text())["seq_len"]
    base = base_checkpoint(job.root, job.arm, job.budget)
    cfg = sft_train_config(data, job.out / "model", base, job.lr, prof.sft_epochs, seq_len, job.seed, lab)
    model = train(cfg).checkpoint

    def score(ckpt: Path, modes: tuple[str, ...]) -> dict:
        return evaluate_checkpoint(ckpt, heldout, families, max_new_tokens_think=job.think_budget, modes=modes,
                                   device=lab.device)  # fmt: skip

    result = score(model, EVAL_MODES)
    result["chat_before"] = score(base, ("chat",))["chat"]  # reflect before: the base arm's own curve point
    result["lr"] = job.lr
    done.write_text(json.dumps(result))
    return result


def sft_jobs(lab: LabConfig, prof: Profile, seeds: list[int]) -> list[SftJob]:
    out = []
    for seed in seeds:
        root = Path(lab.out) / f"seed-{seed}"
        think = json.loads((root / "prepared.json").read_text())["jobs"][0]["think_budget"]
        out += [SftJob(seed, root, arm, form, prof.sft_lr_for(arm, form), prof.tokens, think)
                for arm in BASE_ARMS for form in FORMS]  # fmt: skip
    return out


def run_jobs(jobs: list[SftJob], prof: Profile, lab: LabConfig) -> list[dict]:
    """Every SFT job on ``workers`` processes (one CPU thread each), results in job order."""
    from tpt.parallel import spawn_map

    prepare_shared_data(jobs, prof)
    return list(spawn_map(run_sft_job, [(j, prof, lab) for j in jobs], prof.workers))


def prepare_shared_data(jobs: list[SftJob], prof: Profile) -> None:
    """Each (seed, form)'s chats and prepared data, once, before the jobs run: the jobs of one form
    (both arms, every lr) share them, and two workers preparing one folder at once would collide
    on its lock."""
    from tpt.lab.experiment import families_for

    for root, seed, form in sorted({(j.root, j.seed, j.form) for j in jobs}):
        chats = write_sft_chats(root, families_for(prof, seed), prof.sft_examples)[form]
        prepare_sft_data(chats, root / "tokenizer", root / "data" / f"sft-{form}", seed)


def add_sft_arms(lab: LabConfig, prof: Profile, seeds: list[int], curves: dict) -> None:
    """Run the SFT phase and add each SFT'd model to ``curves`` as a one-point arm at B."""
    from tpt.lab.experiment import log

    if not prof.sft_lr:  # an lr nobody chose on dev would make the comparison meaningless
        log("SFT: skipped, the profile has no dev-chosen SFT lr (run `tpt lab tune --sft`, docs/lab.md)")
        return
    jobs = sft_jobs(lab, prof, seeds)
    log(f"SFT: {len(jobs)} runs ({', '.join(FORMS)} forms from vanilla and TPT at B)")
    for job, result in zip(jobs, run_jobs(jobs, prof, lab)):
        base = next(p for p in curves[(job.seed, job.arm)] if p["tokens"] == job.budget)
        curves[(job.seed, sft_arm(job.arm, job.form))] = [
            {"tokens": job.budget, "unique_docs": base["unique_docs"], "eval": result}
        ]


# --- the report's section ------------------------------------------------------------------------
def sft_summary(ev, b_index: dict[str, int]) -> dict:
    """Per SFT arm, per family and overall: before -> after in each format, with the paired difference."""
    import numpy as np

    from tpt.lab import stats

    out = {}
    for arm in sorted(a for a in {a for _, a in ev.curves} if is_sft_arm(a)):
        base = arm.split("+sft-")[0]
        row = {"lr": ev.curves[(ev.seeds[0], arm)][0]["eval"]["lr"]}
        for mode in EVAL_MODES:
            before_of = (base, b_index[base], mode) if mode == "reflect" else (arm, 0, "chat_before")
            cells, reps = {}, {"before": [], "after": [], "diff": []}
            for fam in ev.families:
                before, after = ev.correct(*before_of[:2], fam, before_of[2]), ev.correct(arm, 0, fam, mode)
                r = ev.resamplers[fam]
                rb, ra = r.accuracy(before), r.accuracy(after)
                cells[fam] = {
                    "before": stats.estimate(before, r),
                    "after": stats.estimate(after, r),
                    "diff": {"diff": float(after.mean() - before.mean()), "ci": stats.interval(ra - rb)},
                }
                reps["before"].append(rb), reps["after"].append(ra), reps["diff"].append(ra - rb)
            mean = {k: np.mean(v, axis=0) for k, v in reps.items()}
            cells["overall"] = {
                k: {"acc": float(np.mean([cells[f][k]["acc"] for f in ev.families])), "ci": stats.interval(mean[k])}
                for k in ("before", "after")
            }
            cells["overall"]["diff"] = {
                "diff": cells["overall"]["after"]["acc"] - cells["overall"]["before"]["acc"],
                "ci": stats.interval(mean["diff"]),
            }
            row[mode] = cells
        out[arm] = row
    return out  # fmt: skip


def render_sft(results: dict) -> list[str]:
    """report.md's post-training section (empty without SFT arms)."""
    sft = results.get("sft") or {}
    if not sft:
        return []
    keys = ["overall", *results["families"]]
    lines = [
        "",
        "## Post-training (5b): SFT from each arm at B, before -> after in the same prompt format",
        "",
        (
            "think: SFT on question -> <think> trajectory </think> answer; answer: answer-only control.  lr per "
            "(arm, form), chosen on the dev seed.  `reflect` is the pre-training format (did SFT destroy what the "
            "arm knew?), `chat` the SFT format.  Cell: before -> after (after − before [95%])."
        ),
        "",
        "| SFT'd arm | lr | format | " + " | ".join(keys) + " |",
        "|---|---:|---|" + "---|" * len(keys),
    ]
    for arm, row in sft.items():
        for mode in EVAL_MODES:
            cells = [f"{row[mode][k]['before']['acc']:.3f} -> {row[mode][k]['after']['acc']:.3f} "
                     f"({row[mode][k]['diff']['diff']:+.3f} [{row[mode][k]['diff']['ci'][0]:+.3f}, "
                     f"{row[mode][k]['diff']['ci'][1]:+.3f}])" for k in keys]  # fmt: skip
            lines.append(f"| {arm} | {row['lr']:g} | {mode} | " + " | ".join(cells) + " |")
    return lines
