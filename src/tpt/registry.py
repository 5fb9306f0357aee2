"""One plugin registry for every kind of named component (backends, prompt strategies, executors, ...).

A name is resolved, in this order, from:

1. the kind's built-in table (``name -> "module:object"``, imported only when asked for, so a user
   without one backend's dependencies can still use the others) or an object registered in-process;
2. a Python entry point in the kind's group (``tpt.strategies``, ``tpt.executors``, ...): how an
   installed package adds a plugin without tpt knowing it;
3. a ``module.path:object`` name: a plugin straight from an importable module, nothing to install.

A spec may carry an argument after the name: ``file:PATH``, ``back-thinking:PATH``,
``mypkg.prompts:make:ARG``; what the argument means is the plugin's business.  An unknown name is a
``PluginNotFound`` (a ValueError: the CLI reports it as a usage error) listing the known names.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass, field
from importlib.metadata import entry_points
from typing import Any

# The entry-point group of each kind (for third-party packages' pyproject.toml).
GROUPS = {
    "backend": "tpt.backends",
    "strategy": "tpt.strategies",
    "executor": "tpt.executors",
    "eval model": "tpt.eval_models",
    "lab family": "tpt.lab_families",
}


class PluginNotFound(ValueError):
    """A name no table, entry point or module resolves."""


@dataclass(frozen=True)
class Spec:
    """A parsed plugin spec: the name that was resolved and the argument after it (or None)."""

    name: str
    arg: str | None = None


@dataclass
class Registry:
    kind: str  # "strategy": used in messages and to find the entry-point group
    flag: str  # "--strategy": the option users type, named in errors
    builtins: dict[str, Any] = field(default_factory=dict)  # name -> "module:object" or the object itself

    @property
    def group(self) -> str:
        return GROUPS[self.kind]

    def register(self, name: str, target: Any) -> None:
        """Add (or replace) a plugin in this process: an object, or a ``"module:object"`` string."""
        self.builtins[name] = target

    def names(self) -> list[str]:
        """Every name known without importing a module: built-ins, then installed entry points."""
        found = list(self.builtins)
        return found + sorted({ep.name for ep in self._entry_points()} - set(found))

    def resolve(self, spec: str) -> tuple[Any, Spec]:
        """The plugin object a spec names, and the parsed spec (its argument included)."""
        name, sep, arg = spec.partition(":")
        parsed = Spec(name, arg if sep else None)
        if name in self.builtins:
            return _load(self.builtins[name], self._what(name)), parsed
        for ep in self._entry_points():
            if ep.name == name:
                return _load(ep.value, f"{self._what(name)} (entry point in {self.group})"), parsed
        module, _, rest = spec.partition(":")
        if rest and _looks_like_module(module):
            attr, sep, arg = rest.partition(":")
            target = f"{module}:{attr}"
            return _load(target, self._what(target)), Spec(target, arg if sep else None)
        raise PluginNotFound(
            f"unknown {self.flag} {spec!r}; known: {', '.join(self.names())} "
            f"(or module.path:object, or an entry point in group {self.group!r})"
        )

    def load(self, spec: str) -> Any:
        """The plugin object a spec names, for kinds whose plugins take no argument."""
        plugin, parsed = self.resolve(spec)
        if parsed.arg is not None:
            raise ValueError(f"{self.flag} {spec!r}: {parsed.name} takes no ':ARGUMENT'")
        return plugin

    def _what(self, name: str) -> str:
        return f"{self.flag} {name!r}"

    def _entry_points(self):
        return entry_points(group=self.group)


def _looks_like_module(text: str) -> bool:
    return bool(text) and all(part.isidentifier() for part in text.split("."))


def _load(target: Any, what: str) -> Any:
    if not isinstance(target, str):
        return target
    module, _, attr = target.partition(":")
    try:
        obj = importlib.import_module(module)
    except ModuleNotFoundError as err:
        # the plugin's module (or a package above it) is missing, not one of the plugin's own imports
        if err.name is not None and (module == err.name or module.startswith(err.name + ".")):
            raise PluginNotFound(f"{what}: no module named {module!r}") from None
        raise  # a dependency the plugin needs: its own message says what to install
    for part in attr.split(".") if attr else []:
        try:
            obj = getattr(obj, part)
        except AttributeError:
            raise PluginNotFound(f"{what}: module {module!r} has no attribute {attr!r}") from None
    return obj
