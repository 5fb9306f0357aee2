"""Lab task families resolve through tpt.registry: built-ins, module:OBJECT, a bare module path, errors."""

from __future__ import annotations

import sys

import pytest

from tpt.lab.families import FAMILIES, load_family
from tpt.lab.families.chain_mod10 import FAMILY as CHAIN


def test_builtin_and_module_object_and_bare_module_name_the_same_family():
    assert load_family("chain_mod10", seed=1) is CHAIN
    assert load_family("tpt.lab.families.chain_mod10:FAMILY", seed=1) is CHAIN
    assert load_family("tpt.lab.families.chain_mod10", seed=1) is CHAIN


def test_an_out_of_tree_family_registers_by_module_path(tmp_path, monkeypatch):
    (tmp_path / "my_lab_family.py").write_text(
        "from tpt.lab.families.divisibility import FAMILY as BASE\nMINE = BASE\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    assert load_family("my_lab_family:MINE", seed=0).name == "divisibility"
    FAMILIES.register("mine", "my_lab_family:MINE")
    try:
        assert load_family("mine", seed=0).name == "divisibility"
    finally:
        FAMILIES.builtins.pop("mine")
        sys.modules.pop("my_lab_family", None)


def test_unknown_or_wrong_type_is_a_clear_error(tmp_path, monkeypatch):
    with pytest.raises(ValueError, match="unknown lab family 'nope'.*chain_mod10"):
        load_family("nope")
    (tmp_path / "not_a_family.py").write_text("FAMILY = 3\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    with pytest.raises(ValueError, match="not a tpt.lab.families.base.TaskFamily"):
        load_family("not_a_family")
