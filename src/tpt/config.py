"""Generate argparse CLIs from typed config dataclasses (litgpt-style).

Each stage owns small config dataclasses; its CLI is derived from them, so defaults and help
live in one place.  Field metadata understood here:

  help="..."           the --help text (otherwise the field's docstring-less name is shown)
  positional=True      a positional argument (list types take one or more values)
  flag="--out"         override the flag name (default: --field-name)
  short="-o"           an extra short flag
  choices=[...]        allowed values (Literal types get this for free)

Supported types: str, int, float, bool (``--x/--no-x``), Path, Optional[T], list[T], Literal[...].
"""

from __future__ import annotations

import argparse
import dataclasses
import re
import types
import typing
from pathlib import Path
from typing import Any, Literal, Sequence, TypeVar, get_args, get_origin

T = TypeVar("T")


def field(default: Any = dataclasses.MISSING, *, help: str = "", default_factory: Any = dataclasses.MISSING, **meta: Any) -> Any:
    """A dataclass field with CLI metadata."""
    meta["help"] = help
    if default_factory is not dataclasses.MISSING:
        return dataclasses.field(default_factory=default_factory, metadata=meta)
    return dataclasses.field(default=default, metadata=meta)


def _unwrap_optional(tp: Any) -> tuple[Any, bool]:
    origin = get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        args = [a for a in get_args(tp) if a is not type(None)]
        if len(args) == 1:
            return args[0], True
    return tp, False


def _converter(tp: Any):
    if tp is Path:
        return Path
    if tp in (int, float, str):
        return tp
    return str


def add_dataclass_arguments(parser: argparse.ArgumentParser, cls: type, group_title: str | None = None) -> None:
    """Add one argument per field of dataclass ``cls`` (nested dataclasses are flattened)."""
    hints = typing.get_type_hints(cls)
    target = parser.add_argument_group(group_title) if group_title else parser
    for f in dataclasses.fields(cls):
        if not f.init or f.metadata.get("cli") is False:
            continue
        tp, _ = _unwrap_optional(hints[f.name])
        if dataclasses.is_dataclass(tp):
            add_dataclass_arguments(parser, tp, group_title=f.metadata.get("help") or f.name)
            continue
        _add_field(target, f, tp)


def _default_of(f: dataclasses.Field) -> Any:
    if f.default is not dataclasses.MISSING:
        return f.default
    if f.default_factory is not dataclasses.MISSING:  # type: ignore[misc]
        return f.default_factory()  # type: ignore[misc]
    return dataclasses.MISSING


def _add_field(parser: Any, f: dataclasses.Field, tp: Any) -> None:
    meta = dict(f.metadata)
    default = _default_of(f)
    required = default is dataclasses.MISSING
    help_text = meta.get("help", "")
    if not required and not isinstance(default, bool):
        help_text = f"{help_text} (default: {default})" if help_text else f"(default: {default})"
    kwargs: dict[str, Any] = {"help": help_text, "dest": f.name}
    origin = get_origin(tp)
    if origin is Literal:
        kwargs["choices"] = list(get_args(tp))
        kwargs["type"] = type(get_args(tp)[0])
    elif origin in (list, tuple, Sequence) or tp in (list, tuple):
        inner = get_args(tp)[0] if get_args(tp) else str
        kwargs["type"] = _converter(inner)
        kwargs["nargs"] = "+" if required or meta.get("positional") else "*"
    elif tp is bool:
        kwargs["action"] = argparse.BooleanOptionalAction
    else:
        kwargs["type"] = _converter(tp)
    if "choices" in meta:
        kwargs["choices"] = meta["choices"]
    if meta.get("positional"):
        kwargs.pop("dest")
        if not required:
            kwargs["default"] = default
            kwargs.setdefault("nargs", "?")
        parser.add_argument(f.name, metavar=meta.get("metavar", f.name.upper()), **kwargs)
        return
    names = [meta.get("flag", "--" + f.name.replace("_", "-"))]
    if "short" in meta:
        names.append(meta["short"])
    if required:
        kwargs["required"] = True
    else:
        kwargs["default"] = default
    parser.add_argument(*names, **kwargs)


def from_namespace(cls: type[T], ns: argparse.Namespace) -> T:
    """Build ``cls`` (and nested dataclasses) from a parsed namespace."""
    hints = typing.get_type_hints(cls)
    values: dict[str, Any] = {}
    for f in dataclasses.fields(cls):
        if not f.init:
            continue
        tp, _ = _unwrap_optional(hints[f.name])
        if dataclasses.is_dataclass(tp) and f.metadata.get("cli") is not False:
            values[f.name] = from_namespace(tp, ns)
        elif hasattr(ns, f.name):
            values[f.name] = getattr(ns, f.name)
    return cls(**values)


def make_parser(prog: str, description: str, *configs: type) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog=prog, description=description, formatter_class=argparse.RawDescriptionHelpFormatter)
    for cls in configs:
        add_dataclass_arguments(parser, cls)
    return parser


def parse(cls: type[T], argv: Sequence[str] | None, prog: str, description: str = "") -> T:
    """Parse ``argv`` into a ``cls`` instance; ``--help`` is generated from the fields."""
    parser = make_parser(prog, description or (cls.__doc__ or ""), cls)
    return from_namespace(cls, parser.parse_args(argv))


def to_dict(obj: Any) -> Any:
    """JSON-friendly dict of a (nested) config dataclass: Paths become strings."""
    if dataclasses.is_dataclass(obj):
        return {f.name: to_dict(getattr(obj, f.name)) for f in dataclasses.fields(obj)}
    if isinstance(obj, Path):
        return str(obj)
    if isinstance(obj, (list, tuple)):
        return [to_dict(x) for x in obj]
    if isinstance(obj, dict):
        return {k: to_dict(v) for k, v in obj.items()}
    return obj


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
