"""Which model to evaluate and how lm-eval should load it: a local folder (hf / vllm) or a server."""

from __future__ import annotations

import functools
import importlib.util
import re
from dataclasses import dataclass, field
from pathlib import Path

from tpt.evaluate.catalog import TaskSpec
from tpt.evaluate.config import EvalConfig
from tpt.registry import Registry


class ModelNotLoadable(ValueError):
    pass


@dataclass
class ModelTarget:
    name: str  # file stem of <out>/<name>.json and the table's column
    source: str  # folder or base URL
    lm: str  # lm-eval model type: hf | vllm | tpt-local-completions | tpt-local-chat-completions
    args: dict = field(default_factory=dict)  # lm-eval model_args
    batch_size: int = 1  # lm-eval's batch size: sequences per forward pass, or prompts per request


def _safe_name(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", text).strip("_") or "model"


def check_folders(cfg: EvalConfig) -> None:
    """The local model folders' files, checked before torch or lm-eval load (a wrong path fails fast);
    a plugin model kind decides itself what its model names are."""
    if cfg.backend in ("auto", "hf", "vllm") and not cfg.server.base_url:
        for path in cfg.models:
            check_files(Path(path).expanduser())


def check_loadable(folder: Path) -> None:
    """Fail early, saying why, when ``folder`` is not a model transformers can load."""
    check_files(folder)
    from transformers import AutoConfig, AutoTokenizer

    try:
        AutoConfig.from_pretrained(folder)
    except Exception as err:
        raise ModelNotLoadable(f"{folder}/config.json cannot be read by transformers: {err}") from err
    try:
        AutoTokenizer.from_pretrained(folder)
    except Exception as err:
        raise ModelNotLoadable(f"{folder} has no loadable tokenizer ({type(err).__name__}: {err})") from err


def check_files(folder: Path) -> None:
    """A save_pretrained folder: config.json and weights (no import needed to tell)."""
    if not folder.exists():
        raise ModelNotLoadable(f"model folder {folder} does not exist")
    if not folder.is_dir():
        raise ModelNotLoadable(f"model path {folder} is a file; give the folder written by save_pretrained")
    if not (folder / "config.json").is_file():
        hint = ""
        if (folder / "train_config.json").is_file():  # a tpt train run that has not finished yet
            snapshots = sorted(p.name for p in folder.iterdir() if (p / "config.json").is_file())
            hint = f"; this tpt train run has no final model yet, its checkpoints: {', '.join(snapshots) or 'none'}"
        raise ModelNotLoadable(f"{folder} has no config.json: not a Hugging Face model folder{hint}")
    weights = [p for pattern in ("*.safetensors", "*.bin", "*.safetensors.index.json") for p in folder.glob(pattern)]
    if not weights:
        raise ModelNotLoadable(f"{folder} has a config.json but no weights (*.safetensors / *.bin)")


def _local_kind(cfg: EvalConfig) -> str:
    if cfg.backend != "auto":
        if cfg.backend == "vllm" and importlib.util.find_spec("vllm") is None:
            raise ModelNotLoadable("--backend vllm, but vllm is not installed (pip install vllm)")
        return cfg.backend
    import torch

    return "vllm" if importlib.util.find_spec("vllm") is not None and torch.cuda.is_available() else "hf"


def _device(cfg: EvalConfig) -> str:
    if cfg.local.device != "auto":
        return cfg.local.device
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


def model_targets(cfg: EvalConfig) -> list[ModelTarget]:
    """Every model the run names, checked before any benchmark starts.  The model kind (``--backend``;
    ``server`` with --base-url) is looked up in MODEL_KINDS: a factory ``(EvalConfig) -> [ModelTarget]``."""
    if cfg.server.base_url and cfg.models:
        raise ModelNotLoadable("give model folders or --base-url, not both")
    builtin_local = cfg.backend in ("auto", "hf", "vllm")
    kind = "server" if cfg.server.base_url and builtin_local else _local_kind(cfg)
    if kind != "server" and builtin_local and not cfg.models:
        raise ModelNotLoadable("no model: give one or more model folders, or --base-url URL --model NAME")
    try:
        make_targets = MODEL_KINDS.load(kind)
    except ValueError as err:  # PluginNotFound: names the known kinds
        raise ModelNotLoadable(str(err)) from None
    return list(make_targets(cfg))


def local_targets(cfg: EvalConfig, kind: str) -> list[ModelTarget]:
    """hf / vllm: each model folder checked loadable, named after its folder (unique in the run)."""
    targets: list[ModelTarget] = []
    used: set[str] = set()
    for path in cfg.models:
        folder = Path(path).expanduser()
        check_loadable(folder)
        name = _unique(_safe_name(folder.resolve().name), folder, used)
        targets.append(ModelTarget(name, str(folder), kind, _local_args(cfg, folder, kind), cfg.local.batch_size))
    return targets


def _unique(name: str, folder: Path, used: set[str]) -> str:
    if name in used:  # two runs' checkpoints both called "final": prefix the run folder
        name = _safe_name(f"{folder.resolve().parent.name}_{name}")
    base, k = name, 2
    while name in used:
        name, k = f"{base}-{k}", k + 1
    used.add(name)
    return name


def _local_args(cfg: EvalConfig, folder: Path, backend: str) -> dict:
    if backend == "vllm":
        from tpt.evaluate.vllm_local import vllm_args

        return vllm_args(cfg, folder)
    return {"pretrained": str(folder), "dtype": cfg.local.dtype, "device": _device(cfg)}


def server_targets(cfg: EvalConfig) -> list[ModelTarget]:
    server = cfg.server
    if not server.model:
        raise ModelNotLoadable("--base-url needs --model, the name the server serves the model under")
    base = server.base_url.rstrip("/")
    endpoint = "chat/completions" if cfg.chat else "completions"
    args = {
        "model": server.model,
        "base_url": f"{base}/{endpoint}",
        "num_concurrent": server.concurrency,
        "max_retries": 3,
        "seed": cfg.seed,
        "tokenized_requests": False,
        "timeout": 600,
    }
    if server.server_logprobs and not cfg.chat:
        # Log-likelihood requests need a tokenizer to split context from continuation.  Prompts go
        # as text (tokenized_requests False), which every server accepts; vLLM scores them the same.
        args.update(tokenizer_backend="huggingface", tokenizer=server.tokenizer or server.model)
    else:
        args["tokenizer_backend"] = None
    # tpt.evaluate.server_lm: lm-eval's models, with distinct seeds for the draws of sampled tasks.
    lm = "tpt-local-chat-completions" if cfg.chat else "tpt-local-completions"
    # One prompt per request (transformers serve rejects a list of prompts); --concurrency requests in flight.
    return [ModelTarget(_safe_name(server.model), server.base_url, lm, args, batch_size=1)]


# Model kinds, like augment's backends: built-ins here, plugins from entry points (group
# tpt.eval_models) or a module:factory name.  A factory takes the EvalConfig, returns ModelTargets.
MODEL_KINDS = Registry(
    "eval model",
    "--backend",
    {
        "hf": functools.partial(local_targets, kind="hf"),
        "vllm": functools.partial(local_targets, kind="vllm"),
        "server": server_targets,
    },
)


def check_server_tasks(cfg: EvalConfig, specs: list[TaskSpec]) -> None:
    """Log-likelihood tasks need prompt logprobs, which chat endpoints and transformers serve lack.

    Whether a completions server returns them is asked of the server itself (``server_logprobs``),
    so ``--server-logprobs`` is needed only to skip the question; when it answers yes,
    ``cfg.server.server_logprobs`` is set for the rest of the run."""
    needs = [s.name for s in specs if s.kind == "loglikelihood"]
    server = cfg.server
    if not server.base_url or not needs:
        return
    if not cfg.chat and not server.server_logprobs and server.model:
        server.server_logprobs = server_logprobs(server.base_url, server.model)
    if cfg.chat or not server.server_logprobs:
        runnable = [s.name for s in specs if s.kind == "generate"]
        raise ModelNotLoadable(
            f"{', '.join(needs)} score answers by log-likelihood, which needs a completions server that returns "
            "prompt logprobs (echo + logprobs: vLLM does, transformers serve does not); "
            f"{'chat endpoints never do' if cfg.chat else server.base_url + ' does not'}: drop them, or serve the "
            f"model with vLLM. Runnable here: {', '.join(runnable) or 'none'}"
        )
    if not (server.tokenizer or Path(server.model or "").is_dir()):
        raise ModelNotLoadable(
            f"{', '.join(needs)} over --base-url need the model's tokenizer to split context from continuation: "
            "pass --tokenizer FOLDER (the served model's tokenizer files)"
        )


def server_logprobs(base_url: str, model: str, timeout: float = 120.0) -> bool:
    """Does the server return prompt logprobs (``echo`` + ``logprobs``, the request lm-eval sends for
    log-likelihood)?  vLLM and SGLang do; transformers serve and most hosted APIs do not."""
    import httpx

    body = {
        "model": model,
        "prompt": "The sky is blue because",
        "max_tokens": 1,
        "temperature": 0.0,
        "echo": True,
        "logprobs": 1,
    }
    try:
        response = httpx.post(f"{base_url.rstrip('/')}/completions", json=body, timeout=timeout)
        logprobs = response.json()["choices"][0].get("logprobs") or {}
        values = logprobs.get("token_logprobs") or []
    except (httpx.HTTPError, ValueError, KeyError, IndexError, TypeError, AttributeError):
        return False
    # The prompt's tokens come back scored (the first has none): more than the one generated token.
    return response.status_code == 200 and len(values) > 2 and any(v is not None for v in values[1:])
