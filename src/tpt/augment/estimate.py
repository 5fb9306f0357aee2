"""``tpt augment --dry-run``: the plan and what it will cost, before the first GPU-hour.

Reads a sample of documents (up to ``--dry-run-sample``, spread over the plan's shards), cuts each to
``--max-doc-tokens`` with the generator's tokenizer and builds its prompt, then scales to the corpus:
documents (exact from Parquet/HF metadata; for JSONL, bytes / mean bytes per row of the sample),
prompt tokens, thinking tokens (the ``--max-thinking-tokens`` bound, and the measured mean of a
``--pilot`` run when given) and GPU-hours at ``--tokens-per-second``. When the sample covers the whole
corpus every number is a count, not an estimate. Nothing is written to ``--out``.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path

from tpt.augment.config import AugmentConfig
from tpt.augment.planning import compute_plan, specs_of
from tpt.augment.prompts import load_strategy
from tpt.augment.shards import head_of, load_rows, parse_shard_rows


@dataclass
class Estimate:
    files: int
    shards: int
    rows: float  # input rows (exact when `exact`)
    documents: float  # valid documents after rejections
    exact: bool  # the sample was the whole corpus
    rows_exact: bool  # row count from metadata (Parquet, HF) or the whole sample
    sampled_documents: int
    prompt_tokens: float
    prompt_tokens_per_document: float
    tokenizer: str  # what counted the tokens
    trajectories: float
    thinking_tokens_bound: float  # at --max-thinking-tokens each
    thinking_tokens_expected: float | None  # from --pilot's measured mean
    tokens_per_second: float
    gpu_hours_bound: float
    gpu_hours_expected: float | None


def estimate(config: AugmentConfig) -> Estimate:
    plan = compute_plan(config)
    specs = specs_of(plan)
    rows, docs, whole = _sample(specs, config.dry_run_sample)
    counter, tokenizer = _counter(config)
    strategy = load_strategy(config.prompt.strategy, config.sampling.seed)
    prompt_tokens = sum(counter(strategy.build(d.id, cut)) for d, cut in zip(docs, counter.cut([d.text for d in docs])))
    total_rows, exact = (len(rows), True) if whole else (_total_rows(specs, rows), False)
    valid_share = len(docs) / max(1, len(rows))
    n_docs = len(docs) if exact else total_rows * valid_share
    per_doc = prompt_tokens / max(1, len(docs))
    trajectories = n_docs * config.sampling.samples
    bound = trajectories * config.sampling.max_thinking_tokens
    mean = _pilot_mean(config.pilot)
    expected = None if mean is None else trajectories * mean
    hours = 3600.0 * config.tokens_per_second
    rows_exact = exact or all(s.rows >= 0 for s in specs)
    return Estimate(
        len(plan["files"]),
        len(specs),
        total_rows,
        n_docs,
        exact,
        rows_exact,
        len(docs),
        prompt_tokens if exact else per_doc * n_docs,
        per_doc,
        tokenizer,
        trajectories,
        bound,
        expected,
        config.tokens_per_second,
        bound / hours,
        None if expected is None else expected / hours,
    )


def _sample(specs, wanted: int):
    """Up to ``wanted`` rows: the heads of up to 20 evenly spaced shards; ``whole``: that was every row."""
    step = max(1, -(-len(specs) // 20))
    chosen = specs[::step]
    per_shard = max(1, -(-wanted // len(chosen))) if chosen else 0
    rows, docs, whole = [], [], step == 1
    for spec in chosen:
        shard_rows = load_rows(head_of(spec, per_shard + 1))  # one more: tells whether the shard ended
        whole = whole and len(shard_rows) <= per_shard
        shard_rows = shard_rows[:per_shard]
        rows += shard_rows
        docs += parse_shard_rows(shard_rows, spec)[0]
    return rows, docs, whole


def _total_rows(specs, sampled_rows) -> float:
    """Rows of the corpus: metadata where it has them, JSONL bytes / sampled bytes per row elsewhere."""
    known = sum(s.rows if s.limit < 0 else min(s.rows, s.limit) for s in specs if s.rows >= 0)
    unknown = [s for s in specs if s.rows < 0]
    if not unknown:
        return known
    jsonl_rows = [r for r in sampled_rows if isinstance(r.payload, bytes)]
    per_row = sum(len(r.payload) + 1 for r in jsonl_rows) / max(1, len(jsonl_rows))
    unknown_bytes = sum((s.stop if s.stop >= 0 else s.size) - s.start for s in unknown)
    return known + unknown_bytes / per_row


class _Counter:
    def __init__(self, ops, max_tokens: int):
        self.ops, self.max_tokens = ops, max_tokens

    def __call__(self, text: str) -> int:
        return self.ops.count_tokens(text) if self.ops else max(1, len(text) // 4)

    def cut(self, texts: list[str]) -> list[str]:
        if self.ops:
            return [c for c, _, _ in self.ops.truncate_batch(texts, self.max_tokens)]
        return [t[: self.max_tokens * 4] for t in texts]


def _counter(config: AugmentConfig):
    path = config.backend.tokenizer_path()
    if path and Path(path).is_dir():
        from tpt.augment.backends.tokenize import TokenizerOps

        return _Counter(TokenizerOps(path), config.prompt.max_doc_tokens), f"tokenizer {path}"
    return _Counter(None, config.prompt.max_doc_tokens), "no local tokenizer: ~4 characters per token"


def _pilot_mean(pilot: str | None) -> float | None:
    if not pilot:
        return None
    stats_path = Path(pilot) / "stats.json"
    if not stats_path.exists():
        raise FileNotFoundError(f"--pilot {pilot}: no stats.json (run a trial with --limit first)")
    stats = json.loads(stats_path.read_text())
    if not stats.get("records"):
        raise ValueError(f"--pilot {pilot}: the run holds no records")
    return stats["thinking_tokens_total"] / stats["records"]


def format_estimate(e: Estimate) -> str:
    approx = "" if e.exact else "~"
    lines = [
        f"plan: {e.files} files, {e.shards} shards, {'' if e.rows_exact else '~'}{e.rows:,.0f} input rows, "
        f"{approx}{e.documents:,.0f} documents"
        + ("" if e.exact else f" (estimated from {e.sampled_documents} sampled documents)"),
        f"prompt tokens: {approx}{e.prompt_tokens:,.0f} "
        f"({e.prompt_tokens_per_document:,.1f} per document; {e.tokenizer})",
        f"trajectories: {approx}{e.trajectories:,.0f}; thinking tokens at most {e.thinking_tokens_bound:,.0f}",
    ]
    if e.thinking_tokens_expected is not None:
        lines.append(f"thinking tokens expected (pilot's mean): {e.thinking_tokens_expected:,.0f}")
    lines.append(
        f"GPU-hours at {e.tokens_per_second:,.0f} generated tokens/s per GPU: at most {e.gpu_hours_bound:,.1f}"
        + ("" if e.gpu_hours_expected is None else f", expected {e.gpu_hours_expected:,.1f}")
    )
    return "\n".join(lines)


def as_dict(e: Estimate) -> dict:
    return asdict(e)
