import numpy as np
import pytest

from tpt.prepare.config import DEFAULT_TEMPLATE, PrepareError, parse_count, parse_source
from tpt.prepare.formatting import LengthStats, SampleEncoder, apply_length_policy, check_tokenizer, cut_at_sentence
from tpt.prepare.sources import Sample


def test_tpt_sample_is_doc_think_thinking_close_eos(tok):
    enc = SampleEncoder(tok, DEFAULT_TEMPLATE)
    ids, lengths = enc.encode([Sample("a", "A prime number.", "It has two divisors.")])
    plain = lambda s: tok(s, add_special_tokens=False)["input_ids"]  # noqa: E731
    think, close = tok.convert_tokens_to_ids("<think>"), tok.convert_tokens_to_ids("</think>")
    expected = (
        plain("A prime number.")
        + plain(" ")
        + [think]
        + plain(" ")
        + plain("It has two divisors.")
        + plain(" ")
        + [close, tok.eos_token_id]
    )
    assert ids.tolist() == expected
    assert lengths.tolist() == [len(expected)]
    assert tok.decode(ids) == "A prime number. <think> It has two divisors. </think><|endoftext|>"


def test_vanilla_sample_is_doc_eos_and_lengths_split_the_batch(tok):
    enc = SampleEncoder(tok, DEFAULT_TEMPLATE)
    ids, lengths = enc.encode([Sample("a", "Water boils."), Sample("b", "A prime number.", "Two divisors.")])
    first = ids[: lengths[0]].tolist()
    assert first == tok("Water boils.", add_special_tokens=False)["input_ids"] + [tok.eos_token_id]
    assert tok.decode(ids[lengths[0] :]) == "A prime number. <think> Two divisors. </think><|endoftext|>"


def test_special_tokens_inside_documents_stay_plain_text(tok):
    """A document quoting '<think>' must not produce the <think> id (it would forge the format)."""
    enc = SampleEncoder(tok, "{text}<think>{thinking}</think>")
    ids, _ = enc.encode([Sample("a", "tag <think> and <|endoftext|>", "ok.")])
    think = tok.convert_tokens_to_ids("<think>")
    assert ids.tolist().count(think) == 1
    assert ids.tolist().count(tok.eos_token_id) == 1
    assert tok.decode(ids) == "tag <think> and <|endoftext|><think>ok.</think><|endoftext|>"


def test_custom_template_and_uint16(tok):
    enc = SampleEncoder(tok, "{text}\n<think>\n{thinking}\n</think>", np.uint16)
    ids, _ = enc.encode([Sample("a", "Hi.", "Yes.")])
    assert ids.dtype == np.uint16
    assert tok.decode(ids) == "Hi.\n<think>\nYes.\n</think><|endoftext|>"


def test_fields_in_any_order_any_dtype_and_an_empty_batch(tok):
    """The template's fields map to the right encodings whatever their order; uint16 and uint32
    give the same ids (the ids are gathered 32-bit, then narrowed)."""
    samples = [Sample("a", "Doc one.", "Think one."), Sample("b", "Plain doc."), Sample("c", "Doc two.", "Think two.")]
    wide, lengths = SampleEncoder(tok, "{thinking}<think>{text}", np.uint32).encode(samples)
    narrow, _ = SampleEncoder(tok, "{thinking}<think>{text}", np.uint16).encode(samples)
    assert narrow.dtype == np.uint16 and wide.dtype == np.uint32 and narrow.tolist() == wide.tolist()
    docs = np.split(wide, np.cumsum(lengths)[:-1])
    assert [tok.decode(d) for d in docs] == [
        "Think one.<think>Doc one.<|endoftext|>",
        "Plain doc.<|endoftext|>",
        "Think two.<think>Doc two.<|endoftext|>",
    ]
    ids, lengths = SampleEncoder(tok, DEFAULT_TEMPLATE).encode([])
    assert len(ids) == 0 and len(lengths) == 0


def test_an_id_too_wide_for_the_dtype_is_an_error_not_a_wrap(tok):
    enc = SampleEncoder(tok, DEFAULT_TEMPLATE, np.uint8)  # a dtype narrower than this tokenizer's ids
    with pytest.raises(PrepareError, match="does not fit uint8"):
        enc.encode([Sample("a", "A prime number has exactly two divisors.", "Think.")])


def test_cut_at_sentence():
    assert cut_at_sentence("First one. Second one! Third is cut mid") == "First one. Second one!"
    assert cut_at_sentence('He said "done." Then') == 'He said "done."'
    assert cut_at_sentence("no sentence end at all") == ""
    assert cut_at_sentence("3.14 is pi. And") == "3.14 is pi."


@pytest.mark.parametrize(
    "policy,expected,dropped,cut",
    [("keep", "One. Two", 0, 0), ("drop", None, 1, 0), ("cut", "One.", 0, 1)],
)
def test_length_policy(policy, expected, dropped, cut):
    stats = LengthStats()
    out = apply_length_policy(Sample("a", "d", "One. Two", "length"), policy, stats)
    assert (out.thinking if out else None) == expected
    assert (stats.dropped, stats.cut) == (dropped, cut)
    # finished records are never touched
    assert apply_length_policy(Sample("a", "d", "One. Two", "stop"), policy, stats).thinking == "One. Two"


def test_cut_without_a_full_sentence_drops_and_counts():
    stats = LengthStats()
    assert apply_length_policy(Sample("a", "d", "no end", "length"), "cut", stats) is None
    assert stats.dropped == 1


def test_tokenizer_without_think_tokens_is_refused(plain_tok_dir):
    from tpt.prepare.tokenizer import load_tokenizer

    with pytest.raises(PrepareError, match=r"lacks special token\(s\) \['</think>', '<think>'\]"):
        check_tokenizer(load_tokenizer(plain_tok_dir), DEFAULT_TEMPLATE, True, str(plain_tok_dir))
    check_tokenizer(load_tokenizer(plain_tok_dir), DEFAULT_TEMPLATE, False, "vanilla only is fine")


def test_template_needs_both_fields(tok):
    with pytest.raises(PrepareError, match=r"\{thinking\} exactly once"):
        check_tokenizer(tok, "{text} <think> </think>", True, "t")


@pytest.mark.parametrize(
    "spec,kind,weight,epochs",
    [
        ("runs/a:tpt:1.0", "tpt", 1.0, None),
        ("raw.jsonl:vanilla:0.125", "vanilla", 0.125, None),
        ("raw.jsonl:vanilla", "vanilla", 1.0, None),
        ("runs/a:tpt:x2", "tpt", None, 2.0),
        ("s3://b/c:tpt:x0.5", "tpt", None, 0.5),
    ],
)
def test_parse_source(spec, kind, weight, epochs):
    s = parse_source(spec)
    assert (s.kind, s.weight, s.epochs) == (kind, weight, epochs)


@pytest.mark.parametrize("spec", ["raw.jsonl:other:1", "a:tpt:zero", "a:tpt:-1", "a:tpt:x0"])
def test_parse_source_errors(spec):
    with pytest.raises(PrepareError):
        parse_source(spec)


def test_a_bare_path_is_an_sft_source():  # prepare refuses it without --sft (tests/test_config.py)
    assert parse_source("raw.jsonl").kind == "sft" and parse_source("s3://b/raw.jsonl").kind == "sft"


def test_parse_count():
    assert parse_count("50M") == 50_000_000 and parse_count("1.5B") == 1_500_000_000 and parse_count("2k") == 2000
    assert parse_count("1e6") == 1_000_000 and parse_count(None) is None
    with pytest.raises(PrepareError, match="--tokens"):
        parse_count("lots")
