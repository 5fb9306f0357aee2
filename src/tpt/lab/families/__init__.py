"""Task families: one module each, each exposing ``FAMILY`` (a ``TaskFamily``).

Families resolve through the one plugin registry (``tpt.registry``), like backends and strategies:
a built-in name below, an entry point in group ``tpt.lab_families`` (how an installed package adds
one), or ``module.path:OBJECT``.  A bare dotted module path (``--families mypkg.my_family``) still
names that module's ``FAMILY``.
"""

from __future__ import annotations

from tpt.lab.families.base import TaskFamily
from tpt.registry import PluginNotFound, Registry

BUILTIN: dict[str, str] = {
    "chain_mod10": "tpt.lab.families.chain_mod10:FAMILY",
    "multiply": "tpt.lab.families.multiply:FAMILY",
    "two_hop": "tpt.lab.families.two_hop:FAMILY",
    "divisibility": "tpt.lab.families.divisibility:FAMILY",
}
FAMILIES = Registry("lab family", "--families", dict(BUILTIN))


def load_family(name: str, seed: int = 0) -> TaskFamily:
    """A family by registered name, entry point or ``module:OBJECT``; its world built from ``seed``."""
    spec = name
    if name not in FAMILIES.names() and ":" not in name and all(p.isidentifier() for p in name.split(".")):
        spec = f"{name}:FAMILY"  # a bare module path: the module's FAMILY, as documented
    try:
        family = FAMILIES.load(spec)
    except PluginNotFound as e:
        known = ", ".join(FAMILIES.names())
        raise ValueError(f"unknown lab family {name!r}: not one of {known}, nor importable ({e})") from None
    if not isinstance(family, TaskFamily):
        raise ValueError(f"lab family {spec!r} is not a tpt.lab.families.base.TaskFamily instance")
    family.setup(seed)
    return family
