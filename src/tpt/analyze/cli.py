"""`tpt analyze stats RUN...` and `tpt analyze curves --run NAME=PATH ...`."""

from __future__ import annotations

import json
import math
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from tpt.analyze.learning import RunSource, parse_run_source
from tpt.analyze.quality import QualityConfig
from tpt.config import field, parse, to_dict
from tpt.formats import is_run_folder
from tpt.progress import progress_bar

USAGE = """usage: tpt analyze <action> [options]   (tpt analyze <action> --help for each)

actions:
  stats   length / ratio / length-finish statistics of augment runs, grouped by metadata,
          with rank correlations, plots and a Markdown/HTML report
  curves  learning curves of training runs and the data-efficiency multiplier

See docs/analyze.md."""


@dataclass(frozen=True)
class OrderSpec:
    """``--order FIELD=low,...,high`` (``name`` None: the bare ``low,...,high`` of the only ``--by`` field)."""

    name: str | None
    labels: tuple[str, ...]


def parse_order(spec: str | dict | OrderSpec) -> OrderSpec:
    if isinstance(spec, OrderSpec):
        return spec
    if isinstance(spec, dict):
        name, labels = spec.get("name"), ",".join(spec.get("labels") or [])
    else:
        name, eq, labels = str(spec).partition("=") if "=" in str(spec) else (None, "", str(spec))
        if eq and not name:
            raise ValueError(f"{spec!r}: expected FIELD=low,...,high")
    parts = tuple(label.strip() for label in labels.split(",") if label.strip())
    if not parts:
        raise ValueError(f"{spec!r}: no labels; expected FIELD=low,...,high")
    return OrderSpec(name or None, parts)


parse_order.typed_as = OrderSpec  # type: ignore[attr-defined]  # tpt.config: an OrderSpec passes as it is


@dataclass
class StatsConfig:
    """Trajectory statistics over augment runs, streamed with bounded memory."""

    runs: list[Path] = field(help="augment run folders (RUN/data/*.parquet)", positional=True)
    by: list[str] = field(
        default_factory=list,
        split=True,
        help="group by these fields (repeatable, comma-separated): meta keys such as domain, reasoning_intensity, "
        "audience; record columns strategy, model, backend, finish_reason, doc_truncated, sample; or 'run'",
    )
    order: list[OrderSpec] = field(
        default_factory=list,
        repeat=True,
        parse=parse_order,
        help="order of an ordinal field's labels for the rank correlation: FIELD=low,...,high (repeatable; just "
        "low,...,high with a single --by); numeric fields need none",
    )
    out: Path | None = field(None, help="write stats.json, report.md, report.html and plots/*.png into this folder")
    json: bool = field(False, help="print the statistics as JSON on stdout (instead of the Markdown report)")
    plots: bool = field(True, help="write PNG plots (with --out)")
    max_groups: int = field(50, help="at most this many groups per field; later labels are pooled as '(other)'")
    # not --batch-size: that is sequences per forward pass in augment and eval; this is a read size
    batch_records: int = field(65536, help="records per Arrow batch (memory bound)")
    workers: int = field(1, help="processes reading shard files in parallel (1: in this process)")
    progress: bool = field(True, help="show a progress bar (on a terminal only)")
    quality: bool = field(False, help="also count quality flags (reads text and thinking: much slower)")
    thresholds: QualityConfig = field(default_factory=QualityConfig, help="quality thresholds (with --quality)")


@dataclass
class CurvesConfig:
    """Learning curves and the data-efficiency multiplier of training runs."""

    run: list[RunSource] = field(
        parse=parse_run_source,
        help="NAME=PATH (repeatable): a metrics .jsonl, an eval .json, or a folder of them; a NAME may repeat to add "
        "sources",
    )
    baseline: str | None = field(None, help="the run the others are compared with (default: the first --run)")
    task: str | None = field(
        None, help="eval task whose score makes the curve (default: mean over the tasks every checkpoint has)"
    )
    metric: str | None = field(
        None,
        help="metric inside an lm-eval task result (default: acc_norm, acc, exact_match, score, then the first number)",
    )
    score_field: str = field("score", help="metrics JSONL field used as score when a run has no eval results")
    targets: list[float] = field(
        default_factory=list, split=True, help="target scores for the multiplier (default: --target-fractions)"
    )
    target_fractions: list[float] = field(
        default_factory=lambda: [0.25, 0.5, 0.75, 1.0],
        split=True,
        help="targets at these fractions of the way from the method's first score to its best",
    )
    x: Literal["tokens", "docs"] = field("tokens", help="axis of the multiplier: training tokens or unique documents")
    out: Path | None = field(None, help="write curves.json, report.md, report.html and plots/*.png into this folder")
    json: bool = field(False, help="print the result as JSON on stdout")
    plots: bool = field(True, help="write PNG plots (with --out)")


def resolve_orders(specs: list[OrderSpec], by: list[str]) -> dict[str, list[str]]:
    """{field: labels low..high}; a spec without a field names the only --by field."""
    orders = {}
    for spec in specs:
        if spec.name is None and len(by) != 1:
            raise ValueError(f"--order {','.join(spec.labels)!r}: name the field (FIELD=low,...,high) unless one --by")
        orders[spec.name or by[0]] = list(spec.labels)
    return orders


def run_stats(cfg: StatsConfig) -> dict:
    from tpt.analyze.stats import compute_stats, count_records

    if cfg.out is not None and is_run_folder(cfg.out):
        raise ValueError(f"--out {cfg.out}: is an augment run (has data/); its stats.json would be overwritten")
    orders = resolve_orders(cfg.order, cfg.by)
    unknown = sorted(set(orders) - set(cfg.by))
    if unknown:
        raise ValueError(f"--order names field(s) not in --by: {', '.join(unknown)}")
    quality = cfg.thresholds if cfg.quality else None
    with progress_bar(count_records(cfg.runs), "stats", "rec", cfg.progress) as bar:
        stats = compute_stats(cfg.runs, cfg.by, orders, cfg.max_groups, cfg.batch_records, bar, cfg.workers, quality)
    result = stats.to_dict()
    _emit_stats(cfg, stats, result)
    return result


def _emit_stats(cfg: StatsConfig, stats, result: dict) -> None:
    from tpt.analyze.report import to_markdown, write_reports
    from tpt.analyze.stats_report import plot_stats, stats_blocks

    plots = {}
    if cfg.out is not None:
        cfg.out.mkdir(parents=True, exist_ok=True)
        (cfg.out / "stats.json").write_text(dumps(result))
        plots = plot_stats(stats, cfg.out) if cfg.plots else {}
        write_reports(stats_blocks(result, plots), cfg.out, "tpt analyze stats")
    print(dumps(result) if cfg.json else to_markdown(stats_blocks(result, plots)))


def run_curves(cfg: CurvesConfig) -> dict:
    from tpt.analyze.learning import compare, load_runs
    from tpt.analyze.learning_report import curves_blocks, plot_curves
    from tpt.analyze.report import to_markdown, write_reports

    problems = []
    runs = load_runs(cfg.run, cfg.metric, problems)
    for p in problems:
        print(f"tpt analyze curves: set aside: {p}", file=sys.stderr)
    comparisons = compare(
        runs, cfg.baseline or runs[0].name, cfg.task, cfg.targets, cfg.target_fractions, cfg.x, cfg.score_field
    )
    result = {
        "runs": {
            r.name: {
                "sources": r.sources,
                "metrics_points": len(r.metrics),
                "eval_points": len(r.evals),
                "score_curve": r.score_curve(cfg.task, cfg.score_field, cfg.x),
            }
            for r in runs
        },
        "comparisons": [c.to_dict() for c in comparisons],
        "problems": [str(p) for p in problems],
        "config": to_dict(cfg),
    }
    plots = {}
    if cfg.out is not None:
        cfg.out.mkdir(parents=True, exist_ok=True)
        (cfg.out / "curves.json").write_text(dumps(result))
        plots = plot_curves(runs, cfg.task, cfg.score_field, cfg.out) if cfg.plots else {}
        write_reports(curves_blocks(result, comparisons, plots), cfg.out, "tpt analyze curves")
    print(dumps(result) if cfg.json else to_markdown(curves_blocks(result, comparisons, plots)))
    return result


def dumps(obj) -> str:
    """JSON with NaN written as null (strict JSON readers reject NaN)."""

    def clean(v):
        if isinstance(v, float) and not math.isfinite(v):
            return None
        if isinstance(v, dict):
            return {k: clean(x) for k, x in v.items()}
        if isinstance(v, (list, tuple)):
            return [clean(x) for x in v]
        return v

    return json.dumps(clean(obj), indent=2, ensure_ascii=False, default=str)


def main(argv: list[str]) -> int:
    if not argv or argv[0] in ("-h", "--help", "help"):
        print(USAGE)
        return 0
    action, rest = argv[0], argv[1:]
    try:
        if action == "stats":
            run_stats(parse(StatsConfig, rest, "tpt analyze stats"))
        elif action == "curves":
            run_curves(parse(CurvesConfig, rest, "tpt analyze curves"))
        else:
            print(f"tpt analyze: unknown action {action!r}\n\n{USAGE}", file=sys.stderr)
            return 2
    except (FileNotFoundError, ValueError) as e:
        print(f"tpt analyze {action}: {e}", file=sys.stderr)
        return 2
    return 0
