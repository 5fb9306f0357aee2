"""The training loop: ``train(cfg) -> TrainResult``.

Plain next-token prediction (TPT changes the data, not the training).  One optimizer step =
``accum`` forward/backward passes of ``micro`` sequences on each of ``world`` processes; the
loss is the sum of token losses over the whole global batch divided by its number of target
tokens, so one process and N processes compute the same step.  Host syncs happen only at
"flush" points (log / save / snapshot / eval / last step), keeping per-step overhead tiny.
"""

from __future__ import annotations

import contextlib
import json
import math
import random
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from tpt.config import to_dict
from tpt.io.atomic import atomic_write_text
from tpt.io.lock import FileLock

from . import checkpoint as ckpt
from . import checks
from . import distributed as D
from .checks import TrainInputError
from .config import TrainConfig, format_count
from .data import read_batch
from .metrics import MetricsLog
from .model import build_model, make_optimizer
from .plan import RunPlan, make_plan

LOCK_FILE = ".tpt-lock"


class TrainingDiverged(RuntimeError):
    """The loss or gradient norm became NaN/inf; the last good checkpoint is kept."""


@dataclass
class TrainResult:
    checkpoint: Path  # the final HF folder (= --out)
    metrics: Path
    val_loss: float | None
    steps: int
    tokens_seen: int
    snapshots: list[Path] = field(default_factory=list)
    parameters: int = 0


@dataclass
class Progress:
    step: int = 0  # optimizer steps done
    cursor: int = 0  # global sample cursor (see data.py)
    tokens_seen: int = 0
    last_good_step: int = 0  # step of the last checkpoint written with finite loss


def autocast_for(cfg: TrainConfig, device: torch.device):
    use_bf16 = cfg.precision == "bf16" or (cfg.precision == "auto" and device.type == "cuda")
    if not use_bf16:
        return contextlib.nullcontext
    return lambda: torch.autocast(device.type, dtype=torch.bfloat16)


def token_loss_sum(
    model, tokens: torch.Tensor, mask: torch.Tensor | None, autocast, positions: torch.Tensor | None = None
) -> torch.Tensor:
    """Sum of next-token cross-entropies.  tokens (B, T); mask (B, T) bool: which targets count;
    positions (B, T) int64 position ids restarting at 0 per document (None: 0..T-1, one causal block)."""
    inputs, targets = tokens[:, :-1], tokens[:, 1:]  # (B, T-1) each
    if mask is not None:
        targets = targets.masked_fill(~mask[:, 1:], -100)
    kwargs = {}
    if positions is not None:
        # Per-document attention through transformers' packed-sequence path: with position ids
        # that restart at 0, no 2D attention_mask and no KV cache, masking_utils
        # (find_packed_sequence_indices) builds a block-diagonal causal mask for sdpa / eager /
        # flex, and flash-attention takes the same position ids as cu_seqlens.  RoPE reads the
        # positions directly.  The model stays a plain HF model.
        kwargs = {"position_ids": positions[:, :-1], "use_cache": False}  # (B, T-1)
    with autocast():
        logits = model(input_ids=inputs, **kwargs).logits  # (B, T-1, V)
    return F.cross_entropy(logits.float().flatten(0, 1), targets.flatten(), ignore_index=-100, reduction="sum")


def to_device(batch: tuple, device: torch.device) -> tuple:
    """(tokens, mask, positions) from read_batch onto ``device`` (None stays None)."""
    return tuple(None if t is None else t.to(device, non_blocking=True) for t in batch)


def evaluate(model, plan: RunPlan, dist: D.Dist, micro: int, autocast) -> float | None:
    """Mean held-out token loss over all processes (each takes an equal share of the rows)."""
    rows = plan.eval_rows
    if len(rows) == 0:
        return None
    share = np.array_split(rows, dist.world)[dist.rank]
    totals = torch.zeros(2, dtype=torch.float64, device=dist.device)  # [loss sum, target count]
    model.eval()
    with torch.no_grad():
        for start in range(0, len(share), micro):
            batch = read_batch(plan.eval_ds, share[start : start + micro], plan.use_mask, plan.doc_attention)
            tokens, mask, positions = to_device(batch, dist.device)
            totals[0] += token_loss_sum(model, tokens, mask, autocast, positions).double()
            totals[1] += tokens[:, 1:].numel() if mask is None else mask[:, 1:].sum()
    model.train()
    D.all_reduce_sum(totals, dist)
    return float(totals[0] / totals[1]) if totals[1] > 0 else None


class Trainer:
    """Holds the run's state; ``run()`` trains to the plan's last step."""

    def __init__(self, cfg: TrainConfig, plan: RunPlan, dist: D.Dist):
        self.cfg, self.plan, self.dist = cfg, plan, dist
        self.out = Path(cfg.out)
        self.kind = D.choose_parallel(cfg.parallel, dist)
        self.autocast = autocast_for(cfg, dist.device)
        self.progress = Progress()
        self.fingerprint = plan.fingerprint(cfg)
        self.resumed_from = resume_dir = self._resume_dir()
        self.base = build_model(plan, cfg, resume_dir, dist.device)  # unwrapped: what gets saved
        if cfg.model.doc_attention:
            checks.check_doc_attention(self.base.config, plan.model_source)
        self.parameters = sum(p.numel() for p in self.base.parameters())
        self.model = D.wrap(self.base, self.kind, dist)
        if cfg.compile:  # after wrapping: DDP and FSDP2 both support compiling the wrapped module
            self.model = torch.compile(self.model)
        self.optimizer = make_optimizer(self.model, cfg, dist.device)
        self.val_loss: float | None = None
        if resume_dir is not None:
            self._restore(resume_dir)
        else:
            random.seed(cfg.seed)
            np.random.seed(cfg.seed)
        self.snapshots_due = [t for t in cfg.checkpoint.save_at if t > self.progress.tokens_seen]
        self.snapshots: list[Path] = []

    # -- resume -------------------------------------------------------------------------------
    def _resume_dir(self) -> Path | None:
        try:
            found = ckpt.find_state(self.out, repair=self.dist.is_main) if self.out.exists() else None
        except ckpt.CheckpointError as e:
            raise TrainInputError(f"--out {self.out}: {e}") from None
        if found is None:
            return None
        state, saved = found
        if not self.cfg.checkpoint.resume:
            raise TrainInputError(
                f"--out {self.out}: holds a checkpoint ({state}); remove it or drop --no-resume to continue it"
            )
        # States written before --doc-attention existed trained without it.
        diffs = ckpt.config_differences({"doc_attention": False, **saved["fingerprint"]}, self.fingerprint)
        if diffs:
            raise TrainInputError(
                f"--out {self.out}: cannot resume, the run's settings changed:\n  " + "\n  ".join(diffs)
            )
        self._saved_state = saved
        return state

    def _restore(self, state_dir: Path) -> None:
        s = self._saved_state
        D.load_optimizer_state(self.model, self.base, self.optimizer, s["optimizer"], self.kind)
        ckpt.restore_rng(s["rng"])
        self.progress = Progress(
            step=s["step"], cursor=s["cursor"], tokens_seen=s["tokens_seen"], last_good_step=s["step"]
        )
        self.val_loss = s.get("val_loss")
        if self.dist.is_main:
            ckpt.truncate_metrics(self.out / "metrics.jsonl", s["step"])
            print(f"tpt train: resuming from {state_dir} at step {s['step']}/{self.plan.total_steps}", flush=True)
        del self._saved_state

    # -- one optimizer step -------------------------------------------------------------------
    def _step(self, running: torch.Tensor) -> None:
        """One optimizer step.  running: [loss sum, target count, non-finite grad norms, grad norm]."""
        plan, dist, p = self.plan, self.dist, self.progress
        batches = [
            read_batch(plan.train, rows, plan.use_mask, plan.doc_attention)
            for rows in plan.layout.micro_rows(plan.order, p.cursor, dist.rank)
        ]
        if plan.counts_targets:  # SFT / doc attention: targets per step vary; count them over all processes first
            count = torch.tensor(float(sum(int(m[:, 1:].sum()) for _, m, _ in batches)), device=dist.device)
            count = D.all_reduce_sum(count, dist).clamp_min(1.0)
        else:
            count = torch.tensor(float(plan.layout.global_batch * (plan.seq_len - 1)), device=dist.device)
        scale = dist.world / count  # DDP/FSDP average gradients over processes; undo that
        for i, batch in enumerate(batches):
            tokens, mask, positions = to_device(batch, dist.device)
            with D.no_sync(self.model, self.kind, sync=i == len(batches) - 1):
                loss_sum = token_loss_sum(self.model, tokens, mask, self.autocast, positions)
                (loss_sum * scale).backward()
            running[0] += loss_sum.detach()
        running[1] += count / dist.world  # summed over processes at the flush
        clip = self.cfg.optimizer.grad_clip if self.cfg.optimizer.grad_clip > 0 else float("inf")
        norm = torch.nn.utils.clip_grad_norm_(self.model.parameters(), clip)
        norm = norm.full_tensor() if hasattr(norm, "full_tensor") else norm  # FSDP2: a DTensor
        running[2] += (~torch.isfinite(norm)).float()
        running[3] = norm.detach()
        for group in self.optimizer.param_groups:
            group["lr"] = plan.schedule.lr(p.step)
        self.optimizer.step()
        self.optimizer.zero_grad(set_to_none=True)
        p.step += 1
        p.cursor += plan.layout.global_batch
        p.tokens_seen += plan.tokens_per_step

    # -- flush points: metrics, divergence check, checkpoints -----------------------------------
    def _flush(self, running: torch.Tensor, log: MetricsLog) -> None:
        p = self.progress
        totals = D.all_reduce_sum(running[:3].clone(), self.dist)
        loss = float(totals[0] / totals[1]) if totals[1] > 0 else float("nan")
        if not math.isfinite(loss) or totals[2] > 0:
            what = f"loss {loss}" if not math.isfinite(loss) else "gradient norm inf/nan"
            raise TrainingDiverged(
                f"{what} at step {p.step} (tokens {p.tokens_seen}); stopped. Last good checkpoint: "
                + (f"{self.out / ckpt.STATE_DIR} (step {p.last_good_step})" if p.last_good_step else "none written yet")
            )
        record = {
            "step": p.step,
            "tokens": p.tokens_seen,
            "loss": round(loss, 6),
            "lr": self.plan.schedule.lr(p.step - 1),
            "grad_norm": round(float(running[3]), 6),
            "tokens_per_s": round(log.tokens_per_second(p.step), 1),
        }
        log.write(record)
        log.advance(0, loss, record["tokens_per_s"])
        running.zero_()

    def _save_state(self) -> None:
        p = self.progress
        model_state = D.full_model_state(self.model, self.kind)  # collective under FSDP
        trainer_state = {
            "version": 1,
            "step": p.step,
            "cursor": p.cursor,
            "tokens_seen": p.tokens_seen,
            "optimizer": D.optimizer_state(self.model, self.base, self.optimizer, self.kind),
            "scheduler": to_dict(self.plan.schedule),
            "rng": ckpt.rng_states(),
            "fingerprint": self.fingerprint,
            "val_loss": self.val_loss,
        }
        if self.dist.is_main:
            ckpt.save_state(self.out, self.base, self.plan.tokenizer, model_state, trainer_state)
        D.barrier(self.dist)
        p.last_good_step = p.step

    def _save_snapshots(self) -> None:
        p = self.progress
        while self.snapshots_due and p.tokens_seen >= self.snapshots_due[0]:
            target = self.snapshots_due.pop(0)
            folder = self.out / f"tokens-{format_count(target)}"
            model_state = D.full_model_state(self.model, self.kind)
            info = {"step": p.step, "tokens_seen": p.tokens_seen, "requested_tokens": target}
            if self.dist.is_main:
                ckpt.save_snapshot(folder, self.base, self.plan.tokenizer, model_state, info, self.plan.save_dtype)
            self.snapshots.append(folder)

    def run(self) -> TrainResult:
        cfg, plan, p = self.cfg, self.plan, self.progress
        log = MetricsLog(
            self.out / "metrics.jsonl", self.dist.is_main, plan.total_steps, p.step, plan.tokens_per_step, cfg.progress
        )
        running = torch.zeros(4, dtype=torch.float64, device=self.dist.device)
        self.model.train()
        try:
            while p.step < plan.total_steps:
                self._step(running)
                log.advance(1)
                last = p.step == plan.total_steps
                save = last or (cfg.checkpoint.save_every > 0 and p.step % cfg.checkpoint.save_every == 0)
                snapshot = bool(self.snapshots_due) and p.tokens_seen >= self.snapshots_due[0]
                evaluate_now = last or (cfg.eval_every > 0 and p.step % cfg.eval_every == 0)
                if not (save or snapshot or evaluate_now or p.step % max(1, cfg.log_every) == 0):
                    continue
                self._flush(running, log)  # raises TrainingDiverged before anything is saved
                if evaluate_now:
                    self.val_loss = evaluate(self.model, plan, self.dist, plan.layout.micro, self.autocast)
                    if self.val_loss is not None:
                        log.write({"step": p.step, "tokens": p.tokens_seen, "val_loss": round(self.val_loss, 6)})
                if snapshot:
                    self._save_snapshots()
                if save:
                    self._save_state()
                log.restart_clock(p.step)
        finally:
            log.close()
        return self._finish(log.path)

    def _finish(self, metrics: Path) -> TrainResult:
        p = self.progress
        info = {"step": p.step, "tokens_seen": p.tokens_seen, "val_loss": self.val_loss, "parameters": self.parameters}
        model_state = D.full_model_state(self.model, self.kind)
        if self.dist.is_main:
            ckpt.save_final(self.out, self.base, self.plan.tokenizer, model_state, info, self.plan.save_dtype)
        D.barrier(self.dist)
        return TrainResult(self.out, metrics, self.val_loss, p.step, p.tokens_seen, self.snapshots, self.parameters)


def already_done(out: Path, total_steps: int) -> TrainResult | None:
    """A finished run with the same plan: return its result without training again."""
    done = out / ckpt.DONE_FILE
    if not done.exists():
        return None
    info = json.loads(done.read_text())
    if info.get("step") != total_steps:
        return None
    snapshots = sorted(d for d in out.glob("tokens-*") if d.is_dir())
    return TrainResult(
        out,
        out / "metrics.jsonl",
        info.get("val_loss"),
        info["step"],
        info["tokens_seen"],
        snapshots,
        info.get("parameters", 0),
    )


def train(cfg: TrainConfig) -> TrainResult:
    """Train as configured; resumes from ``cfg.out``/state when it exists (see checkpoint.py)."""
    if cfg.threads > 0:
        torch.set_num_threads(cfg.threads)
    dist = D.setup(cfg.device)
    # One run per --out: a second process is refused (naming the holder) before it reads or
    # writes anything there (metrics.jsonl, state).  The main process holds the lock.
    lock = FileLock(Path(cfg.out) / LOCK_FILE, what=f"--out {cfg.out}") if dist.is_main else None
    try:
        if lock is not None:
            lock.acquire()
            ckpt.clean_leftovers(Path(cfg.out))
        plan = make_plan(cfg, dist)
        out = Path(cfg.out)
        trainer = Trainer(cfg, plan, dist)  # checks a resumable state's settings before anything else
        finished = already_done(out, plan.total_steps) if trainer.resumed_from else None
        if finished is not None:
            return finished
        if dist.is_main:
            out.mkdir(parents=True, exist_ok=True)
            describe = {
                "config": to_dict(cfg),
                "plan": {
                    "model": plan.model_source,
                    "parameters": trainer.parameters,
                    "global_batch": plan.layout.global_batch,
                    "micro_batch": plan.layout.micro,
                    "accum": plan.layout.accum,
                    "world": dist.world,
                    "parallel": trainer.kind,
                    "total_steps": plan.total_steps,
                    "seq_len": plan.seq_len,
                },
            }
            atomic_write_text(out / "train_config.json", json.dumps(describe, indent=2) + "\n")
            print(
                f"tpt train: {plan.model_source}, {trainer.parameters / 1e6:.2f}M parameters, {plan.total_steps} "
                f"steps x {plan.tokens_per_step} tokens (global batch {plan.layout.global_batch} = {dist.world} x "
                f"{plan.layout.accum} x {plan.layout.micro} sequences of {plan.seq_len})",
                flush=True,
            )
        return trainer.run()
    finally:
        if lock is not None:
            lock.release()
        D.teardown(dist)
