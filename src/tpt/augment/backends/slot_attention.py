"""The slot engine's KV cache and attention, plugged into transformers through ``AttentionInterface``.

* **Cache**: one tensor per layer, ``[slots * max_len, kv_heads, head_dim]``; slot s owns rows
  ``s * max_len ...``.  Each forward pass writes its tokens' keys/values at ``StepPlan.write_rows``.
* **Attention**: torch's built-in FlashAttention-2 varlen kernel (``aten._flash_attention_forward``,
  no extra package) reads each sequence's slot from its start row for ``used_k`` rows only.  In
  decode steps the G query heads that share a KV head are folded into G query rows of that head
  (one query token, so no causal mask is needed): each slot's cache is read once per step, not G
  times, and nothing is copied.  Elsewhere (CPU, float32) a per-sequence SDPA does the same sums.

The model's attention layers receive the ``StepPlan`` as their ``attention_mask`` (the engine
passes a ready mask mapping, so transformers builds no mask of its own).
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import torch

ATTENTION_NAME = "tpt_slots"


@dataclass
class StepPlan:
    """What one forward pass writes and reads; every layer's attention gets it."""

    cache: "SlotCache"
    write_rows: torch.Tensor  # [tokens] cache row of each input token (slot * max_len + position)
    cu_q: torch.Tensor  # [seqs + 1] int32 query offsets (already multiplied by G in decode steps)
    starts_k: torch.Tensor  # [seqs + 1] int32 first cache row of each sequence's slot (last entry unused)
    used_k: torch.Tensor  # [seqs] int32 cache rows each sequence attends to (after this step's write)
    max_q: int
    decode: bool  # one new token per sequence: heads folded into the query length, no causal mask


class SlotCache:
    def __init__(self, config, slots: int, max_len: int, device: torch.device, dtype: torch.dtype):
        self.slots, self.max_len = slots, max_len
        self.kv_heads = config.num_key_value_heads
        self.head_dim = head_dim(config)
        self.groups = config.num_attention_heads // self.kv_heads
        self.device, self.dtype = device, dtype
        shape = (slots * max_len, self.kv_heads, self.head_dim)
        self.layers = [(torch.empty(shape, device=device, dtype=dtype), torch.empty(shape, device=device, dtype=dtype))
                       for _ in range(config.num_hidden_layers)]  # [layer] -> (keys, values)
        self.use_flash = device.type == "cuda" and dtype in (torch.float16, torch.bfloat16)
        if self.use_flash:
            self.use_flash = self.flash_agrees()

    @staticmethod
    def bytes_needed(config, slots: int, max_len: int, dtype_bytes: int = 2) -> int:
        return 2 * config.num_hidden_layers * slots * max_len * config.num_key_value_heads * head_dim(config) * dtype_bytes

    def attend(self, layer: int, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, plan: StepPlan,
               scale: float) -> torch.Tensor:
        """q [tokens, heads, dim]; k, v [tokens, kv_heads, dim] (this step's) -> [tokens, heads, dim]."""
        keys, values = self.layers[layer]
        keys.index_copy_(0, plan.write_rows, k)
        values.index_copy_(0, plan.write_rows, v)
        n, kv, g, d = q.shape[0], self.kv_heads, self.groups, self.head_dim
        if plan.decode:  # [n, kv*G, d] -> [n*G, kv, d]: a query head's G siblings become G query rows
            q = q.view(n, kv, g, d).transpose(1, 2).reshape(n * g, kv, d)
        if self.use_flash:
            out = torch.ops.aten._flash_attention_forward(
                q, keys, values, plan.cu_q, plan.starts_k, plan.max_q, self.max_len, 0.0, not plan.decode, False,
                scale=scale, seqused_k=plan.used_k)[0]
        else:
            out = reference_attention(q, keys, values, plan, scale)
        if plan.decode:
            out = out.view(n, g, kv, d).transpose(1, 2).reshape(n, kv * g, d)
        return out

    def flash_agrees(self) -> bool:
        """Run the flash kernel once against the reference on this GPU (a prompt of n tokens, then one
        decode step, in slot 0); on an error or a mismatch say so and use the reference instead."""
        n, dev = min(8, self.max_len - 1), self.device
        i32 = dict(dtype=torch.int32, device=dev)
        ends = torch.tensor([0, self.max_len], **i32)
        prefill = StepPlan(self, torch.arange(n, device=dev), torch.tensor([0, n], **i32), ends,
                           torch.tensor([n], **i32), n, decode=False)
        decode = StepPlan(self, torch.tensor([n], device=dev), torch.tensor([0, self.groups], **i32), ends,
                          torch.tensor([n + 1], **i32), self.groups, decode=True)
        try:
            for plan, tokens in ((prefill, n), (decode, 1)):
                q = torch.randn(tokens, self.kv_heads * self.groups, self.head_dim, device=dev, dtype=self.dtype)
                k, v = (torch.randn(tokens, self.kv_heads, self.head_dim, device=dev, dtype=self.dtype) for _ in "kv")
                self.use_flash = True
                fast = self.attend(0, q, k, v, plan, self.head_dim**-0.5)
                self.use_flash = False
                slow = self.attend(0, q, k, v, plan, self.head_dim**-0.5)
                torch.testing.assert_close(fast.float(), slow.float(), atol=3e-2, rtol=3e-2)
            self.use_flash = True
            return True
        except Exception as exc:  # noqa: BLE001 - any failure means: do not trust the fast path here
            warnings.warn(f"slot engine: torch's flash varlen kernel is unusable here ({type(exc).__name__}: {exc}); "
                          "using the per-sequence reference attention (correct, much slower)")
            self.use_flash = False
            return False


def head_dim(config) -> int:
    return getattr(config, "head_dim", None) or config.hidden_size // config.num_attention_heads


def reference_attention(q, keys, values, plan: StepPlan, scale: float) -> torch.Tensor:
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


def with_end(starts: torch.Tensor, max_len: int) -> torch.Tensor:
    """Slot starts plus one closing offset, int32, as the varlen kernel's cu_seqlens_k."""
    return torch.cat([starts, starts[-1:] + max_len]).to(torch.int32)


def _slot_attention(module, query, key, value, attention_mask, scaling=None, **kwargs):
    """transformers' attention-function signature: query [1, heads, tokens, dim], key/value [1, kv, tokens, dim]."""
    plan = attention_mask
    if not isinstance(plan, StepPlan):
        raise RuntimeError(f"attention {ATTENTION_NAME!r} is only usable inside SlotEngine.run")
    out = plan.cache.attend(module.layer_idx, query[0].transpose(0, 1).contiguous(), key[0].transpose(0, 1).contiguous(),
                            value[0].transpose(0, 1).contiguous(), plan, scaling)
    return out[None], None  # [1, tokens, heads, dim], as the model's o_proj expects


_REGISTERED = False


def register_attention() -> None:
    global _REGISTERED
    if not _REGISTERED:
        from transformers import AttentionInterface

        AttentionInterface.register(ATTENTION_NAME, _slot_attention)
        _REGISTERED = True
