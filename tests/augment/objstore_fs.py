"""``objstore://``: an fsspec filesystem with object-store semantics, shared between processes.

Objects live under ``$TPT_OBJSTORE_ROOT`` (a local folder), but the filesystem behaves like S3/GCS,
not like a POSIX disk: a PUT becomes visible whole at close (never half-written), ``xb`` is an
atomic exclusive create checked at close (S3's ``If-None-Match: *``), folders are only prefixes
(they vanish with their last object), and there is **no rename and no lock**: ``mv`` raises, so a
code path that relied on either fails here. Several processes see one store, which ``memory://``
cannot give. ``register()`` makes the protocol known (call it in every process that uses it).
"""

from __future__ import annotations

import io
import os
import uuid
from pathlib import Path

from fsspec import AbstractFileSystem, register_implementation

PROTOCOL = "objstore"


class _Put(io.BytesIO):
    """Buffered like an S3 upload: nothing is visible until close, then the whole object at once."""

    def __init__(self, fs: ObjectStoreFS, path: str, exclusive: bool):
        super().__init__()
        self.fs, self.path, self.exclusive = fs, path, exclusive

    def close(self) -> None:
        if self.closed:
            return
        data = self.getvalue()
        super().close()
        self.fs._publish(self.path, data, self.exclusive)


class ObjectStoreFS(AbstractFileSystem):
    protocol = PROTOCOL
    root_marker = ""
    cachable = False

    def __init__(self, root: str | None = None, **kwargs):
        super().__init__(**kwargs)
        self.base = Path(root or os.environ["TPT_OBJSTORE_ROOT"])

    @classmethod
    def _strip_protocol(cls, path) -> str:
        path = str(path)
        if path.startswith(PROTOCOL + "://"):
            path = path[len(PROTOCOL) + 3 :]
        return path.strip("/")

    def _local(self, path: str) -> Path:
        return self.base / "objects" / self._strip_protocol(path)

    def info(self, path, **kwargs) -> dict:
        local, name = self._local(path), self._strip_protocol(path)
        if local.is_file():
            return {"name": name, "size": local.stat().st_size, "type": "file"}
        if local.is_dir():
            return {"name": name, "size": 0, "type": "directory"}
        raise FileNotFoundError(path)

    def ls(self, path, detail=True, **kwargs):
        local, name = self._local(path), self._strip_protocol(path)
        if local.is_file():
            entries = [self.info(name)]
        elif local.is_dir():
            entries = []
            for child in sorted(local.iterdir()):
                try:
                    entries.append(self.info(f"{name}/{child.name}"))
                except FileNotFoundError:  # deleted meanwhile by another process
                    pass
        else:
            raise FileNotFoundError(path)
        return entries if detail else [e["name"] for e in entries]

    def _open(self, path, mode="rb", **kwargs):
        if mode == "rb":
            return open(self._local(path), "rb")
        if mode in ("wb", "xb"):
            return _Put(self, path, exclusive=mode == "xb")
        raise ValueError(f"objstore: mode {mode!r} is not supported (objects are written whole)")

    def _publish(self, path: str, data: bytes, exclusive: bool) -> None:
        staging = self.base / "uploads"
        staging.mkdir(parents=True, exist_ok=True)
        tmp = staging / uuid.uuid4().hex
        tmp.write_bytes(data)
        target = self._local(path)
        try:
            for _ in range(10):  # a prefix "folder" may vanish under us (another process removed its last object)
                target.parent.mkdir(parents=True, exist_ok=True)
                try:
                    if exclusive:
                        os.link(tmp, target)  # fails if the name exists: the precondition
                    else:
                        os.replace(tmp, target)
                    return
                except FileNotFoundError:
                    continue
            raise OSError(f"objstore: could not publish {path}")
        finally:
            tmp.unlink(missing_ok=True)

    def rm_file(self, path) -> None:
        local = self._local(path)
        local.unlink()
        self._prune(local.parent)

    def _rm(self, path) -> None:
        self.rm_file(path)

    def rm(self, path, recursive=False, maxdepth=None) -> None:
        for p in self.expand_path(path, recursive=recursive, maxdepth=maxdepth)[::-1]:
            if self._local(p).is_file():
                self.rm_file(p)

    def _prune(self, folder: Path) -> None:
        top = self.base / "objects"
        while folder != top and top in folder.parents:
            try:
                folder.rmdir()
            except OSError:
                return
            folder = folder.parent

    def mkdir(self, path, create_parents=True, **kwargs) -> None:
        pass  # no folders in an object store

    def makedirs(self, path, exist_ok=False) -> None:
        pass

    def mv(self, *args, **kwargs):
        raise NotImplementedError("objstore: an object store has no rename")

    rename = mv


def register() -> None:
    register_implementation(PROTOCOL, ObjectStoreFS, clobber=True)
