"""Experiment files for every generated CLI: ``--config FILE`` in, ``--print-config`` out.

A config file is the YAML (or TOML / JSON) form of a stage's config dataclass: the same names as
the flags (``max_thinking_tokens`` or ``max-thinking-tokens``), nested sections for nested configs
or flat keys, as ``--print-config`` writes it. A run's ``manifest.json`` is accepted too (its
``config`` section is used), so a manifest replays its run. Values are typed exactly as the same
flag's value would be; an unknown key is an error naming the file and the key.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import types
import typing
from collections.abc import Sequence
from pathlib import Path
from typing import Any

MANIFEST_KEYS = {"stage", "fingerprint"}


def config_path(argv: Sequence[str] | None) -> Path | None:
    args = list(argv or [])
    for i, arg in enumerate(args):
        if arg == "--config" and i + 1 < len(args):
            return Path(args[i + 1])
        if arg.startswith("--config="):
            return Path(arg.split("=", 1)[1])
    return None


def load_file(path: Path) -> dict:
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise SystemExit(f"--config {path}: cannot read it ({exc.strerror or exc})") from None
    try:
        if path.suffix == ".toml":
            import tomllib

            data = tomllib.loads(text)
        elif path.suffix == ".json":
            data = json.loads(text)
        else:
            import yaml

            data = yaml.safe_load(text) or {}
    except Exception as exc:  # the parsers' own messages carry line and column
        raise SystemExit(f"--config {path}: not valid {path.suffix.lstrip('.') or 'YAML'}: {exc}") from None
    if not isinstance(data, dict):
        raise SystemExit(f"--config {path}: expected a mapping of option names to values, got {type(data).__name__}")
    if MANIFEST_KEYS <= set(data) and isinstance(data.get("config"), dict):
        data = data["config"]  # a run's manifest: replay its config
    return data


def flatten(cls: type, data: dict, path: Path) -> dict[str, Any]:
    """``{'sampling': {'temperature': 1}}`` or ``{'temperature': 1}`` -> ``{'temperature': 1}``, checked."""
    hints = typing.get_type_hints(cls)
    by_name = {f.name: f for f in dataclasses.fields(cls) if f.init}
    out: dict[str, Any] = {}
    for key, value in data.items():
        name = str(key).replace("-", "_")
        f = by_name.get(name)
        nested = f is not None and dataclasses.is_dataclass(_strip_optional(hints[name]))
        if nested and isinstance(value, dict):
            out.update(flatten(_strip_optional(hints[name]), value, path))
            continue
        if f is None:
            inner = _find_nested(cls, hints, name)
            if inner is None:
                known = ", ".join(sorted(by_name))
                raise SystemExit(f"--config {path}: unknown option {key!r} (options: {known})")
            out.update(flatten(inner, {name: value}, path))
            continue
        if f.metadata.get("cli") is False:
            continue
        out[name] = value
    return out


def _strip_optional(tp: Any) -> Any:
    args = [a for a in typing.get_args(tp) if a is not type(None)]
    return args[0] if typing.get_origin(tp) in (typing.Union, types.UnionType) and len(args) == 1 else tp


def _find_nested(cls: type, hints: dict, name: str) -> type | None:
    """The nested config dataclass (flattened into the CLI) that owns field ``name``."""
    for f in dataclasses.fields(cls):
        tp = _strip_optional(hints[f.name])
        if dataclasses.is_dataclass(tp):
            inner_hints = typing.get_type_hints(tp)
            if name in {g.name for g in dataclasses.fields(tp)} or _find_nested(tp, inner_hints, name):
                return tp
    return None


def _typed(action: argparse.Action, value: Any, path: Path) -> Any:
    """Type a file value exactly as the flag would: the action's converter, list items, choices."""
    if isinstance(value, list):
        return [_typed_one(action, v, path) for v in value]
    if action.nargs in ("+", "*") and value is not None:
        return [_typed_one(action, value, path)]
    return _typed_one(action, value, path)


def _typed_one(action: argparse.Action, value: Any, path: Path) -> Any:
    if value is None or isinstance(action, argparse.BooleanOptionalAction):
        if isinstance(action, argparse.BooleanOptionalAction) and not isinstance(value, bool):
            raise SystemExit(f"--config {path}: {action.dest} must be true or false, got {value!r}")
        return value
    convert = action.type or str
    try:
        typed = convert(value)
    except (TypeError, ValueError, argparse.ArgumentTypeError) as exc:
        raise SystemExit(f"--config {path}: {action.dest}: {exc}") from None
    if action.choices is not None and typed not in action.choices:
        choices = ", ".join(map(str, action.choices))
        raise SystemExit(f"--config {path}: {action.dest} must be one of {choices}, got {value!r}")
    return typed


def apply_config_file(parser: argparse.ArgumentParser, cls: type, argv: Sequence[str] | None) -> dict[str, Any]:
    """Make the file's values the parser's defaults. Returns the values of accumulating list flags,
    which apply after parsing only when the flag is absent (a flag replaces the file's list)."""
    path = config_path(argv)
    if path is None:
        return {}
    values = flatten(cls, load_file(path), path)
    actions = {a.dest: a for a in parser._actions}
    late: dict[str, Any] = {}
    for name, value in values.items():
        action = actions[name]
        typed = _typed(action, value, path)
        if isinstance(action, argparse._ExtendAction):
            late[name] = typed
            continue
        action.default, action.required = typed, False
        if not action.option_strings and action.nargs == "+":
            action.nargs = "*"  # a positional the file supplies may be left off the command line
    return late


def dump_config(config: Any) -> str:
    import yaml

    from tpt.config import to_dict

    return yaml.safe_dump(to_dict(config), sort_keys=False, allow_unicode=True)
