"""Paths that may be URLs: local files stay ``pathlib.Path``; ``s3://``, ``gs://``, ``hf://``, ``memory://``...
go through fsspec (imported only when a URL is used, so local runs never pay for it).

Inputs may be anywhere fsspec reaches; the readers open them with ``open_binary`` and size them with
``size``. Only listing, sizes, Parquet footers and the bytes of one's own shard are ever read.
"""

from __future__ import annotations

import glob
from pathlib import Path
from typing import BinaryIO

AnyPath = Path | str  # a str here is always a URL


def is_url(spec: str | Path) -> bool:
    text = str(spec)
    scheme, sep, _ = text.partition("://")
    return bool(sep) and scheme.isidentifier() and len(scheme) > 1  # "C://" is not a URL


def as_path(spec: str | Path) -> AnyPath:
    return str(spec) if is_url(spec) else Path(spec)


def filesystem(url: str):
    """(fsspec filesystem, path without the protocol) for a URL."""
    try:
        import fsspec
    except ImportError:
        raise ValueError(f"{url}: remote paths need fsspec (pip install fsspec, plus s3fs/gcsfs for s3/gs)") from None
    fs, path = fsspec.core.url_to_fs(url)
    return fs, path


def name(path: AnyPath) -> str:
    return Path(path).name if isinstance(path, Path) else path.rstrip("/").rsplit("/", 1)[-1]


def join(path: AnyPath, child: str) -> AnyPath:
    return path / child if isinstance(path, Path) else path.rstrip("/") + "/" + child


def exists(path: AnyPath) -> bool:
    if isinstance(path, Path):
        return path.exists()
    fs, p = filesystem(path)
    return fs.exists(p)


def is_dir(path: AnyPath) -> bool:
    if isinstance(path, Path):
        return path.is_dir()
    fs, p = filesystem(path)
    return fs.isdir(p)


def is_file(path: AnyPath) -> bool:
    if isinstance(path, Path):
        return path.is_file()
    fs, p = filesystem(path)
    return fs.isfile(p)


def size(path: AnyPath) -> int:
    if isinstance(path, Path):
        return path.stat().st_size
    fs, p = filesystem(path)
    return int(fs.size(p))


def open_binary(path: AnyPath) -> BinaryIO:
    if isinstance(path, Path):
        return open(path, "rb")
    fs, p = filesystem(path)
    return fs.open(p, "rb")


def read_text(path: AnyPath) -> str:
    with open_binary(path) as fh:
        return fh.read().decode("utf-8")


def glob_paths(spec: str) -> list[AnyPath]:
    if not is_url(spec):
        return [Path(p) for p in sorted(glob.glob(spec))]
    fs, p = filesystem(spec)
    return [fs.unstrip_protocol(m) for m in sorted(fs.glob(p))]


def walk_files(folder: AnyPath) -> list[AnyPath]:
    """Every file under ``folder``, sorted."""
    if isinstance(folder, Path):
        return [p for p in sorted(folder.rglob("*")) if p.is_file()]
    fs, p = filesystem(folder)
    return [fs.unstrip_protocol(f) for f in sorted(fs.find(p))]


def is_inside(child: AnyPath, parent: AnyPath) -> bool:
    """True when ``child`` is ``parent`` or lies under it (local paths resolved, URLs compared as text)."""
    if isinstance(child, Path) and isinstance(parent, Path):
        c, p = child.resolve(), parent.resolve()
        return c == p or p in c.parents
    if isinstance(child, str) and isinstance(parent, str):
        return child.rstrip("/") == parent.rstrip("/") or child.startswith(parent.rstrip("/") + "/")
    return False
