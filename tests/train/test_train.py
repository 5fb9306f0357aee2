"""End-to-end `tpt train` on tiny models: scratch, snapshots, mid-training, SFT, divergence, CLI."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest
import torch

from tpt.config import build, flat_values
from tpt.train import TrainConfig, TrainingDiverged, TrainInputError, train

from .conftest import write_packed

FAST = dict(
    model_preset="0.1m", batch_tokens="256", micro_batch=4, lr=3e-3, threads=1, progress=False, eval_sequences=16
)


def metrics(path: Path) -> tuple[list[dict], list[dict]]:
    rows = [json.loads(line) for line in path.read_text().splitlines()]
    return [r for r in rows if "loss" in r], [r for r in rows if "val_loss" in r]


@pytest.fixture(scope="module")
def scratch_run(packed_dir, tmp_path_factory):
    cfg = build(
        TrainConfig,
        data=packed_dir,
        out=tmp_path_factory.mktemp("scratch") / "out",
        tokens="12K",
        log_every=4,
        eval_every=20,
        save_every=20,
        save_at=["4K,8K"],
        **FAST,
    )
    return cfg, train(cfg)


def test_scratch_run_learns_and_writes_loadable_hf_checkpoints(scratch_run):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    cfg, result = scratch_run
    losses, vals = metrics(result.metrics)
    assert result.steps == 47 and result.tokens_seen == 47 * 256  # ceil(12K / 256) steps
    assert losses[-1]["loss"] < losses[0]["loss"] - 1.5  # it learns the synthetic sums
    assert [v["step"] for v in vals] == [20, 40, 47] and result.val_loss == pytest.approx(
        vals[-1]["val_loss"], abs=1e-6
    )
    assert [p.name for p in result.snapshots] == ["tokens-4K", "tokens-8K"]
    for folder in [result.checkpoint, *result.snapshots]:
        model = AutoModelForCausalLM.from_pretrained(folder, local_files_only=True)
        tok = AutoTokenizer.from_pretrained(folder, local_files_only=True)
        ids = tok("3 plus 4 is", return_tensors="pt").input_ids
        assert model.generate(ids, max_new_tokens=3, do_sample=False).shape[1] == ids.shape[1] + 3
    snapshot_info = json.loads((result.snapshots[0] / "tpt_checkpoint.json").read_text())
    assert snapshot_info["tokens_seen"] >= 4000 and snapshot_info["tokens_seen"] - 256 < 4000


def test_finished_run_is_not_trained_again(scratch_run):
    cfg, result = scratch_run
    before = (result.checkpoint / "model.safetensors").stat().st_mtime_ns
    again = train(cfg)
    assert (again.steps, again.val_loss) == (result.steps, result.val_loss)
    assert (result.checkpoint / "model.safetensors").stat().st_mtime_ns == before


def test_resume_refuses_a_changed_schedule(scratch_run):
    cfg, _ = scratch_run
    changed = build(TrainConfig, **{**flat_values(cfg), "lr": 1e-3})
    with pytest.raises(TrainInputError, match="schedule"):
        train(changed)


def test_mid_training_starts_from_the_checkpoint(scratch_run, packed_dir, tmp_path):
    _, result = scratch_run
    mid = train(
        build(
            TrainConfig,
            data=packed_dir,
            out=tmp_path / "mid",
            init=result.checkpoint,
            tokens="1K",
            log_every=1,
            eval_every=0,
            save_every=0,
            **{**FAST, "model_preset": ""},
        )
    )
    first_mid = metrics(mid.metrics)[0][0]["loss"]
    first_scratch = metrics(result.metrics)[0][0]["loss"]
    assert first_mid < first_scratch - 1.5  # continues a trained model, not a fresh one


def test_mid_training_refuses_a_checkpoint_with_another_tokenizer(tiny_model_dir, packed_dir, tmp_path):
    with pytest.raises(TrainInputError, match="tokenizer differs|vocab"):
        train(
            build(
                TrainConfig,
                data=packed_dir,
                out=tmp_path / "x",
                init=tiny_model_dir,
                tokens="1K",
                **{**FAST, "model_preset": ""},
            )
        )


def test_sft_trains_on_masked_tokens_from_a_checkpoint(scratch_run, tokenizer_dir, tmp_path):
    _, result = scratch_run
    sft_data = write_packed(tmp_path / "sft-data", tokenizer_dir, with_mask=True, kind="sft")
    sft = train(
        build(
            TrainConfig,
            data=sft_data,
            out=tmp_path / "sft",
            mode="sft",
            init=result.checkpoint,
            tokens="2K",
            log_every=2,
            eval_every=0,
            save_every=0,
            **{**FAST, "model_preset": ""},
        )
    )
    losses, _ = metrics(sft.metrics)
    assert sft.steps == 8 and all(torch.isfinite(torch.tensor(r["loss"])) for r in losses)
    assert sft.val_loss is not None
    with pytest.raises(TrainInputError, match="no loss mask"):
        train(
            build(
                TrainConfig,
                data=write_packed(tmp_path / "nomask", tokenizer_dir),
                out=tmp_path / "s2",
                mode="sft",
                init=result.checkpoint,
                tokens="1K",
                **{**FAST, "model_preset": ""},
            )
        )


def test_divergence_stops_and_keeps_the_last_good_checkpoint(packed_dir, tmp_path):
    out = tmp_path / "nan"
    cfg = build(
        TrainConfig,
        data=packed_dir,
        out=out,
        tokens="5K",
        log_every=1,
        save_every=1,
        warmup=0,
        grad_clip=0,
        **{**FAST, "lr": 1e30},
    )  # the second step's weights overflow
    with pytest.raises(TrainingDiverged, match=r"at step 2 .*Last good checkpoint: .*state \(step 1\)"):
        train(cfg)
    state = json.loads((out / "state" / "tpt_checkpoint.json").read_text())
    assert state["step"] == 1 and not (out / "tpt_train_done.json").exists()


def test_cli_runs_and_reports_bad_input(packed_dir, tmp_path, capsys):
    from tpt.train.cli import main

    args = ["--model-preset", "0.1m", "--tokens", "512", "--batch-tokens", "256", "--threads", "1", "--no-progress"]
    assert main(["--data", str(packed_dir), "--out", str(tmp_path / "cli"), *args]) == 0
    assert "done: 2 steps" in capsys.readouterr().out
    assert main(["--data", str(tmp_path / "nowhere"), "--out", str(tmp_path / "c2"), *args]) == 2
    assert "does not exist" in capsys.readouterr().err


def test_save_at_writes_one_snapshot_per_budget_with_exact_step(packed_dir, tmp_path):
    result = train(
        build(
            TrainConfig,
            data=packed_dir,
            out=tmp_path / "curve",
            tokens="2K",
            save_at=["512", "1K,1.5K"],
            log_every=100,
            eval_every=0,
            save_every=0,
            **FAST,
        )
    )
    steps = [json.loads((p / "tpt_checkpoint.json").read_text())["step"] for p in result.snapshots]
    assert [p.name for p in result.snapshots] == ["tokens-512", "tokens-1K", "tokens-1.5K"] and steps == [2, 4, 6]


def test_checks_run_before_any_compute(packed_dir, tmp_path):
    """Each bad input fails fast, before a model is built (no metrics file, well under a second of work)."""
    start = time.perf_counter()
    with pytest.raises(TrainInputError, match="seq_len=32"):
        cfg_file = tmp_path / "short.json"
        cfg_file.write_text(
            json.dumps(
                {
                    "model_type": "qwen2",
                    "vocab_size": 320,
                    "hidden_size": 32,
                    "num_hidden_layers": 1,
                    "num_attention_heads": 2,
                    "num_key_value_heads": 1,
                    "intermediate_size": 64,
                    "max_position_embeddings": 16,
                }
            )
        )
        train(
            build(TrainConfig, data=packed_dir, out=tmp_path / "a", model_preset="", model_config=cfg_file, tokens="1K")
        )
    with pytest.raises(TrainInputError, match="vocab_size=100 is smaller"):
        cfg_file.write_text(
            json.dumps(
                {
                    "model_type": "qwen2",
                    "vocab_size": 100,
                    "hidden_size": 32,
                    "num_hidden_layers": 1,
                    "num_attention_heads": 2,
                    "num_key_value_heads": 1,
                    "intermediate_size": 64,
                }
            )
        )
        train(
            build(TrainConfig, data=packed_dir, out=tmp_path / "b", model_preset="", model_config=cfg_file, tokens="1K")
        )
    with pytest.raises(TrainInputError, match="no model"):
        train(build(TrainConfig, data=packed_dir, out=tmp_path / "c", tokens="1K"))
    assert not any((tmp_path / d / "metrics.jsonl").exists() for d in "abc")
    assert time.perf_counter() - start < 30


def test_missing_and_truncated_shards_are_named(tokenizer_dir, tmp_path):
    broken = write_packed(tmp_path / "broken", tokenizer_dir)
    (broken / "train-00001.tokens.bin").unlink()
    with pytest.raises(TrainInputError, match=r"train-00001.tokens.bin: shard listed in index.json is missing"):
        train(build(TrainConfig, data=broken, out=tmp_path / "o1", tokens="1K", **FAST))
    cut = write_packed(tmp_path / "cut", tokenizer_dir)
    path = cut / "train-00000.tokens.bin"
    path.write_bytes(path.read_bytes()[:-7])
    with pytest.raises(TrainInputError, match=r"train-00000.tokens.bin: .*truncated or corrupt"):
        train(build(TrainConfig, data=cut, out=tmp_path / "o2", tokens="1K", **FAST))
    (cut / "index.json").write_text("{not json")
    with pytest.raises(TrainInputError, match="corrupt index.json"):
        train(build(TrainConfig, data=cut, out=tmp_path / "o3", tokens="1K", **FAST))


def test_tokenizer_without_think_tokens_is_refused_for_tpt_data(tmp_path):
    from tokenizers import Tokenizer, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    from .conftest import TEXTS

    raw = Tokenizer(models.BPE())
    raw.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    raw.train_from_iterator(
        TEXTS, trainers.BpeTrainer(vocab_size=300, special_tokens=["<|endoftext|>"], show_progress=False)
    )
    PreTrainedTokenizerFast(tokenizer_object=raw, eos_token="<|endoftext|>").save_pretrained(tmp_path / "plain-tok")
    data = write_packed(tmp_path / "data", tmp_path / "plain-tok")
    with pytest.raises(TrainInputError, match=r"lacks special tokens \['<think>', '</think>'\]"):
        train(build(TrainConfig, data=data, out=tmp_path / "o", tokens="1K", **FAST))
    # No thinking, so no special tokens needed; but a Qwen2 checkpoint reloads this plain byte-level
    # BPE as Qwen2Tokenizer, which splits " 12" into " ", "1", "2": evaluation would not see what
    # training saw, so training is refused before it starts.
    vanilla = write_packed(tmp_path / "vanilla", tmp_path / "plain-tok", kind="vanilla")
    with pytest.raises(
        TrainInputError,
        match=r"plain-tok: a qwen2 checkpoint reloads it as Qwen2Tokenizer, which splits text differently",
    ):
        train(build(TrainConfig, data=vanilla, out=tmp_path / "v", tokens="256", eval_every=0, **FAST))
    assert not (tmp_path / "v" / "model.safetensors").exists()


def test_rope_theta_only_with_a_preset(scratch_run, packed_dir, tmp_path):
    _, result = scratch_run
    with pytest.raises(TrainInputError, match=r"--rope-theta 100.0: must be > 0 and applies to --model-preset only"):
        train(
            build(
                TrainConfig,
                data=packed_dir,
                out=tmp_path / "o",
                tokens="1K",
                init=result.checkpoint,
                rope_theta=100.0,
                **{**FAST, "model_preset": ""},
            )
        )
    with pytest.raises(TrainInputError, match=r"--rope-theta -1.0: must be > 0"):
        train(build(TrainConfig, data=packed_dir, out=tmp_path / "o2", tokens="1K", rope_theta=-1.0, **FAST))
    small = train(
        build(TrainConfig, data=packed_dir, out=tmp_path / "o3", tokens="256", rope_theta=100.0, eval_every=0, **FAST)
    )
    assert json.loads((small.checkpoint / "config.json").read_text())["rope_parameters"]["rope_theta"] == 100.0


def test_the_checkpoint_reloads_the_tokenizer_the_data_was_made_with(scratch_run, tokenizer_dir):
    """`tpt tokenizer train` tokenizers survive the trip through a Qwen2 checkpoint unchanged."""
    from transformers import AutoTokenizer

    from tpt.train.checks import TOKENIZER_PROBE

    _, result = scratch_run
    before, after = (
        AutoTokenizer.from_pretrained(str(tokenizer_dir)),
        AutoTokenizer.from_pretrained(str(result.checkpoint)),
    )
    assert (
        type(after).__name__ == "Qwen2Tokenizer"
    )  # what transformers does for qwen2 folders: the reason for the check
    for text in (TOKENIZER_PROBE, "11 plus 7 is 18. <think> 11 + 7 = 18 </think>"):
        assert before.encode(text, add_special_tokens=False) == after.encode(text, add_special_tokens=False)


def test_sft_from_chat_jsonl_builds_masked_data_first(scratch_run, tmp_path):
    pytest.importorskip("tpt.prepare.sft")
    _, result = scratch_run
    chats = tmp_path / "chats.jsonl"
    with chats.open("w") as f:
        for a in range(40):
            f.write(
                json.dumps(
                    {
                        "messages": [
                            {"role": "user", "content": f"{a} plus 2?"},
                            {"role": "assistant", "content": f"{a} plus 2 is {a + 2}."},
                        ]
                    }
                )
                + "\n"
            )
    out = tmp_path / "sft"
    with pytest.raises(TrainInputError, match="tpt prepare --sft --source"):  # train reads prepared data only
        train(build(TrainConfig, data=chats, out=out, mode="sft", init=result.checkpoint, tokens="1K", **FAST))
    from tpt.prepare.sft import prepare_sft

    prepared = prepare_sft(chats, result.checkpoint, 32, tmp_path / "sft-data")
    sft = train(
        build(
            TrainConfig,
            data=prepared,
            out=out,
            mode="sft",
            init=result.checkpoint,
            tokens="1K",
            log_every=1,
            eval_every=0,
            save_every=0,
            **{**FAST, "model_preset": ""},
        )
    )
    index = json.loads((prepared / "index.json").read_text())
    assert all(s["has_mask"] for s in index["splits"]["train"]) and sft.steps == 4


def test_trains_on_the_output_of_tpt_prepare(tokenizer_dir, tmp_path):
    """Integration with the real prepare stage (not the numpy fixture)."""
    run = pytest.importorskip("tpt.prepare.run")
    from tpt.prepare.config import PrepareConfig

    from .conftest import TEXTS

    raw = tmp_path / "raw.jsonl"
    raw.write_text("".join(json.dumps({"id": str(i), "text": t}) + "\n" for i, t in enumerate(TEXTS)))
    run.prepare(
        PrepareConfig(
            source=[f"{raw}:vanilla"], tokenizer=str(tokenizer_dir), out=tmp_path / "data", seq_len=32, val_sequences=4
        )
    )
    result = train(build(TrainConfig, data=tmp_path / "data", out=tmp_path / "out", tokens="2K", eval_every=0, **FAST))
    assert result.steps == 8 and result.val_loss is not None
