"""Causal multi-head self-attention (Vaswani et al. 2017, "Attention Is All You Need"), GPT-2 style.

One packed projection makes queries, keys and values; each head attends with
softmax(Q Kᵀ / √Dh + mask) V; an output projection mixes the heads. Parity tests compare it with
`F.scaled_dot_product_attention` and `torch.nn.MultiheadAttention` (tests/nn/test_attention.py).

Two paths give the same result:
  - fast: `causal_attention`, over `F.scaled_dot_product_attention` (fused kernels; no weights);
  - explicit: the formula written out, returning the (B, H, T, S) attention weights for inspection.

Masks follow DESIGN.md: boolean, True = may attend. With a KV cache, the T new queries sit at
absolute positions P .. P+T-1 against S = P + T keys, so the causal mask is offset (bottom-right
aligned); SDPA's `is_causal=True` is top-left aligned and is only used when nothing is cached.

Dimensions: B batch · T queries · S keys · D model width · H heads · Dh head width (D = H·Dh).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from seqlab.nn.kv_cache import LayerKVCache
from seqlab.nn.masks import causal_mask


class CausalSelfAttention(nn.Module):
    """Multi-head causal self-attention with a packed qkv projection.

    Parameters (state-dict keys): `qkv` (D → 3D, rows ordered q, k, v; heads contiguous inside each)
    and `out` (D → D).
    """

    def __init__(self, d_model: int, n_head: int, *, bias: bool, dropout: float) -> None:
        super().__init__()
        if d_model % n_head != 0:
            raise ValueError(f"d_model = {d_model} is not a multiple of n_head = {n_head}")
        self.d_model = d_model
        self.n_head = n_head
        self.head_dim = d_model // n_head
        self.dropout = dropout  # on the attention weights and on the output (residual) path
        self.qkv = nn.Linear(d_model, 3 * d_model, bias=bias)
        self.out = nn.Linear(d_model, d_model, bias=bias)

    def forward(
        self, x: Tensor, *, cache_layer: LayerKVCache | None = None, need_weights: bool = False
    ) -> tuple[Tensor, Tensor | None]:
        """x (B, T, D) → (y (B, T, D), weights (B, H, T, S) if need_weights else None).

        With `cache_layer`, the new keys/values are written into it and the queries attend to the
        cached prefix as well (S = cached + T); the caller advances the cache's length.
        """
        B, T, D = x.shape
        H, Dh = self.n_head, self.head_dim
        q, k, v = self.qkv(x).view(B, T, 3, H, Dh).permute(2, 0, 3, 1, 4).unbind(0)  # 3 × (B, H, T, Dh)
        if cache_layer is not None:
            k, v = cache_layer.append(k, v)  # (B, H, S, Dh), S = cached + T
        dropout_p = self.dropout if self.training else 0.0
        if need_weights:
            y, weights = self._explicit(q, k, v, dropout_p=dropout_p)
        else:
            y, weights = causal_attention(q, k, v, dropout_p=dropout_p), None
        y = y.transpose(1, 2).reshape(B, T, D)  # (B, T, H, Dh) → (B, T, D)
        y = self.out(y)
        if dropout_p > 0.0:
            y = F.dropout(y, dropout_p, training=True)
        return y, weights

    def _explicit(self, q: Tensor, k: Tensor, v: Tensor, *, dropout_p: float) -> tuple[Tensor, Tensor]:
        """softmax(Q Kᵀ/√Dh + mask) V written out. Returns y (B, H, T, Dh), weights (B, H, T, S)."""
        T, S = q.shape[2], k.shape[2]
        scores = (q @ k.transpose(-2, -1)) * (1.0 / math.sqrt(self.head_dim))  # (B, H, T, S)
        mask = causal_mask(T, S, device=q.device)  # (T, S), True = may attend
        scores = scores.masked_fill(~mask, float("-inf"))
        # Softmax in at least float32: half-precision exponentials lose the small weights.
        weights = torch.softmax(scores, dim=-1, dtype=torch.promote_types(scores.dtype, torch.float32))
        weights = weights.to(q.dtype)  # (B, H, T, S); rows sum to 1, zeros above the diagonal
        dropped = F.dropout(weights, dropout_p, training=True) if dropout_p > 0.0 else weights
        return dropped @ v, weights  # (B, H, T, Dh), (B, H, T, S)


def causal_attention(q: Tensor, k: Tensor, v: Tensor, *, dropout_p: float = 0.0) -> Tensor:
    """Causal SDPA of q (B, H, T, Dh) against k, v (B, H, S, Dh) → (B, H, T, Dh).

    The queries are the last T of the S positions (S - T are cached). Picks the cheapest correct
    mask: none for one query (decoding: the last position sees every key), SDPA's top-left aligned
    `is_causal` when nothing is cached (T == S), else the offset mask.
    """
    T, S = q.shape[2], k.shape[2]
    if T == 1:
        return F.scaled_dot_product_attention(q, k, v, dropout_p=dropout_p)
    if T == S:
        return F.scaled_dot_product_attention(q, k, v, dropout_p=dropout_p, is_causal=True)
    mask = causal_mask(T, S, device=q.device)  # (T, S), True = may attend
    return F.scaled_dot_product_attention(q, k, v, attn_mask=mask, dropout_p=dropout_p)
