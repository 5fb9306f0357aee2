"""Group labels for `tpt analyze stats --by FIELD`: record columns, the run, or keys of ``meta``.

Grouping fields resolve in this order: ``run`` (the run folder's name), a record column
(``strategy``, ``model``, ``backend``, ``finish_reason``, ``doc_truncated``, ``sample``), then a
key of the ``meta`` JSON (``meta.KEY`` forces the latter).  Every batch is turned into one
integer group code per row; the distinct meta strings of a batch are parsed once each.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

try:  # 3-4x faster than json.loads, which dominates grouped statistics (one parse per distinct meta)
    from orjson import JSONDecodeError
    from orjson import loads as json_loads
except ImportError:  # pragma: no cover - orjson is a dependency; stay usable without it
    from json import JSONDecodeError
    from json import loads as json_loads

COLUMN_FIELDS = ("strategy", "model", "backend", "finish_reason", "doc_truncated", "sample")
MISSING, BAD_META, OTHER = "(missing)", "(bad meta)", "(other)"
MAX_EXAMPLES = 20


@dataclass
class Problems:
    """Rows set aside or labelled specially: counted by reason, with the first few located."""

    counts: dict[str, int] = field(default_factory=dict)
    examples: list[dict[str, Any]] = field(default_factory=list)

    def add(self, reason: str, file: str, rows: np.ndarray, column: str) -> None:
        self.counts[reason] = self.counts.get(reason, 0) + int(rows.size)
        for row in rows[: max(0, MAX_EXAMPLES - len(self.examples))]:
            self.examples.append({"file": file, "row": int(row), "field": column, "reason": reason})

    def merge(self, other: Problems) -> None:
        for reason, count in other.counts.items():
            self.counts[reason] = self.counts.get(reason, 0) + count
        self.examples += other.examples[: max(0, MAX_EXAMPLES - len(self.examples))]

    def to_dict(self) -> dict:
        return {"counts": self.counts, "examples": self.examples}


class FieldGroups:
    """The groups of one ``--by`` field: label -> GroupStats, at most ``max_groups`` labels."""

    def __init__(self, name: str, max_groups: int, new_group: Callable[[], Any]) -> None:
        self.name, self.max_groups, self.new_group = name, max_groups, new_group
        self.codes: dict[str, int] = {}
        self.labels: list[str] = []
        self.groups: list[Any] = []  # one accumulator per label (stats.GroupStats)
        self.numeric: dict[str, float] = {}  # label -> its numeric value when the raw value was a number

    def code(self, label: str, number: float | None = None) -> int:
        if label not in self.codes:
            special = label in (MISSING, BAD_META, OTHER)
            if len(self.labels) >= self.max_groups and not special:
                return self.code(OTHER)
            self.codes[label] = len(self.labels)
            self.labels.append(label)
            self.groups.append(self.new_group())
        if number is not None:
            self.numeric[label] = number
        return self.codes[label]

    def add(
        self,
        codes: np.ndarray,
        thinking: np.ndarray,
        doc: np.ndarray,
        is_length: np.ndarray,
        flags: np.ndarray | None = None,
    ) -> None:
        """Route each row of a batch to its group's accumulator (one sort, one slice per group)."""
        order = np.argsort(codes, kind="stable")
        cuts = np.flatnonzero(np.diff(codes[order])) + 1
        for idx in np.split(order, cuts):
            if idx.size:
                group_flags = None if flags is None else flags[idx]
                self.groups[int(codes[idx[0]])].add(thinking[idx], doc[idx], is_length[idx], group_flags)


def label_of(value: Any) -> tuple[str, float | None]:
    """A metadata value as a group label, plus its number when it is numeric."""
    if value is None:
        return MISSING, None
    if isinstance(value, bool):
        return str(value).lower(), None
    if isinstance(value, (int, float)):
        return (str(int(value)) if float(value).is_integer() else repr(value)), float(value)
    if isinstance(value, str):
        return value, None
    return json.dumps(value, sort_keys=True, ensure_ascii=False), None


def resolve_field(name: str) -> tuple[str, str]:
    """('run', '') | ('column', COLUMN) | ('meta', KEY) for a --by field name."""
    if name == "run":
        return "run", ""
    if name.startswith("meta."):
        return "meta", name[len("meta.") :]
    if name in COLUMN_FIELDS:
        return "column", name
    return "meta", name


def column_codes(column: pa.Array, groups: FieldGroups) -> np.ndarray:
    encoded = pc.dictionary_encode(column)
    lut = np.array(
        [groups.code(*label_of(v)) for v in encoded.dictionary.to_pylist()] + [groups.code(MISSING)], dtype=np.int64
    )
    indices = pc.fill_null(encoded.indices, len(lut) - 1).to_numpy(zero_copy_only=False)
    return lut[indices]


@dataclass
class ParsedMeta:
    """The batch's distinct meta strings, parsed once each; ``indices`` maps rows to them."""

    objects: list[dict | None]  # None: not a JSON object
    indices: np.ndarray  # row -> position in objects; len(objects) for a null meta


def parse_meta(column: pa.Array, file: str, row_numbers: np.ndarray, problems: Problems) -> ParsedMeta:
    # Many records share a meta string (same domain/audience/...): parse each distinct one once.
    encoded = pc.dictionary_encode(column)
    objects: list[dict | None] = []
    for text in encoded.dictionary.to_pylist():
        try:
            obj = json_loads(text)
        except JSONDecodeError:
            obj = None
        objects.append(obj if isinstance(obj, dict) else None)
    indices = pc.fill_null(encoded.indices, len(objects)).to_numpy(zero_copy_only=False).astype(np.int64)
    bad = [i for i, obj in enumerate(objects) if obj is None]
    if bad:
        rows = np.flatnonzero(np.isin(indices, bad))
        problems.add("meta is not a JSON object (grouped as '(bad meta)')", file, row_numbers[rows], "meta")
    return ParsedMeta(objects, indices)


class _CodeMemo(dict):
    """raw meta value (key) -> group code, computed on first sight."""

    def __init__(self, groups: FieldGroups) -> None:
        super().__init__()
        self.groups = groups

    def __missing__(self, key: Any) -> int:
        value = key[2] if type(key) is tuple and key[0] is _TYPED else key
        code = self.groups.code(BAD_META) if value is _BAD else self.groups.code(*label_of(value))
        self[key] = code
        return code


_BAD, _TYPED = object(), object()  # markers: unparseable meta; the (marker, type, value) key of a non-string


def meta_codes(meta: ParsedMeta, key: str, groups: FieldGroups) -> np.ndarray:
    # hot loop (one step per distinct meta): strings are their own memo key; other values are keyed
    # with a marker tuple so True and 1 (equal in Python) stay apart; unhashable values go slowly.
    values = [_BAD if obj is None else obj.get(key) for obj in meta.objects]
    memo = _CodeMemo(groups)
    try:
        codes = [memo[v] if type(v) is str else memo[(_TYPED, type(v), v)] for v in values]
    except TypeError:  # a list or object value
        codes = [groups.code(BAD_META) if v is _BAD else groups.code(*label_of(v)) for v in values]
    codes.append(groups.code(MISSING))  # null meta
    return np.array(codes, dtype=np.int64)[meta.indices]


def ordinal_levels(groups: FieldGroups, order: list[str] | None) -> list[tuple[str, float]] | None:
    """(label, ordinal value) ascending, for labels that have an order; None if the field is not ordinal."""
    present = [label for label in groups.labels if label not in (MISSING, BAD_META, OTHER)]
    if order:
        return [(label, float(i)) for i, label in enumerate(order) if label in groups.codes]
    numbers = {}
    for label in present:
        if label in groups.numeric:
            numbers[label] = groups.numeric[label]
        else:
            try:
                numbers[label] = float(label)
            except ValueError:
                return None
    return sorted(numbers.items(), key=lambda kv: kv[1]) or None
