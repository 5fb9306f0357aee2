"""Augment's inputs and ``--shard-range`` as typed records, read once where they enter.

* ``InputSpec``: one positional input, ``PATH[:TEXT_FIELD[:ID_FIELD]]`` on the command line, a mapping
  ``{path, text_field, id_field}`` in config files and manifests.  An empty field means "the stage's
  ``--text-field`` / ``--id-field``" (``None``), resolved by ``fields()`` when a file is planned.
* ``ShardRange``: ``--shard-range i/n`` (``{index, count}`` in files): this process does the shards
  whose index % n == i.

Run folders written before these records existed stored inputs as the strings typed on the command
line (manifest untagged, plan.json version 2); ``inputs_from_strings`` is their migration, applied
when such a folder is read, so it resumes unchanged.  This module imports nothing heavy: the CLI
parses with it before pyarrow or torch load.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tpt.formats import AUGMENT_MANIFEST, FORMAT_KEY
from tpt.io import fs

INPUT_KEYS = ("path", "text_field", "id_field")


@dataclass(frozen=True)
class InputSpec:
    path: str  # a file, glob, folder or URL, as given
    text_field: str | None = None  # None: the stage's --text-field
    id_field: str | None = None  # None: the stage's --id-field

    def __post_init__(self) -> None:
        object.__setattr__(self, "path", str(self.path))  # a Path from a Python caller: stored as text, like a URL

    def fields(self, text_field: str, id_field: str | None) -> tuple[str, str | None]:
        """(text field, id field) of this source, the stage's defaults filled in."""
        return self.text_field or text_field, self.id_field or id_field

    def describe(self) -> str:
        """The command-line form: ``PATH[:TEXT[:ID]]``."""
        if self.id_field:
            return f"{self.path}:{self.text_field or ''}:{self.id_field}"
        return f"{self.path}:{self.text_field}" if self.text_field else self.path


def parse_input(spec: str | Path | dict | InputSpec) -> InputSpec:
    """``PATH[:TEXT_FIELD[:ID_FIELD]]`` (or the mapping a config file holds) -> InputSpec.  A URL's
    ``scheme://``, a Windows drive and an existing local name holding ":" are part of the path."""
    if isinstance(spec, InputSpec):
        return spec
    if isinstance(spec, dict):
        return _from_mapping(spec)
    text = str(spec)
    path, text_field, id_field = _split(text)
    if not path.strip():
        raise ValueError(f"{text!r}: no path; expected PATH[:TEXT_FIELD[:ID_FIELD]]")
    return InputSpec(path, text_field or None, id_field or None)


parse_input.typed_as = InputSpec  # type: ignore[attr-defined]  # tpt.config: an InputSpec passes as it is


def _split(spec: str) -> tuple[str, str, str]:
    if not fs.is_url(spec) and Path(spec).exists():  # a local name that itself holds ":"
        return spec, "", ""
    parts = spec.rsplit(":", 2)
    while len(parts) > 1 and ("/" in parts[1] or parts[0] == "" or (len(parts[0]) == 1 and parts[0].isalpha())):
        parts = [parts[0] + ":" + parts[1]] + parts[2:]  # "s3://..." or "C:\\..." : part of the path
    if len(parts) == 1 or any("/" in p for p in parts[1:]):
        return spec, "", ""
    return parts[0], parts[1], parts[2] if len(parts) > 2 else ""


def _from_mapping(spec: dict) -> InputSpec:
    unknown = sorted(set(spec) - set(INPUT_KEYS))
    if unknown or not spec.get("path"):
        problem = f"unknown key(s) {', '.join(map(repr, unknown))}" if unknown else "no 'path'"
        raise ValueError(f"{spec!r}: {problem}; an input is a mapping of {', '.join(INPUT_KEYS)} (path required)")
    return InputSpec(str(spec["path"]), spec.get("text_field") or None, spec.get("id_field") or None)


def inputs_from_strings(inputs: list[Any]) -> list[dict]:
    """The migration of a run folder's stored inputs: strings (as typed) -> the mappings stored now."""
    return [inputs_record(parse_input(item)) for item in inputs]


def inputs_record(spec: InputSpec) -> dict:
    return {key: getattr(spec, key) for key in INPUT_KEYS}


def manifest_fingerprint(manifest: dict, where: str) -> dict:
    """The resume fingerprint of a run's manifest, in today's shape: a v1 manifest's string inputs are
    migrated; a manifest newer than this tpt is refused (FormatError, naming ``where``)."""
    AUGMENT_MANIFEST.check(manifest, where)
    fingerprint = dict(manifest.get("fingerprint", {}))
    if FORMAT_KEY not in manifest and isinstance(fingerprint.get("inputs"), list):  # v1
        fingerprint["inputs"] = inputs_from_strings(fingerprint["inputs"])
    return fingerprint


@dataclass(frozen=True)
class ShardRange:
    index: int  # this process's i ...
    count: int  # ... of n: it does the shards whose index % n == i

    def __post_init__(self) -> None:
        if not 0 <= self.index < self.count:
            raise ValueError(f"'{self}': need 0 <= i < n (i/n, e.g. 0/4)")

    def holds(self, shard_index: int) -> bool:
        return shard_index % self.count == self.index

    def __str__(self) -> str:
        return f"{self.index}/{self.count}"


def parse_base_url(text: str) -> str:
    """One ``--base-url`` item: ``http(s)://HOST:PORT/v1``, without its trailing slash."""
    url = str(text).strip().rstrip("/")
    if not url.startswith(("http://", "https://")):
        raise ValueError(f"{text!r}: expected http(s)://HOST:PORT/v1")
    return url


def parse_shard_range(value: str | dict | ShardRange) -> ShardRange:
    """``i/n`` (or ``{index, count}``) -> ShardRange."""
    if isinstance(value, ShardRange):
        return value
    try:
        if isinstance(value, dict):
            i, n = int(value["index"]), int(value["count"])
        else:
            i, n = (int(x) for x in str(value).split("/"))
    except (KeyError, TypeError, ValueError):
        raise ValueError(f"{value!r}: expected i/n (e.g. 0/4), or index and count") from None
    return ShardRange(i, n)


parse_shard_range.typed_as = ShardRange  # type: ignore[attr-defined]
