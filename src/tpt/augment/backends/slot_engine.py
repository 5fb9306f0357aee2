"""Continuous batching over fixed KV-cache slots, on an unmodified ``transformers`` decoder.

Why not ``generate`` or transformers' own continuous batching: measured on one H200 (docs/scale.md),
static batches waste the slots of short trajectories and expand the GQA cache for a masked SDPA
every step, and transformers' continuous batching falls back to a dense mask without the
flash-attn package.  This engine keeps the model's own modules and weights and swaps in a cache
and an attention function (``slot_attention``) through transformers' public ``AttentionInterface``.

* A finished request's slot is refilled at once (prompts are packed into one prefill pass), so the
  decode batch stays full whatever the spread of thinking lengths.
* Every decode step runs all slots with inputs at fixed addresses (a free slot computes a row
  nobody reads), so on a GPU the step is captured once as a CUDA graph and replayed: one launch
  instead of ~1,000 kernel launches of Python.  The graph is checked against the eager step when
  captured; on any error or mismatch the engine says so and stays eager.
* The host stays one step ahead of the GPU: step t+1 is queued before step t's tokens are read
  (pinned copy + event), so stop checks and slot bookkeeping overlap the GPU's work; a request that
  stopped at step t costs one wasted row at step t+1.

Sampling is seeded once per engine, not per request (batched sampling cannot honour per-request
seeds cheaply).
"""

from __future__ import annotations

import contextlib
import warnings
from collections import deque
from dataclasses import dataclass, field
from typing import Iterator

import torch

from tpt.augment.backends.slot_attention import ATTENTION_NAME, SlotCache, StepPlan, register_attention, with_end


@dataclass
class SlotRequest:
    prompt: list[int]  # token ids
    max_new_tokens: int
    stop_ids: frozenset[int] = frozenset()
    stop_sequences: tuple[tuple[int, ...], ...] = ()  # multi-token stops, matched on the id suffix


@dataclass
class _Running:
    key: int
    request: SlotRequest
    slot: int
    tokens: list[int] = field(default_factory=list)
    done: bool = False


class SlotEngine:
    def __init__(self, model, slots: int, max_len: int, temperature: float = 0.6, top_p: float = 0.9,
                 seed: int = 0, prefill_tokens: int = 16384, cuda_graph: bool = True, refill_batch: int | None = None):
        config = model.config
        if "sliding_attention" in (getattr(config, "layer_types", None) or ()):
            raise ValueError("the slot engine attends over whole slots: models with sliding-window layers are not supported")
        param = next(model.parameters())
        self.model, self.slots, self.max_len, self.device = model, slots, max_len, param.device
        self.temperature, self.top_p, self.prefill_tokens = temperature, top_p, prefill_tokens
        # Freed slots are refilled in groups: a prefill pass is ~1,000 eager kernel launches whatever
        # its size, so one pass for many prompts beats one per prompt (a few slots idle meanwhile).
        self.refill_batch = refill_batch or max(1, slots // 16)
        self.cache = SlotCache(config, slots, max_len, param.device, param.dtype)
        dev, groups = self.device, self.cache.groups
        self.lengths = torch.zeros(slots, dtype=torch.long, device=dev)  # tokens cached per slot
        self.last_token = torch.zeros(slots, dtype=torch.long, device=dev)
        self.active = torch.zeros(slots, dtype=torch.bool, device=dev)  # slot holds a running request
        self._active_key: tuple | None = None
        # Decode-step inputs at fixed addresses (what a CUDA graph replays): every slot, every step.
        self._starts = torch.arange(slots, device=dev) * max_len
        self._positions = torch.zeros(slots, dtype=torch.long, device=dev)
        self._tokens = torch.zeros(slots, dtype=torch.long, device=dev)
        cu_q = torch.arange(0, (slots + 1) * groups, groups, device=dev, dtype=torch.int32)
        self._decode_plan = StepPlan(self.cache, self._starts.clone(), cu_q, with_end(self._starts, max_len),
                                     torch.ones(slots, dtype=torch.int32, device=dev), groups, decode=True)
        self.generator = torch.Generator(device=dev).manual_seed(seed)
        self.use_graph = cuda_graph and dev.type == "cuda"
        self._graph = None
        self._graph_hidden: torch.Tensor | None = None
        register_attention()

    @property
    def use_flash(self) -> bool:
        return self.cache.use_flash

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
        in_flight: deque = deque()  # (pinned tokens, event, [_Running or None per row]) queued, not yet read
        with self._attention():
            while queue or running:
                admitted = self._admit(queue, free, running)
                if admitted:
                    in_flight.append(self._prefill(admitted))
                if running:
                    in_flight.append(self._decode(running))
                # Read the oldest step's tokens while the newest runs: the GPU never waits for us.
                while len(in_flight) > 1 or (in_flight and not queue and not running):
                    yield from self._finish(in_flight.popleft(), free, running)
            while in_flight:  # every request is done; drain the rows of finished requests
                yield from self._finish(in_flight.popleft(), free, running)

    def _admit(self, queue: deque, free: list[int], running: dict) -> list[_Running]:
        admitted, tokens = [], 0
        if running and len(free) < min(self.refill_batch, len(queue)):
            return admitted  # wait until a group of slots is free (or the queue is that short)
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
            if run is None or run.done:  # a free slot, or a request that ended before this row was read
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
        plan = StepPlan(self.cache, rows, cu_q, with_end(starts, self.max_len), used, max(lengths), decode=False)
        hidden = self._forward(ids, positions, plan)  # [tokens, hidden]
        self.lengths[slots] = used.long()
        return self._sample_into(hidden[cu_q[1:].long() - 1], slots, runs)

    def _decode(self, running: dict[int, _Running]):
        """One token for every slot; rows of free slots are computed and ignored."""
        key = tuple(sorted(running))
        if key != self._active_key:
            self.active.copy_(self._to_device([s in running for s in range(self.slots)], torch.bool))
            self._active_key = key
        positions = torch.where(self.active, self.lengths, 0)  # a free slot writes its row 0, refilled later
        plan = self._decode_plan
        self._positions.copy_(positions)
        plan.write_rows.copy_(self._starts + positions)
        plan.used_k.copy_(positions + 1)
        self._tokens.copy_(self.last_token)
        hidden = self._decode_forward()  # [slots, hidden]
        self.lengths += self.active
        return self._sample_into(hidden, None, [running.get(s) for s in range(self.slots)])

    def _decode_forward(self) -> torch.Tensor:
        if self.use_graph and self._graph is None:
            self._capture_decode()
        if self._graph is not None:
            self._graph.replay()
            return self._graph_hidden
        return self._forward(self._tokens, self._positions, self._decode_plan)

    def _capture_decode(self) -> None:
        """Capture the decode step as a CUDA graph and check one replay against the eager step on the
        same inputs (both write the same cache rows with the same values, so checking costs nothing)."""
        try:
            side = torch.cuda.Stream()
            side.wait_stream(torch.cuda.current_stream())
            with torch.cuda.stream(side):  # warm-up outside the graph: kernels picked, workspaces allocated
                for _ in range(2):
                    eager = self._forward(self._tokens, self._positions, self._decode_plan)
            torch.cuda.current_stream().wait_stream(side)
            graph = torch.cuda.CUDAGraph()
            with torch.cuda.graph(graph):
                hidden = self._forward(self._tokens, self._positions, self._decode_plan)
            graph.replay()
            torch.testing.assert_close(hidden.float(), eager.float(), atol=2e-2, rtol=2e-2)
            self._graph, self._graph_hidden = graph, hidden
        except Exception as exc:  # noqa: BLE001 - any failure means: stay eager, correct and slower
            warnings.warn(f"slot engine: decode step not captured as a CUDA graph ({type(exc).__name__}: {exc}); "
                          "running it eagerly")
            self.use_graph = False

    def _forward(self, ids: torch.Tensor, positions: torch.Tensor, plan: StepPlan) -> torch.Tensor:
        """The decoder on one packed row of tokens; every layer's attention reads ``plan``."""
        masks = {"full_attention": plan}  # a ready mask mapping: transformers builds none (sliding layers are refused)
        out = self.model.model(input_ids=ids[None], position_ids=positions[None], attention_mask=masks, use_cache=False)
        return out.last_hidden_state[0]  # [tokens, hidden]

    def _sample_into(self, hidden: torch.Tensor, slots: torch.Tensor | None, rows: list):
        """Sample one token per row of ``hidden`` into ``last_token`` (at ``slots``, or all slots) and
        start its copy to the host; returns what ``_finish`` reads once the event has fired."""
        logits = self.model.lm_head(hidden).float()  # [rows, vocab]
        tokens = sample(logits, self.temperature, self.top_p, self.generator)
        if slots is None:
            self.last_token.copy_(tokens)
        else:
            self.last_token[slots] = tokens
        host = torch.empty(tokens.shape, dtype=tokens.dtype, pin_memory=self.device.type == "cuda")
        host.copy_(tokens, non_blocking=True)
        event = torch.cuda.Event() if self.device.type == "cuda" else _DoneEvent()
        event.record()
        return host, event, rows

    def _to_device(self, values: list, dtype=torch.long) -> torch.Tensor:
        """A host list as a device tensor without waiting for the GPU: a copy from pageable memory
        would synchronise the stream and end the overlap of host and device work."""
        host = torch.tensor(values, dtype=dtype, pin_memory=self.device.type == "cuda")
        return host.to(self.device, non_blocking=True)

    @contextlib.contextmanager
    def _attention(self):
        config = self.model.config
        previous = config._attn_implementation
        config._attn_implementation = ATTENTION_NAME
        try:
            yield
        finally:
            config._attn_implementation = previous


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


class _DoneEvent:
    """CPU stand-in for a CUDA event: work on CPU is finished when the call returns."""

    def record(self) -> None: ...

    def synchronize(self) -> None: ...
