"""Say what the token budget did to each source: warnings for silent repetition or under-use.

The numbers are in index.json's ``sources`` (tokens, unique_docs, share_used, epochs_seen) and in
the run summary; these warnings are printed too, and kept in index.json's ``warnings``, so a
source repeated 6.9x or read at 21% is never only a number in a JSON file.
"""

from __future__ import annotations

from tpt.prepare.config import SourceSpec


def budget_warnings(cfg, specs: list[SourceSpec], sources: list[dict], cap: int | None) -> list[str]:
    """Weighted sources only (an xN source asked for its repetition); none in the constrained-data
    setting (--pool-tokens), where repeating a small pool is the point."""
    if cap is not None:
        return []
    out = []
    for spec, s in zip(specs, sources):
        if spec.weight is None:
            continue
        if s["epochs_seen"] > cfg.warn_epochs:
            out.append(
                f"source {s['source']}: repeated {s['epochs_seen']:.2f}x (its share of the budget, "
                f"{s['tokens']:,} tokens, exceeds its {s['pool_tokens']:,} unique training tokens); "
                "lower --tokens or its weight, or make it "
                f"explicit with :x{s['epochs_seen']:.2g} (threshold --warn-epochs {cfg.warn_epochs:g})"
            )
        elif s["share_used"] < cfg.warn_share:
            out.append(
                f"source {s['source']}: only {s['share_used']:.0%} of its training documents are used "
                f"({s['unique_docs']:,} of {s['pool_docs']:,}); raise --tokens or its weight to use more "
                f"(threshold --warn-share {cfg.warn_share:g})"
            )
    return out


def empty_source_message(spec: SourceSpec, cache) -> str:
    """A source with no usable record: say so, instead of failing later in the validation split."""
    why = []
    if cache.rejected:
        why.append(f"{cache.rejected} row(s) rejected as unusable")
    if cache.length.dropped:
        why.append(f"{cache.length.dropped} dropped by --on-length")
    reason = "; ".join(why) if why else "it holds no records (filtered to nothing?)"
    return f"source {spec.describe()}: 0 usable records: {reason}"
