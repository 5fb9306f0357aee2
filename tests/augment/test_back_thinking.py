"""Back-thinking: the strategy, and the whole recipe on CPU with a tiny locally built generator.

build SFT data (`tpt prepare back-thinking`) -> `tpt train --mode sft` -> `tpt augment --strategy
back-thinking --backend transformers`: the generator, trained on (question + response -> thinking),
is given each pre-training document as the response in exactly the trained format, and writes the
thinking it learned for it.
"""

from __future__ import annotations

import json

import pytest
from augment_helpers import write_jsonl

from tpt.augment import back_thinking as bt
from tpt.augment.prompts import load_strategy
from tpt.cli import main as tpt
from tpt.io.runs import iter_records


def test_strategy_renders_the_document_as_the_response():
    doc = "Water boils at {100} degrees; see {response} and {{CONTEXT}} in the text."
    prompt = load_strategy("back-thinking").build("d1", doc)
    assert prompt == bt.render_prompt(bt.default_template(), "", doc)
    assert prompt.startswith(f"## Question\n\n{bt.NO_QUESTION}\n\n## Response\n\n{doc}\n\n## End of the response\n\n")
    assert "{question}" not in prompt and prompt.count(doc) == 1  # braces in documents are left alone


def test_strategy_with_a_template_file(tmp_path):
    path = tmp_path / "bt.txt"
    path.write_text("Q: {question}\nA: {response}\n")
    assert load_strategy(f"back-thinking:{path}").build("x", "D") == f"Q: {bt.NO_QUESTION}\nA: D"
    for text, error in [("{response}", r"one \{question\}"), ("{question}{response}{{CONTEXT}}", "reserved")]:
        path.write_text(text)
        with pytest.raises(ValueError, match=error):
            load_strategy(f"back-thinking:{path}")
    with pytest.raises(ValueError, match="no such file"):
        load_strategy(f"back-thinking:{tmp_path / 'missing.txt'}")
    with pytest.raises(ValueError, match="back-thinking or back-thinking:PATH"):
        load_strategy("back-thinking:")


# Each response has its own thinking: the generator can only write the right one for a document if
# it sees the document in the trained format (the right thinking is not a guess from the words).
PAIRS = [
    ("What do plants make from light?", "Plants store light as glucose.", "photosynthesis turns light into sugar"),
    ("Why is 7 prime?", "Seven has exactly two divisors.", "only one and seven divide it"),
    ("What is 37 times 24?", "The product is 888.", "740 plus 148 is 888"),
    ("Where does water boil lower?", "At altitude water boils lower.", "lower pressure means a lower boiling point"),
]


def reasoning_rows() -> list[dict]:
    """Mixture-of-Thoughts shape, plus one row in the column shape."""
    rows = [
        {
            "messages": [
                {"role": "user", "content": q},
                {"role": "assistant", "content": f"<think>\n{t}\n</think>\n\n{r}"},
            ]
        }
        for q, r, t in PAIRS[:-1]
    ]
    q, r, t = PAIRS[-1]
    return rows + [{"question": q, "thinking": t, "response": r}]


@pytest.mark.slow
def test_recipe_sft_then_augment_writes_the_learned_thinking(tmp_path):
    from tpt.tiny import build_tiny_model

    template = bt.default_template()
    # The tokenizer is trained on the texts it will see, so prompts stay short (fast on CPU).
    texts = [template, bt.NO_QUESTION] + [" ".join(p) for p in PAIRS]
    generator = build_tiny_model(tmp_path / "gen", texts=texts * 30, vocab_size=600, hidden_size=96, seed=1)
    data = write_jsonl(tmp_path / "mot.jsonl", reasoning_rows())

    # (a) SFT data, every row in the document form (no question): what augmentation will show it
    sft = tmp_path / "sft.jsonl"
    assert (
        tpt(
            [
                "prepare",
                "back-thinking",
                str(data),
                "--out",
                str(sft),
                "--tokenizer",
                str(generator),
                "--no-question-rate",
                "1.0",
            ]
        )
        == 0
    )
    sft_rows = [json.loads(line) for line in sft.read_text().splitlines()]
    assert len(sft_rows) == len(PAIRS)

    # (b) prepare it (tpt prepare --sft, validation rows from train's tail) and fine-tune the generator on it
    tuned, sft_data = tmp_path / "gen-back", tmp_path / "sft-data"
    prepare_argv = ["prepare", "--sft", "--source", str(sft), "--tokenizer", str(generator), "--seq-len", "160"]
    assert tpt([*prepare_argv, "--val-sequences", "0", "--out", str(sft_data)]) == 0
    assert (
        tpt(
            [
                "train",
                "--mode",
                "sft",
                "--data",
                str(sft_data),
                "--init",
                str(generator),
                "--out",
                str(tuned),
                "--epochs",
                "150",
                "--batch-tokens",
                "640",
                "--micro-batch",
                "4",
                "--lr",
                "3e-3",
                "--warmup",
                "5",
                "--eval-every",
                "0",
                "--save-every",
                "0",
                "--log-every",
                "50",
                "--no-progress",
                "--threads",
                "1",
            ]
        )
        == 0
    )

    # (c) augment pre-training documents (the responses) with the tuned generator, greedily
    corpus = write_jsonl(tmp_path / "corpus.jsonl", [{"id": f"d{i}", "text": r} for i, (_, r, _) in enumerate(PAIRS)])
    run = tmp_path / "aug"
    assert (
        tpt(
            [
                "augment",
                str(corpus),
                "--out",
                str(run),
                "--strategy",
                "back-thinking",
                "--backend",
                "transformers",
                "--model",
                str(tuned),
                "--temperature",
                "0",
                "--max-thinking-tokens",
                "40",
                "--device",
                "cpu",
                "--no-progress",
            ]
        )
        == 0
    )

    # The run's prompt template renders each document exactly as the SFT data showed its response ...
    manifest = json.loads((run / "manifest.json").read_text())
    records = {r.id: r for r in iter_records(run)}
    for i, (_, response, thinking) in enumerate(PAIRS):
        prompt = manifest["fingerprint"]["prompt_template"].replace("{{CONTEXT}}", records[f"d{i}"].text)
        assert prompt == sft_rows[i]["messages"][0]["content"] == bt.render_prompt(template, "", response)
        # ... and the generator, trained on that format, writes the thinking it learned for it.
        assert records[f"d{i}"].thinking == thinking and records[f"d{i}"].finish_reason == "stop"
        assert records[f"d{i}"].strategy == "back-thinking"

    # Control: the same generator given the documents in another format (the paper's default
    # prompt) does not reproduce them, so the match above is the shared format at work.
    other = tmp_path / "aug-default"
    assert (
        tpt(
            [
                "augment",
                str(corpus),
                "--out",
                str(other),
                "--strategy",
                "default",
                "--backend",
                "transformers",
                "--model",
                str(tuned),
                "--temperature",
                "0",
                "--max-thinking-tokens",
                "40",
                "--device",
                "cpu",
                "--no-progress",
            ]
        )
        == 0
    )
    control = {r.id: r.thinking for r in iter_records(other)}
    assert sum(control[f"d{i}"] == thinking for i, (_, _, thinking) in enumerate(PAIRS)) < len(PAIRS)
