"""Prompt strategies (the paper's wording, verbatim) and token-boundary truncation."""

from __future__ import annotations

import pytest

from tpt.augment.prompts import FOCUS_MARK, load_strategy, strip_thinking_tags

PAPER_DEFAULT = (
    "{{CONTEXT}}\n\n## End of the context\n\nSimulate an expert's in-depth thought process as they analyze the above "
    "context, focusing on complex and informative aspects. Skip trivial details. Use Feynman technique whenever "
    "possible to ensure a deep understanding."
)
PAPER_FOCUS = (
    "An expert is focused at the <<<READING HERE>>> position. Simulate the expert's in-depth thought process as they "
    "analyze the above context, focusing on complex and informative aspects. Skip trivial details. Use Feynman "
    "technique whenever possible to ensure a deep understanding."
)


def test_default_is_the_papers_prompt():
    doc = "Braces {like} these {{stay}}."
    assert load_strategy("default").build("a", doc) == PAPER_DEFAULT.replace("{{CONTEXT}}", doc)


def test_random_focus_is_seeded_per_document():
    doc = " ".join(f"w{i}" for i in range(200))
    s = load_strategy("random-focus", seed=3)
    a, b = s.build("doc-a", doc), s.build("doc-a", doc)
    assert a == b and a.count(FOCUS_MARK) == 2  # once in the document, once in the instruction
    assert a.endswith(PAPER_FOCUS)
    assert a.split("\n\n## End of the context")[0].replace(FOCUS_MARK, "") == doc
    positions = {s.build(f"doc-{i}", doc).index(FOCUS_MARK) for i in range(20)}
    assert len(positions) > 5  # drawn per document, not fixed
    assert load_strategy("random-focus", seed=4).build("doc-a", doc) != a or len(positions) == 1


def test_file_template(tmp_path):
    path = tmp_path / "t.txt"
    path.write_text("Read this:\n{context}\nThink.")
    assert load_strategy(f"file:{path}").build("x", "DOC {x}") == "Read this:\nDOC {x}\nThink."
    path.write_text("no placeholder")
    with pytest.raises(ValueError, match="placeholder"):
        load_strategy(f"file:{path}")
    with pytest.raises(ValueError, match="unknown --strategy"):
        load_strategy("nonsense")


def test_strip_thinking_tags():
    assert strip_thinking_tags("<think>\nidea one\n</think>answer") == "idea one"
    assert strip_thinking_tags("no tags, cut off") == "no tags, cut off"


def test_truncation_on_token_boundary(tiny_model_dir):
    from transformers import AutoTokenizer

    from tpt.augment.backends.tokenize import TokenizerOps

    tok = AutoTokenizer.from_pretrained(tiny_model_dir)
    fast, slow = TokenizerOps(str(tiny_model_dir)), TokenizerOps(str(tiny_model_dir), hf_tokenizer=tok)
    slow._fast = None  # the transformers path, as for a folder without tokenizer.json
    text = "The derivative of x squared is two x — ünïcödé 漢字 survives, because the slope grows."
    ids = tok(text, add_special_tokens=False)["input_ids"]
    for ops in (fast, slow):
        n = ops.count_tokens(text)
        for limit in range(1, n):  # every cut, including inside characters split into byte tokens
            cut, total, truncated = ops.truncate(text, limit)
            kept = tok(cut, add_special_tokens=False)["input_ids"]
            assert total == n and truncated and text.startswith(cut)
            assert kept == ids[: len(kept)] and limit - 3 <= len(kept) <= limit  # a character is at most 4 bytes
            assert ops.truncate_batch([text], limit) == [(cut, n, True)]
        assert ops.truncate(text, 7)[0] == "The derivative of x squared is two"  # ASCII: exactly on the 7th token
        assert ops.truncate(text, n) == (text, n, False)
    assert fast.truncate(text, 9) == slow.truncate(text, 9)


def test_chat_prompt_frame_equals_the_template(tiny_model_dir):
    """chat_prompt places prompts into a template rendered once; the text must be exactly what the
    template renders, and a template that alters the content must be rendered per call."""
    from tpt.augment.backends.tokenize import TokenizerOps, chat_frame

    ops = TokenizerOps(str(tiny_model_dir))
    prompts = ["Solve 12 x 7.", "  leading and trailing spaces \n", "braces {x} and <think> tags\n\n"]
    for prompt in prompts:
        assert ops.chat_prompt(prompt) == ops._render_chat(prompt)
    assert ops._frame and ops._frame[0].startswith("<|im_start|>user\n")  # the frame is used, not re-rendering

    def trimming(content: str) -> str:  # e.g. a template that applies `| trim` to the content
        return f"<user>{content.strip()}</user><assistant>"

    assert chat_frame(trimming) is None
    assert chat_frame(lambda c: f"[{c}]({c})") is None  # the content placed twice
    assert chat_frame(lambda c: f"<u>{c}</u>") == ("<u>", "</u>")

    ops._frame, calls = None, []
    ops._render_chat = lambda c: calls.append(c) or trimming(c)  # a trimming template: rendered every call
    assert ops.chat_prompt(" x ") == "<user>x</user><assistant>" and ops._frame is False
    assert ops.chat_prompt(" y ") == "<user>y</user><assistant>" and calls[-1] == " y "
