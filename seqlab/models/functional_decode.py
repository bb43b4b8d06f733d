"""A decode path for `TransformerLM` without nn.Module boundaries, for fast sampling on CPU.

Applies to GPT-2-shaped models (the default config and imported GPT-2 weights); other variants
decode through the module path. A decode step of a small model is ~45 module calls around tiny kernels; on CPU the calls (hook
checks, attribute lookups, wrapper frames) cost more than the arithmetic. `FunctionalStepper` runs the
same forward as one flat sequence of functional calls, op for op the module path's math (the tests
check they are equal), and makes a decode step about 1.5x faster on the shakespeare-char preset.

Dimensions: B batch · T time · D model width · H heads · Dh head width · V vocab.
"""

from __future__ import annotations

from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.nn.modules import module as torch_module  # the global hook registries

from seqlab.models.transformer import TransformerLM
from seqlab.nn.attention import SelfAttention, causal_attention
from seqlab.nn.block import Block
from seqlab.nn.feedforward import GELU, FeedForward
from seqlab.nn.kv_cache import KVCache
from seqlab.nn.positional import LearnedPositions


class _BlockParams(NamedTuple):
    """One stock Block's tensors and constants, read once per generation."""

    norm1: tuple[tuple[int, ...], Tensor, Tensor | None, float]  # (shape, weight, bias, eps)
    qkv: tuple[Tensor, Tensor | None]  # (weight, bias)
    out: tuple[Tensor, Tensor | None]
    norm2: tuple[tuple[int, ...], Tensor, Tensor | None, float]
    up: tuple[Tensor, Tensor | None]
    gelu: str  # GELU's `approximate`
    down: tuple[Tensor, Tensor | None]
    n_head: int


def _norm(m: nn.LayerNorm) -> tuple[tuple[int, ...], Tensor, Tensor | None, float]:
    return m.normalized_shape, m.weight, m.bias, m.eps


def _linear(m: nn.Linear) -> tuple[Tensor, Tensor | None]:
    return m.weight, m.bias


class FunctionalStepper:
    """The stepper protocol for an eval-mode `TransformerLM` built from the stock parts, running its
    forward as one flat sequence of functional calls.

    Why: a decode step on a small model is ~45 nn.Module calls around tiny kernels, and on CPU the
    calls (hook checks, attribute lookups, wrapper frames) cost more than the arithmetic: this path
    makes a decode step ~1.5x faster on the shakespeare-char preset (CPU). The math is the module
    path's, op for op (tests/models/test_transformer.py checks equality). It applies only when
    `supports(model)`: eval mode (no dropout here), GPT-2's shape (learned positions, pre-LayerNorm
    sequential blocks, multi-head attention, a GELU MLP, tied embeddings), exactly the stock layer
    classes, and no forward hooks, since it bypasses the modules. The parameters are read once, so one stepper serves one
    generation and must not outlive changes to the model.
    """

    def __init__(self, model: TransformerLM) -> None:
        self.model = model
        self.block_size = model.block_size
        self._tok_emb = model.tok_emb.weight  # (V, D), also the output layer
        self._pos_emb = model.pos_emb.weight  # (block_size, D)
        self._norm_f = _norm(model.norm_f)
        self._blocks = [
            _BlockParams(norm1=_norm(b.norm1), qkv=_linear(b.attn.qkv), out=_linear(b.attn.out),
                         norm2=_norm(b.norm2), up=_linear(b.mlp.up), gelu=b.mlp.activation.approximate,
                         down=_linear(b.mlp.down), n_head=b.attn.n_head)
            for b in model.blocks
        ]
        self._views: list[tuple[Tensor, Tensor]] = []  # per-layer views of the cache in use (`_cache_views`)
        self._views_of: Tensor | None = None

    @staticmethod
    def supports(model: nn.Module) -> bool:
        """True when `model` is an eval-mode TransformerLM of stock parts without forward hooks."""
        if type(model) is not TransformerLM or model.training:
            return False
        if torch_module._global_forward_hooks or torch_module._global_forward_pre_hooks:
            return False
        stock = (type(model.tok_emb) is nn.Embedding and type(model.pos_emb) is LearnedPositions
                 and type(model.norm_f) is nn.LayerNorm and type(model.lm_head) is nn.Linear
                 and model.lm_head.weight is model.tok_emb.weight and model.lm_head.bias is None
                 and all(_is_stock_block(b) for b in model.blocks))
        return stock and not any(m._forward_hooks or m._forward_pre_hooks for m in model.modules())

    def new_state(self, batch_size: int, device: torch.device | str | None = None) -> KVCache:
        return self.model.new_state(batch_size, device)

    def step(self, tokens: Tensor, state: KVCache | None) -> tuple[Tensor, KVCache | None]:
        """Same contract as `TransformerLM.step`: tokens (B, T) → (last-position logits (B, V), state)."""
        B, T = tokens.shape
        past = 0 if state is None else state.length
        if past + T > self.block_size:
            raise ValueError(f"sequence of {past} cached + {T} new tokens exceeds block_size {self.block_size}")
        cache = None if state is None else self._cache_views(state, past + T)
        # Rows of a 2-D (B·T, D) stream: linear layers on 2-D inputs skip matmul's reshapes.
        x = (torch.embedding(self._tok_emb, tokens) + self._pos_emb[past:past + T]).view(B * T, -1)  # (B·T, D)
        D = x.shape[-1]
        for i, p in enumerate(self._blocks):
            H = p.n_head
            h = torch.layer_norm(x, *p.norm1)
            q, k, v = F.linear(h, *p.qkv).view(B, T, 3, H, D // H).permute(2, 0, 3, 1, 4).unbind(0)  # (B, H, T, Dh)
            if cache is not None:
                k, v = self._append(cache[i], past, k, v)  # (B, H, S, Dh)
            elif state is not None:
                k, v = state.layer(i).append(k, v)
            # One query sees every key: no mask, and float32 SDPA needs none of `sdpa`'s CPU casts.
            y = (F.scaled_dot_product_attention(q, k, v) if T == 1 and q.dtype == torch.float32
                 else causal_attention(q, k, v)).transpose(1, 2).reshape(B * T, D)  # (B·T, D)
            x = x + F.linear(y, *p.out)
            h = torch.layer_norm(x, *p.norm2)
            x = x + F.linear(F.gelu(F.linear(h, *p.up), approximate=p.gelu), *p.down)
        if state is not None:
            state.advance(T)
        x = torch.layer_norm(x.view(B, T, D)[:, -1], *self._norm_f)  # (B, D): the last position only
        return F.linear(x, self._tok_emb), state  # (B, V)

    def _cache_views(self, state: KVCache, end: int) -> list[tuple[Tensor, Tensor]] | None:
        """Each layer's (keys, values) storage in `state`, (B, H, M, Dh) views made once per cache, or
        None where they must not be used: with autograd recording, a write through a view made
        earlier would leave the other views' history stale (`LayerKVCache.append` indexes afresh)."""
        if torch.is_grad_enabled():
            return None
        if end > state.max_len:
            raise ValueError(f"KV cache overflow: {state.length} cached + {end - state.length} new > "
                             f"capacity {state.max_len}")
        if self._views_of is not state.k:  # a new cache (a new generation, or a re-prime)
            self._views = [(state.k[i], state.v[i]) for i in range(len(self._blocks))]
            self._views_of = state.k
        return self._views

    @staticmethod
    def _append(layer: tuple[Tensor, Tensor], past: int, k: Tensor, v: Tensor) -> tuple[Tensor, Tensor]:
        """Write a layer's new k, v (B, H, T, Dh) at positions past.. and return the filled prefix:
        `LayerKVCache.append` as two narrow-and-copy calls on the prepared views (its indexing
        through `__setitem__` cost a quarter of a decode step)."""
        keys, values = layer
        T = k.shape[2]
        keys.narrow(2, past, T).copy_(k)
        values.narrow(2, past, T).copy_(v)
        return keys.narrow(2, 0, past + T), values.narrow(2, 0, past + T)


def _is_stock_block(block: nn.Module) -> bool:
    return (type(block) is Block and block.pre_norm and not block.parallel and not hasattr(block, "cross_attn")
            and type(block.norm1) is nn.LayerNorm and type(block.norm2) is nn.LayerNorm
            and type(block.attn) is SelfAttention and block.attn.n_kv_head == block.attn.n_head
            and type(block.attn.qkv) is nn.Linear
            and type(block.attn.out) is nn.Linear and type(block.mlp) is FeedForward
            and type(block.mlp.up) is nn.Linear and type(block.mlp.down) is nn.Linear
            and type(block.mlp.activation) in (nn.GELU, GELU))
