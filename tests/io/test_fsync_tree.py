"""atomic_folder and the final checkpoint fsync every file before the rename that publishes them."""

from __future__ import annotations

import os
from pathlib import Path

from tpt.io import atomic


def _record_fsyncs(monkeypatch) -> list[str]:
    synced: list[str] = []
    real = os.fsync

    def spy(fd: int) -> None:
        synced.append(os.readlink(f"/proc/self/fd/{fd}"))
        real(fd)

    monkeypatch.setattr(atomic.os, "fsync", spy)
    return synced


def test_atomic_folder_fsyncs_every_file_before_publishing(tmp_path: Path, monkeypatch) -> None:
    synced = _record_fsyncs(monkeypatch)
    final = tmp_path / "out"
    with atomic.atomic_folder(final) as tmp:
        (tmp / "a.bin").write_bytes(b"a")
        (tmp / "sub").mkdir()
        (tmp / "sub" / "b.bin").write_bytes(b"b")
    names = {Path(p).name for p in synced}
    assert {"a.bin", "b.bin"} <= names
    assert (final / "sub" / "b.bin").read_bytes() == b"b"
    # the files were synced under the temp name, i.e. before the rename published them
    assert all(atomic.TEMP_MARK in p for p in synced if p.endswith(".bin"))
