"""The one lock mechanism of tpt: an exclusive lock on a file, held for the life of a process's work.

``FileLock(path)`` takes ``flock(LOCK_EX)`` on ``path``. flock locks belong to the open file, so two
processes (or two locks in one process) exclude each other, and the kernel drops the lock when the
holder dies, kill -9 included: a lock is never stale. On Linux NFS (v3 with lockd, v4) flock is
carried out as a POSIX byte-range lock that the server enforces across nodes, which is what Slurm
arrays on shared storage need. Lustre needs the ``flock`` mount option; filesystems that cannot
lock at all (some FUSE mounts) raise ENOLCK/EOPNOTSUPP. There tpt falls back to an exclusively
created ``PATH.excl`` file naming its holder, removed on release; such a file left by a dead process
of the same host is taken over, one left by another host must be removed by hand (the error says
so). ``TPT_LOCK=excl`` forces the fallback; ``TPT_LOCK=none`` disables locking (at your own risk).

The lock file holds one JSON line naming the holder (host, pid, command, start time), so a refused
process can say who holds it.
"""

from __future__ import annotations

import errno
import fcntl
import json
import os
import socket
import sys
import time
from pathlib import Path

from tpt.io.atomic import default_file_mode, pid_alive

_NO_LOCKS = {errno.ENOLCK, errno.EOPNOTSUPP, errno.ENOSYS, errno.EINVAL}


class LockHeld(RuntimeError):
    """Another process holds the lock (``holder`` says who, when known)."""

    def __init__(self, path: Path, holder: dict | None, what: str):
        self.path, self.holder, self.what = path, holder or {}, what
        who = describe_holder(self.holder)
        super().__init__(f"{what} is in use by {who} (lock {path}); wait for it to finish, or stop it and rerun")

    def __reduce__(self):
        # a worker process's LockHeld must reach the parent as itself: the default pickling calls
        # LockHeld(message) and fails, which breaks the whole pool and hides this message
        return (type(self), (self.path, self.holder, self.what))


def describe_holder(holder: dict) -> str:
    if not holder:
        return "another process"
    cmd = holder.get("command", "")
    return f"pid {holder.get('pid')} on {holder.get('host')} since {holder.get('since')}" + (f" ({cmd})" if cmd else "")


def _holder_record() -> dict:
    return {
        "host": socket.gethostname(),
        "pid": os.getpid(),
        "since": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "command": " ".join(sys.argv)[:300],
    }


class FileLock:
    """An exclusive lock on ``path``: ``acquire(wait=...)`` / ``release()``, or a ``with`` block.

    ``wait``: 0 refuses at once (LockHeld), a number of seconds waits that long, None waits forever.
    ``what`` names the thing protected in error messages ("run folder runs/aug1").
    """

    def __init__(self, path: str | Path, what: str | None = None, wait: float | None = 0.0, poll: float = 0.2):
        self.path = Path(path)
        self.what = what or str(self.path.parent)
        self.wait, self.poll = wait, poll
        self._fd: int | None = None
        self._excl: Path | None = None

    # -- public ---------------------------------------------------------------------------------
    def acquire(self) -> FileLock:
        mode = os.environ.get("TPT_LOCK", "flock")
        if mode == "none":
            return self
        deadline = None if self.wait is None else time.monotonic() + self.wait
        while True:
            if self._try_excl() if mode == "excl" else self._try_flock():
                return self
            if deadline is not None and time.monotonic() >= deadline:
                raise LockHeld(self.path, self.holder(), self.what)
            time.sleep(self.poll)

    def release(self) -> None:
        if self._fd is not None:
            fcntl.flock(self._fd, fcntl.LOCK_UN)
            os.close(self._fd)
            self._fd = None
        if self._excl is not None:
            self._excl.unlink(missing_ok=True)
            self._excl = None

    @property
    def held(self) -> bool:
        return self._fd is not None or self._excl is not None

    def holder(self) -> dict:
        for path in (self.path, self._excl_path()):
            try:
                text = path.read_text().strip()
            except OSError:
                continue
            if text:
                try:
                    return json.loads(text.splitlines()[-1])
                except ValueError:
                    continue
        return {}

    def __enter__(self) -> FileLock:
        return self.acquire()

    def __exit__(self, *exc) -> None:
        self.release()

    # -- flock ------------------------------------------------------------------------------------
    def _try_flock(self) -> bool:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, default_file_mode())
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            os.close(fd)
            if exc.errno in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
                return False
            if exc.errno in _NO_LOCKS:  # this filesystem cannot lock: use the exclusive-file fallback
                return self._try_excl()
            raise
        self._fd = fd
        os.ftruncate(fd, 0)
        os.write(fd, (json.dumps(_holder_record()) + "\n").encode())
        return True

    # -- fallback: O_EXCL file ----------------------------------------------------------------
    def _excl_path(self) -> Path:
        return self.path.with_name(self.path.name + ".excl")

    def _try_excl(self) -> bool:
        path = self._excl_path()
        path.parent.mkdir(parents=True, exist_ok=True)
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, default_file_mode())
        except FileExistsError:
            if self._excl_stale():
                path.unlink(missing_ok=True)
                return self._try_excl()
            return False
        with os.fdopen(fd, "w") as fh:
            fh.write(json.dumps(_holder_record()) + "\n")
        self._excl = path
        return True

    def _excl_stale(self) -> bool:
        holder = self.holder()
        if not holder:  # the holder died between creating the file and naming itself
            try:
                return time.time() - self._excl_path().stat().st_mtime > 60
            except OSError:
                return True
        return holder.get("host") == socket.gethostname() and not pid_alive(int(holder.get("pid", 0) or 0))
