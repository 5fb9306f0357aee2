"""SFT data for a back-thinking generator, from a reasoning dataset.

Input rows come in two shapes (any file ``tpt augment`` reads: JSONL(.gz/.zst), Parquet, HF
``save_to_disk`` folders):

* chat, as in Mixture-of-Thoughts / R1 distillation: ``messages`` whose assistant turn holds the
  thinking in ``<think>…</think>`` followed by the final response (a missing opening tag, as R1
  templates leave it, is fine; so is an OpenAI-style ``reasoning_content`` field).  The question
  is the user turn just before the first such assistant turn;
* columns: ``question`` / ``thinking`` / ``response`` (names set by flags).

Each usable row becomes ``{"messages": [user: render_prompt(question, response), assistant:
assistant_target(thinking)]}``: the chat JSONL (or Parquet) that ``tpt prepare --sft --source``
reads.  The template is ``tpt.augment.back_thinking``'s, the one ``tpt augment --strategy
back-thinking`` renders documents with.  Bad rows go to ``OUT.rejected.parquet`` with file, line,
field and reason; the output appears atomically (a killed run leaves no half-written file).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from tpt.augment import back_thinking as bt
from tpt.augment.prompts import stable_int, strip_thinking_tags
from tpt.io import readers
from tpt.io.atomic import atomic_path, atomic_write, atomic_write_text
from tpt.io.readers import RawRow, Rejection
from tpt.prepare.config import PrepareError
from tpt.records import REJECTED_SCHEMA

PROBE_THINKING = "probe thinking 7f3a"
MESSAGE = pa.struct([("role", pa.string()), ("content", pa.string())])
SFT_SCHEMA = pa.schema([("messages", pa.list_(MESSAGE)), ("source", pa.string()), ("question_shown", pa.bool_())])


@dataclass
class Example:
    question: str
    thinking: str
    response: str


@dataclass
class Fields:
    messages: str = "messages"
    question: str = "question"
    thinking: str = "thinking"
    response: str = "response"


def output_paths(out: Path) -> tuple[Path, Path]:
    """(rejected table, summary JSON) beside the output file."""
    stem = out.name.rsplit(".", 1)[0]
    return out.with_name(f"{stem}.rejected.parquet"), out.with_name(f"{stem}.summary.json")


def build_back_thinking_sft(
    inputs: list[str],
    out: str | Path,
    *,
    fields: Fields | None = None,
    template_path: str | Path | None = None,
    tokenizer: str | None = None,
    max_doc_tokens: int = 2048,
    no_question_rate: float = 0.0,
    limit: int = 0,
    seed: int = 0,
    overwrite: bool = False,
) -> dict:
    """Write the SFT file ``out`` (``.jsonl`` or ``.parquet``); returns the summary it also writes.

    ``tokenizer`` (the generator's, optional): its chat template is checked to keep the thinking
    in assistant turns, and responses are cut to ``max_doc_tokens`` of its tokens exactly as
    ``tpt augment`` cuts documents.  ``no_question_rate``: this share of rows (seeded) is shown
    without its question, the form pre-training documents take at augmentation time.
    """
    out, fields = Path(out), fields or Fields()
    if not out.name.endswith((".jsonl", ".parquet")):
        raise PrepareError(f"--out {out}: name the SFT file .jsonl or .parquet")
    if out.exists() and not overwrite:
        raise PrepareError(f"--out {out}: already exists (pass --overwrite to replace it)")
    if not 0.0 <= no_question_rate <= 1.0:
        raise PrepareError(f"--no-question-rate {no_question_rate}: must be within [0, 1]")
    try:
        files = readers.resolve_inputs(list(inputs))
        text = bt.load_template(template_path)
    except (FileNotFoundError, ValueError) as e:
        raise PrepareError(str(e)) from e
    cutter = _open_tokenizer(tokenizer) if tokenizer else None
    counts, rejected = {"rows": 0, "responses_cut": 0, "without_question": 0}, []
    with _RowWriter(out) as writer:
        for raw in readers.iter_raw_rows(files):
            if limit and counts["rows"] >= limit:
                break
            example = extract_example(raw, fields)
            if isinstance(example, Rejection):
                rejected.append(example)
                continue
            response = example.response
            if cutter is not None:
                response, _, was_cut = cutter.truncate(response, max_doc_tokens)
                counts["responses_cut"] += was_cut
            shown = _show_question(raw, no_question_rate, seed)
            writer.add(sft_row(text, example, response, shown, raw))
            counts["rows"] += 1
            counts["without_question"] += not shown
        if not counts["rows"]:
            raise PrepareError(f"{inputs}: no usable row ({len(rejected)} rejected; first: {_first_reason(rejected)})")
        summary = {
            **counts,
            "rejected": len(rejected),
            "template": text,
            "inputs": [str(f) for f in files],
            "out": str(out),
        }
        _write_sidecars(out, rejected, summary)
    return summary


def _show_question(raw: RawRow, no_question_rate: float, seed: int) -> bool:
    """Seeded per (file name, line): the same rows lose their question on every rerun."""
    return stable_int("question", seed, Path(raw.source).name, raw.line) % 10**6 >= no_question_rate * 10**6


def sft_row(template: str, example: Example, response: str, show_question: bool, raw: RawRow) -> dict:
    prompt = bt.render_prompt(template, example.question if show_question else "", response)
    return {
        "messages": [
            {"role": "user", "content": prompt},
            {"role": "assistant", "content": bt.assistant_target(example.thinking)},
        ],
        "source": f"{raw.source}:{raw.line}",
        "question_shown": show_question,
    }


def extract_example(raw: RawRow, fields: Fields) -> Example | Rejection:
    """(question, thinking, response) of one input row, or why it cannot be used."""
    item = readers.json_object(raw)
    if isinstance(item, Rejection):
        return item
    found = _from_messages(item, fields.messages) if fields.messages in item else _from_columns(item, fields)
    if isinstance(found, str):
        field, _, reason = found.partition(": ")
        return Rejection(raw.source, raw.line, field, reason, _preview(item))
    for name, value in (("thinking", found.thinking), ("response", found.response), ("question", found.question)):
        if not value.strip():
            field = fields.messages if fields.messages in item else getattr(fields, name)
            return Rejection(raw.source, raw.line, field, f"empty {name}", _preview(item))
    return found


def _from_columns(item: dict, fields: Fields) -> Example | str:
    values = {}
    for name in ("question", "thinking", "response"):
        key = getattr(fields, name)
        if not isinstance(item.get(key), str):
            return (
                f"{key}: missing or not a string (a row needs a '{fields.messages}' chat list or "
                f"'{fields.question}'/'{fields.thinking}'/'{fields.response}' fields; rename with the --*-field flags)"
            )
        values[name] = item[key]
    return Example(values["question"].strip(), strip_thinking_tags(values["thinking"]), values["response"].strip())


def _from_messages(item: dict, key: str) -> Example | str:
    messages = item[key]
    if not isinstance(messages, list) or not all(
        isinstance(m, dict) and isinstance(m.get("content"), str) for m in messages
    ):
        return f"{key}: expected a list of {{role, content}} messages"
    for k, message in enumerate(messages):
        if message.get("role") != "assistant":
            continue
        split = split_thinking(message)
        if split is None:
            continue
        users = [m["content"] for m in messages[:k] if m.get("role") == "user"]
        if not users:
            return f"{key}: no user turn before the assistant turn with the thinking"
        return Example(users[-1].strip(), *split)
    return f"{key}: no assistant turn with a <think>…</think> block or a reasoning_content field"


def split_thinking(message: dict) -> tuple[str, str] | None:
    """(thinking, response) of an assistant message, or None when it carries no thinking."""
    content = message["content"]
    if "</think>" in content:
        before, _, after = content.partition("</think>")
        return strip_thinking_tags(before), after.strip()
    reasoning = message.get("reasoning_content")
    if isinstance(reasoning, str) and reasoning.strip():
        return strip_thinking_tags(reasoning), content.strip()
    return None


def _open_tokenizer(path: str):
    from tpt.augment.backends.tokenize import TokenizerOps, require_tokenizer_path

    try:
        ops = TokenizerOps(require_tokenizer_path(path, "--tokenizer"))
        check_template_keeps_thinking(ops.hf_tokenizer, path)
    except (OSError, ValueError) as e:
        raise PrepareError(str(e)) from e
    return ops


def check_template_keeps_thinking(tokenizer, where: str) -> None:
    """R1-distill chat templates drop ``…</think>`` from assistant turns (they hide old thinking
    in multi-turn chats): SFT through such a template would train on the response only."""
    if not tokenizer.chat_template:
        raise ValueError(f"--tokenizer {where}: has no chat template (tpt train --mode sft needs one)")
    chat = [{"role": "user", "content": "q"}, {"role": "assistant", "content": bt.assistant_target(PROBE_THINKING)}]
    rendered = tokenizer.apply_chat_template(chat, tokenize=False)
    if PROBE_THINKING not in rendered:
        raise ValueError(
            f"--tokenizer {where}: its chat template removes the <think>…</think> block from assistant turns "
            "(R1-distill templates do), so SFT would never see the thinking. Give the generator a chat template "
            "that keeps assistant content verbatim (e.g. set tokenizer_config.json's chat_template to a plain "
            "ChatML one) before `tpt train --mode sft`; see docs/generators.md"
        )


class _RowWriter:
    """Rows streamed to a temp file (``tpt.io.atomic.atomic_path``), renamed onto ``out`` only when the
    run completes."""

    def __init__(self, out: Path, batch_rows: int = 1024):
        self.out, self.batch_rows = out, batch_rows
        self.atomic = atomic_path(out)
        self.parquet = out.name.endswith(".parquet")
        self.pending: list[dict] = []
        self.writer = None

    def __enter__(self):
        self.tmp = self.atomic.__enter__()
        self.fh = None if self.parquet else open(self.tmp, "w", encoding="utf-8")
        return self

    def add(self, row: dict) -> None:
        if not self.parquet:
            self.fh.write(json.dumps(row, ensure_ascii=False) + "\n")
            return
        self.pending.append(row)
        if len(self.pending) >= self.batch_rows:
            self._flush()

    def _flush(self) -> None:
        table = pa.Table.from_pylist(self.pending, schema=SFT_SCHEMA)
        if self.writer is None:
            self.writer = pq.ParquetWriter(self.tmp, SFT_SCHEMA, compression="zstd")
        self.writer.write_table(table)
        self.pending = []

    def __exit__(self, exc_type, exc, tb) -> None:
        if self.parquet:
            if exc_type is None and (self.pending or self.writer is None):
                self._flush()
            if self.writer is not None:
                self.writer.close()
        else:
            self.fh.close()
        self.atomic.__exit__(exc_type, exc, tb)  # last: the SFT file appears only once it is whole


def _write_sidecars(out: Path, rejected: list[Rejection], summary: dict) -> None:
    rejected_path, summary_path = output_paths(out)
    table = pa.Table.from_pylist([r.to_row() for r in rejected], schema=REJECTED_SCHEMA)
    atomic_write(rejected_path, lambda tmp: pq.write_table(table, tmp))
    atomic_write_text(summary_path, json.dumps(summary, indent=2, ensure_ascii=False))


def _preview(item) -> str:
    return json.dumps(item, ensure_ascii=False, default=str)[:2000]


def _first_reason(rejected: list[Rejection]) -> str:
    return f"{rejected[0].file}:{rejected[0].line}: {rejected[0].reason}" if rejected else "none read"
