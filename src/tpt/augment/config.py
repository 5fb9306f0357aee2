"""The augment stage's configuration: one small config per component, composed into ``AugmentConfig``.

The CLI flags stay flat (``--temperature`` sets ``config.sampling.temperature``; tpt.config maps
them).  Components: ``prompt`` (strategy, document cut), ``sampling``, ``backend`` (with ``openai``
and ``local`` settings; a backend factory receives only its ``BackendConfig`` and the
``SamplingConfig``), ``serve`` (servers tpt starts) and ``executor`` (shards, checkpoints, Ray).

Fields split in two kinds (see ``FINGERPRINT_FIELDS``, flat names): those that change what is
generated must match to resume a run; the operational rest (concurrency, timeouts, progress) may change.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path
from typing import Literal

from tpt.augment.backends.base import SamplingParams
from tpt.augment.specs import InputSpec, ShardRange, parse_base_url, parse_input, parse_shard_range
from tpt.config import device, field
from tpt.io.fs import as_path


@dataclass
class PromptConfig:
    """How a document becomes a prompt."""

    strategy: str = field(
        "default",
        help="default | random-focus | back-thinking[:PATH] (docs/generators.md) | "
        "file:PATH (template with {context}) | a plugin: module.path:factory or an entry point (tpt.strategies)",
    )
    max_doc_tokens: int = field(2048, help="documents are cut to this many tokens of the generator's tokenizer")


@dataclass
class SamplingConfig:
    """What is drawn: every backend honours these."""

    temperature: float = field(0.6, help="sampling temperature")
    top_p: float = field(0.9, help="nucleus sampling")
    max_thinking_tokens: int = field(8192, help="thinking-token budget per trajectory")
    samples: int = field(1, help="trajectories per document")
    seed: int = field(0, help="seeds the random-focus positions and per-(document, sample) generation seeds")

    def params(self) -> SamplingParams:
        return SamplingParams(
            temperature=self.temperature, top_p=self.top_p, max_tokens=self.max_thinking_tokens, stop=["</think>"]
        )


@dataclass
class OpenAIConfig:
    """``--backend openai``: the server and how to talk to it."""

    base_url: list[str] = field(
        default_factory=list,
        split=True,
        parse=parse_base_url,
        help="OpenAI-compatible server, e.g. http://127.0.0.1:8000/v1; several (comma-separated or repeated) are "
        "balanced by load",
    )
    api: Literal["chat", "completions"] = field("chat", help="openai endpoint to call")
    api_key_env: str = field("OPENAI_API_KEY", help="environment variable holding the API key (never stored)")
    server_sampling: Literal["auto", "native", "generation-config"] = field(
        "auto", help="auto: probe whether the server samples; generation-config: also send transformers-serve's field"
    )
    concurrency: int = field(16, help="openai requests in flight")
    timeout: float = field(600.0, help="per-request timeout, seconds")
    max_retries: int = field(5, help="retries on 429, 5xx, timeouts, dropped connections")
    retry_backoff: float = field(1.0, help="first retry delay in seconds (doubles, with jitter)")


@dataclass
class LocalConfig:
    """In-process backends (transformers, vllm)."""

    batch_size: int = field(
        8,
        flag="--gen-batch",
        deprecated=["--batch-size"],
        help="transformers: sequences per generate() call; vllm: requests handed to the engine at once",
    )
    device: str = field("auto", parse=device, help="transformers backend: auto | cpu | cuda | cuda:N")
    dtype: Literal["auto", "float32", "bfloat16", "float16"] = field("auto", help="transformers / vllm weights")


@dataclass
class BackendConfig:
    """The generator: which backend, which model, and its kind's settings."""

    name: str = field(
        "transformers",
        flag="--backend",
        help="openai (a server: vLLM, SGLang, ...) | vllm (vLLM in-process) | transformers (no server; CPU, small "
        "runs) | a plugin (entry point in group tpt.backends, or module:factory)",
    )
    model: str = field("", help="model name (openai) or local model folder (transformers)")
    tokenizer: str | None = field(None, help="local tokenizer folder (default: --model when it is a folder)")
    raw_prompt: bool = field(False, help="send the prompt as-is (no chat template); completions API / in-process only")
    max_model_len: int | None = field(
        None,
        help="the engine's context length (vllm backend, --serve vllm); prompts + thinking budget are checked "
        "against it first",
    )
    options: dict[str, str] = field(
        default_factory=dict, flag="--backend-option", help="KEY=VALUE settings for a plugin backend (repeatable)"
    )
    openai: OpenAIConfig = field(default_factory=OpenAIConfig, help="openai backend")
    local: LocalConfig = field(default_factory=LocalConfig, help="transformers / vllm backends")
    cache_dir: Path | None = field(None, cli=False)  # set by the runner: the run's logs/ (vLLM's caches)

    def tokenizer_path(self) -> str | None:
        if self.tokenizer:
            return self.tokenizer
        return self.model if self.model and Path(self.model).is_dir() else None


@dataclass
class ServeConfig:
    """Servers tpt starts and stops itself (``--serve``)."""

    command: str | None = field(
        None, flag="--serve", help="command that starts the server, with {model} and {port}; tpt stops it"
    )
    timeout: float = field(600.0, flag="--serve-timeout", help="seconds to wait for a --serve server to become healthy")
    restarts: int = field(
        3,
        flag="--serve-restarts",
        help="--serve: restarts of a server that died, then the run stops (finished records kept)",
    )
    replicas: int = field(
        1,
        flag="--serve-replicas",
        help="--serve: servers on this node, each on its own GPU(s) via CUDA_VISIBLE_DEVICES; 0 = one per GPU",
    )


@dataclass
class ExecutorConfig:
    """How the corpus is cut into shards and the shards are run."""

    name: str = field(
        "local",
        flag="--executor",
        help="how shards are run: local | ray (needs pip install 'tpt[ray]') | a plugin: "
        "module.path:factory or an entry point (tpt.executors)",
    )
    shard_size: int = field(
        1000,
        help="Parquet (whole row groups, at least this many rows) / HF dataset rows "
        "per shard (fixes the sharding: part of the run's identity)",
    )
    shard_bytes: int = field(
        64 << 20,
        help="plain JSONL bytes per shard (a line belongs to the range holding its "
        "first byte; compressed JSONL files are one shard each)",
    )
    shard_range: ShardRange | None = field(
        None, parse=parse_shard_range, help="i/n: this process does the shards whose index %% n == i"
    )
    checkpoint_records: int = field(64, help="checkpoint in-shard progress every N records ...")
    checkpoint_seconds: float = field(10.0, help="... or every this many seconds, whichever first")
    ray_address: str | None = field(
        None, help="--executor ray: cluster address (default: $RAY_ADDRESS, else a local Ray)"
    )
    ray_workers: int = field(
        0, help="--executor ray: shard workers (0 = one per GPU for transformers, else one per CPU)"
    )

    def __post_init__(self) -> None:
        if self.shard_range is not None:  # a Python caller's "0/4": typed here, once
            self.shard_range = parse_shard_range(self.shard_range)


@dataclass
class AugmentConfig:
    """corpus -> thinking trajectories (resumable, exactly-once). See docs/augment.md."""

    inputs: list[InputSpec] = field(
        help="JSONL(.gz/.zst) / Parquet files, globs, folders, HF save_to_disk folders, fsspec URLs (s3://, gs://, "
        "hf://); PATH:TEXT_FIELD[:ID_FIELD] overrides --text-field/--id-field for that source",
        positional=True,
        parse=parse_input,
    )
    out: Path = field(
        help="run folder (data/, rejected/, failed/, manifest.json, stats.json): a local path or an fsspec URL "
        "(s3://, gs://, memory://...: docs/scale.md); required, as in every stage whose output another stage reads "
        "(--dry-run writes nothing to it)",
        parse=as_path,  # a URL stays a string: Path() would turn s3://b/run into s3:/b/run
    )
    text_field: str = field("text", help="field holding the document")
    id_field: str | None = field(None, help="field holding the id (default: 'id' when present, else a content hash)")
    limit: int | None = field(None, help="only the first N input rows (a trial run: its own fingerprint)")
    prompt: PromptConfig = field(default_factory=PromptConfig, help="prompt")
    sampling: SamplingConfig = field(default_factory=SamplingConfig, help="sampling")
    backend: BackendConfig = field(default_factory=BackendConfig, help="backend")
    serve: ServeConfig = field(default_factory=ServeConfig, help="servers started by tpt")
    executor: ExecutorConfig = field(default_factory=ExecutorConfig, help="execution")
    regenerate_length: bool = field(
        False,
        help="generate again the records of finished shards that hit a smaller "
        "thinking budget (finish_reason=length), with a larger --max-thinking-tokens; the rest is reused",
    )
    strict: bool = field(False, help="a rejected input row is fatal")
    plan_only: bool = field(False, help="write manifest.json and plan.json (the shards), generate nothing")
    dry_run: bool = field(False, help="print the plan and a cost estimate from a sample; writes nothing to --out")
    dry_run_sample: int = field(1000, help="--dry-run: documents read and tokenized for the estimate")
    tokens_per_second: float = field(
        930.0, help="--dry-run: generated tokens/s per GPU (default: the paper's ~930 per A100)"
    )
    pilot: str | None = field(None, help="--dry-run: a finished (trial) run folder whose mean thinking length to use")
    progress: bool = field(True, help="show a progress bar")

    def __post_init__(self) -> None:
        # Python callers may pass the CLI's text forms ("a.jsonl:body", "0/4"): typed here, once.
        self.inputs = [parse_input(spec) for spec in self.inputs]

    def context_length(self, prompt_overhead: int = 512) -> int:
        """The engine context tpt asks for (``--max-model-len``, else what the longest request needs:
        a document cut to --max-doc-tokens, the prompt around it and the whole thinking budget),
        capped at what a local model folder supports."""
        if self.backend.max_model_len:
            return self.backend.max_model_len
        need = self.prompt.max_doc_tokens + prompt_overhead + self.sampling.max_thinking_tokens
        config = Path(self.backend.model) / "config.json" if self.backend.model else None
        if config is not None and config.is_file():
            import json

            limit = json.loads(config.read_text()).get("max_position_embeddings")
            return min(need, int(limit)) if limit else need
        return need

    def backend_config(self) -> BackendConfig:
        """What a backend factory receives: its own settings, with the engine context resolved and
        the run's cache folder (so no backend needs the stage config)."""
        return replace(self.backend, max_model_len=self.context_length(), cache_dir=Path(self.out).resolve() / "logs")


# Fields that decide what is generated: a run folder only resumes with the same values.
FINGERPRINT_FIELDS = (
    "inputs",
    "text_field",
    "id_field",
    "strategy",
    "max_doc_tokens",
    "raw_prompt",
    "temperature",
    "top_p",
    "max_thinking_tokens",
    "samples",
    "seed",
    "backend",
    "model",
    "api",
    "shard_size",
    "shard_bytes",
    "limit",
)
