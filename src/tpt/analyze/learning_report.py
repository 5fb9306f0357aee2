"""The `tpt analyze curves` report: multiplier tables and learning-curve plots."""

from __future__ import annotations

from pathlib import Path

from tpt.analyze.learning import Comparison, RunCurves, format_multiplier
from tpt.analyze.report import Block

AXES = {"tokens": "training tokens", "docs": "unique documents"}


def curves_blocks(result: dict, comparisons: list[Comparison], plots: dict[str, str]) -> list[Block]:
    blocks = [
        Block("h1", "Learning curves and data efficiency"),
        Block(
            "table",
            (
                ["run", "metrics points", "eval points", "best score"],
                [
                    [
                        name,
                        r["metrics_points"],
                        r["eval_points"],
                        max((y for _, y in r["score_curve"]), default=float("nan")),
                    ]
                    for name, r in result["runs"].items()
                ],
            ),
        ),
    ]
    for c in comparisons:
        blocks.append(Block("h2", f"{c.method} vs {c.baseline}"))
        if c.note:
            blocks.append(Block("p", f"Note: {c.note}."))
        blocks.append(
            Block(
                "p",
                f"multiplier = {AXES[c.x]} the baseline needs to reach the target score / {AXES[c.x]} "
                f"the method needs (linear interpolation on each run's running-best curve).",
            )
        )
        rows = [
            [
                e.target,
                e.method_tokens if e.method_tokens is not None else "never",
                e.baseline_tokens if e.baseline_tokens is not None else "never",
                format_multiplier(e),
            ]
            for e in c.efficiencies
        ]
        blocks.append(Block("table", (["target score", f"method {c.x}", f"baseline {c.x}", "multiplier"], rows)))
    blocks += [Block("img", path) for path in plots.values()]
    if result["problems"]:
        blocks.append(Block("h2", "Set aside"))
        blocks.append(Block("p", f"{len(result['problems'])} unusable line(s)/file(s); first: {result['problems'][0]}"))
    return blocks


def plot_curves(runs: list[RunCurves], task: str | None, score_field: str, out: Path) -> dict[str, str]:
    """Score and loss against tokens and unique documents, one line per run (plots/*.png)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    (out / "plots").mkdir(parents=True, exist_ok=True)
    paths = {}
    panels = [
        ("score", lambda r, x: r.score_curve(task, score_field, x)),
        ("loss", lambda r, x: r.series("loss", x)),
        ("val_loss", lambda r, x: r.series("val_loss", x)),
    ]
    for x in ("tokens", "docs"):
        for name, curve_of in panels:
            curves = [(r.name, curve_of(r, x)) for r in runs]
            if not any(len(c) for _, c in curves):
                continue
            fig, ax = plt.subplots(figsize=(7, 4))
            for label, curve in curves:
                if curve:
                    xs, ys = zip(*curve)
                    ax.plot(xs, ys, marker="o" if name == "score" else None, ms=3, label=label)
            ax.set(xlabel=AXES[x], ylabel=name, title=f"{name} vs {AXES[x]}")
            ax.legend()
            fig.tight_layout()
            rel = f"plots/{name}_vs_{x}.png"
            fig.savefig(out / rel, dpi=110)
            plt.close(fig)
            paths[f"{name}_vs_{x}"] = rel
    return paths
