"""The scan vLLM's CPU platform runs over every loaded module at engine start reads
``vars(obj).get("kernel")``; after numba is imported (tpt filter's kernels), llvmlite's library
wrapper broke it (CI failure: '_lib_fn_wrapper' object has no attribute 'get') until tpt's guard."""

from __future__ import annotations

import sys

import pytest


def test_guard_gives_llvmlites_library_wrapper_a_dict_vllms_scan_can_read():
    pytest.importorskip("numba")
    import numba  # noqa: F401  (loads llvmlite.binding.ffi, as tpt filter's kernels do)

    from tpt.vllm_launch import guard_llvmlite_for_vllm

    lib = sys.modules["llvmlite.binding.ffi"].lib
    lib._fntab.pop("__dict__", None)
    with pytest.raises(AttributeError):
        vars(lib).get("kernel")  # what vLLM's dispatcher does: the hazard is real
    guard_llvmlite_for_vllm()
    assert vars(lib).get("kernel") is None
    guard_llvmlite_for_vllm()  # idempotent
