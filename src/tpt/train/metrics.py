"""Metrics to OUT/metrics.jsonl (and TensorBoard when installed), and the progress bar."""

from __future__ import annotations

import json
import time
from pathlib import Path

from tpt.progress import progress_bar


class MetricsLog:
    """Appends one JSON object per line; only the main process writes."""

    def __init__(
        self, path: Path, enabled: bool, total_steps: int, start_step: int, tokens_per_step: int, progress: bool
    ):
        self.path = path
        self.enabled = enabled
        self.tokens_per_step = tokens_per_step
        self._file = open(path, "a") if enabled else None
        self._tb = _tensorboard(path.parent) if enabled else None
        self._bar = progress_bar(total_steps, "train", "step", enabled and progress, initial=start_step)
        self._t0, self._step0 = time.perf_counter(), start_step

    def tokens_per_second(self, step: int) -> float:
        elapsed = time.perf_counter() - self._t0
        return (step - self._step0) * self.tokens_per_step / elapsed if elapsed > 0 else 0.0

    def restart_clock(self, step: int) -> None:
        """Exclude pauses (evaluation, checkpoint writes) from tokens/s."""
        self._t0, self._step0 = time.perf_counter(), step

    def write(self, record: dict) -> None:
        if not self.enabled:
            return
        self._file.write(json.dumps(record) + "\n")
        self._file.flush()
        if self._tb is not None:
            for key, value in record.items():
                if key != "step" and isinstance(value, (int, float)):
                    self._tb.add_scalar(key, value, record["step"])

    def advance(self, steps: int, loss: float | None = None, tokens_per_s: float | None = None) -> None:
        self._bar.update(steps)
        if loss is not None:
            self._bar.set_postfix(loss=f"{loss:.4f}", tok_s=f"{tokens_per_s:,.0f}", refresh=False)

    def close(self) -> None:
        self._bar.close()
        if self._file is not None:
            self._file.close()
        if self._tb is not None:
            self._tb.close()


def _tensorboard(folder: Path):
    try:
        from torch.utils.tensorboard import SummaryWriter
    except Exception:  # tensorboard is optional
        return None
    return SummaryWriter(str(folder / "tensorboard"))
