"""Multi-head attention (Vaswani et al. 2017), with the variants modern LLMs use.

Each head attends with softmax(Q Kᵀ / √Dh + bias + mask) V; an output projection mixes the heads.
  - `SelfAttention`: queries, keys and values from the same sequence; causal (decoder) or
    bidirectional (encoder); multi-query and grouped-query attention (Shazeer 2019; Ainslie et al.
    2023) when `n_kv_head` < `n_head`: each key/value head serves n_head / n_kv_head query heads;
    rotary positions applied to queries and keys; a KV cache for decoding.
  - `CrossAttention`: queries from the decoder, keys and values from the encoder's output (memory),
    projected once per source sequence (`memory_kv`) and reused at every decoding step.

Per forward, a model builds one `AttentionInputs` (rotary tables and an additive mask holding
position biases, causality and padding) and every layer reads it: biases and masks are made once,
not once per layer.

Two paths give the same result (tests/nn/test_attention.py checks it, and checks both against
`F.scaled_dot_product_attention` and `torch.nn.MultiheadAttention`):
  - fast: `F.scaled_dot_product_attention` (fused kernels; no weights);
  - explicit (`need_weights=True`): the formula written out, returning the (B, H, T, S) weights.

Masks follow DESIGN.md: boolean masks mean True = may attend. The combined mask handed to attention is
additive (0 where allowed, the dtype's most negative number where not: a fully masked row then
gives a uniform average instead of NaN). With a KV cache, the T new queries are the last T of the S
keys, so the causal mask is bottom-right aligned.

Dimensions: B batch · T queries · S keys · D model width · H query heads · G kv heads · Dh head width.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from seqlab.nn.kv_cache import LayerKVCache
from seqlab.nn.masks import causal_mask
from seqlab.nn.positional import Positions, apply_rotary


class AttentionInputs(NamedTuple):
    """What every attention layer of one forward shares.

    rotary: (cos, sin) each (T, Dh) for the queries' and new keys' positions, or None.
    mask: additive float mask broadcastable to (B, H, T, S), or None.
    causal: with no `mask`, whether queries may not see later keys (the fused causal kernel is used).
    """

    rotary: tuple[Tensor, Tensor] | None = None
    mask: Tensor | None = None
    causal: bool = False


def attention_inputs(
    positions: Positions,
    *,
    start: int,
    n_query: int,
    causal: bool,
    padding_mask: Tensor | None = None,
    device: torch.device,
    dtype: torch.dtype,
) -> AttentionInputs:
    """The `AttentionInputs` for `n_query` queries at positions start .. start+T-1 attending to
    keys 0 .. start+T-1 (S = start + T).

    padding_mask: (B, S) bool, True = a real token (may be attended), False = padding.
    """
    n_key = start + n_query
    rotary = positions.rotary(start, n_query, device=device)
    bias = positions.score_bias(start, n_query, n_key, device=device, dtype=dtype)  # (H, T, S) or None
    if bias is None and padding_mask is None:
        return AttentionInputs(rotary, None, causal)
    allowed = causal_mask(n_query, n_key, device=device) if causal else None  # (T, S)
    if padding_mask is not None:
        keys = padding_mask[:, None, None, :]  # (B, 1, 1, S)
        allowed = keys if allowed is None else allowed & keys  # (B, 1, T, S)
    return AttentionInputs(rotary, additive_mask(allowed, bias, dtype=dtype, device=device), False)


def additive_mask(allowed: Tensor | None, bias: Tensor | None, *, dtype: torch.dtype,
                  device: torch.device) -> Tensor:
    """Combine a boolean mask (True = may attend) and an additive bias into one additive mask."""
    mask = bias if bias is not None else torch.zeros((), dtype=dtype, device=device)
    if allowed is not None:
        mask = mask.masked_fill(~allowed, torch.finfo(dtype).min)
    return mask


# Up to this many scores per head (query x key positions), half-precision attention compiled for the
# CPU is written out (`written_out_sdpa`) rather than run by SDPA's kernel in float32.
COMPILED_WRITTEN_OUT_MAX_SCORES = 128 * 128


def sdpa(q: Tensor, k: Tensor, v: Tensor, **options) -> Tensor:
    """`F.scaled_dot_product_attention`, with two exceptions for half precision on the CPU.

    - Eager: SDPA runs in float32. Its bfloat16 kernel's backward was measured 3.5× slower than
      float32's (15.4 against 4.4 ms a step on shakespeare-char), which outweighs everything
      autocast gains elsewhere.
    - Under torch.compile, for short contexts (`COMPILED_WRITTEN_OUT_MAX_SCORES`): the attention is
      written out (`written_out_sdpa`), so inductor fuses the scaling, mask and softmax with what
      surrounds them and the two products run in bfloat16. The compiled shakespeare-char preset
      took 29.3 against 34.1 ms a step (medians of 8 interleaved rounds of 10 steps, 2 cores).
      Eager, the two were equal; at 256 positions and beyond, SDPA's kernel is faster and needs no
      (T, S) score matrix.
    """
    if q.device.type == "cpu" and (q.dtype in (torch.bfloat16, torch.float16) or torch.is_autocast_enabled("cpu")):
        if torch.compiler.is_compiling() and q.shape[-2] * k.shape[-2] <= COMPILED_WRITTEN_OUT_MAX_SCORES:
            return written_out_sdpa(q, k, v, **options)
        mask = options.get("attn_mask")
        if mask is not None and mask.is_floating_point():
            options["attn_mask"] = mask.float()
        with torch.autocast("cpu", enabled=False):  # autocast would cast the inputs back down
            y = F.scaled_dot_product_attention(q.float(), k.float(), v.float(), **options)
        return y.to(q.dtype)
    return F.scaled_dot_product_attention(q, k, v, **options)


def written_out_sdpa(q: Tensor, k: Tensor, v: Tensor, *, attn_mask: Tensor | None = None,
                     dropout_p: float = 0.0, is_causal: bool = False) -> Tensor:
    """`F.scaled_dot_product_attention`'s result through `softmax_attention`: q (B, H, T, Dh),
    k, v (B, H, S, Dh) → (B, H, T, Dh). A boolean `attn_mask` is True where a query may attend;
    `is_causal` aligns the mask top-left, as SDPA does."""
    if is_causal:
        attn_mask = torch.ones(q.shape[-2], k.shape[-2], dtype=torch.bool, device=q.device).tril()
    allowed = attn_mask if attn_mask is not None and attn_mask.dtype == torch.bool else None
    additive = attn_mask if allowed is None else None
    return softmax_attention(q, k, v, additive=additive, allowed=allowed, dropout_p=dropout_p)[0]


def repeat_kv(x: Tensor, n_rep: int) -> Tensor:
    """(B, G, S, Dh) → (B, G·n_rep, S, Dh): kv head g serves query heads g·n_rep .. g·n_rep+n_rep-1."""
    if n_rep == 1:
        return x
    B, G, S, Dh = x.shape
    return x[:, :, None].expand(B, G, n_rep, S, Dh).reshape(B, G * n_rep, S, Dh)


def attend(q: Tensor, k: Tensor, v: Tensor, inputs: AttentionInputs, *, dropout_p: float = 0.0,
           need_weights: bool = False) -> tuple[Tensor, Tensor | None]:
    """q (B, H, T, Dh) against k, v (B, G, S, Dh) → (y (B, H, T, Dh), weights (B, H, T, S) or None)."""
    n_rep = q.shape[1] // k.shape[1]
    k, v = repeat_kv(k, n_rep), repeat_kv(v, n_rep)  # (B, H, S, Dh)
    if need_weights:
        return explicit_attention(q, k, v, inputs, dropout_p=dropout_p)
    if inputs.mask is not None:
        return sdpa(q, k, v, attn_mask=inputs.mask, dropout_p=dropout_p), None
    if inputs.causal:
        return causal_attention(q, k, v, dropout_p=dropout_p), None
    return sdpa(q, k, v, dropout_p=dropout_p), None


def explicit_attention(q: Tensor, k: Tensor, v: Tensor, inputs: AttentionInputs, *,
                       dropout_p: float = 0.0) -> tuple[Tensor, Tensor]:
    """softmax(Q Kᵀ/√Dh + mask) V written out, for q, k, v (B, H, ·, Dh). Returns y, weights."""
    causal = inputs.mask is None and inputs.causal
    allowed = causal_mask(q.shape[2], k.shape[2], device=q.device) if causal else None
    return softmax_attention(q, k, v, additive=inputs.mask, allowed=allowed, dropout_p=dropout_p)


def softmax_attention(q: Tensor, k: Tensor, v: Tensor, *, additive: Tensor | None = None,
                      allowed: Tensor | None = None, dropout_p: float = 0.0) -> tuple[Tensor, Tensor]:
    """softmax(Q Kᵀ/√Dh + additive, -inf where not `allowed`) V for q (B, H, T, Dh), k, v
    (B, H, S, Dh): (y (B, H, T, Dh), weights (B, H, T, S), rows summing to 1)."""
    scores = (q @ k.transpose(-2, -1)) * (1.0 / math.sqrt(q.shape[-1]))  # (B, H, T, S)
    if additive is not None:
        scores = scores + additive
    if allowed is not None:
        scores = scores.masked_fill(~allowed, float("-inf"))
    # Softmax in at least float32: half-precision exponentials lose the small weights.
    weights = torch.softmax(scores, dim=-1, dtype=torch.promote_types(scores.dtype, torch.float32))
    weights = weights.to(q.dtype)
    dropped = F.dropout(weights, dropout_p, training=True) if dropout_p > 0.0 else weights
    return dropped @ v, weights


def causal_attention(q: Tensor, k: Tensor, v: Tensor, *, dropout_p: float = 0.0) -> Tensor:
    """Causal SDPA of q (B, H, T, Dh) against k, v (B, H, S, Dh) → (B, H, T, Dh).

    The queries are the last T of the S positions (S - T are cached). Picks the cheapest correct
    mask: none for one query (decoding: the last position sees every key), SDPA's top-left aligned
    `is_causal` when nothing is cached (T == S), else the offset mask.
    """
    T, S = q.shape[2], k.shape[2]
    if T == 1:
        return sdpa(q, k, v, dropout_p=dropout_p)
    if T == S:
        return sdpa(q, k, v, dropout_p=dropout_p, is_causal=True)
    mask = causal_mask(T, S, device=q.device)  # (T, S), True = may attend
    return sdpa(q, k, v, attn_mask=mask, dropout_p=dropout_p)


def _merge_heads(out: nn.Linear, y: Tensor, dropout_p: float) -> Tensor:
    """Head outputs y (B, H, T, Dh) → (B, T, H·Dh) → the output projection, with residual dropout."""
    B, H, T, Dh = y.shape
    y = out(y.transpose(1, 2).reshape(B, T, H * Dh))  # (B, T, D)
    return F.dropout(y, dropout_p, training=True) if dropout_p > 0.0 else y


def _check_heads(d_model: int, n_head: int, n_kv_head: int) -> None:
    if d_model % n_head:
        raise ValueError(f"d_model = {d_model} is not a multiple of n_head = {n_head}")
    if n_kv_head < 1 or n_head % n_kv_head:
        raise ValueError(f"n_head = {n_head} is not a multiple of n_kv_head = {n_kv_head}")


class SelfAttention(nn.Module):
    """Multi-head self-attention with a packed projection and optional grouped keys/values.

    Parameters (state-dict keys): `qkv` (D → (H + 2G)·Dh: rows for q, then k, then v, heads
    contiguous inside each) and `out` (H·Dh → D). With G = H this is standard multi-head attention,
    with G = 1 multi-query attention.
    """

    def __init__(self, d_model: int, n_head: int, *, n_kv_head: int | None = None, bias: bool = True,
                 dropout: float = 0.0) -> None:
        super().__init__()
        n_kv_head = n_kv_head or n_head
        _check_heads(d_model, n_head, n_kv_head)
        self.d_model = d_model
        self.n_head = n_head
        self.n_kv_head = n_kv_head
        self.head_dim = d_model // n_head
        self.dropout = dropout  # on the attention weights and on the output (residual) path
        self.qkv = nn.Linear(d_model, (n_head + 2 * n_kv_head) * self.head_dim, bias=bias)
        self.out = nn.Linear(d_model, d_model, bias=bias)

    def packed_rows(self) -> dict[str, tuple[str, slice]]:
        """The query, key and value rows of the packed projection, for adapters on one part
        (seqlab.nn.lora): part -> (linear layer, rows)."""
        q, kv = self.n_head * self.head_dim, self.n_kv_head * self.head_dim
        return {"q": ("qkv", slice(0, q)), "k": ("qkv", slice(q, q + kv)), "v": ("qkv", slice(q + kv, q + 2 * kv))}

    def forward(self, x: Tensor, inputs: AttentionInputs, *, cache_layer: LayerKVCache | None = None,
                need_weights: bool = False) -> tuple[Tensor, Tensor | None]:
        """x (B, T, D) → (y (B, T, D), weights (B, H, T, S) if need_weights else None).

        With `cache_layer`, the new keys/values are written into it and the queries attend to the
        cached prefix as well (S = cached + T); the caller advances the cache's length.
        """
        B, T, _ = x.shape
        H, G, Dh = self.n_head, self.n_kv_head, self.head_dim
        q, k, v = self.qkv(x).split((H * Dh, G * Dh, G * Dh), dim=-1)
        q = q.view(B, T, H, Dh).transpose(1, 2)  # (B, H, T, Dh)
        k = k.view(B, T, G, Dh).transpose(1, 2)  # (B, G, T, Dh)
        v = v.view(B, T, G, Dh).transpose(1, 2)  # (B, G, T, Dh)
        if inputs.rotary is not None:
            q, k = apply_rotary(q, *inputs.rotary), apply_rotary(k, *inputs.rotary)
        if cache_layer is not None:
            k, v = cache_layer.append(k, v)  # (B, G, S, Dh), S = cached + T
        dropout_p = self.dropout if self.training else 0.0
        y, weights = attend(q, k, v, inputs, dropout_p=dropout_p, need_weights=need_weights)
        return _merge_heads(self.out, y, dropout_p), weights


class CrossAttention(nn.Module):
    """Multi-head attention from decoder positions to the encoder's output (memory).

    Parameters: `q` (D → H·Dh), `kv` (D → 2G·Dh: rows for k, then v) and `out` (H·Dh → D). No
    positions: the decoder looks the source up by content (as in Vaswani et al. and T5).
    """

    def __init__(self, d_model: int, n_head: int, *, n_kv_head: int | None = None, bias: bool = True,
                 dropout: float = 0.0) -> None:
        super().__init__()
        n_kv_head = n_kv_head or n_head
        _check_heads(d_model, n_head, n_kv_head)
        self.n_head = n_head
        self.n_kv_head = n_kv_head
        self.head_dim = d_model // n_head
        self.dropout = dropout
        self.q = nn.Linear(d_model, d_model, bias=bias)
        self.kv = nn.Linear(d_model, 2 * n_kv_head * self.head_dim, bias=bias)
        self.out = nn.Linear(d_model, d_model, bias=bias)

    def memory_kv(self, memory: Tensor) -> tuple[Tensor, Tensor]:
        """memory (B, S, D) → keys, values (B, G, S, Dh): computed once per source sequence."""
        B, S, _ = memory.shape
        k, v = self.kv(memory).view(B, S, 2, self.n_kv_head, self.head_dim).permute(2, 0, 3, 1, 4).unbind(0)
        return k, v

    def forward(self, x: Tensor, memory_kv: tuple[Tensor, Tensor], memory_mask: Tensor | None = None, *,
                need_weights: bool = False) -> tuple[Tensor, Tensor | None]:
        """x (B, T, D) attending to `memory_kv` → (y (B, T, D), weights (B, H, T, S) or None).

        memory_mask: additive (B, 1, 1, S) mask over source positions (padding), or None.
        """
        B, T, _ = x.shape
        q = self.q(x).view(B, T, self.n_head, self.head_dim).transpose(1, 2)  # (B, H, T, Dh)
        dropout_p = self.dropout if self.training else 0.0
        inputs = AttentionInputs(None, memory_mask, False)
        y, weights = attend(q, *memory_kv, inputs, dropout_p=dropout_p, need_weights=need_weights)
        return _merge_heads(self.out, y, dropout_p), weights
