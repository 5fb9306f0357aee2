"""readers.json_object: the one JSON-row decoder the stages that read their own fields share."""

from tpt.io.readers import RawRow, ReadError, Rejection, json_object


def test_json_object_returns_the_object_or_says_why_not():
    assert json_object(RawRow("a.jsonl", 1, b'{"x": 1}')) == {"x": 1}
    assert json_object(RawRow("a.jsonl", 1, {"x": 2})) == {"x": 2}
    cases = [
        (b"\xff{}", "invalid UTF-8"),
        (b"{not json", "malformed JSON"),
        (b"[1, 2]", "expected a JSON object, got list"),
        (ReadError("cannot read a.jsonl: truncated gzip"), "cannot read a.jsonl: truncated gzip"),
    ]
    for payload, reason in cases:
        got = json_object(RawRow("a.jsonl", 7, payload))
        assert isinstance(got, Rejection) and (got.file, got.line) == ("a.jsonl", 7)
        assert got.reason.startswith(reason), got.reason
