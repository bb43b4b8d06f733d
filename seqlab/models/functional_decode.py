"""A decode path for `TransformerLM` without nn.Module boundaries, for fast sampling on CPU.

A decode step of a small model is ~45 module calls around tiny kernels; on CPU the calls (hook
checks, attribute lookups, wrapper frames) cost more than the arithmetic. `FunctionalStepper` runs the
same forward as one flat sequence of functional calls, op for op the module path's math, and makes a
decode step about 1.5x faster on the shakespeare-char preset.

It must never decode with other arithmetic than the model's. Two things keep it so:
  - `HANDLED_SETTINGS` and `ANY_VALUE` declare, beside the code that implements them, every field of
    the Transformer's settings this path knows and the values it implements. `supports` refuses a
    model whose config has a field not declared here, or a value not handled: a setting added to
    the Transformer later decodes through the module path until it is declared here (and tested).
  - tests/models/test_functional_decode.py checks, for every decoder-only preset and a seeded sample
    of the variant axes, that wherever `supports` is True the logits and greedy tokens equal the
    module path's, and that wherever it is False the model decodes through its own `step`.

Covered: pre-norm blocks, sequential or parallel; LayerNorm or RMSNorm; every position scheme (the
model's own `pos_emb` hooks are called, as the module path calls them); plain or gated MLPs with
ReLU, GELU or SiLU; multi-head, grouped-query and multi-query attention; with or without biases;
tied or separate output layer. Not covered: post-norm and DeepNorm blocks (`norm_position`), and
mixtures of experts (`n_experts`).

Dimensions: B batch · T time · D model width · H heads · G kv heads · Dh head width · V vocab.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from functools import partial
from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.nn.modules import module as torch_module  # the global hook registries

from seqlab.models.transformer import TransformerLM
from seqlab.nn.attention import SelfAttention, attend, attention_inputs, repeat_kv
from seqlab.nn.block import Block
from seqlab.nn.feedforward import GELU, FeedForward, GatedFeedForward
from seqlab.nn.kv_cache import KVCache
from seqlab.nn.norm import RMSNorm
from seqlab.nn.positional import (
    ALiBiPositions,
    LearnedPositions,
    NoPositions,
    RelativePositions,
    RotaryPositions,
    SinusoidalPositions,
    apply_rotary,
)

# --- the settings this path implements ----------------------------------------------------------------

#: The fields of the Transformer's settings that change its arithmetic, each with the values this
#: path implements. A value not listed (or a new field) sends the model through the module path.
HANDLED_SETTINGS: dict[str, frozenset[object]] = {
    "family": frozenset({"transformer"}),
    "bias": frozenset({True, False}),  # F.linear and layer_norm take a None bias
    "norm": frozenset({"layernorm", "rmsnorm"}),  # `_NORMS`
    "norm_position": frozenset({"pre"}),  # post-norm and DeepNorm wire the residual differently
    "position": frozenset({"learned", "sinusoidal", "rope", "alibi", "relative", "none"}),  # `pos_emb`'s own hooks
    "activation": frozenset({"relu", "gelu", "gelu_tanh", "swiglu", "geglu"}),  # `_ACTIVATIONS`, `_mlp`
    "parallel_block": frozenset({False, True}),
    "tie_embeddings": frozenset({True, False}),  # the output layer is read as `lm_head.weight` either way
    "n_experts": frozenset({0}),  # dense MLPs only: a mixture of experts decodes through the module path
    "attention_only": frozenset({False}),  # an MLP in every block: attention-only models take the module path
}

#: Fields whose every value this path handles, and why.
ANY_VALUE: dict[str, str] = {
    "n_layer": "a size: the blocks are read from the model",
    "n_head": "a size: read from each attention layer",
    "n_kv_head": "read from each attention layer; keys and values are repeated as `attend` repeats them",
    "d_model": "a size: read from the weights",
    "d_ff": "a size: read from the weights",
    "block_size": "read from the model; the KV cache is sized by it",
    "dropout": "inert: only eval-mode models qualify",
    "norm_eps": "read from each norm",
    "rope_base": "in the model's rotary tables, which this path asks for",
    "relative_buckets": "in the model's relative-position bias, which this path asks for",
    "relative_max_distance": "in the model's relative-position bias, which this path asks for",
    "experts_per_token": "inert: only dense models (n_experts = 0) qualify",
    "router_aux_loss": "a training loss term, never computed when decoding",
}


def unhandled_settings(config: object) -> list[str]:
    """The settings of `config` this path does not implement: an unknown field, or a value not in
    `HANDLED_SETTINGS`. Empty when it implements them all."""
    if not dataclasses.is_dataclass(config):
        return [f"{type(config).__name__} is not a dataclass of settings"]
    problems = []
    for field in dataclasses.fields(config):
        if field.name in ANY_VALUE:
            continue
        value = getattr(config, field.name)
        if field.name not in HANDLED_SETTINGS:
            problems.append(f"{field.name}: a setting this path does not know")
        elif value not in HANDLED_SETTINGS[field.name]:
            problems.append(f"{field.name} = {value!r} is not implemented here")
    return problems


# --- the parts, as functions of tensors read once -------------------------------------------------------

Linear = tuple[Tensor, Tensor | None]  # (weight, bias)


def _linear(m: nn.Linear) -> Linear:
    return m.weight, m.bias


def _layer_norm(m: nn.LayerNorm) -> Callable[[Tensor], Tensor]:
    return partial(torch.layer_norm, normalized_shape=m.normalized_shape, weight=m.weight, bias=m.bias, eps=m.eps)


def _rms_norm(m: RMSNorm) -> Callable[[Tensor], Tensor]:
    weight, eps = m.weight, m.eps

    def norm(x: Tensor) -> Tensor:  # RMSNorm.forward's math: the mean square in at least float32
        h = x.to(torch.promote_types(x.dtype, torch.float32))
        h = h * torch.rsqrt(h.pow(2).mean(-1, keepdim=True) + eps)
        return weight * h.to(x.dtype)

    return norm


# The stock part classes this path knows, each with the function that reads one into a callable.
_NORMS: dict[type, Callable[[nn.Module], Callable[[Tensor], Tensor]]] = {
    nn.LayerNorm: _layer_norm,
    RMSNorm: _rms_norm,
}
_ACTIVATIONS: dict[type, Callable[[nn.Module], Callable[[Tensor], Tensor]]] = {
    nn.GELU: lambda m: partial(F.gelu, approximate=m.approximate),
    GELU: lambda m: partial(F.gelu, approximate=m.approximate),  # its compile-only form is not used eagerly
    nn.ReLU: lambda m: torch.relu,
    nn.SiLU: lambda m: F.silu,
}
_POSITIONS = (LearnedPositions, SinusoidalPositions, RotaryPositions, ALiBiPositions, RelativePositions, NoPositions)


class _BlockParams(NamedTuple):
    """One stock Block's tensors and constants, read once per generation."""

    norm1: Callable[[Tensor], Tensor]
    qkv: Linear
    out: Linear
    norm2: Callable[[Tensor], Tensor] | None  # None: a parallel block (one norm)
    gate: Linear | None  # None: a plain MLP
    up: Linear
    activation: Callable[[Tensor], Tensor]
    down: Linear
    n_head: int
    n_kv_head: int


def _block_params(b: Block) -> _BlockParams:
    mlp = b.mlp
    return _BlockParams(
        norm1=_NORMS[type(b.norm1)](b.norm1), qkv=_linear(b.attn.qkv), out=_linear(b.attn.out),
        norm2=None if b.parallel else _NORMS[type(b.norm2)](b.norm2),
        gate=_linear(mlp.gate) if type(mlp) is GatedFeedForward else None, up=_linear(mlp.up),
        activation=_ACTIVATIONS[type(mlp.activation)](mlp.activation), down=_linear(mlp.down),
        n_head=b.attn.n_head, n_kv_head=b.attn.n_kv_head,
    )


def _mlp(p: _BlockParams, h: Tensor) -> Tensor:
    """`FeedForward` or `GatedFeedForward` on rows h (N, D) → (N, D)."""
    if p.gate is None:
        return F.linear(p.activation(F.linear(h, *p.up)), *p.down)
    return F.linear(p.activation(F.linear(h, *p.gate)) * F.linear(h, *p.up), *p.down)


class FunctionalStepper:
    """The stepper protocol for an eval-mode `TransformerLM` built from the stock parts, running its
    forward as one flat sequence of functional calls.

    Why: a decode step on a small model is ~45 nn.Module calls around tiny kernels, and on CPU the
    calls (hook checks, attribute lookups, wrapper frames) cost more than the arithmetic: this path
    makes a decode step ~1.5x faster on the shakespeare-char preset (CPU). The math is the module
    path's, op for op. It applies only when `supports(model)`: every setting of the model's config
    is one this module implements (`unhandled_settings`), every module is in eval mode (no dropout
    here) and exactly a stock class, and no forward hooks are registered, since it bypasses the
    modules. The parameters are read once, so one stepper serves one generation and must not
    outlive changes to the model.
    """

    def __init__(self, model: TransformerLM) -> None:
        self.model = model
        self.block_size = model.block_size
        self._positions = model.pos_emb  # only its hooks (embed, rotary, score_bias) are called
        self._tok_emb = model.tok_emb.weight  # (V, D)
        self._lm_head = model.lm_head.weight  # (V, D), the same tensor when tied
        self._norm_f = _NORMS[type(model.norm_f)](model.norm_f)
        self._blocks = [_block_params(b) for b in model.blocks]
        self._views: list[tuple[Tensor, Tensor]] = []  # per-layer views of the cache in use (`_cache_views`)
        self._views_of: Tensor | None = None

    @staticmethod
    def supports(model: nn.Module) -> bool:
        """True when this path computes exactly what `model.step` computes: see the class docstring."""
        # The arithmetic below is TransformerLM's own forward and step: a subclass may change them.
        if (type(model).forward, type(model).step) != (TransformerLM.forward, TransformerLM.step) \
                or unhandled_settings(model.config):
            return False
        if torch_module._global_forward_hooks or torch_module._global_forward_pre_hooks:
            return False
        modules = list(model.modules())
        if any(m.training or m._forward_hooks or m._forward_pre_hooks for m in modules):
            return False
        return (type(model.tok_emb) is nn.Embedding and type(model.pos_emb) in _POSITIONS
                and type(model.norm_f) in _NORMS and type(model.lm_head) is nn.Linear and model.lm_head.bias is None
                and all(_is_stock_block(b) for b in model.blocks))

    def new_state(self, batch_size: int, device: torch.device | str | None = None) -> KVCache:
        return self.model.new_state(batch_size, device)

    def step(self, tokens: Tensor, state: KVCache | None) -> tuple[Tensor, KVCache | None]:
        """Same contract as `TransformerLM.step`: tokens (B, T) → (last-position logits (B, V), state)."""
        B, T = tokens.shape
        past = 0 if state is None else state.length
        if past + T > self.block_size:
            raise ValueError(f"sequence of {past} cached + {T} new tokens exceeds block_size {self.block_size}")
        cache = None if state is None else self._cache_views(state, past + T)
        x = self._positions.embed(torch.embedding(self._tok_emb, tokens), past)  # (B, T, D)
        inputs = attention_inputs(self._positions, start=past, n_query=T, causal=True, device=x.device, dtype=x.dtype)
        D = x.shape[-1]
        # Rows of a 2-D (B·T, D) stream: linear layers on 2-D inputs skip matmul's reshapes.
        x = x.view(B * T, D)
        for i, p in enumerate(self._blocks):
            H, G = p.n_head, p.n_kv_head
            h = p.norm1(x)
            # The packed projection's rows: H query heads, then G key heads, then G value heads.
            # (`split_with_sizes`: `split` without its Python wrapper.)
            q, k, v = F.linear(h, *p.qkv).view(B, T, H + 2 * G, D // H).transpose(1, 2).split_with_sizes(
                (H, G, G), dim=1)  # (B, H, T, Dh), (B, G, T, Dh), (B, G, T, Dh)
            if inputs.rotary is not None:
                q, k = apply_rotary(q, *inputs.rotary), apply_rotary(k, *inputs.rotary)
            if cache is not None:
                k, v = self._append(cache[i], past, k, v)  # (B, G, S, Dh)
            elif state is not None:
                k, v = state.layer(i).append(k, v)
            if T == 1 and inputs.mask is None and q.dtype == torch.float32:
                # One query sees every key: no mask, and float32 SDPA needs none of `sdpa`'s CPU casts.
                y = F.scaled_dot_product_attention(q, repeat_kv(k, H // G), repeat_kv(v, H // G))
            else:
                y = attend(q, k, v, inputs)[0]  # (B, H, T, Dh)
            y = F.linear(y.transpose(1, 2).reshape(B * T, D), *p.out)  # (B·T, D)
            if p.norm2 is None:  # parallel (GPT-J, PaLM): both sublayers read the same normed x
                x = x + y + _mlp(p, h)
            else:
                x = x + y
                x = x + _mlp(p, p.norm2(x))
        if state is not None:
            state.advance(T)
        x = self._norm_f(x.view(B, T, D)[:, -1])  # (B, D): the last position only
        return F.linear(x, self._lm_head), state  # (B, V)

    def _cache_views(self, state: KVCache, end: int) -> list[tuple[Tensor, Tensor]] | None:
        """Each layer's (keys, values) storage in `state`, (B, G, M, Dh) views made once per cache, or
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
        """Write a layer's new k, v (B, G, T, Dh) at positions past.. and return the filled prefix:
        `LayerKVCache.append` as two narrow-and-copy calls on the prepared views (its indexing
        through `__setitem__` cost a quarter of a decode step)."""
        keys, values = layer
        T = k.shape[2]
        keys.narrow(2, past, T).copy_(k)
        values.narrow(2, past, T).copy_(v)
        return keys.narrow(2, 0, past + T), values.narrow(2, 0, past + T)


def _is_stock_block(block: nn.Module) -> bool:
    """A pre-norm `Block` of stock parts, as `seqlab.models.parts.build_block` makes them."""
    if type(block) is not Block or not block.pre_norm or hasattr(block, "cross_attn"):
        return False
    attn, mlp = block.attn, block.mlp
    if type(attn) is not SelfAttention or type(mlp) not in (FeedForward, GatedFeedForward):
        return False
    norms = (block.norm1,) if block.parallel else (block.norm1, block.norm2)
    linears = (attn.qkv, attn.out, mlp.up, mlp.down) + ((mlp.gate,) if type(mlp) is GatedFeedForward else ())
    return (all(type(n) in _NORMS for n in norms) and type(mlp.activation) in _ACTIVATIONS
            and all(type(m) is nn.Linear for m in linears))
