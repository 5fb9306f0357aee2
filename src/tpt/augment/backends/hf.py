"""``transformers`` backend: the model in-process, left-padded batched ``generate`` (CPU or GPU).

The chat template is applied exactly as an OpenAI chat server would (``apply_chat_template`` with
``add_generation_prompt``) unless ``--raw-prompt``.  Generation stops at ``</think>`` (stop
strings), EOS or the thinking budget; each batch is seeded from its first request's seed, so a
rerun with the same batch composition draws the same samples.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from tpt.augment.backends.base import GenRequest, GenResult, SamplingParams
from tpt.augment.backends.tokenize import TokenizerOps, require_tokenizer_path

if TYPE_CHECKING:
    from tpt.augment.config import BackendConfig, SamplingConfig


class TransformersBackend(TokenizerOps):
    name = "transformers"

    def __init__(
        self,
        model_path: str,
        tokenizer_path: str | None = None,
        batch_size: int = 8,
        device: str = "auto",
        dtype: str = "auto",
        raw_prompt: bool = False,
    ):
        import torch
        from transformers import AutoModelForCausalLM, AutoTokenizer

        path = require_tokenizer_path(tokenizer_path or model_path, "transformers backend")
        self.tokenizer = AutoTokenizer.from_pretrained(path)
        super().__init__(path, hf_tokenizer=self.tokenizer)
        self.tokenizer.padding_side = "left"  # decoder-only: prompts end where generation starts
        if self.tokenizer.pad_token is None:
            self.tokenizer.pad_token = self.tokenizer.eos_token
        if device == "auto":
            device = "cuda" if torch.cuda.is_available() else "cpu"
        torch_dtype = "auto" if dtype == "auto" else getattr(torch, dtype)
        self.model = AutoModelForCausalLM.from_pretrained(model_path, dtype=torch_dtype).to(device).eval()
        self.device = device
        self.parallelism = batch_size
        self.batch_size = batch_size
        self.raw_prompt = raw_prompt

    def generate(self, requests: list[GenRequest], sampling: SamplingParams) -> list[GenResult]:
        results: list[GenResult] = []
        for i in range(0, len(requests), self.batch_size):
            batch = requests[i : i + self.batch_size]
            try:
                results.extend(self._generate_batch(batch, sampling))
            except Exception as exc:  # one bad batch must not kill the run: its rows go to failed/
                results.extend(GenResult(error=f"{type(exc).__name__}: {exc}") for _ in batch)
        return results

    def _generate_batch(self, batch: list[GenRequest], sampling: SamplingParams) -> list[GenResult]:
        import torch

        prompts = [r.prompt if self.raw_prompt else self.chat_prompt(r.prompt) for r in batch]
        enc = self.tokenizer(prompts, return_tensors="pt", padding=True, add_special_tokens=False).to(self.device)
        torch.manual_seed(batch[0].seed)
        sample = sampling.temperature > 0
        with torch.no_grad():
            out = self.model.generate(
                **enc,
                do_sample=sample,
                temperature=sampling.temperature if sample else None,
                top_p=sampling.top_p if sample else None,
                max_new_tokens=sampling.max_tokens,
                stop_strings=sampling.stop or None,
                tokenizer=self.tokenizer,
                pad_token_id=self.tokenizer.pad_token_id,
            )
        new = out[:, enc["input_ids"].shape[1] :]  # [batch, new_tokens], right-padded after a stop
        prompt_lens = enc["attention_mask"].sum(dim=1).tolist()
        return [self._result(row, sampling, n_prompt) for row, n_prompt in zip(new.tolist(), prompt_lens)]

    def _result(self, ids: list[int], sampling: SamplingParams, n_prompt: int) -> GenResult:
        pad, eos = self.tokenizer.pad_token_id, self.tokenizer.eos_token_id
        while ids and ids[-1] == pad:
            ids = ids[:-1]
        return self.completion(ids, bool(ids) and ids[-1] == eos, sampling, n_prompt)

    def completion(self, tokens: list[int], stopped: bool, sampling: SamplingParams, n_prompt: int) -> GenResult:
        """The result of one generation.  ``stopped``: a stop
        token ended it; a final EOS is not shown, and a stop string ending inside a token (or one
        the engine could not stop on) cuts the text at its end."""
        shown = tokens[:-1] if stopped and tokens and tokens[-1] == self.tokenizer.eos_token_id else tokens
        text = self.tokenizer.decode(shown, skip_special_tokens=False)
        for stop in sampling.stop:
            if stop in text:
                text, stopped = text[: text.index(stop) + len(stop)], True
        finish = "stop" if stopped or len(tokens) < sampling.max_tokens else "length"
        return GenResult(text=text, finish_reason=finish, prompt_tokens=n_prompt, completion_tokens=len(tokens))

    def close(self) -> None:
        self.model = None


def make_backend(config: BackendConfig, sampling: SamplingConfig) -> TransformersBackend:
    return TransformersBackend(
        config.model,
        tokenizer_path=config.tokenizer,
        batch_size=config.local.batch_size,
        device=config.local.device,
        dtype=config.local.dtype,
        raw_prompt=config.raw_prompt,
    )
