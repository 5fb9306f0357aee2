"""Run folders on object storage (``s3://``, ``gs://``, ``memory://``... through fsspec).

An object store has no rename and no flock, so the local mechanisms (``tpt.io.atomic``: temp file +
rename; ``tpt.io.lock``: flock) do not apply. What it does have, and all this module relies on:

* **a PUT is atomic**: a reader sees the whole old object, the whole new one, or none; never half.
  Files are therefore written locally first and uploaded whole (``put_file``/``put_bytes``).
* **exclusive create** (``fs.open(path, "xb")``: S3 ``If-None-Match: *``, GCS
  ``ifGenerationMatch=0``, memory/local: an existence check or ``O_EXCL``): of several writers of one
  name exactly one wins. It makes write-once files (``plan.json``) and leases.
* **listing** by prefix (finished shards are found by listing their markers).

``Lease`` is the object-store stand-in for ``FileLock``: an exclusively created object naming its
holder, renewed by a heartbeat and released by deleting it. A lease whose heartbeat stopped (the
holder was killed) expires after ``ttl`` seconds and is taken over; one of a dead process of this
host is taken over at once. A takeover is delete + exclusive create, not a compare-and-swap, so in
a rare race two processes may both think they hold a lease: the cost is duplicated work, never a
duplicated or lost record (docs/scale.md, "Remote --out").
"""

from __future__ import annotations

import json
import os
import socket
import sys
import threading
import time
import uuid
from pathlib import Path, PurePosixPath

from tpt.io import fs as tfs
from tpt.io.atomic import pid_alive
from tpt.io.lock import LockHeld

_NO_EXCLUSIVE_CREATE: set = set()  # protocols whose open() refused mode "xb" (warned once)
LEASE_TTL_S = float(os.environ.get("TPT_LEASE_TTL", "300"))  # a holder silent this long is taken to be dead


class ObjectStore:
    """A run folder under ``url`` on an fsspec filesystem; paths are relative (``state/shard-00001.done``)."""

    def __init__(self, url: str):
        self.url = url.rstrip("/")
        self.fs, self.root = tfs.filesystem(self.url)
        self.root = self.root.rstrip("/")

    def key(self, rel: str) -> str:
        return f"{self.root}/{rel}"

    def exists(self, rel: str) -> bool:
        self.fs.invalidate_cache(self.key(rel))  # s3fs/gcsfs cache listings: another process may have written since
        return bool(self.fs.exists(self.key(rel)))

    def read_bytes(self, rel: str) -> bytes | None:
        try:
            return self.fs.cat_file(self.key(rel))
        except FileNotFoundError:
            return None

    def read_text(self, rel: str) -> str | None:
        data = self.read_bytes(rel)
        return None if data is None else data.decode("utf-8")

    def read_many(self, rels: list[str]) -> dict[str, bytes]:
        """Several small objects at once (async filesystems such as s3fs fetch them concurrently)."""
        if not rels:
            return {}
        found = self.fs.cat([self.key(r) for r in rels], on_error="omit")
        prefix = len(self.root) + 1
        return {self.fs._strip_protocol(k)[prefix:]: v for k, v in found.items()}

    def put_bytes(self, rel: str, data: bytes) -> None:
        self.fs.pipe_file(self.key(rel), data)

    def put_file(self, local: Path, rel: str) -> None:
        self.fs.put_file(str(local), self.key(rel))

    def get_file(self, rel: str, local: Path) -> None:
        local.parent.mkdir(parents=True, exist_ok=True)
        self.fs.get_file(self.key(rel), str(local))

    def create_once(self, rel: str, data: bytes) -> bool:
        """Create ``rel`` unless it exists (False then). Where the store checks at the end of the PUT
        (S3, GCS) the refusal comes on close, where it checks on open (memory, local) on open."""
        if self.fs.protocol in _NO_EXCLUSIVE_CREATE:
            return self._create_unguarded(rel, data)
        try:
            with self.fs.open(self.key(rel), "xb") as fh:
                fh.write(data)
        except FileExistsError:
            return False
        except (ValueError, NotImplementedError, TypeError) as exc:  # this filesystem has no "xb" mode
            _NO_EXCLUSIVE_CREATE.add(self.fs.protocol)
            print(
                f"tpt: {self.url}: no exclusive create on this filesystem ({exc}); leases cannot stop two processes "
                "from running one shard (still one record per key: docs/scale.md, 'Remote --out')",
                file=sys.stderr,
            )
            return self._create_unguarded(rel, data)
        except OSError as exc:  # s3fs: 412 Precondition Failed surfaces as an OSError naming it
            if "precondition" in str(exc).lower() or "412" in str(exc):
                return False
            raise
        return True

    def _create_unguarded(self, rel: str, data: bytes) -> bool:
        """Check, then PUT: a race can let two creators both win (the wasted work the docs describe)."""
        if self.exists(rel):
            return False
        self.put_bytes(rel, data)
        return True

    def delete(self, rel: str) -> None:
        try:
            self.fs.rm_file(self.key(rel))
        except FileNotFoundError:
            pass

    def names(self, folder: str, suffix: str = "") -> list[str]:
        """Names of the objects directly under ``folder`` ending in ``suffix``, sorted ([] if none)."""
        self.fs.invalidate_cache(self.key(folder))
        try:
            entries = self.fs.ls(self.key(folder), detail=True)
        except FileNotFoundError:
            return []
        names = (PurePosixPath(e["name"]).name for e in entries if e.get("type") != "directory")
        return sorted(n for n in names if n.endswith(suffix))

    def delete_folder(self, folder: str) -> None:
        for name in self.names(folder):
            self.delete(f"{folder}/{name}")


class Lease:
    """An exclusive claim on ``rel`` (e.g. ``state/locks/shard-00003.lock``): ``acquire``/``release``
    or a ``with`` block, like ``FileLock``; ``wait``: 0 refuses at once, seconds, None forever."""

    def __init__(self, store: ObjectStore, rel: str, what: str, wait: float | None = 0.0, ttl: float | None = None):
        self.store, self.rel, self.what, self.wait = store, rel, what, wait
        self.ttl = LEASE_TTL_S if ttl is None else ttl
        self.token = uuid.uuid4().hex
        self.held = False
        self._stop = threading.Event()
        self._beat: threading.Thread | None = None

    def acquire(self, give_up=lambda: False) -> Lease:
        """``give_up()`` is polled while waiting (e.g. the shard got done by the holder): then the
        lease is not taken and ``held`` stays False."""
        deadline = None if self.wait is None else time.monotonic() + self.wait
        while True:
            if self.store.create_once(self.rel, self._record()):
                self.held = True
                self._start_heartbeat()
                return self
            holder = self.holder()
            if self._stale(holder):
                self._take_over(holder)
                continue
            if give_up():
                return self
            if deadline is not None and time.monotonic() >= deadline:
                raise LockHeld(Path(self.store.url + "/" + self.rel), holder, self.what)
            time.sleep(min(1.0, max(0.05, self.ttl / 20)))

    def release(self) -> None:
        self._stop.set()
        if self._beat is not None:
            self._beat.join()
            self._beat = None
        if self.held and self.holder().get("token") == self.token:  # never delete a successor's lease
            self.store.delete(self.rel)
        self.held = False

    def __enter__(self) -> Lease:
        return self.acquire()

    def __exit__(self, *exc) -> None:
        self.release()

    def holder(self) -> dict:
        text = self.store.read_text(self.rel)
        try:
            return json.loads(text) if text else {}
        except ValueError:
            return {}

    def _record(self) -> bytes:
        record = {
            "host": socket.gethostname(),
            "pid": os.getpid(),
            "since": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
            "command": " ".join(sys.argv)[:300],
            "token": self.token,
            "expires": time.time() + self.ttl,
        }
        return json.dumps(record).encode()

    def _stale(self, holder: dict) -> bool:
        if not holder:  # released meanwhile: try to create it again
            return not self.store.exists(self.rel)
        return self._dead_here(holder) or time.time() > float(holder.get("expires", 0))

    @staticmethod
    def _dead_here(holder: dict) -> bool:
        return holder.get("host") == socket.gethostname() and not pid_alive(int(holder.get("pid") or 0))

    def _take_over(self, holder: dict) -> None:
        if holder and self.holder().get("token") == holder.get("token"):  # still the stale one
            why = "its process is gone" if self._dead_here(holder) else f"no heartbeat for {self.ttl:.0f} s"
            print(f"tpt: taking over {self.what} from {_describe(holder)} ({why})", file=sys.stderr)
            self.store.delete(self.rel)

    def _start_heartbeat(self) -> None:
        self._stop.clear()
        self._beat = threading.Thread(target=self._heartbeat, name=f"lease {self.rel}", daemon=True)
        self._beat.start()

    def _heartbeat(self) -> None:
        while not self._stop.wait(self.ttl / 3):
            try:
                if self.holder().get("token") != self.token:  # taken over while we were silent: say so
                    print(f"tpt: lost {self.what} to another process; finishing anyway", file=sys.stderr)
                    return
                self.store.put_bytes(self.rel, self._record())
            except OSError as exc:  # a network hiccup: try again at the next beat, well before the TTL
                print(f"tpt: could not renew {self.what}: {exc}", file=sys.stderr)


def _describe(holder: dict) -> str:
    return f"pid {holder.get('pid')} on {holder.get('host')} since {holder.get('since')}"
