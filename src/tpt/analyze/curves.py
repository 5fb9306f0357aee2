"""Learning curves and the data-efficiency multiplier (shared by `tpt analyze` and the lab).

multiplier(target) = tokens the baseline needs to reach ``target`` / tokens the method needs,
each read off its curve by linear interpolation between measured points.  A curve "reaches" a
target at the first crossing of its running maximum (scores are noisy; we never credit a run
with a score before it first attains it).  Where the baseline never gets there, the result says
"not reached" and gives a lower bound (baseline's last budget / method's tokens).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass


def tokens_to_reach(tokens: Sequence[float], scores: Sequence[float], target: float) -> float | None:
    """First x at which the curve (x sorted ascending) reaches ``target``, interpolated; None if never."""
    points = sorted(zip(tokens, scores))
    best_prev = None
    for i, (x, y) in enumerate(points):
        if y >= target:
            if i == 0 or best_prev is None:
                return float(x)
            x0, y0 = best_prev
            return float(x0 + (target - y0) * (x - x0) / (y - y0)) if y > y0 else float(x)
        if best_prev is None or y > best_prev[1]:
            best_prev = (x, y)
        else:  # below a previous best: carry the running max forward at this x
            best_prev = (x, best_prev[1])
    return None


@dataclass
class Efficiency:
    target: float
    method_tokens: float | None
    baseline_tokens: float | None
    multiplier: float | None  # None when either curve never reaches the target
    reached: bool  # did the baseline reach it
    lower_bound: float | None = None  # when the baseline did not: at least this multiplier

    def to_dict(self) -> dict:
        return asdict(self)


def data_efficiency(
    baseline: Sequence[tuple[float, float]], method: Sequence[tuple[float, float]], targets: Sequence[float]
) -> list[Efficiency]:
    """Multiplier at each target score; curves are (tokens, score) pairs."""
    bx, by = zip(*baseline) if baseline else ((), ())
    mx, my = zip(*method) if method else ((), ())
    out = []
    for target in targets:
        m = tokens_to_reach(mx, my, target)
        b = tokens_to_reach(bx, by, target)
        mult = b / m if (b is not None and m) else None
        lower = max(bx) / m if (b is None and m and bx) else None
        out.append(Efficiency(target, m, b, mult, b is not None, lower))
    return out
