"""`tpt prepare back-thinking`: reasoning rows (chat or columns) -> the SFT file `tpt train --mode sft` reads."""

from __future__ import annotations

import json

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from tpt.augment import back_thinking as bt
from tpt.prepare.back_thinking import build_back_thinking_sft, output_paths
from tpt.prepare.cli import main as prepare_main
from tpt.prepare.config import PrepareError
from tpt.prepare.sft import prepare_sft


def chat(question, assistant, **extra):
    return {
        "messages": [
            {"role": "system", "content": "be brief"},
            {"role": "user", "content": question},
            {"role": "assistant", "content": assistant, **extra},
        ]
    }


ROWS = [
    chat("What is 2+3?", "<think>\nTwo plus three is five.\n</think>\n\nThe answer is 5."),
    chat("What is 4*4?", "Four fours are sixteen.\n</think>\n\n16"),  # R1 style: the template opened <think>
    chat("Capital of France?", "Paris.", reasoning_content="France's capital city is Paris."),
    {"question": "Is 7 prime?", "thinking": "<think>Only 1 and 7 divide it.</think>", "response": "Yes."},
]
BAD = [
    "{not json",
    chat("Q?", "no thinking here"),
    {"messages": [{"role": "assistant", "content": "<think>t</think> r"}]},
    chat("Q?", "<think>\n\n</think> answer"),
    {"question": "Q?", "thinking": "t"},
    chat("", "<think>t</think> r"),
]


def write_jsonl(path, rows):
    path.write_text("".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in rows))
    return path


def read_jsonl(path):
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_both_shapes_render_the_shared_template(tmp_path):
    out = tmp_path / "sft.jsonl"
    summary = build_back_thinking_sft([str(write_jsonl(tmp_path / "mot.jsonl", ROWS))], out)
    assert summary["rows"] == 4 and summary["rejected"] == 0
    rows = read_jsonl(out)
    template = bt.default_template()
    expected = [
        ("What is 2+3?", "Two plus three is five.", "The answer is 5."),
        ("What is 4*4?", "Four fours are sixteen.", "16"),
        ("Capital of France?", "France's capital city is Paris.", "Paris."),
        ("Is 7 prime?", "Only 1 and 7 divide it.", "Yes."),
    ]
    for row, (question, thinking, response) in zip(rows, expected, strict=True):
        user, assistant = row["messages"]
        assert user == {"role": "user", "content": bt.render_prompt(template, question, response)}
        assert assistant == {"role": "assistant", "content": f"<think>\n{thinking}\n</think>"}
        assert f"## Question\n\n{question}\n\n## Response\n\n{response}\n\n## End of the response" in user["content"]
    assert rows[0]["source"].endswith("mot.jsonl:1")


def test_bad_rows_are_set_aside_with_file_line_field_and_reason(tmp_path):
    src = write_jsonl(tmp_path / "mixed.jsonl", ROWS[:1] + BAD)
    out = tmp_path / "sft.jsonl"
    summary = build_back_thinking_sft([str(src)], out)
    assert summary["rows"] == 1 and summary["rejected"] == len(BAD)
    rejected = pq.read_table(output_paths(out)[0]).to_pylist()
    got = [(r["line"], r["field"], r["reason"].split(" (")[0]) for r in rejected]
    assert got == [
        (2, "", got[0][2]),
        (3, "messages", "no assistant turn with a <think>…</think> block or a reasoning_content field"),
        (4, "messages", "no user turn before the assistant turn with the thinking"),
        (5, "messages", "empty thinking"),
        (6, "response", "missing or not a string"),
        (7, "messages", "empty question"),
    ]
    assert got[0][2].startswith("malformed JSON") and all(r["file"] == str(src) for r in rejected)
    assert json.loads(output_paths(out)[1].read_text())["rejected"] == len(BAD)


def test_nothing_usable_and_existing_output_fail_clearly(tmp_path):
    src = write_jsonl(tmp_path / "bad.jsonl", BAD)
    with pytest.raises(PrepareError, match=r"no usable row .*bad.jsonl:1: malformed JSON"):
        build_back_thinking_sft([str(src)], tmp_path / "sft.jsonl")
    assert not (tmp_path / "sft.jsonl").exists() and not list(tmp_path.glob(".*.tmp"))
    good = write_jsonl(tmp_path / "good.jsonl", ROWS)
    build_back_thinking_sft([str(good)], tmp_path / "sft.jsonl")
    with pytest.raises(PrepareError, match="already exists"):
        build_back_thinking_sft([str(good)], tmp_path / "sft.jsonl")
    with pytest.raises(PrepareError, match=".jsonl or .parquet"):
        build_back_thinking_sft([str(good)], tmp_path / "sft.txt")


def test_no_question_rate_shows_the_document_form(tmp_path):
    src = write_jsonl(tmp_path / "mot.jsonl", ROWS * 25)
    out = tmp_path / "sft.jsonl"
    summary = build_back_thinking_sft([str(src)], out, no_question_rate=0.5, seed=3)
    rows = read_jsonl(out)
    hidden = [r for r in rows if not r["question_shown"]]
    assert summary["without_question"] == len(hidden) and 25 <= len(hidden) <= 75
    assert all(bt.NO_QUESTION in r["messages"][0]["content"] for r in hidden)
    # the document form is exactly what `--strategy back-thinking` builds for a document
    from tpt.augment.prompts import load_strategy

    document_form = load_strategy("back-thinking").build("any-id", "The answer is 5.")
    first_rows = [r for r in hidden if int(r["source"].rsplit(":", 1)[1]) % 4 == 1]  # ROWS[0] repeated
    assert first_rows and all(r["messages"][0]["content"] == document_form for r in first_rows)


def test_parquet_input_and_output_feed_prepare_sft(tmp_path, tiny_model_dir):
    src = tmp_path / "mot.parquet"
    pq.write_table(
        pa.Table.from_pylist([{"problem": "Is 9 prime?", "reasoning": "3 divides 9.", "solution": "No."}] * 3), src
    )
    out = tmp_path / "sft.parquet"
    assert (
        prepare_main(
            [
                "back-thinking",
                str(src),
                "--out",
                str(out),
                "--question-field",
                "problem",
                "--thinking-field",
                "reasoning",
                "--response-field",
                "solution",
                "--tokenizer",
                str(tiny_model_dir),
                "--max-doc-tokens",
                "2",
            ]
        )
        == 0
    )
    rows = pq.read_table(out).to_pylist()
    assert len(rows) == 3 and rows[0]["messages"][1]["content"] == "<think>\n3 divides 9.\n</think>"
    # the response was cut to 2 tokens of the generator's tokenizer, as augment cuts documents
    assert json.loads(output_paths(out)[1].read_text())["responses_cut"] == 3
    packed = prepare_sft(out, tiny_model_dir, 512, tmp_path / "packed")
    index = json.loads((packed / "index.json").read_text())
    assert index["conversations"] == 3 and index["assistant_tokens"] > 0


def test_a_template_that_drops_the_thinking_is_refused(tmp_path, tiny_model_dir):
    import shutil

    tok = tmp_path / "r1-like"
    shutil.copytree(tiny_model_dir, tok)
    config = json.loads((tok / "tokenizer_config.json").read_text())
    # what R1-distill templates do to assistant turns: keep only what follows </think>
    config["chat_template"] = (
        "{% for m in messages %}<|im_start|>{{ m['role'] }}\n"
        "{% if m['role'] == 'assistant' %}{{ m['content'].split('</think>')[-1] }}"
        "{% else %}{{ m['content'] }}{% endif %}"
        "<|im_end|>\n{% endfor %}"
    )
    (tok / "tokenizer_config.json").write_text(json.dumps(config))
    (tok / "chat_template.jinja").unlink(missing_ok=True)
    src = write_jsonl(tmp_path / "mot.jsonl", ROWS)
    with pytest.raises(PrepareError, match="removes the <think>…</think> block"):
        build_back_thinking_sft([str(src)], tmp_path / "sft.jsonl", tokenizer=str(tok))


def test_custom_template_is_checked(tmp_path):
    bad = tmp_path / "t.txt"
    bad.write_text("Q: {question}\n")
    src = write_jsonl(tmp_path / "mot.jsonl", ROWS)
    with pytest.raises(PrepareError, match=r"exactly one \{response\}"):
        build_back_thinking_sft([str(src)], tmp_path / "sft.jsonl", template_path=bad)
    good = tmp_path / "good.txt"
    good.write_text("Q: {question}\nA: {response}\nThink:\n")
    build_back_thinking_sft([str(src)], tmp_path / "sft.jsonl", template_path=good)
    assert (
        read_jsonl(tmp_path / "sft.jsonl")[0]["messages"][0]["content"]
        == "Q: What is 2+3?\nA: The answer is 5.\nThink:"
    )
