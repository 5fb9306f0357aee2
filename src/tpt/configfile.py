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
import sys
import types
import typing
from collections.abc import Sequence
from pathlib import Path
from typing import Any

MANIFEST_KEYS = {"stage", "fingerprint"}


class ConfigFileError(ValueError):
    """A config file (or Python-API value) that cannot be read or names an unknown option: a usage error."""


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
        raise ConfigFileError(f"--config {path}: cannot read it ({exc.strerror or exc})") from None
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
        raise ConfigFileError(f"--config {path}: not valid {path.suffix.lstrip('.') or 'YAML'}: {exc}") from None
    if not isinstance(data, dict):
        raise ConfigFileError(
            f"--config {path}: expected a mapping of option names to values, got {type(data).__name__}"
        )
    if MANIFEST_KEYS <= set(data) and isinstance(data.get("config"), dict):
        data = data["config"]  # a run's manifest: replay its config
    return data


def flatten(cls: type, data: dict, where: str) -> dict[str, Any]:
    """Nested sections (``{'sampling': {'temperature': 1}}``, as ``--print-config`` writes them) or flat
    keys (``{'temperature': 1}``, as older manifests hold them) -> ``{'temperature': 1}``, checked."""
    from tpt.config import flat_name, is_component, leaves

    hints = typing.get_type_hints(cls)
    by_name = {f.name: f for f in dataclasses.fields(cls) if f.init}
    flat = leaves(cls)
    renamed = {
        old.lstrip("-").replace("-", "_"): new
        for new, (_, f) in flat.items()
        for old in f.metadata.get("deprecated", ())
    }
    retired = getattr(cls, "retired_keys", {})
    out: dict[str, Any] = {}
    for key, value in data.items():
        if key in retired:
            print(f"{where}: ignoring {key!r}: {retired[key]}", file=sys.stderr)
            continue
        name = renamed.get(str(key).replace("-", "_"), str(key).replace("-", "_"))  # old manifests' names
        f = by_name.get(name)
        inner = _strip_optional(hints[name]) if f is not None else None
        if f is not None and is_component(f, inner) and isinstance(value, dict):
            out.update(flatten(inner, value, where))
        elif f is not None and f.metadata.get("cli") is False:
            continue
        elif f is not None and not is_component(f, inner):
            out[flat_name(f)] = value
        elif name in flat:
            out[name] = value
        else:
            known = ", ".join(sorted(set(by_name) | set(flat)))
            raise ConfigFileError(f"{where}: unknown option {key!r} (options: {known})")
    return out


def _strip_optional(tp: Any) -> Any:
    args = [a for a in typing.get_args(tp) if a is not type(None)]
    return args[0] if typing.get_origin(tp) in (typing.Union, types.UnionType) and len(args) == 1 else tp


def _typed(action: argparse.Action, value: Any, where: str) -> Any:
    """Type a file value exactly as the flag would: the action's converter, list items, choices."""
    if isinstance(value, dict) and getattr(action.type, "typed_as", None) is None:  # a KEY=VALUE mapping
        value = [(str(k), str(v)) for k, v in value.items()]
    if isinstance(value, list):
        typed = [_typed_one(action, v, where) for v in value]
        return [x for item in typed for x in (item if isinstance(item, list) else [item])]  # '1M,2M' items
    if action.nargs in ("+", "*", 1) and value is not None:
        return _typed(action, [value], where)
    return _typed_one(action, value, where)


def _typed_one(action: argparse.Action, value: Any, where: str) -> Any:
    if value is None or isinstance(action, argparse.BooleanOptionalAction):
        if isinstance(action, argparse.BooleanOptionalAction) and not isinstance(value, bool):
            raise ConfigFileError(f"{where}: {action.dest} must be true or false, got {value!r}")
        return value
    convert = action.type or str
    try:
        typed = value if _already_typed(convert, value) else convert(value)
    except (TypeError, ValueError, argparse.ArgumentTypeError) as exc:
        raise ConfigFileError(f"{where}: {action.dest}: {exc}") from None
    if action.choices is not None and typed not in action.choices:
        choices = ", ".join(map(str, action.choices))
        raise ConfigFileError(f"{where}: {action.dest} must be one of {choices}, got {value!r}")
    return typed


def _already_typed(convert: Any, value: Any) -> bool:
    """A Python caller's typed value (a SourceSpec, a Path) passes as it is; a bool is never an int."""
    return (
        not isinstance(value, (str, bool))
        and getattr(convert, "typed_as", None) is not None
        and isinstance(value, convert.typed_as)
    )


def apply_config_file(parser: argparse.ArgumentParser, cls: type, argv: Sequence[str] | None) -> dict[str, Any]:
    """Make the file's values the parser's defaults. Returns the values of accumulating list flags,
    which apply after parsing only when the flag is absent (a flag replaces the file's list)."""
    path = config_path(argv)
    if path is None:
        return {}
    return apply_values(parser, cls, load_file(path), f"--config {path}")


def apply_values(parser: argparse.ArgumentParser, cls: type, data: dict, where: str) -> dict[str, Any]:
    """``data`` (nested or flat keys) becomes the parser's defaults, typed as flags; see apply_config_file."""
    values = flatten(cls, data, where)
    actions = {a.dest: a for a in parser._actions}
    late: dict[str, Any] = {}
    for name, value in values.items():
        action = actions[name]
        typed = _typed(action, value, where)
        if isinstance(action, argparse._ExtendAction):
            late[name], action.required = typed, False
            continue
        action.default, action.required = typed, False
        if not action.option_strings and action.nargs == "+":
            action.nargs = "*"  # a positional the file supplies may be left off the command line
    return late


def dump_config(config: Any) -> str:
    import yaml

    from tpt.config import to_dict

    return yaml.safe_dump(to_dict(config), sort_keys=False, allow_unicode=True)
