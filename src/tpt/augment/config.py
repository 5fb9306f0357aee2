"""The augment stage's configuration: its fields ARE the `tpt augment` CLI.

Backends read their settings from this object (``make_backend(config)``).  The fields a backend
may read: ``model``, ``tokenizer``, ``base_url``, ``api``, ``api_key_env``, ``concurrency``,
``timeout``, ``max_retries``, ``retry_backoff``, ``server_sampling``, ``raw_prompt``,
``batch_size``, ``device``, ``dtype``, ``seed``, and the sampling fields via ``sampling()``.

Fields split in two kinds (see ``FINGERPRINT_FIELDS``): those that change what is generated
must match to resume a run; the operational rest (concurrency, timeouts, progress) may change.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from tpt.augment.backends.base import SamplingParams
from tpt.config import device, field
from tpt.io.fs import as_path


@dataclass
class AugmentConfig:
    """corpus -> thinking trajectories (resumable, exactly-once). See docs/augment.md."""

    inputs: list[str] = field(
        help="JSONL(.gz/.zst) / Parquet files, globs, folders, HF save_to_disk folders, fsspec URLs (s3://, gs://, "
        "hf://); PATH:TEXT_FIELD[:ID_FIELD] overrides --text-field/--id-field for that source",
        positional=True,
    )
    out: Path = field(
        Path("runs/augment"),
        help="run folder (data/, rejected/, failed/, manifest.json, stats.json); a local path or an fsspec URL "
        "(s3://, gs://, memory://...: docs/scale.md)",
        parse=as_path,  # a URL stays a string: Path() would turn s3://b/run into s3:/b/run
    )
    # --- input
    text_field: str = field("text", help="field holding the document")
    id_field: str | None = field(None, help="field holding the id (default: 'id' when present, else a content hash)")
    # --- prompt
    strategy: str = field(
        "default",
        help="default | random-focus | back-thinking[:PATH] (docs/generators.md) | "
        "file:PATH (template with {context}) | a plugin: module.path:factory or an entry point (tpt.strategies)",
    )
    max_doc_tokens: int = field(2048, help="documents are cut to this many tokens of the generator's tokenizer")
    raw_prompt: bool = field(False, help="send the prompt as-is (no chat template); completions API / in-process only")
    # --- sampling
    temperature: float = field(0.6, help="sampling temperature")
    top_p: float = field(0.9, help="nucleus sampling")
    max_thinking_tokens: int = field(8192, help="thinking-token budget per trajectory")
    samples: int = field(1, help="trajectories per document")
    regenerate_length: bool = field(
        False,
        help="generate again the records of finished shards that hit a smaller "
        "thinking budget (finish_reason=length), with a larger --max-thinking-tokens; the rest is reused",
    )
    seed: int = field(0, help="seeds the random-focus positions and per-(document, sample) generation seeds")
    # --- backend
    backend: str = field(
        "transformers",
        help="openai (a server: vLLM, SGLang, ...) | vllm (vLLM in-process) | transformers (no server; CPU, small "
        "runs) | a plugin (entry point in group tpt.backends, or module:factory)",
    )
    model: str = field("", help="model name (openai) or local model folder (transformers)")
    tokenizer: str | None = field(None, help="local tokenizer folder (default: --model when it is a folder)")
    base_url: str | None = field(
        None,
        help="OpenAI-compatible server, e.g. http://127.0.0.1:8000/v1; several, comma-separated, are balanced by load",
    )
    api: Literal["chat", "completions"] = field("chat", help="openai endpoint to call")
    api_key_env: str = field("OPENAI_API_KEY", help="environment variable holding the API key (never stored)")
    serve: str | None = field(None, help="command that starts the server, with {model} and {port}; tpt stops it")
    serve_timeout: float = field(600.0, help="seconds to wait for a --serve server to become healthy")
    serve_restarts: int = field(
        3, help="--serve: restarts of a server that died, then the run stops (finished records kept)"
    )
    max_model_len: int | None = field(
        None,
        help="the engine's context length (vllm backend, --serve vllm); prompts + thinking budget are checked "
        "against it first",
    )
    serve_replicas: int = field(
        1, help="--serve: servers on this node, each on its own GPU(s) via CUDA_VISIBLE_DEVICES; 0 = one per GPU"
    )
    server_sampling: Literal["auto", "native", "generation-config"] = field(
        "auto", help="auto: probe whether the server samples; generation-config: also send transformers-serve's field"
    )
    concurrency: int = field(16, help="openai requests in flight")
    timeout: float = field(600.0, help="per-request timeout, seconds")
    max_retries: int = field(5, help="retries on 429, 5xx, timeouts, dropped connections")
    retry_backoff: float = field(1.0, help="first retry delay in seconds (doubles, with jitter)")
    batch_size: int = field(
        8, help="transformers: sequences per generate() call; vllm: requests handed to the engine at once"
    )
    device: str = field("auto", parse=device, help="transformers backend: auto | cpu | cuda | cuda:N")
    dtype: str = field("auto", help="transformers backend: auto | float32 | bfloat16 | float16")
    # --- execution
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
    limit: int | None = field(None, help="only the first N input rows (a trial run: its own fingerprint)")
    shard_range: str | None = field(None, help="i/n: this process does the shards whose index %% n == i")
    checkpoint_records: int = field(64, help="checkpoint in-shard progress every N records ...")
    checkpoint_seconds: float = field(10.0, help="... or every this many seconds, whichever first")
    executor: str = field(
        "local",
        help="how shards are run: local | ray (needs pip install 'tpt[ray]') | a plugin: "
        "module.path:factory or an entry point (tpt.executors)",
    )
    ray_address: str | None = field(
        None, help="--executor ray: cluster address (default: $RAY_ADDRESS, else a local Ray)"
    )
    ray_workers: int = field(
        0, help="--executor ray: shard workers (0 = one per GPU for transformers, else one per CPU)"
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

    def sampling(self) -> SamplingParams:
        return SamplingParams(
            temperature=self.temperature, top_p=self.top_p, max_tokens=self.max_thinking_tokens, stop=["</think>"]
        )

    def context_length(self, prompt_overhead: int = 512) -> int:
        """The engine context tpt asks for (``--max-model-len``, else what the longest request needs:
        a document cut to --max-doc-tokens, the prompt around it and the whole thinking budget),
        capped at what a local model folder supports."""
        if self.max_model_len:
            return self.max_model_len
        need = self.max_doc_tokens + prompt_overhead + self.max_thinking_tokens
        config = Path(self.model) / "config.json" if self.model else None
        if config is not None and config.is_file():
            import json

            limit = json.loads(config.read_text()).get("max_position_embeddings")
            return min(need, int(limit)) if limit else need
        return need

    def tokenizer_path(self) -> str | None:
        if self.tokenizer:
            return self.tokenizer
        return self.model if self.model and Path(self.model).is_dir() else None


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
