"""The eval stage's configuration: its fields ARE the `tpt eval` CLI."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from tpt.config import device, field


@dataclass
class LocalModelConfig:
    """hf / vllm: a local model folder loaded in-process."""

    batch_size: int = field(
        8, flag="--micro-batch", deprecated=["--batch-size"], help="hf/vllm: sequences per forward pass (as train's)"
    )
    device: str = field("auto", parse=device, help="hf: auto | cpu | cuda | cuda:N")
    dtype: Literal["auto", "float32", "bfloat16", "float16"] = field("auto", help="hf/vllm weights")


@dataclass
class ServerModelConfig:
    """server: an OpenAI-compatible endpoint serving the model."""

    base_url: str | None = field(None, help="OpenAI-compatible server, e.g. http://127.0.0.1:8000/v1")
    model: str | None = field(None, help="with --base-url: the served model name")
    tokenizer: str | None = field(None, help="with --base-url and --server-logprobs: a local tokenizer folder")
    server_logprobs: bool = field(
        False,
        help="the server returns prompt logprobs (echo+logprobs, e.g. vLLM): "
        "allows boolq/mmlu over --base-url; transformers serve does not",
    )
    concurrency: int = field(8, help="with --base-url: requests in flight (as augment's --concurrency)")


@dataclass
class EvalConfig:
    """Benchmarks through lm-evaluation-harness, offline: one JSON per model and a table (docs/eval.md)."""

    models: list[str] = field(
        default_factory=list,
        positional=True,
        help="local HF model folders (tpt train checkpoints included); none with --base-url",
    )
    suite: str | None = field(None, help="paper-base | paper-post | all; neither this nor --tasks: paper-base")
    tasks: list[str] | None = field(
        None,
        split=True,
        help="tasks, comma-separated or repeated: gsm8k,gsm8k_cot,math,math500,boolq,mmlu,mmlu_pro,aime24,amc23",
    )
    data_dir: Path = field(Path("../shared/data/eval"), help="offline benchmark files (layout in docs/eval.md)")
    out: Path = field(Path("results"), help="output folder: <model>.json, comparison.md, tasks/ (rendered YAMLs)")
    limit: int | None = field(
        None, help="only the first N items of each task (of each MMLU subject / MMLU-Pro category): quick checks"
    )
    samples: int = field(4, help="AIME/AMC: draws per problem at temperature 0.6 for pass@1")
    max_gen_toks: int | None = field(
        None, help="one generation budget for every generative task; none: per-task budgets (lm-eval's)"
    )
    backend: str = field(
        "auto",
        help="model kind of local folders: auto (vllm when installed and a GPU exists, else hf) | hf | vllm; "
        "server with --base-url; or a plugin (entry point in group tpt.eval_models, or module:factory)",
    )
    chat: bool = field(False, help="wrap prompts in the model's chat template (SFT models)")
    local: LocalModelConfig = field(default_factory=LocalModelConfig, help="hf / vllm models (local folders)")
    server: ServerModelConfig = field(default_factory=ServerModelConfig, help="server models (--base-url)")
    seed: int = field(1234, help="seeds python, numpy, torch and the few-shot sampler")
    # --- subsets and logs
    mmlu_subjects: list[str] | None = field(None, split=True, help="MMLU subjects (comma-separated); none: all 57")
    mmlu_pro_categories: list[str] | None = field(
        None, split=True, help="MMLU-Pro categories (comma-separated); none: all 14"
    )
    log_samples: bool = field(False, help="also write every prompt, generation and score to <model>.samples/")
