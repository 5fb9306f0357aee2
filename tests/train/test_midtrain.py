"""Mid-training real base-model shapes: Llama-3.1, Qwen2.5 and Qwen3 checkpoints whose tokenizers lack
<think>/</think>, built here with random weights and saved by transformers; `tpt prepare
--add-think-tokens` then `tpt train --init` end to end, and tag-free templates without new tokens."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from tpt.config import build
from tpt.prepare.config import PrepareConfig, PrepareError
from tpt.prepare.run import prepare
from tpt.tiny import ARCHITECTURES, SAMPLE_TEXTS, build_base_checkpoint
from tpt.train import TrainConfig, TrainInputError, train
from tpt.train.model import extend_embeddings

TRAIN = dict(
    tokens="256",
    batch_tokens="128",
    micro_batch=4,
    lr=1e-3,
    threads=1,
    progress=False,
    eval_every=0,
    save_every=0,
    eval_sequences=2,
)


def thinking_run(folder: Path, n: int = 60) -> Path:
    """An augment run folder of thinking records made of the sample texts' words."""
    import random

    import pyarrow as pa
    import pyarrow.parquet as pq

    from tpt.records import THINKING_SCHEMA, ThinkingRecord

    rng, words = random.Random(0), " ".join(SAMPLE_TEXTS).split()
    say = lambda k: " ".join(rng.choice(words) for _ in range(k)) + "."  # noqa: E731
    rows = [
        ThinkingRecord(f"d{i}", 0, say(12), say(20), "stop", 12, 20, False, "s", "m", "b").to_row() for i in range(n)
    ]
    (folder / "data").mkdir(parents=True)
    pq.write_table(pa.Table.from_pylist(rows, schema=THINKING_SCHEMA), folder / "data" / "part-00000.parquet")
    return folder


@pytest.fixture(scope="module", params=ARCHITECTURES)
def base(request, tmp_path_factory) -> tuple[str, Path]:
    return request.param, build_base_checkpoint(tmp_path_factory.mktemp(request.param) / "ckpt", request.param)


def test_add_think_tokens_then_init_resizes_and_keeps_the_model_itself(base, tmp_path):
    from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer

    arch, ckpt = base
    run = thinking_run(tmp_path / "run")
    with pytest.raises(PrepareError, match=r"lacks special token\(s\) \['</think>', '<think>'\].*--add-think-tokens"):
        prepare(
            PrepareConfig(
                source=[f"{run}:tpt"], tokenizer=str(ckpt), out=tmp_path / "data", seq_len=32, val_sequences=2
            )
        )
    index = prepare(
        PrepareConfig(
            source=[f"{run}:tpt"],
            tokenizer=str(ckpt),
            out=tmp_path / "data",
            seq_len=32,
            val_sequences=2,
            add_think_tokens=True,
        )
    )
    base_tok = AutoTokenizer.from_pretrained(ckpt)
    assert index["tokenizer"] == "tokenizer" and set(index["added_tokens"]) == {"<think>", "</think>"}
    assert sorted(index["added_tokens"].values()) == [len(base_tok), len(base_tok) + 1]

    before = AutoConfig.from_pretrained(ckpt)
    result = train(build(TrainConfig, data=tmp_path / "data", init=ckpt, out=tmp_path / "out", **TRAIN))
    assert result.steps == 2
    tok = AutoTokenizer.from_pretrained(result.checkpoint)
    for token, i in index["added_tokens"].items():
        assert tok.convert_tokens_to_ids(token) == i and tok.encode(token, add_special_tokens=False) == [i]
    assert (tok.bos_token, tok.eos_token, tok.pad_token) == (base_tok.bos_token, base_tok.eos_token, base_tok.pad_token)
    model = AutoModelForCausalLM.from_pretrained(result.checkpoint, dtype="auto")
    after = json.loads((result.checkpoint / "config.json").read_text())
    assert model.get_input_embeddings().weight.shape[0] >= len(tok) == len(base_tok) + 2
    assert model.get_input_embeddings().weight.shape[0] == max(
        before.vocab_size, len(tok)
    )  # padding kept, no extra rows
    assert model.dtype == torch.bfloat16 and after["dtype"] == "bfloat16"  # the model's own dtype, not fp32
    assert after["rope_parameters"] == before.to_dict()["rope_parameters"]  # Llama-3.1 scaling / Qwen's theta kept
    assert after["tie_word_embeddings"] == before.tie_word_embeddings
    assert (after["bos_token_id"], after["eos_token_id"]) == (before.bos_token_id, before.eos_token_id)
    ids = tok("The derivative <think> slope </think>", return_tensors="pt").input_ids
    assert model.generate(ids, max_new_tokens=2, min_new_tokens=2, do_sample=False).shape[1] == ids.shape[1] + 2


def test_tag_free_template_needs_no_new_tokens(base, tmp_path):
    arch, ckpt = base
    run = thinking_run(tmp_path / "run")
    template = "{text}\n\nLet me think about this. {thinking}"
    index = prepare(
        PrepareConfig(
            source=[f"{run}:tpt"],
            tokenizer=str(ckpt),
            out=tmp_path / "data",
            seq_len=32,
            val_sequences=2,
            template=template,
        )
    )
    assert index["template"] == template and index["added_tokens"] == {}
    result = train(
        build(TrainConfig, data=tmp_path / "data", init=ckpt, out=tmp_path / "out", **TRAIN)
    )  # reads the template
    assert result.steps == 2


def test_new_rows_start_at_the_mean_of_the_old_ones():
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(0)
    model = LlamaForCausalLM(
        LlamaConfig(
            vocab_size=50,
            hidden_size=16,
            intermediate_size=32,
            num_hidden_layers=1,
            num_attention_heads=2,
            num_key_value_heads=1,
            tie_word_embeddings=False,
        )
    )
    old_in, old_out = (
        model.get_input_embeddings().weight[:50].clone(),
        model.get_output_embeddings().weight[:50].clone(),
    )
    extend_embeddings(model, 52, [50, 51])
    new_in, new_out = model.get_input_embeddings().weight, model.get_output_embeddings().weight
    assert new_in.shape[0] == new_out.shape[0] == 52 and model.config.vocab_size == 52
    assert torch.allclose(new_in[50], old_in.mean(0)) and torch.allclose(new_out[51], old_out.mean(0))
    assert torch.equal(new_in[:50], old_in) and torch.equal(new_out[:50], old_out)


def test_data_from_another_base_tokenizer_is_refused(tmp_path):
    one = build_base_checkpoint(tmp_path / "one", "qwen3")
    other = build_base_checkpoint(tmp_path / "other", "qwen3", texts=[t.upper() for t in SAMPLE_TEXTS] * 20)
    run = thinking_run(tmp_path / "run")
    prepare(
        PrepareConfig(
            source=[f"{run}:tpt"],
            tokenizer=str(one),
            out=tmp_path / "data",
            seq_len=32,
            val_sequences=2,
            add_think_tokens=True,
        )
    )
    with pytest.raises(TrainInputError, match=rf"--init {other}: its tokenizer differs from the data's"):
        train(build(TrainConfig, data=tmp_path / "data", init=other, out=tmp_path / "out", **TRAIN))
    assert not (tmp_path / "out" / "metrics.jsonl").exists()
