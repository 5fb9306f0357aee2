"""The one atomic-write mechanism of tpt: temp file (or folder) beside the target, fsync, rename.

Every file or folder that a reader must never see half-written goes through here: shards,
markers, manifests, checkpoints, prepared data. Temp names are recognisable (``TEMP_MARK``), so
cleanup code can delete tpt's own leftovers and nothing else.

Files are created with the user's umask (``tempfile.mkstemp`` alone would give 0600, unreadable
by the group on shared storage).
"""

from __future__ import annotations

import errno
import os
import re
import shutil
import socket
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

# Every temp path tpt makes contains this; cleanup deletes only paths that carry it.
TEMP_MARK = ".tpt-tmp"


def _current_umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


_UMASK = _current_umask()


def default_file_mode() -> int:
    return 0o666 & ~_UMASK


def temp_name(target: Path) -> str:
    """A temp name beside ``target`` that names its owner (host, pid), so cleanup can tell whose it is."""
    return f".{target.name}{TEMP_MARK}-{socket.gethostname()}-{os.getpid()}"


def is_tpt_temp(path: Path) -> bool:
    return TEMP_MARK in path.name and path.name.startswith(".")


def fsync_dir(folder: Path) -> None:
    """Make a rename durable: fsync the folder that holds the new entry (a no-op where unsupported)."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def fsync_tree(folder: Path) -> None:
    """fsync every file under ``folder`` and the folders themselves, before the folder is renamed into
    place: a rename made durable over files still in the page cache would survive a power cut empty."""
    for root, _dirs, files in os.walk(folder):
        for name in files:
            with open(os.path.join(root, name), "rb") as fh:
                os.fsync(fh.fileno())
        fsync_dir(Path(root))


@contextmanager
def atomic_path(path: str | Path) -> Iterator[str]:
    """A temp file beside ``path`` for the block to write (at once, or streamed by a writer); when the
    block succeeds it is fsynced and renamed onto ``path``; on any error it is removed."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    # mkstemp: unique even for two threads of one process; prefix keeps TEMP_MARK and the owner.
    fd, tmp = tempfile.mkstemp(prefix=temp_name(path) + "-", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        os.chmod(tmp, default_file_mode())
        yield tmp
        with open(tmp, "rb+") as fh:
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except OSError as exc:
        Path(tmp).unlink(missing_ok=True)
        if exc.filename is None:  # pyarrow and others say "[errno 28] No space left" without the file
            raise with_path(exc, path) from exc
        raise
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    fsync_dir(path.parent)


def atomic_write(path: str | Path, write: Callable[[str], None]) -> Path:
    """Call ``write(tmp_path)``, fsync it, then rename it to ``path``; on any error the temp file is removed."""
    with atomic_path(path) as tmp:
        write(tmp)
    return Path(path)


def with_path(exc: OSError, path: Path) -> OSError:
    """The same OS error, naming ``path`` (errno recovered from the message when the raiser dropped it)."""
    code = exc.errno
    if code is None:
        found = re.search(r"\[errno (\d+)\]", str(exc), re.IGNORECASE)
        code = int(found.group(1)) if found else None
    return OSError(code, os.strerror(code), str(path)) if code else OSError(None, str(exc), str(path))


def atomic_write_text(path: str | Path, text: str) -> Path:
    return atomic_write(path, lambda tmp: Path(tmp).write_text(text, encoding="utf-8"))


def atomic_create_text(path: str | Path, text: str) -> bool:
    """Write-once: create ``path`` with ``text`` unless it exists (then leave it and return False).

    The complete temp file is hard-linked into place, and link() fails if the name exists, so of
    several processes racing to create it exactly one wins and nobody ever sees a partial file.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=temp_name(path) + "-", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
            fh.flush()
            os.fsync(fh.fileno())
        os.chmod(tmp, default_file_mode())
        try:
            os.link(tmp, path)
        except FileExistsError:
            return False
        except OSError as exc:  # a filesystem without hard links: exclusive create, then fill
            if exc.errno not in (errno.EPERM, errno.EOPNOTSUPP, errno.ENOTSUP, errno.EXDEV):
                raise
            return _create_exclusive(path, text)
    finally:
        Path(tmp).unlink(missing_ok=True)
    fsync_dir(path.parent)
    return True


def _create_exclusive(path: Path, text: str) -> bool:
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, default_file_mode())
    except FileExistsError:
        return False
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        fh.write(text)
        fh.flush()
        os.fsync(fh.fileno())
    return True


def atomic_write_bytes(path: str | Path, data: bytes) -> Path:
    return atomic_write(path, lambda tmp: Path(tmp).write_bytes(data))


@contextmanager
def atomic_folder(final: str | Path, replace: bool = True) -> Iterator[Path]:
    """Yield a fresh temp folder; when the block succeeds, swap it in for ``final``.

    The previous ``final`` (if any) is kept as ``.NAME.tpt-old`` until the new one is in place, so
    a kill -9 at any moment leaves the old or the new folder (``recover_folder`` puts back the old
    one if the swap was cut between its two renames).
    """
    final = Path(final)
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = final.parent / temp_name(final)
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir()
    try:
        yield tmp
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    if final.exists() and not replace:
        shutil.rmtree(tmp, ignore_errors=True)
        raise FileExistsError(f"{final}: appeared while it was being written; not replaced")
    fsync_tree(tmp)
    old = old_folder(final)
    shutil.rmtree(old, ignore_errors=True)
    if final.exists():
        final.rename(old)
    tmp.rename(final)
    fsync_dir(final.parent)
    shutil.rmtree(old, ignore_errors=True)


def old_folder(final: Path) -> Path:
    return final.parent / f".{final.name}.tpt-old"


def recover_folder(final: Path) -> None:
    """After a crash between atomic_folder's two renames, put the previous folder back."""
    old = old_folder(final)
    if old.exists() and not final.exists():
        old.rename(final)


def remove_stale_temps(folder: Path, recursive: bool = False) -> list[Path]:
    """Delete tpt's own temp files/folders left by dead processes on this host; nothing else.

    A temp whose owner (this host, a live pid) is still running is left alone, so a second process
    never deletes the first one's in-flight file. Temps of other hosts are left too (their owner
    may be alive on a shared filesystem); they are harmless, being invisible to every glob tpt uses.
    """
    removed: list[Path] = []
    if not folder.is_dir():
        return removed
    entries = folder.rglob(f"*{TEMP_MARK}*") if recursive else folder.glob(f"*{TEMP_MARK}*")
    for path in list(entries):
        if not is_tpt_temp(path) or _owner_alive(path.name):
            continue
        if path.is_dir():
            shutil.rmtree(path, ignore_errors=True)
        else:
            path.unlink(missing_ok=True)
        removed.append(path)
    return removed


def _owner_alive(name: str) -> bool:
    """True unless the temp name says it belongs to a dead process of this host."""
    owner = name.split(TEMP_MARK + "-", 1)[-1]  # HOST-PID[-RANDOM.tmp]; HOST may hold dashes
    host = socket.gethostname()
    if not owner.startswith(host + "-"):
        return True
    digits = re.match(r"\d+", owner[len(host) + 1 :])
    return True if digits is None else pid_alive(int(digits.group()))


def pid_alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
