"""The `tpt analyze stats` report: tables and PNG plots from a RunStats."""

from __future__ import annotations

import math
import re
from pathlib import Path

import numpy as np

from tpt.analyze.histograms import CountHistogram
from tpt.analyze.report import Block
from tpt.analyze.stats import GroupStats, RunStats

HEADER = [
    "group",
    "records",
    "thinking mean",
    "p10",
    "p50",
    "p90",
    "doc mean",
    "doc p50",
    "think/doc (totals)",
    "think/doc p50",
    "length-finish",
]


def group_row(label: str, s: dict) -> list:
    t, d, r = s["thinking_tokens"], s["doc_tokens"], s["ratio"]
    return [
        label,
        s["records"],
        t["mean"],
        t.get("p10", math.nan),
        t.get("p50", math.nan),
        t.get("p90", math.nan),
        d["mean"],
        d.get("p50", math.nan),
        r["of_totals"],
        r["p50"],
        f"{100 * s['length_finish_rate']:.1f}%",
    ]


def stats_blocks(result: dict, plots: dict[str, str]) -> list[Block]:
    """Blocks of the report; ``plots`` maps plot names to paths relative to the report."""
    overall = result["overall"]
    blocks = [
        Block("h1", "Thinking trajectories"),
        Block(
            "p",
            f"{overall['records']:,} records from {len(result['runs'])} run(s): {', '.join(result['runs'])}. "
            "Tokens are the generator's counts; quantiles are exact below 65,536 tokens (1 % bins above); "
            "ratio quantiles are within 0.5 %.",
        ),
        Block("table", (HEADER, [group_row("all", overall)])),
        Block(
            "p",
            f"Up-sampling factor (document + thinking) / document, over totals: "
            f"{overall['ratio']['upsampling_factor']:.3f}.",
        ),
    ]
    blocks += [Block("img", plots[k]) for k in ("lengths", "ratio") if k in plots]
    for name, section in result["by"].items():
        blocks.append(Block("h2", f"By {name}"))
        blocks.append(Block("table", (HEADER, [group_row(label, s) for label, s in section["groups"].items()])))
        rho = section["spearman_thinking_tokens"]
        if rho["available"]:
            blocks.append(
                Block(
                    "p",
                    f"Spearman rho between {name} (ordered {' < '.join(rho['levels'])}) and thinking tokens: "
                    f"{rho['rho']:.4f} over {rho['records']:,} records ({rho['records_excluded']:,} without a level); "
                    f"mean thinking tokens, last level / first level: {rho['last_over_first']:.3f}.",
                )
            )
        else:
            blocks.append(Block("p", f"No rank correlation: {rho['reason']}."))
        if f"by_{name}" in plots:
            blocks.append(Block("img", plots[f"by_{name}"]))
    problems = result["problems"]["counts"]
    if problems:
        blocks.append(Block("h2", "Problems"))
        blocks.append(Block("table", (["reason", "rows"], sorted(problems.items()))))
        examples = result["problems"]["examples"]
        blocks.append(
            Block(
                "table",
                (
                    ["file", "row", "field", "reason"],
                    [[e["file"], e["row"], e["field"], e["reason"]] for e in examples],
                ),
            )
        )
    if "flags" in overall:
        blocks.append(Block("h2", "Quality flags"))
        blocks.append(Block("p", "Share of records raising each flag (tpt filter removes them; see docs/analyze.md)."))
        rows = [flag_row("all", overall)]
        for name, section in result["by"].items():
            rows += [flag_row(f"{name}={label}", s) for label, s in section["groups"].items()]
        blocks.append(Block("table", (["group", "records", *overall["flags"]], rows)))
    return blocks


def flag_row(label: str, s: dict) -> list:
    return [label, s["records"], *(f"{100 * c / max(1, s['records']):.1f}%" for c in s["flags"].values())]


def _log_bins(hists: list[CountHistogram]) -> np.ndarray:
    top = max([h.quantile(1.0) for h in hists if h.total] or [1.0])
    return np.unique(np.concatenate([[0, 1], np.geomspace(1, max(2.0, top * 1.05), 60)]))


def plot_stats(stats: RunStats, out: Path) -> dict[str, str]:
    """Write PNGs under out/plots; returns {name: path relative to out}."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    (out / "plots").mkdir(parents=True, exist_ok=True)
    paths: dict[str, str] = {}

    def save(fig, name: str) -> None:
        rel = f"plots/{name}.png"
        fig.tight_layout()
        fig.savefig(out / rel, dpi=110)
        plt.close(fig)
        paths[name] = rel

    if stats.overall.n:
        fig, ax = plt.subplots(figsize=(7, 4))
        bins = _log_bins([stats.overall.thinking, stats.overall.doc])
        for hist, label in ((stats.overall.doc, "document"), (stats.overall.thinking, "thinking")):
            values, counts = hist.value_counts()
            ax.hist(values, bins=bins, weights=counts, alpha=0.6, label=label)
        ax.set(xscale="log", xlabel="tokens", ylabel="records", title="Length distributions")
        ax.legend()
        save(fig, "lengths")
        fig, ax = plt.subplots(figsize=(7, 4))
        centres, counts = stats.overall.ratio.centres(), stats.overall.ratio.counts
        keep = counts > 0
        ax.hist(
            centres[keep], bins=np.geomspace(centres[keep].min(), centres[keep].max() * 1.01, 60), weights=counts[keep]
        )
        ax.set(
            xscale="log",
            xlabel="thinking tokens / document tokens",
            ylabel="records",
            title="Up-sampling ratio per record",
        )
        save(fig, "ratio")
    for name, groups in stats.fields.items():
        live = [(label, groups.groups[groups.codes[label]]) for label in stats.ordered_labels(name)]
        if live:
            save(_group_figure(plt, name, live), f"by_{_safe(name)}")
            paths[f"by_{name}"] = paths.pop(f"by_{_safe(name)}")
    return paths


def _box(hist: CountHistogram, label: str) -> dict:
    q = hist.quantile
    return {
        "label": label,
        "med": q(0.5),
        "q1": q(0.25),
        "q3": q(0.75),
        "whislo": q(0.1),
        "whishi": q(0.9),
        "fliers": [],
    }


def _group_figure(plt, name: str, live: list[tuple[str, GroupStats]]):
    fig, axes = plt.subplots(1, 3, figsize=(max(9, 1.2 * len(live) + 6), 4))
    labels = [label for label, _ in live]
    axes[0].bxp([_box(g.thinking, label) for label, g in live], showfliers=False)
    axes[0].set(ylabel="thinking tokens", title="thinking (box p25-p75, whiskers p10-p90)")
    axes[1].bar(labels, [g.thinking_sum / g.doc_sum if g.doc_sum else 0 for _, g in live])
    axes[1].set(ylabel="thinking / document (totals)", title="up-sampling ratio")
    axes[2].bar(labels, [100 * g.n_length / g.n for _, g in live])
    axes[2].set(ylabel="% finish_reason=length", title="hit the budget")
    for ax in axes:
        ax.tick_params(axis="x", rotation=30)
    fig.suptitle(f"by {name}")
    return fig


def _safe(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", name)
