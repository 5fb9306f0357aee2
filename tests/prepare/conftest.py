"""Fixtures for `tpt prepare` tests: a small BPE tokenizer and an augment run, built here."""

from __future__ import annotations

from pathlib import Path

import pytest
from prepare_helpers import random_records, write_run

from tpt.tiny import SAMPLE_TEXTS


@pytest.fixture(scope="session")
def tok_dir(tmp_path_factory) -> Path:
    from tpt.prepare.tokenizer import train_tokenizer

    return train_tokenizer(SAMPLE_TEXTS * 5, tmp_path_factory.mktemp("tok") / "tok", vocab_size=400, min_frequency=1)


@pytest.fixture(scope="session")
def tok(tok_dir):
    from tpt.prepare.tokenizer import load_tokenizer

    return load_tokenizer(tok_dir)


@pytest.fixture(scope="session")
def plain_tok_dir(tmp_path_factory) -> Path:
    """A byte-level BPE tokenizer with an EOS but no <think> / </think> tokens."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    t = Tokenizer(models.BPE())
    t.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    t.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=300, special_tokens=["<|endoftext|>"], initial_alphabet=pre_tokenizers.ByteLevel.alphabet()
    )
    t.train_from_iterator(SAMPLE_TEXTS, trainer=trainer)
    out = tmp_path_factory.mktemp("plain-tok") / "tok"
    PreTrainedTokenizerFast(tokenizer_object=t, eos_token="<|endoftext|>").save_pretrained(out)
    return out


@pytest.fixture
def tpt_run(tmp_path) -> Path:
    return write_run(tmp_path / "run", random_records(120))
