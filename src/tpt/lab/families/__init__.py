"""Task families: one module each, each exposing ``FAMILY`` (a ``TaskFamily``).

Built-in families are named below; a user's own family is any importable module with a
``FAMILY`` attribute, named by its dotted path (``--families mypkg.my_family``).
"""

from __future__ import annotations

import importlib

from tpt.lab.families.base import TaskFamily

BUILTIN: dict[str, str] = {
    "chain_mod10": "tpt.lab.families.chain_mod10",
    "multiply": "tpt.lab.families.multiply",
    "two_hop": "tpt.lab.families.two_hop",
    "divisibility": "tpt.lab.families.divisibility",
}


def load_family(name: str, seed: int = 0) -> TaskFamily:
    """A built-in family by name, or a user module by dotted path; its world built from ``seed``."""
    module_name = BUILTIN.get(name, name)
    try:
        module = importlib.import_module(module_name)
    except ImportError as e:
        raise ValueError(
            f"unknown lab family {name!r}: not built-in ({', '.join(BUILTIN)}) and not importable ({e})"
        ) from e
    family = getattr(module, "FAMILY", None)
    if not isinstance(family, TaskFamily):
        raise ValueError(f"lab family module {module_name} has no FAMILY (a tpt.lab.families.base.TaskFamily instance)")
    family.setup(seed)
    return family
