"""SFT data: chat-format JSONL (``{"messages": [{"role", "content"}, ...]}``) -> one padded row
per conversation, with a loss mask that is 1 on assistant tokens only.

The mask comes from the tokenizer's chat template: its ``{% generation %}`` markers when it has
them (as ``tpt tokenizer train`` writes), otherwise by rendering each prefix of the conversation
and marking what each assistant turn adds.  ``mask[j] == 1`` means token j is a training target
(predicted from positions < j).
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from tpt.io import readers
from tpt.io.readers import Rejection
from tpt.prepare.config import PrepareError
from tpt.prepare.packed import token_dtype, write_index
from tpt.prepare.tokenizer import load_tokenizer
from tpt.prepare.writer import SplitWriter, output_folder
from tpt.progress import progress_bar
from tpt.records import REJECTED_SCHEMA

ROLES = ("system", "user", "assistant", "tool")


def chat_ids_and_mask(tokenizer, messages: list[dict]) -> tuple[list[int], list[int]]:
    """Token ids of a conversation through the chat template, and its assistant-only loss mask."""
    if "{% generation %}" in (tokenizer.chat_template or ""):
        enc = tokenizer.apply_chat_template(
            messages, tokenize=True, return_dict=True, return_assistant_tokens_mask=True
        )
        return list(enc["input_ids"]), list(enc["assistant_masks"])
    return _mask_by_prefix(tokenizer, messages)


def _render(tokenizer, messages: list[dict], add_generation_prompt: bool = False) -> list[int]:
    enc = tokenizer.apply_chat_template(
        messages, tokenize=True, return_dict=True, add_generation_prompt=add_generation_prompt
    )
    return list(enc["input_ids"])


def _mask_by_prefix(tokenizer, messages: list[dict]) -> tuple[list[int], list[int]]:
    ids = _render(tokenizer, messages)
    mask = [0] * len(ids)
    for k, message in enumerate(messages):
        if message["role"] != "assistant":
            continue
        prompt, upto = (
            _render(tokenizer, messages[:k], add_generation_prompt=True),
            _render(tokenizer, messages[: k + 1]),
        )
        if upto[: len(prompt)] != prompt or ids[: len(upto)] != upto:
            raise ValueError(
                "chat template does not render conversations prefix by prefix; cannot find assistant tokens"
            )
        mask[len(prompt) : len(upto)] = [1] * (len(upto) - len(prompt))
    return ids, mask


def _messages(raw: readers.RawRow, field: str) -> list[dict] | Rejection:
    item = readers.json_object(raw)
    if isinstance(item, Rejection):
        return item
    messages = item.get(field)
    preview = json.dumps(item, ensure_ascii=False, default=str)[:2000]
    if not isinstance(messages, list) or not messages:
        return Rejection(raw.source, raw.line, field, "missing or empty message list", preview)
    for m in messages:
        if not isinstance(m, dict) or m.get("role") not in ROLES or not isinstance(m.get("content"), str):
            return Rejection(
                raw.source, raw.line, field, f"each message needs a role in {ROLES} and a string content", preview
            )
    if not any(m["role"] == "assistant" for m in messages):
        return Rejection(raw.source, raw.line, field, "no assistant message (nothing to train on)", preview)
    return [{"role": m["role"], "content": m["content"]} for m in messages]


def _row_key(raw: readers.RawRow, seed: int) -> int:
    payload = (
        raw.payload if isinstance(raw.payload, bytes) else json.dumps(raw.payload, sort_keys=True, default=str).encode()
    )
    return int.from_bytes(hashlib.blake2b(str(seed).encode() + b"\0" + payload, digest_size=8).digest(), "little")


def prepare_sft(
    jsonl: str | Path | list,
    tokenizer,
    seq_len: int,
    out: str | Path,
    *,
    val_sequences: int = 0,
    seed: int = 0,
    overwrite: bool = False,
    messages_field: str = "messages",
) -> Path:
    """Write ``out`` in the packed format (with mask files) from chat JSONL; returns ``out``.

    ``tokenizer``: a folder path or a loaded fast tokenizer.  The ``val_sequences`` conversations
    with the smallest seeded hash are held out as the ``val`` split.  Conversations longer than
    ``seq_len`` are truncated (counted); bad rows go to ``out/rejected.parquet``.
    """
    out = Path(out)
    paths = [str(p) for p in (jsonl if isinstance(jsonl, (list, tuple)) else [jsonl])]
    try:
        files = readers.resolve_inputs(paths)
        tok = load_tokenizer(tokenizer) if isinstance(tokenizer, (str, Path)) else tokenizer
    except (FileNotFoundError, ValueError) as e:
        raise PrepareError(str(e)) from e
    if not tok.chat_template:
        raise PrepareError("tokenizer has no chat template (needed to format SFT conversations)")
    if out.exists() and not overwrite:
        raise PrepareError(f"--out {out}: already exists (pass --overwrite to replace it)")
    threshold = _val_threshold(files, val_sequences, seed)
    pad_id = tok.pad_token_id if tok.pad_token_id is not None else tok.eos_token_id
    dtype, rejected = token_dtype(len(tok)), []
    stats = {"conversations": 0, "truncated": 0, "assistant_tokens": 0, "real_tokens": 0}
    with output_folder(out, overwrite) as tmp, progress_bar(None, "sft rows", " rows", leave=False) as bar:
        writers = {s: SplitWriter(tmp, s, seq_len, dtype, None, 1 << 16, with_mask=True) for s in ("train", "val")}
        for raw in readers.iter_raw_rows(files):
            bar.update()
            row = _encode_row(tok, raw, messages_field, seq_len, pad_id, stats)
            if isinstance(row, Rejection):
                rejected.append(row)
                continue
            split = "val" if threshold is not None and _row_key(raw, seed) <= threshold else "train"
            ids, mask, real = row
            writers[split].add(ids, mask)
            stats["real_tokens"] += real
        splits = {s: shards for s, w in writers.items() if (shards := w.close())}
        if "train" not in splits:
            raise PrepareError(f"{paths}: no usable conversation for training ({len(rejected)} rejected)")
        pq.write_table(
            pa.Table.from_pylist([r.to_row() for r in rejected], schema=REJECTED_SCHEMA), tmp / "rejected.parquet"
        )
        real = stats["real_tokens"]
        slots = sum(w.written for w in writers.values())
        write_index(
            tmp,
            seq_len=seq_len,
            vocab_size=len(tok),
            eos_id=int(tok.eos_token_id),
            splits=splits,
            pad_id=pad_id,
            tokenizer=str(Path(tokenizer).resolve()) if isinstance(tokenizer, (str, Path)) else tok.name_or_path,
            sft=True,
            sources=[{"source": p, "path": p, "kind": "sft"} for p in paths],
            seed=seed,
            rejected_rows=len(rejected),
            packing={"efficiency": real / slots if slots else 0.0, "padding_tokens": slots - real},
            train={"sequences": writers["train"].written // seq_len},
            val={"sequences": writers["val"].written // seq_len},
            **stats,
        )
    return out


def _val_threshold(files: list[Path], val_sequences: int, seed: int) -> int | None:
    if val_sequences <= 0:
        return None
    keys = np.sort(np.fromiter((_row_key(r, seed) for r in readers.iter_raw_rows(files)), dtype=np.uint64))
    if val_sequences >= len(keys):
        raise PrepareError(
            f"--val-sequences {val_sequences}: only {len(keys)} conversations, none would be left to train on"
        )
    return int(keys[val_sequences - 1])


def _encode_row(tok, raw, field: str, seq_len: int, pad_id: int, stats: dict):
    """-> (ids (seq_len,), mask (seq_len,), unpadded length) padded, or a Rejection."""
    messages = _messages(raw, field)
    if isinstance(messages, Rejection):
        return messages
    try:
        ids, mask = chat_ids_and_mask(tok, messages)
    except Exception as e:  # a template error on one row must not kill the run
        return Rejection(raw.source, raw.line, field, f"chat template failed: {e}", "")
    if len(ids) > seq_len:
        ids, mask = ids[:seq_len], mask[:seq_len]
        stats["truncated"] += 1
    if not any(mask):
        return Rejection(raw.source, raw.line, field, f"no assistant token within the first {seq_len} tokens", "")
    stats["conversations"] += 1
    stats["assistant_tokens"] += int(sum(mask))
    n = len(ids)
    return (
        np.array(ids + [pad_id] * (seq_len - n), dtype=np.int64),
        np.array(mask + [0] * (seq_len - n), dtype=np.uint8),
        n,
    )
