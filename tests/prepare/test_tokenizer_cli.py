"""`tpt tokenizer train` on an augment run and a raw JSONL file."""

from prepare_helpers import random_records, write_jsonl, write_run

from tpt.prepare.tokenizer import SPECIAL_TOKENS, load_tokenizer, missing_special_tokens
from tpt.prepare.tokenizer_cli import main


def test_tokenizer_train_cli(tmp_path, capsys):
    run = write_run(tmp_path / "run", random_records(80))
    raw = write_jsonl(tmp_path / "raw.jsonl", [{"text": "Photosynthesis converts light."}] * 20 + ["{bad"])
    assert (
        main(
            ["train", str(run), str(raw), "--vocab-size", "500", "--min-frequency", "1", "--out", str(tmp_path / "tok")]
        )
        == 0
    )
    assert "1 unreadable input rows" in capsys.readouterr().out
    tok = load_tokenizer(tmp_path / "tok")
    assert len(tok) == 500 and missing_special_tokens(tok, SPECIAL_TOKENS) == []
    assert tok.decode(tok("Photosynthesis <think>", add_special_tokens=False)["input_ids"]) == "Photosynthesis <think>"
    assert tok.chat_template and tok.eos_token == "<|endoftext|>"


def test_tokenizer_train_cli_missing_input(tmp_path, capsys):
    assert main(["train", str(tmp_path / "nope"), "--out", str(tmp_path / "tok")]) == 2
    assert "does not exist" in capsys.readouterr().err
