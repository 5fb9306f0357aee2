"""Counts as every stage's flags write them: ``50M`` <-> 50_000_000 (token budgets, save points, shard sizes).

Read at the boundary by the config layer (``field(..., count=True)``), so no stage parses them later.
"""

from __future__ import annotations

import re

_COUNT_SUFFIX = {"": 1, "k": 10**3, "m": 10**6, "b": 10**9, "g": 10**9, "t": 10**12}


def parse_count(value: str | int | float, what: str = "count") -> int:
    """Token counts as every stage's flags take them: '50M' -> 50_000_000, '1.5B', '2k', '1e6', 2048."""
    if isinstance(value, (int, float)):
        return int(value)
    match = re.fullmatch(r"\s*([0-9]*\.?[0-9]+(?:[eE][0-9]+)?)\s*([kmbgtKMBGT]?)\s*", str(value))
    if not match:
        raise ValueError(f"{what}: cannot read {value!r} as a count (examples: 2048, 500K, 50M, 1.5B)")
    return int(round(float(match.group(1)) * _COUNT_SUFFIX[match.group(2).lower()]))


def parse_counts(values: list[str] | str | None, what: str) -> list[int]:
    """A list of counts given as separate items and/or comma-separated: ['1M,2M', '5M'] (sorted, unique)."""
    if values is None:
        return []
    items = [values] if isinstance(values, (str, int, float)) else list(values)
    out: list[int] = []
    for item in items:
        parts = str(item).split(",") if isinstance(item, str) else [item]
        out += [parse_count(p, what) for p in parts if str(p).strip()]
    return sorted(set(out))


def format_count(n: int) -> str:
    """1_000_000 -> '1M', 2_500_000 -> '2.5M', 1234 -> '1.234K' (for folder names)."""
    for suffix, scale in (("B", 10**9), ("M", 10**6), ("K", 10**3)):
        if n >= scale and (n * 1000) % scale == 0:
            return f"{n / scale:.3f}".rstrip("0").rstrip(".") + suffix
    return str(n)
