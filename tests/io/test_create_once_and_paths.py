"""tpt.io: write-once creation, OS errors that name their path, URL handling."""

from __future__ import annotations

import threading

import pytest

from tpt.io import fs
from tpt.io.atomic import atomic_create_text, atomic_write, is_tpt_temp


def test_create_once_has_exactly_one_winner_and_no_partial_file(tmp_path):
    target = tmp_path / "plan.json"
    wins = []
    threads = [
        threading.Thread(target=lambda i=i: wins.append((i, atomic_create_text(target, f"writer {i}\n"))))
        for i in range(8)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    winners = [i for i, won in wins if won]
    assert len(winners) == 1 and target.read_text() == f"writer {winners[0]}\n"
    assert [p.name for p in tmp_path.iterdir()] == ["plan.json"]  # no temp left behind


def test_an_os_error_without_a_path_gets_the_target_named(tmp_path):
    def full_disk(tmp):  # pyarrow raises like this: errno in the text, no filename
        raise OSError("Error writing bytes to file. Detail: [errno 28] No space left on device")

    with pytest.raises(OSError) as info:
        atomic_write(tmp_path / "x.parquet", full_disk)
    assert info.value.errno == 28 and info.value.filename == str(tmp_path / "x.parquet")
    assert not [p for p in tmp_path.iterdir() if is_tpt_temp(p)]


def test_urls_and_paths():
    assert fs.is_url("s3://bucket/x.parquet") and fs.is_url("memory://a/b")
    assert not fs.is_url("data/x.jsonl") and not fs.is_url("C://x")
    assert fs.name("s3://bucket/dir/x.parquet") == "x.parquet"
    assert fs.is_inside(fs.as_path("/a/b/c"), fs.as_path("/a/b"))
    assert not fs.is_inside(fs.as_path("/a/bc"), fs.as_path("/a/b"))
