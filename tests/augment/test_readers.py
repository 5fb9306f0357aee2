"""Input readers: every format, and every kind of bad row set aside with file, line, reason."""

from __future__ import annotations

import gzip
import json

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import zstandard
from augment_helpers import corpus_rows, write_jsonl

from tpt.io.readers import (
    Rejection,
    content_id,
    iter_raw_rows,
    parse_row,
    resolve_inputs,
)


def parse_all(specs, **kw):
    return [parse_row(r, **kw) for r in iter_raw_rows(resolve_inputs([str(s) for s in specs]))]


def test_formats_agree(tmp_path):
    rows = corpus_rows(5)
    write_jsonl(tmp_path / "a" / "plain.jsonl", rows)
    lines = "".join(json.dumps(r) + "\n" for r in rows).encode()
    (tmp_path / "b").mkdir()
    with gzip.open(tmp_path / "b" / "c.jsonl.gz", "wb") as fh:
        fh.write(lines)
    (tmp_path / "b" / "d.jsonl.zst").write_bytes(zstandard.ZstdCompressor().compress(lines))
    pq.write_table(pa.Table.from_pylist(rows), tmp_path / "b" / "e.parquet")
    reference = [(d.id, d.text, d.meta) for d in parse_all([tmp_path / "a" / "plain.jsonl"])]
    for name in ["c.jsonl.gz", "d.jsonl.zst", "e.parquet"]:
        assert [(d.id, d.text, d.meta) for d in parse_all([tmp_path / "b" / name])] == reference, name
    # A folder expands to its files in sorted order; a glob the same.
    assert len(parse_all([tmp_path / "b"])) == 15
    assert len(parse_all([tmp_path / "b" / "*.jsonl.*"])) == 10


def test_hf_save_to_disk_folder(tmp_path):
    datasets = pytest.importorskip("datasets")
    datasets.Dataset.from_list(corpus_rows(4)).save_to_disk(str(tmp_path / "ds"))
    docs = parse_all([tmp_path / "ds"])
    assert [d.id for d in docs] == [f"doc-{i}" for i in range(4)]
    assert docs[2].line == 3 and docs[2].meta == {"n": 2}


def test_id_defaults_and_fields(tmp_path):
    path = write_jsonl(tmp_path / "x.jsonl", [{"body": "hello world", "k": 1}, {"body": "again", "uid": 7}])
    docs = parse_all([path], text_field="body")
    assert docs[0].id == content_id("hello world") and docs[0].meta == {"k": 1}
    docs = parse_all([path], text_field="body", id_field="uid")
    assert isinstance(docs[0], Rejection) and docs[0].field == "uid"
    assert docs[1].id == "7"


def test_bad_rows_are_rejected_with_file_line_reason(tmp_path):
    path = write_jsonl(
        tmp_path / "bad.jsonl",
        [
            {"id": "ok", "text": "fine"},
            "{not json",
            b'\xff\xfe{"text": "x"}',
            {"id": "m"},
            {"id": "n", "text": 5},
            {"id": "e", "text": "   "},
            "[1, 2]",
        ],
    )
    out = parse_all([path])
    assert out[0].id == "ok"
    reasons = [(r.line, r.reason.split(":")[0]) for r in out[1:]]
    assert reasons == [
        (2, "malformed JSON"),
        (3, "invalid UTF-8"),
        (4, "missing text field"),
        (5, "text is int, not a string"),
        (6, "empty document"),
        (7, "expected a JSON object, got list"),
    ]
    assert all(r.file == str(path) for r in out[1:])


def test_missing_input_is_a_clear_error(tmp_path):
    with pytest.raises(FileNotFoundError, match="nope"):
        resolve_inputs([str(tmp_path / "nope.jsonl")])


def test_skip_starts_at_ordinal(tmp_path):
    a = write_jsonl(tmp_path / "a.jsonl", corpus_rows(3))
    b = write_jsonl(tmp_path / "b.jsonl", corpus_rows(3))
    rows = list(iter_raw_rows([a, b], skip=4))
    assert [(r.source, r.line) for r in rows] == [(str(b), 2), (str(b), 3)]
