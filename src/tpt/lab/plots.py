"""PNG figures of the lab report (matplotlib, Agg backend: no display needed)."""

from __future__ import annotations

from pathlib import Path

from tpt.lab.report import ARM_STYLE


def _plt():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _curve_grid(path: Path, curves: dict, chance: dict, keys: list[str], x: str, arms: list[str], xlabel: str) -> str:
    plt = _plt()
    fig, axes = plt.subplots(1, len(keys), figsize=(3.2 * len(keys), 3), squeeze=False)
    for ax, key in zip(axes[0], keys):
        for arm in arms:
            if arm not in curves:
                continue
            pts = curves[arm]
            color, label = ARM_STYLE.get(arm, (None, arm))
            xs, ys = [p[x] for p in pts], [p[key]["acc"] for p in pts]
            err = [[y - p[key]["ci"][0] for y, p in zip(ys, pts)], [p[key]["ci"][1] - y for y, p in zip(ys, pts)]]
            ax.errorbar(xs, ys, yerr=err, marker="o", color=color, label=label, capsize=2)
        if key in chance:  # the family's majority-baseline interval
            ax.axhspan(*chance[key]["ci"], color="grey", alpha=0.25, label="chance (majority)")
        ax.set_title(key)
        ax.set_xlabel(xlabel)
        ax.set_xscale("log")
        ax.xaxis.set_minor_formatter(plt.NullFormatter())  # minor log labels overlap at these ranges
        ax.set_ylim(-0.02, 1.02)
    axes[0][0].set_ylabel("held-out accuracy")
    axes[0][0].legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return str(path)


def _trajectory_lengths(path: Path, lengths: dict) -> str:
    plt = _plt()
    fig, ax = plt.subplots(figsize=(4.5, 3))
    for fam, table in lengths.items():
        ax.plot([int(k) for k in table], list(table.values()), marker="o", label=fam)
    ax.set_xlabel("difficulty")
    ax.set_ylabel("mean thinking tokens")
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return str(path)


def write_plots(folder: Path, results: dict, families: list[str]) -> list[str]:
    folder.mkdir(parents=True, exist_ok=True)
    keys = ["overall", *families]
    curves, chance = results["curves"], results["chance"]
    return [
        _curve_grid(
            folder / "accuracy_vs_tokens.png", curves, chance, keys, "tokens", ["vanilla", "tpt"], "training tokens"
        ),
        _curve_grid(
            folder / "accuracy_vs_unique_docs.png",
            curves,
            chance,
            keys,
            "unique_docs",
            ["vanilla", "tpt"],
            "unique documents",
        ),
        _trajectory_lengths(folder / "trajectory_length_vs_difficulty.png", results["trajectory_lengths"]),
    ] + (
        [
            _curve_grid(
                folder / "constrained_data.png",
                curves,
                chance,
                keys,
                "tokens",
                ["vanilla-pool", "tpt", "vanilla"],
                "training tokens",
            )
        ]
        if "vanilla-pool" in curves
        else []
    )
