"""The shared atomic-write and lock mechanisms (tpt.io.atomic, tpt.io.lock)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time

import pytest

from tpt.io.atomic import (
    atomic_folder,
    atomic_write_text,
    default_file_mode,
    old_folder,
    recover_folder,
    remove_stale_temps,
    temp_name,
)
from tpt.io.lock import FileLock, LockHeld


def test_atomic_write_uses_umask_and_leaves_no_temp(tmp_path):
    path = atomic_write_text(tmp_path / "a.json", "{}")
    assert path.read_text() == "{}"
    assert (path.stat().st_mode & 0o777) == default_file_mode()
    assert [p.name for p in tmp_path.iterdir()] == ["a.json"]


def test_failed_write_keeps_the_old_file(tmp_path):
    atomic_write_text(tmp_path / "a.txt", "old")

    def boom(tmp):
        open(tmp, "w").write("half")
        raise OSError(28, "No space left on device")

    from tpt.io.atomic import atomic_write

    with pytest.raises(OSError):
        atomic_write(tmp_path / "a.txt", boom)
    assert (tmp_path / "a.txt").read_text() == "old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.txt"]


def test_atomic_folder_swaps_and_recovers(tmp_path):
    final = tmp_path / "ckpt"
    with atomic_folder(final) as tmp:
        (tmp / "w").write_text("1")
    with atomic_folder(final) as tmp:
        (tmp / "w").write_text("2")
    assert (final / "w").read_text() == "2"
    # a crash between the two renames: only the old folder exists under its hidden name
    final.rename(old_folder(final))
    recover_folder(final)
    assert (final / "w").read_text() == "2"


def test_stale_temps_of_dead_processes_only(tmp_path):
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    dead_pid = int(dead.stdout)
    target = tmp_path / "x.parquet"
    mine = tmp_path / (temp_name(target) + "-abc.tmp")  # this live process
    theirs = tmp_path / (temp_name(target).replace(f"-{os.getpid()}", f"-{dead_pid}") + "-abc.tmp")
    users = tmp_path / ".notes.tmp"  # a user's file that only looks like a temp
    for p in (mine, theirs, users):
        p.write_text("x")
    removed = remove_stale_temps(tmp_path)
    assert removed == [theirs]
    assert mine.exists() and users.exists()


def test_lock_excludes_and_names_holder(tmp_path):
    first = FileLock(tmp_path / ".lock", what="run folder X").acquire()
    with pytest.raises(LockHeld) as err:
        FileLock(tmp_path / ".lock", what="run folder X").acquire()
    assert f"pid {os.getpid()}" in str(err.value) and "run folder X" in str(err.value)
    first.release()
    with FileLock(tmp_path / ".lock"):
        pass


def test_lock_released_when_holder_is_killed(tmp_path):
    code = (
        "import sys,time; from tpt.io.lock import FileLock; "
        f"FileLock({str(tmp_path / '.lock')!r}).acquire(); print('held', flush=True); time.sleep(60)"
    )
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == "held"
    with pytest.raises(LockHeld) as err:
        FileLock(tmp_path / ".lock").acquire()
    assert err.value.holder["pid"] == proc.pid
    proc.kill()
    proc.wait()
    FileLock(tmp_path / ".lock", wait=5).acquire().release()


def test_lock_waits_for_release(tmp_path):
    code = (
        "import time; from tpt.io.lock import FileLock; "
        f"l = FileLock({str(tmp_path / '.lock')!r}).acquire(); print('held', flush=True); time.sleep(1.0); l.release()"
    )
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == "held"
    start = time.monotonic()
    with FileLock(tmp_path / ".lock", wait=30):
        assert time.monotonic() - start > 0.3
    proc.wait()


def test_exclusive_file_fallback(tmp_path, monkeypatch):
    monkeypatch.setenv("TPT_LOCK", "excl")
    first = FileLock(tmp_path / ".lock").acquire()
    assert json.loads((tmp_path / ".lock.excl").read_text())["pid"] == os.getpid()
    with pytest.raises(LockHeld):
        FileLock(tmp_path / ".lock").acquire()
    first.release()
    assert not (tmp_path / ".lock.excl").exists()
    # a file left by a dead process of this host is taken over
    (tmp_path / ".lock.excl").write_text(json.dumps({"host": os.uname().nodename, "pid": 2**22 + 7}) + "\n")
    FileLock(tmp_path / ".lock").acquire().release()


def test_lock_held_crosses_a_process_boundary_with_its_message(tmp_path):
    import pickle

    from tpt.io.lock import LockHeld

    err = LockHeld(tmp_path / "x.lock", {"pid": 7, "host": "h", "since": "now"}, "prepare output")
    back = pickle.loads(pickle.dumps(err))
    assert type(back) is LockHeld and str(back) == str(err) and back.holder["pid"] == 7
