"""`tpt prepare back-thinking`: reasoning dataset -> SFT chat file for a back-thinking generator."""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass
from pathlib import Path

from tpt.config import field, parse

EXAMPLE = (
    "example: tpt prepare back-thinking mot/*.parquet --out sft/back.jsonl --tokenizer gen/ && "
    "tpt prepare --sft --source sft/back.jsonl --tokenizer gen/ --seq-len 4096 --out sft/back && "
    "tpt train --mode sft --data sft/back --init gen/ --out gen-back && "
    "tpt augment corpus.jsonl --strategy back-thinking --model gen-back --out runs/back"
)


@dataclass
class BackThinkingConfig:
    """Build SFT data that teaches a generator to write the thinking from question + final response.

    Rows: chat `messages` with <think>…</think> in the assistant turn (Mixture-of-Thoughts, R1
    distillation), or question/thinking/response columns. See docs/generators.md.
    """

    inputs: list[str] = field(
        help="JSONL(.gz/.zst) / Parquet files, globs, folders, HF save_to_disk folders", positional=True
    )
    out: Path = field(help="the SFT file to write (.jsonl or .parquet); tpt prepare --sft --source reads it")
    template: Path | None = field(
        None,
        help="template with {question} and {response} (default: the packaged one); then augment with "
        "--strategy back-thinking:PATH",
    )
    tokenizer: str | None = field(
        None,
        help="the generator's tokenizer folder: checks that its chat template keeps the thinking; "
        "cuts responses as augment cuts documents",
    )
    max_doc_tokens: int = field(
        2048, help="with --tokenizer: responses are cut to this many tokens (match tpt augment --max-doc-tokens)"
    )
    no_question_rate: float = field(
        0.0, help="share of rows shown without their question (the form pre-training documents have)"
    )
    messages_field: str = field("messages", help="field holding the chat messages")
    question_field: str = field("question", help="column form: field holding the question")
    thinking_field: str = field("thinking", help="column form: field holding the thinking")
    response_field: str = field("response", help="column form: field holding the final response")
    limit: int = field(0, help="stop after this many usable rows (0: all)")
    seed: int = field(0, help="seeds which rows are shown without their question")
    overwrite: bool = field(False, help="replace an existing --out")


def main(argv: list[str]) -> int:
    cfg = parse(
        BackThinkingConfig, argv, "tpt prepare back-thinking", (BackThinkingConfig.__doc__ or "") + "\n\n" + EXAMPLE
    )
    from tpt.prepare.back_thinking import Fields, build_back_thinking_sft, output_paths
    from tpt.prepare.config import PrepareError

    fields = Fields(cfg.messages_field, cfg.question_field, cfg.thinking_field, cfg.response_field)
    try:
        summary = build_back_thinking_sft(
            cfg.inputs, cfg.out, fields=fields, template_path=cfg.template, tokenizer=cfg.tokenizer,
            max_doc_tokens=cfg.max_doc_tokens, no_question_rate=cfg.no_question_rate, limit=cfg.limit,
            seed=cfg.seed, overwrite=cfg.overwrite,
        )  # fmt: skip
    except PrepareError as e:
        print(f"tpt prepare back-thinking: error: {e}", file=sys.stderr)
        return 2
    print(json.dumps({k: v for k, v in summary.items() if k != "template"}, indent=2))
    if summary["rejected"]:
        where = output_paths(cfg.out)[0]
        print(f"tpt prepare back-thinking: {summary['rejected']} rows set aside, reasons in {where}", file=sys.stderr)
    return 0
