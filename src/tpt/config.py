"""Generate argparse CLIs from typed config dataclasses (litgpt-style).

Each stage owns small config dataclasses; its CLI is derived from them, so defaults and help
live in one place.  Field metadata understood here:

  help="..."           the --help text (otherwise the field's docstring-less name is shown)
  positional=True      a positional argument (a list takes one or more values; zero if it has a default)
  flag="--out"         override the flag name (default: --field-name)
  short="-o"           an extra short flag
  choices=[...]        allowed values (Literal types get this for free)
  count=True           an int field that also reads '50M', '1.5B', '2k' (typed at the boundary);
                       on a list, '1M,2M' items too
  split=True           a list whose items may be given comma-separated ('gsm8k,math', '0.3,0.4'), one value
                       per occurrence of the flag: '--by a,b RUN' leaves RUN to the positional
  repeat=True          a list flag that takes one value per occurrence (values that hold commas: FIELD=a,b)
  parse=fn             a field's own converter (str -> typed value; ValueError is a usage error)
  deprecated=["--x"]   old spellings of the flag, still accepted with a warning

Components own small dataclasses (a backend's settings, sampling, an optimizer, ...) that a stage
config composes as fields.  The CLI stays flat: a nested field's flag is its own name (or ``flag=``),
so ``--temperature`` sets ``config.sampling.temperature``; every flat name must be unique within a
stage.  ``build(Cls, **values)`` is the Python API's boundary: flat or nested values, typed exactly
as the same flags or config-file keys would be.

Every generated CLI also takes ``--config FILE`` (YAML, TOML or JSON — a run's manifest.json
included; flags on the command line override it) and ``--print-config`` (print the effective config
as YAML and exit). Repeated list flags accumulate (``--source a --source b``); abbreviations of
flags are refused (``allow_abbrev=False``).

Supported types: str, int, float, bool (``--x/--no-x``), Path, Optional[T], list[T], Literal[...].
"""

from __future__ import annotations

import argparse
import dataclasses
import re
import sys
import types
import typing
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal, TypeVar, get_args, get_origin

from tpt.counts import parse_count, parse_counts

T = TypeVar("T")


def field(
    default: Any = dataclasses.MISSING, *, help: str = "", default_factory: Any = dataclasses.MISSING, **meta: Any
) -> Any:
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


def is_component(f: dataclasses.Field, tp: Any) -> bool:
    """A nested config whose fields are flags of their own; a dataclass with ``parse=`` is one value
    (a record such as ``ShardRange``, read from its text form)."""
    return dataclasses.is_dataclass(tp) and "parse" not in f.metadata


def _converter(tp: Any, meta: dict | None = None):
    if meta and meta.get("count"):
        return _count_arg
    if meta and meta.get("parse"):  # a field's own checker: ValueError -> argparse's usage error
        return _checked(meta["parse"])
    if tp is Path:
        return Path
    if tp in (int, float, str):
        return tp
    return str


def _count_list_arg(value: str | int) -> list[int]:
    """'1M,2M' -> [1_000_000, 2_000_000]: count lists may be comma-separated."""
    try:
        return parse_counts(value if isinstance(value, str) else [value], "count")
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


class _ExtendFlat(argparse._ExtendAction):
    """``--save-at 1M,2M --save-at 5M`` -> [1M, 2M, 5M], sorted and unique."""

    def __call__(self, parser, namespace, values, option_string=None):
        items = list(getattr(namespace, self.dest, None) or []) + [x for v in values for x in v]
        setattr(namespace, self.dest, sorted(set(items)))


def _split_arg(convert):
    """'a,b' -> [convert('a'), convert('b')]: a ``split`` list's items may be comma-separated."""

    def split(value: Any) -> list:
        parts = [p.strip() for p in value.split(",") if p.strip()] if isinstance(value, str) else [value]
        try:
            return [convert(p) for p in parts]
        except ValueError:
            raise argparse.ArgumentTypeError(f"{value!r}: expected comma-separated {convert.__name__} values") from None

    split.__name__ = f"{convert.__name__} list"
    return split


class _ExtendNames(argparse._ExtendAction):
    """``--tasks a,b --tasks c`` -> [a, b, c], in order, each once."""

    def __call__(self, parser, namespace, values, option_string=None):
        items = list(getattr(namespace, self.dest, None) or []) + [x for v in values for x in v]
        setattr(namespace, self.dest, list(dict.fromkeys(items)))


def _key_value(value: str | tuple) -> tuple[str, str]:
    if isinstance(value, tuple):
        return value
    key, sep, rest = str(value).partition("=")
    if not sep or not key:
        raise argparse.ArgumentTypeError(f"{value!r}: expected KEY=VALUE")
    return key, rest


def _count_arg(value: str | int) -> int:
    try:
        return parse_count(value)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _checked(check):
    def convert(value: str) -> Any:
        try:
            return check(value)
        except ValueError as exc:
            raise argparse.ArgumentTypeError(str(exc)) from None

    convert.__name__ = check.__name__  # argparse names it in "invalid <name> value"
    convert.typed_as = getattr(check, "typed_as", None)  # type: ignore[attr-defined]
    return convert


def device(value: str) -> str:
    """``--device`` in every stage: auto | cpu | cuda | cuda:N (use with ``field(..., parse=device)``)."""
    if re.fullmatch(r"auto|cpu|cuda(:[0-9]+)?", value):
        return value
    raise ValueError(f"{value!r}: expected auto, cpu, cuda or cuda:N")


def add_dataclass_arguments(parser: argparse.ArgumentParser, cls: type, group_title: str | None = None) -> None:
    """Add one argument per field of dataclass ``cls`` (nested dataclasses are flattened)."""
    hints = typing.get_type_hints(cls)
    target = parser.add_argument_group(group_title) if group_title else parser
    for f in dataclasses.fields(cls):
        if not f.init or f.metadata.get("cli") is False:
            continue
        tp, _ = _unwrap_optional(hints[f.name])
        if is_component(f, tp):
            add_dataclass_arguments(parser, tp, group_title=f.metadata.get("help") or f.name)
            continue
        _add_field(target, f, tp)


def _default_of(f: dataclasses.Field) -> Any:
    if f.default is not dataclasses.MISSING:
        return f.default
    if f.default_factory is not dataclasses.MISSING:  # type: ignore[misc]
        return f.default_factory()  # type: ignore[misc]
    return dataclasses.MISSING


def flat_name(f: dataclasses.Field) -> str:
    """The field's name on the command line and in flat config files: ``--backend`` -> ``backend``."""
    flag = f.metadata.get("flag")
    return flag.lstrip("-").replace("-", "_") if flag else f.name


def leaves(cls: type, path: tuple[str, ...] = ()) -> dict[str, tuple[tuple[str, ...], dataclasses.Field]]:
    """Every CLI field of ``cls`` and its nested configs: flat name -> (attribute path, field)."""
    hints = typing.get_type_hints(cls)
    out: dict[str, tuple[tuple[str, ...], dataclasses.Field]] = {}
    for f in dataclasses.fields(cls):
        if not f.init or f.metadata.get("cli") is False:
            continue
        tp, _ = _unwrap_optional(hints[f.name])
        if is_component(f, tp):
            out.update(leaves(tp, (*path, f.name)))
        else:
            out[flat_name(f)] = ((*path, f.name), f)
    return out


def flat_values(config: Any) -> dict[str, Any]:
    """A (nested) config as one flat mapping: flat name -> value (fingerprints, old-style manifests)."""
    values = {}
    for name, (path, _) in leaves(type(config)).items():
        obj = config
        for part in path:
            obj = getattr(obj, part)
        values[name] = obj
    return values


def _add_field(parser: Any, f: dataclasses.Field, tp: Any) -> None:
    meta = dict(f.metadata)
    default = _default_of(f)
    required = default is dataclasses.MISSING
    help_text = meta.get("help", "")
    if not required and not isinstance(default, bool) and "(default" not in help_text:
        shown = "none" if default is None or default == [] else default
        help_text = f"{help_text} (default: {shown})" if help_text else f"(default: {shown})"
    kwargs: dict[str, Any] = {"help": help_text, "dest": flat_name(f)}
    origin = get_origin(tp)
    is_list = origin in (list, tuple, Sequence, dict) or tp in (list, tuple)
    if origin is dict:  # repeated KEY=VALUE, typed into a dict by from_namespace
        kwargs.update(type=_key_value, nargs="*", metavar="KEY=VALUE")
    elif origin is Literal:
        kwargs["choices"] = list(get_args(tp))
        kwargs["type"] = type(get_args(tp)[0])
    elif is_list:
        inner = get_args(tp)[0] if get_args(tp) else str
        kwargs["type"] = (
            _count_list_arg
            if meta.get("count")
            else _split_arg(_converter(inner, meta))
            if meta.get("split")
            else _converter(inner, meta)
        )
        one_each = meta.get("split") or meta.get("repeat")  # a list value never swallows a positional after it
        kwargs["nargs"] = 1 if one_each else "+" if required else "*"  # a list with a default may be left empty
    elif tp is bool:
        kwargs["action"] = argparse.BooleanOptionalAction
    else:
        kwargs["type"] = _converter(tp, meta)
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
    if meta.get("deprecated"):
        names += meta["deprecated"]
        kwargs["action"] = _deprecated_action(kwargs.get("action"), names[0])  # type: ignore[arg-type]
    if is_list:
        # '--x a --x b' accumulates (required lists too); a default applies only when the flag is absent
        flat = _ExtendFlat if meta.get("count") else _ExtendNames if meta.get("split") else "extend"
        kwargs.update(action=flat, default=None)
    if required:
        kwargs["required"] = True
    elif not is_list:
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
        if is_component(f, tp) and f.metadata.get("cli") is not False:
            values[f.name] = from_namespace(tp, ns)
        elif get_origin(tp) is dict and getattr(ns, flat_name(f), None) is not None:
            values[f.name] = dict(getattr(ns, flat_name(f)))
        elif getattr(ns, flat_name(f), None) is not None or (hasattr(ns, flat_name(f)) and _default_of(f) is None):
            values[f.name] = getattr(ns, flat_name(f))
    return cls(**values)


def _deprecated_action(base: Any, current: str) -> type[argparse.Action]:
    """An action that warns when the flag was spelled one of its old names, then acts as ``base``."""
    if base is None:
        base = argparse._StoreAction
    elif isinstance(base, str):
        base = {"extend": argparse._ExtendAction}[base]

    class Deprecated(base):  # type: ignore[misc, valid-type]
        def __call__(self, parser, namespace, values, option_string=None):
            if option_string and option_string != current and option_string in self.option_strings[1:]:
                print(f"{parser.prog}: warning: {option_string} is deprecated; use {current}", file=sys.stderr)
            super().__call__(parser, namespace, values, option_string)

    return Deprecated


def make_parser(prog: str, description: str, *configs: type) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=prog, description=description, formatter_class=argparse.RawDescriptionHelpFormatter, allow_abbrev=False
    )
    for cls in configs:
        add_dataclass_arguments(parser, cls)
    parser.add_argument(
        "--config",
        type=Path,
        metavar="FILE",
        help="read options from a YAML/TOML/JSON file (a run's manifest.json too); flags override it",
    )
    parser.add_argument("--print-config", action="store_true", help="print the effective config as YAML and exit")
    return parser


def parse(cls: type[T], argv: Sequence[str] | None, prog: str, description: str = "") -> T:
    """Parse ``argv`` into a ``cls`` instance; ``--help`` is generated from the fields.

    ``--config FILE`` supplies values first (checked against ``cls``'s fields, typed like flags),
    the command line overrides them; ``--print-config`` prints the result and exits.
    """
    from tpt.configfile import ConfigFileError, apply_config_file, dump_config

    parser = make_parser(prog, description or (cls.__doc__ or ""), cls)
    try:
        from_file = apply_config_file(parser, cls, argv)
    except ConfigFileError as exc:  # exit 2 with usage, like a bad flag
        parser.error(str(exc))
    ns = parser.parse_intermixed_args(argv)  # positionals anywhere: `RUN1 --by a,b RUN2`
    config = _finish(cls, ns, from_file)
    if ns.print_config:
        sys.stdout.write(dump_config(config))
        raise SystemExit(0)
    return config


def build(cls: type[T], **values: Any) -> T:
    """``cls`` from flat or nested values (Python API), typed as the same flags would be:
    ``build(TrainConfig, data=d, out=o, tokens="1M", lr=1e-3)`` or ``..., optimizer={"lr": 1e-3}``.
    Component dataclass instances are taken as they are.  A wrong name or value raises ValueError."""
    from tpt.configfile import apply_values

    parser = make_parser(cls.__name__, "", cls)
    parser.exit_on_error = False
    parser.error = _raise_value_error  # type: ignore[method-assign]  # an API call must not exit the process
    try:
        late = apply_values(parser, cls, _split_objects(cls, values, objects := {}), f"{cls.__name__}(...)")
        ns = parser.parse_args([])
    except argparse.ArgumentError as exc:
        raise ValueError(str(exc)) from None
    config = _finish(cls, ns, late)
    for name, obj in objects.items():
        setattr(config, name, obj)
    return config


def _raise_value_error(message: str) -> None:
    raise ValueError(message)


def _split_objects(cls: type, values: dict[str, Any], objects: dict[str, Any]) -> dict[str, Any]:
    """Take component instances (``sampling=SamplingConfig(...)``) out of ``values`` into ``objects``;
    a record value (``shard_range=ShardRange(0, 4)``) stays: it is typed like its flag."""
    hints = typing.get_type_hints(cls)
    components = {
        f.name for f in dataclasses.fields(cls) if f.init and is_component(f, _unwrap_optional(hints[f.name])[0])
    }
    rest = {}
    for key, value in values.items():
        if key in components and dataclasses.is_dataclass(value) and not isinstance(value, type):
            objects[key] = value
        else:
            rest[key] = value
    return rest


def _finish(cls: type[T], ns: argparse.Namespace, late: dict[str, Any]) -> T:
    for name, value in late.items():  # a list flag on the command line replaces the file's list
        if getattr(ns, name, None) is None:
            setattr(ns, name, value)
    return from_namespace(cls, ns)


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
