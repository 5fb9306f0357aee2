"""Everything that can be wrong with the inputs, found before any compute is spent.

Data (missing / corrupt shards, SFT data without masks), the tokenizer the data was made with
(special tokens), and the fit between data and model (vocabulary, sequence length, tokenizer
of an --init checkpoint).  Each failure is a TrainInputError naming the file and the field.
"""

from __future__ import annotations

import json
from pathlib import Path

from tpt.prepare.packed import PackedDataset
from tpt.prepare.tokenizer import (
    EOS,
    IM_END,
    IM_START,
    THINK_CLOSE,
    THINK_OPEN,
    missing_special_tokens,
    template_special_tokens,
)

from .config import TrainInputError  # noqa: F401 (re-exported: defined with the paths check)
from .data import max_token_id


def open_split(root: Path, split: str, required: bool) -> PackedDataset | None:
    """PackedDataset over ``split``, with packed.py's errors re-raised as TrainInputError."""
    try:
        return PackedDataset(root, split)
    except KeyError as e:
        if not required:
            return None
        raise TrainInputError(f"--data {root}: {e.args[0]}") from None
    except (FileNotFoundError, ValueError) as e:
        raise TrainInputError(f"--data {root}: {e}") from None


def check_sft_masks(ds: PackedDataset) -> None:
    without = [s.name for s in ds.shards if not s.has_mask]
    if without:
        raise TrainInputError(
            f"--mode sft: {ds.root}/index.json: shards {', '.join(without)} have no loss mask (has_mask=false); "
            "prepare SFT data with `tpt prepare --sft` or pass a chat JSONL"
        )


def tokenizer_dir(ds: PackedDataset) -> Path:
    """The tokenizer folder named by index.json's ``tokenizer`` field (absolute or relative to the data)."""
    value = ds.index.get("tokenizer")
    if isinstance(value, dict):  # tolerate {"path": ...}
        value = value.get("path")
    if not value:
        raise TrainInputError(
            f"{ds.root}/index.json: field 'tokenizer' is missing (the tokenizer folder the data was made with)"
        )
    path = Path(value)
    if not path.is_absolute() and (ds.root / path).is_dir():  # saved with the data (prepare --add-think-tokens)
        path = ds.root / path
    if not path.is_dir():
        raise TrainInputError(f"{ds.root}/index.json: field 'tokenizer' = {value!r}: no such folder")
    return path


def data_has_thinking(index: dict) -> bool:
    """True when index.json lists a TPT source (d <think> t </think>), as `tpt prepare` records it."""
    for source in index.get("sources", []) or []:
        kind = source.get("kind") if isinstance(source, dict) else str(source).rsplit(":", 2)
        if kind == "tpt" or (isinstance(kind, list) and "tpt" in kind[1:]):
            return True
    return False


def load_tokenizer(path: Path):
    from transformers import AutoTokenizer

    try:
        return AutoTokenizer.from_pretrained(str(path), local_files_only=True)
    except Exception as e:  # transformers raises many types for a broken folder
        raise TrainInputError(f"tokenizer {path}: cannot be loaded ({type(e).__name__}: {e})") from None


def check_tokenizer(tok, path: Path, index: dict, mode: str) -> None:
    """The tokenizer has the EOS the data was packed with, and the special tokens the mode needs."""
    eos_id = index.get("eos_id")
    if eos_id is not None and tok.convert_tokens_to_ids(EOS) != eos_id and tok.eos_token_id != eos_id:
        raise TrainInputError(
            f"tokenizer {path}: EOS id {tok.eos_token_id} differs from index.json field eos_id={eos_id}"
        )
    needed = [IM_START, IM_END] if mode == "sft" else (template_tokens(index) if data_has_thinking(index) else [])
    missing = missing_special_tokens(tok, needed) if needed else []
    if missing:
        raise TrainInputError(
            f"tokenizer {path}: lacks special tokens {missing} needed for {mode} data (each must be one token; "
            "`tpt prepare --add-think-tokens` adds them)"
        )


def template_tokens(index: dict) -> list[str]:
    """The special tokens of the template the data was made with (index.json ``template``), so a
    tag-free template needs none; data without a recorded template used <think> / </think>."""
    template = index.get("template")
    return template_special_tokens(template) if isinstance(template, str) else [THINK_OPEN, THINK_CLOSE]


def added_tokens(index: dict, tok, path: Path) -> dict[str, int]:
    """{token: id} that `tpt prepare --add-think-tokens` added (index.json ``added_tokens``), checked
    against the tokenizer saved with the data."""
    added = index.get("added_tokens") or {}
    wrong = [t for t, i in added.items() if tok.convert_tokens_to_ids(t) != i]
    if wrong:
        raise TrainInputError(f"tokenizer {path}: ids of {wrong} differ from index.json field added_tokens={added}")
    return {t: int(i) for t, i in added.items()}


def weights_file(folder: Path) -> Path:
    """The weights file of an HF folder, for error messages."""
    for name in ("model.safetensors", "model.safetensors.index.json", "pytorch_model.bin"):
        if (folder / name).exists():
            return folder / name
    return folder


def model_dtype(config):
    """The dtype an HF config declares (bf16 for most released checkpoints); None when it names none."""
    import torch

    value = getattr(config, "dtype", None) or getattr(config, "torch_dtype", None)
    if isinstance(value, str):
        value = getattr(torch, value, None)
    return value if isinstance(value, torch.dtype) else None


def check_doc_starts(ds: PackedDataset) -> None:
    """--doc-attention reads every shard's starts.npy: a cut or corrupt one is named before training."""
    import numpy as np

    for shard in ds.shards:
        path = ds.root / f"{shard.name}.starts.npy"
        try:
            starts = np.load(path, mmap_mode="r")
        except (OSError, ValueError) as e:
            raise TrainInputError(f"{path}: unreadable document starts ({e}); rerun `tpt prepare`") from None
        if starts.ndim != 1 or (len(starts) and (starts[-1] >= shard.num_sequences * ds.seq_len or starts[0] < 0)):
            raise TrainInputError(f"{path}: document starts outside the shard's {shard.num_sequences} rows")


# Text that exercises what pre-tokenizers disagree on: digits after spaces, runs of digits,
# punctuation, newlines and indentation, accents (NFC), the special tokens.
TOKENIZER_PROBE = (
    "The answer is 42. <think> start at 3 , then +7 = 0; x=1234.5\n\n    café  Ünïcode e\u0301 ﬁ\t</think><|endoftext|>"
)


def check_checkpoint_tokenizer(tok, path: Path, model_config, train: PackedDataset) -> None:
    """The tokenizer reloads from a checkpoint folder as the same tokenizer.

    transformers picks the tokenizer class of a checkpoint from its model type too: for qwen2 it
    always builds Qwen2Tokenizer, which replaces tokenizer.json's normalizer and pre-tokenizer by
    Qwen2's own.  A tokenizer that splits text differently would then encode evaluation prompts
    differently from the training data, silently.  Checked here, before any training."""
    import tempfile

    from transformers import AutoTokenizer

    probes = [TOKENIZER_PROBE]
    if len(train):  # and real text: the first training row, decoded
        probes.append(tok.decode(train[0][:512].tolist()))
    with tempfile.TemporaryDirectory() as tmp:
        tok.save_pretrained(tmp)
        model_config.save_pretrained(tmp)
        again = AutoTokenizer.from_pretrained(tmp, local_files_only=True)
    for text in probes:
        if tok.encode(text, add_special_tokens=False) != again.encode(text, add_special_tokens=False):
            raise TrainInputError(
                f"tokenizer {path}: a {model_config.model_type} checkpoint reloads it as {type(again).__name__}, "
                f"which splits text differently (e.g. {text[:60]!r}): evaluation would not see what training saw. "
                "Train the tokenizer with `tpt tokenizer train` (it uses Qwen2's pre-tokenization), or use the "
                "tokenizer of the --init model"
            )


def check_model_fits(config, train: PackedDataset, source: str, vocab: int | None = None) -> None:
    """The model's embedding (``vocab`` rows once added tokens are in) covers every token id of the
    data; its positions cover seq_len."""
    vocab = int(config.vocab_size) if vocab is None else vocab
    if int(train.index["vocab_size"]) > vocab:
        raise TrainInputError(
            f"{source}: vocab_size={vocab} is smaller than the data's ({train.root}/index.json "
            f"vocab_size={train.index['vocab_size']})"
        )
    highest = max_token_id(train)
    if highest >= vocab:
        raise TrainInputError(
            f"{train.root}: token id {highest} is outside the model's vocabulary ({source}: vocab_size={vocab})"
        )
    positions = getattr(config, "max_position_embeddings", None)
    if positions is not None and train.seq_len > int(positions):
        raise TrainInputError(f"{source}: max_position_embeddings={positions} < the data's seq_len={train.seq_len}")


def check_init_tokenizer(init: Path, data_tok, data_tok_path: Path, added: dict | None = None) -> None:
    """An --init checkpoint with its own tokenizer must use the data's tokenizer (same vocabulary,
    apart from the tokens prepare added to it: ``added``)."""
    has_tokenizer = any((init / name).exists() for name in ("tokenizer.json", "tokenizer_config.json", "vocab.json"))
    if not has_tokenizer:
        return
    init_tok = load_tokenizer(init)
    data_vocab = {t: i for t, i in data_tok.get_vocab().items() if t not in (added or {})}
    if init_tok.get_vocab() != data_vocab:
        diff = len(set(init_tok.get_vocab().items()) ^ set(data_vocab.items()))
        raise TrainInputError(
            f"--init {init}: its tokenizer differs from the data's ({data_tok_path}): {diff} vocabulary entries "
            "differ; prepare the data with the checkpoint's tokenizer"
        )


def check_init_folder(init: Path) -> None:
    if not (init / "config.json").exists():
        raise TrainInputError(f"--init {init}: no config.json (expected a local HF save_pretrained folder)")
    try:
        json.loads((init / "config.json").read_text())
    except json.JSONDecodeError as e:
        raise TrainInputError(f"--init {init}/config.json line {e.lineno}: not valid JSON ({e.msg})") from None


# Attention implementations for which transformers builds a per-document mask from position ids
# that restart at 0 (masking_utils' packed-sequence path), whatever the batch size.
# FlashAttention detects packing only for a flattened batch of one row, so with micro-batches
# it would silently attend across documents.
DOC_ATTENTION_IMPLEMENTATIONS = ("sdpa", "eager", "flex_attention")


def check_doc_attention(model_config, source: str) -> None:
    impl = getattr(model_config, "_attn_implementation", None) or "sdpa"
    if impl not in DOC_ATTENTION_IMPLEMENTATIONS:
        raise TrainInputError(
            f"--doc-attention: the model ({source}) uses attn_implementation {impl!r}; per-document attention needs "
            f"one of {', '.join(DOC_ATTENTION_IMPLEMENTATIONS)}"
        )
