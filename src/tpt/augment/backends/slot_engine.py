"""Continuous batching over fixed KV-cache slots, on an unmodified ``transformers`` decoder.

Why not ``generate`` or transformers' own continuous batching: measured on one H200 (docs/scale.md),
static batches waste the slots of short trajectories and expand the GQA cache for a masked SDPA
every step, and transformers' continuous batching falls back to a dense mask without the
flash-attn package.  This engine keeps the model's own modules and weights and replaces only two
things, through transformers' public ``AttentionInterface``:

* **the KV cache**: one tensor per layer, ``[slots * max_len, kv_heads, head_dim]``; request r in
  slot s owns rows ``s * max_len ...``.  A finished request's slot is refilled at once (prefill of
  the next prompt), so the batch stays full whatever the length spread;
* **attention**: torch's built-in FlashAttention-2 varlen kernel (``aten._flash_attention_forward``,
  no extra package), reading each slot's *used* length only (``seqused_k``).  Decode steps fold the
  query heads that share a KV head into the query length (one query token, ``G = heads / kv_heads``
  rows, no causal mask needed), so each slot's cache is read once per step, not G times.
  Elsewhere (CPU, float32) a plain per-sequence SDPA does the same sums: tests check the engine
  against ``generate`` there.

The host stays one step ahead of the GPU: step t+1 is queued before step t's tokens are read
(pinned copy + event), so stop checks and slot bookkeeping overlap the GPU's work; a request that
stopped at step t costs one wasted row at step t+1.  Sampling is seeded once per engine, not per
request (batched sampling cannot honour per-request seeds cheaply).
"""

from __future__ import annotations

import contextlib
import warnings
from collections import deque
from dataclasses import dataclass, field
from typing import Iterator

import torch

ATTENTION_NAME = "tpt_slots"


@dataclass
class SlotRequest:
    prompt: list[int]  # token ids
    max_new_tokens: int
    stop_ids: frozenset[int] = frozenset()
    stop_sequences: tuple[tuple[int, ...], ...] = ()  # multi-token stops, matched on the id suffix


@dataclass
class StepPlan:
    """What one forward pass writes and reads; passed to every layer as its ``attention_mask``."""

    engine: "SlotEngine"
    write_rows: torch.Tensor  # [tokens] cache row of each input token (slot * max_len + position)
    cu_q: torch.Tensor  # [seqs + 1] int32 query offsets (already multiplied by G in decode steps)
    starts_k: torch.Tensor  # [seqs + 1] int32 first cache row of each sequence's slot (last entry unused)
    used_k: torch.Tensor  # [seqs] int32 cache rows each sequence attends to (after this step's write)
    max_q: int
    decode: bool  # one new token per sequence: heads folded into the query length, no causal mask


@dataclass
class _Running:
    key: int
    request: SlotRequest
    slot: int
    tokens: list[int] = field(default_factory=list)
    done: bool = False


class SlotEngine:
    def __init__(self, model, slots: int, max_len: int, temperature: float = 0.6, top_p: float = 0.9,
                 seed: int = 0, prefill_tokens: int = 16384):
        cfg = model.config
        if "sliding_attention" in (getattr(cfg, "layer_types", None) or ()):
            raise ValueError("the slot engine attends over whole slots: models with sliding-window layers are not supported")
        self.model, self.slots, self.max_len = model, slots, max_len
        self.temperature, self.top_p, self.prefill_tokens = temperature, top_p, prefill_tokens
        self.kv_heads = cfg.num_key_value_heads
        self.head_dim = getattr(cfg, "head_dim", None) or cfg.hidden_size // cfg.num_attention_heads
        self.groups = cfg.num_attention_heads // self.kv_heads
        param = next(model.parameters())
        self.device, self.dtype = param.device, param.dtype
        shape = (slots * max_len, self.kv_heads, self.head_dim)
        # [layer] -> (keys, values), each [slots * max_len, kv_heads, head_dim]
        self.cache = [(torch.empty(shape, device=self.device, dtype=self.dtype),
                       torch.empty(shape, device=self.device, dtype=self.dtype)) for _ in range(cfg.num_hidden_layers)]
        self.lengths = torch.zeros(slots, dtype=torch.long, device=self.device)  # tokens cached per slot
        self.last_token = torch.zeros(slots, dtype=torch.long, device=self.device)
        self.generator = torch.Generator(device=self.device).manual_seed(seed)
        self.use_flash = self.device.type == "cuda" and self.dtype in (torch.float16, torch.bfloat16)
        if self.use_flash:
            self.use_flash = self._flash_agrees()
        self._layout_key: tuple | None = None
        self._layout: tuple = ()
        _register_attention()

    @staticmethod
    def cache_bytes(config, slots: int, max_len: int, dtype_bytes: int = 2) -> int:
        head_dim = getattr(config, "head_dim", None) or config.hidden_size // config.num_attention_heads
        return 2 * config.num_hidden_layers * slots * max_len * config.num_key_value_heads * head_dim * dtype_bytes

    # -- the loop -----------------------------------------------------------------------------

    @torch.no_grad()
    def run(self, requests: list[SlotRequest]) -> Iterator[tuple[int, list[int], str]]:
        """Yield (request index, generated ids, "stop" | "length") as requests finish."""
        for i, r in enumerate(requests):
            if len(r.prompt) + r.max_new_tokens > self.max_len or not r.prompt:
                raise ValueError(f"request {i}: prompt {len(r.prompt)} + {r.max_new_tokens} new tokens "
                                 f"does not fit a slot of {self.max_len}")
        queue = deque(enumerate(requests))
        free = list(range(self.slots - 1, -1, -1))  # popped from the end: slot 0 first
        running: dict[int, _Running] = {}  # slot -> its request
        in_flight: deque = deque()  # (pinned tokens, event, [_Running per row]) queued, not yet read
        with self._attention():
            while queue or running:
                admitted = self._admit(queue, free, running)
                if admitted:
                    in_flight.append(self._prefill(admitted))
                if running:
                    live = [running[s] for s in sorted(running)]
                    in_flight.append(self._decode(live))
                # Read the oldest step's tokens while the newest runs: the GPU never waits for us.
                while len(in_flight) > 1 or (in_flight and not queue and not running):
                    for item in self._finish(in_flight.popleft(), free, running):
                        yield item
            while in_flight:  # every request is done; drain the rows of finished requests
                for item in self._finish(in_flight.popleft(), free, running):
                    yield item

    def _admit(self, queue: deque, free: list[int], running: dict) -> list[_Running]:
        admitted, tokens = [], 0
        while queue and free and (not admitted or tokens + len(queue[0][1].prompt) <= self.prefill_tokens):
            key, request = queue.popleft()
            tokens += len(request.prompt)
            run = _Running(key, request, free.pop())
            running[run.slot] = run
            admitted.append(run)
        return sorted(admitted, key=lambda r: r.slot)

    def _finish(self, step, free: list[int], running: dict) -> Iterator[tuple[int, list[int], str]]:
        tokens, event, rows = step
        event.synchronize()
        for run, token in zip(rows, tokens.tolist()):
            if run.done:  # finished at an earlier step: this row was computed before we knew
                continue
            run.tokens.append(token)
            reason = _stop_reason(run)
            if reason:
                run.done = True
                del running[run.slot]
                free.append(run.slot)
                yield run.key, run.tokens, reason

    # -- one forward pass each ----------------------------------------------------------------

    def _prefill(self, runs: list[_Running]):
        lengths = [len(r.request.prompt) for r in runs]
        ids = self._to_device([t for r in runs for t in r.request.prompt])
        positions = self._to_device([p for n in lengths for p in range(n)])
        slots = self._to_device([r.slot for r in runs])
        starts = slots * self.max_len
        used = self._to_device(lengths).int()
        cu_q = torch.nn.functional.pad(used.cumsum(0, dtype=torch.int32), (1, 0))
        rows = torch.repeat_interleave(starts, used, output_size=len(positions)) + positions  # sized: no sync
        plan = StepPlan(self, rows, cu_q, _with_end(starts, self.max_len), used, max(lengths), decode=False)
        hidden = self._forward(ids, positions, plan)  # [tokens, hidden]
        self.lengths[slots] = used.long()
        return self._sample_into(hidden[cu_q[1:].long() - 1], slots, runs)

    def _decode(self, runs: list[_Running]):
        slots, starts_k, cu_q = self._decode_layout(tuple(r.slot for r in runs))
        positions = self.lengths[slots]
        plan = StepPlan(self, starts_k[:-1] + positions, cu_q, starts_k, (positions + 1).int(), self.groups, decode=True)
        hidden = self._forward(self.last_token[slots], positions, plan)
        self.lengths[slots] += 1
        return self._sample_into(hidden, slots, runs)

    def _decode_layout(self, slots: tuple[int, ...]):
        """(slots, cu_seqlens_k starts, folded cu_seqlens_q) on the device; rebuilt only when the set
        of running slots changes (a request ended or began), not every step."""
        if self._layout_key != slots:
            on_device = self._to_device(list(slots))
            n = len(slots)
            cu_q = torch.arange(0, (n + 1) * self.groups, self.groups, device=self.device, dtype=torch.int32)
            self._layout = (on_device, _with_end(on_device * self.max_len, self.max_len), cu_q)
            self._layout_key = slots
        return self._layout

    def _to_device(self, values: list[int]) -> torch.Tensor:
        """A host list as a device tensor without waiting for the GPU: a copy from pageable memory
        would synchronise the stream and end the overlap of host and device work."""
        host = torch.tensor(values, dtype=torch.long, pin_memory=self.device.type == "cuda")
        return host.to(self.device, non_blocking=True)

    def _forward(self, ids: torch.Tensor, positions: torch.Tensor, plan: StepPlan) -> torch.Tensor:
        """The decoder on one packed row of tokens; every layer's attention reads ``plan``."""
        masks = {"full_attention": plan, "sliding_attention": plan}
        out = self.model.model(input_ids=ids[None], position_ids=positions[None], attention_mask=masks, use_cache=False)
        return out.last_hidden_state[0]  # [tokens, hidden]

    def _sample_into(self, hidden: torch.Tensor, slots: torch.Tensor, runs: list[_Running]):
        logits = self.model.lm_head(hidden).float()  # [seqs, vocab]
        tokens = sample(logits, self.temperature, self.top_p, self.generator)
        self.last_token[slots] = tokens
        host = torch.empty(tokens.shape, dtype=tokens.dtype, pin_memory=self.device.type == "cuda")
        host.copy_(tokens, non_blocking=True)
        event = torch.cuda.Event() if self.device.type == "cuda" else _DoneEvent()
        event.record()
        return host, event, runs

    # -- attention ----------------------------------------------------------------------------

    @contextlib.contextmanager
    def _attention(self):
        config = self.model.config
        previous = config._attn_implementation
        config._attn_implementation = ATTENTION_NAME
        try:
            yield
        finally:
            config._attn_implementation = previous

    def attend(self, layer: int, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, plan: StepPlan,
               scale: float) -> torch.Tensor:
        """q [tokens, heads, dim]; k, v [tokens, kv_heads, dim] (this step's) -> [tokens, heads, dim]."""
        keys, values = self.cache[layer]
        keys.index_copy_(0, plan.write_rows, k)
        values.index_copy_(0, plan.write_rows, v)
        if plan.decode:  # [n, kv*G, d] -> [n*G, kv, d]: a query head's G siblings become G query rows
            n = q.shape[0]
            q = q.view(n, self.kv_heads, self.groups, self.head_dim).transpose(1, 2).reshape(n * self.groups, self.kv_heads, -1)
        if self.use_flash:
            out = torch.ops.aten._flash_attention_forward(
                q, keys, values, plan.cu_q, plan.starts_k, plan.max_q, self.max_len, 0.0, not plan.decode, False,
                scale=scale, seqused_k=plan.used_k)[0]
        else:
            out = _reference_attention(q, keys, values, plan, scale)
        if plan.decode:
            out = out.view(n, self.groups, self.kv_heads, self.head_dim).transpose(1, 2).reshape(n, -1, self.head_dim)
        return out

    def _flash_agrees(self) -> bool:
        """Run the flash kernel once against the reference on this GPU (a prompt of n tokens, then one
        decode step, in slot 0); on an error or a mismatch say so and use the reference instead."""
        n = min(8, self.max_len - 1)
        heads = self.kv_heads * self.groups
        zero = torch.zeros(1, dtype=torch.int32, device=self.device)
        ends = torch.tensor([0, self.max_len], dtype=torch.int32, device=self.device)
        prefill = StepPlan(self, torch.arange(n, device=self.device), torch.tensor([0, n], dtype=torch.int32, device=self.device),
                           ends, zero + n, n, decode=False)
        decode = StepPlan(self, torch.tensor([n], device=self.device),
                          torch.tensor([0, self.groups], dtype=torch.int32, device=self.device), ends, zero + n + 1,
                          self.groups, decode=True)
        try:
            for plan, tokens in ((prefill, n), (decode, 1)):
                q = torch.randn(tokens, heads, self.head_dim, device=self.device, dtype=self.dtype)
                k, v = (torch.randn(tokens, self.kv_heads, self.head_dim, device=self.device, dtype=self.dtype) for _ in "kv")
                fast = self.attend(0, q, k, v, plan, self.head_dim**-0.5)
                self.use_flash = False
                slow = self.attend(0, q, k, v, plan, self.head_dim**-0.5)
                self.use_flash = True
                torch.testing.assert_close(fast.float(), slow.float(), atol=3e-2, rtol=3e-2)
            return True
        except Exception as exc:  # noqa: BLE001 - any failure means: do not trust the fast path here
            warnings.warn(f"slot engine: torch's flash varlen kernel is unusable here ({type(exc).__name__}: {exc}); "
                          "using the per-sequence reference attention (correct, much slower)")
            return False


def _slot_attention(module, query, key, value, attention_mask, scaling=None, **kwargs):
    """transformers' attention-function signature: query [1, heads, tokens, dim], key/value [1, kv, tokens, dim]."""
    plan = attention_mask
    if not isinstance(plan, StepPlan):
        raise RuntimeError(f"attention {ATTENTION_NAME!r} is only usable inside SlotEngine.run")
    out = plan.engine.attend(module.layer_idx, query[0].transpose(0, 1).contiguous(), key[0].transpose(0, 1).contiguous(),
                             value[0].transpose(0, 1).contiguous(), plan, scaling)
    return out[None], None  # [1, tokens, heads, dim], as the model's o_proj expects


def _reference_attention(q, keys, values, plan: StepPlan, scale: float) -> torch.Tensor:
    """Same sums as the flash call, one sequence at a time (CPU, float32, tests)."""
    out = torch.empty_like(q)
    cu_q, starts, used = plan.cu_q.tolist(), plan.starts_k.tolist(), plan.used_k.tolist()
    for i, n_k in enumerate(used):
        qi = q[cu_q[i] : cu_q[i + 1]].transpose(0, 1)  # [heads, q, dim]
        ki = keys[starts[i] : starts[i] + n_k].transpose(0, 1)  # [kv, k, dim]
        vi = values[starts[i] : starts[i] + n_k].transpose(0, 1)
        n_q = qi.shape[1]
        if plan.decode:
            mask = None  # the folded rows are one query at the newest position: it sees every key
        else:  # bottom-right causal: query t sits at position n_k - n_q + t
            mask = torch.arange(n_k, device=q.device)[None, :] <= (n_k - n_q + torch.arange(n_q, device=q.device))[:, None]
        o = torch.nn.functional.scaled_dot_product_attention(qi[None], ki[None], vi[None], attn_mask=mask, scale=scale,
                                                             enable_gqa=qi.shape[0] != ki.shape[0])
        out[cu_q[i] : cu_q[i + 1]] = o[0].transpose(0, 1)
    return out


def sample(logits: torch.Tensor, temperature: float, top_p: float, generator: torch.Generator) -> torch.Tensor:
    """[seqs, vocab] float logits -> [seqs] ids: temperature, then nucleus (top-p), exact (full sort)."""
    if temperature <= 0:
        return logits.argmax(-1)
    probs = torch.softmax(logits / temperature, dim=-1)
    if top_p < 1.0:
        sorted_p, order = probs.sort(dim=-1, descending=True)
        outside = sorted_p.cumsum(-1) - sorted_p > top_p  # the top token always stays
        picked = torch.multinomial(sorted_p.masked_fill_(outside, 0.0), 1, generator=generator)
        return order.gather(-1, picked).squeeze(-1)
    return torch.multinomial(probs, 1, generator=generator).squeeze(-1)


def _stop_reason(run: _Running) -> str | None:
    request, tokens = run.request, run.tokens
    if tokens[-1] in request.stop_ids or any(len(s) <= len(tokens) and tuple(tokens[-len(s):]) == s
                                            for s in request.stop_sequences):
        return "stop"
    return "length" if len(tokens) >= request.max_new_tokens else None


def _with_end(starts: torch.Tensor, max_len: int) -> torch.Tensor:
    """Slot starts plus one closing offset, int32, as the varlen kernel's cu_seqlens_k."""
    return torch.cat([starts, starts[-1:] + max_len]).to(torch.int32)


class _DoneEvent:
    """CPU stand-in for a CUDA event: work on CPU is finished when the call returns."""

    def record(self) -> None: ...

    def synchronize(self) -> None: ...


_REGISTERED = False


def _register_attention() -> None:
    global _REGISTERED
    if not _REGISTERED:
        from transformers import AttentionInterface

        AttentionInterface.register(ATTENTION_NAME, _slot_attention)
        _REGISTERED = True
