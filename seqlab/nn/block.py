"""The Transformer block, shared by all three shapes (decoder-only, encoder, encoder–decoder).

A block receives its parts already built (STYLE.md: compose, don't configure): self-attention, a
feed-forward network, their norms, and for an encoder–decoder's decoder a cross-attention with its
norm. How the parts are wired is the block's own concern:

  pre-norm (GPT-2 and most LLMs):   x = x + f(norm(x))            for each sublayer f
  post-norm (Vaswani et al. 2017):  x = norm(α·x + f(x))          α = 1
  DeepNorm (Wang et al. 2022):      post-norm with α > 1 (and smaller initial weights, set by the
                                    builder), which keeps deep post-norm stacks trainable
  parallel (GPT-J, PaLM):           x = x + attn(norm(x)) + mlp(norm(x))   (one norm, one residual)

Sublayer order: self-attention, then cross-attention (decoders of an encoder–decoder), then the MLP.

Dimensions: B batch · T time · S source length · D model width · G kv heads · Dh head width.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Literal

from torch import Tensor, nn

from seqlab.nn.attention import AttentionInputs
from seqlab.nn.kv_cache import LayerKVCache


class Block(nn.Module):
    """One Transformer layer built from parts. State-dict keys: `norm1`, `attn`, `norm2`, `mlp`, and
    with cross-attention `norm_cross`, `cross_attn`. A parallel block has no `norm2`."""

    def __init__(
        self,
        *,
        attn: nn.Module,
        mlp: nn.Module,
        norm1: nn.Module,
        norm2: nn.Module | None,
        cross_attn: nn.Module | None = None,
        norm_cross: nn.Module | None = None,
        norm_position: Literal["pre", "post"] = "pre",
        residual_scale: float = 1.0,
        parallel: bool = False,
    ) -> None:
        super().__init__()
        if parallel and (norm2 is not None or cross_attn is not None):
            raise ValueError("a parallel block has one norm (norm1) and no cross-attention")
        if not parallel and norm2 is None:
            raise ValueError("a sequential block needs norm2 before its MLP")
        if (cross_attn is None) != (norm_cross is None):
            raise ValueError("cross-attention and its norm come together")
        self.norm1 = norm1
        self.attn = attn
        if cross_attn is not None:
            self.norm_cross = norm_cross
            self.cross_attn = cross_attn
        if norm2 is not None:
            self.norm2 = norm2
        self.mlp = mlp
        self.pre_norm = norm_position == "pre"
        self.residual_scale = residual_scale  # DeepNorm's α; 1 otherwise
        self.parallel = parallel

    def forward(
        self,
        x: Tensor,
        inputs: AttentionInputs,
        *,
        cache_layer: LayerKVCache | None = None,
        memory_kv: tuple[Tensor, Tensor] | None = None,
        memory_mask: Tensor | None = None,
    ) -> Tensor:
        """x (B, T, D) → (B, T, D).

        memory_kv: this layer's cross-attention keys and values (B, G, S, Dh) from
        `cross_attn.memory_kv(memory)`; memory_mask: additive (B, 1, 1, S) source padding mask.
        """
        def self_attention(h: Tensor) -> Tensor:
            return self.attn(h, inputs, cache_layer=cache_layer)[0]

        if self.parallel:
            if self.pre_norm:
                h = self.norm1(x)
                return x + self_attention(h) + self.mlp(h)
            return self.norm1(self.residual_scale * x + self_attention(x) + self.mlp(x))
        x = self._sublayer(x, self.norm1, self_attention)
        if hasattr(self, "cross_attn"):
            if memory_kv is None:
                raise ValueError("this block cross-attends: pass the encoder's memory_kv")
            x = self._sublayer(x, self.norm_cross, lambda h: self.cross_attn(h, memory_kv, memory_mask)[0])
        return self._sublayer(x, self.norm2, self.mlp)

    def _sublayer(self, x: Tensor, norm: nn.Module, f: Callable[[Tensor], Tensor]) -> Tensor:
        if self.pre_norm:
            return x + f(norm(x))
        return norm(self.residual_scale * x + f(x))

    def extra_repr(self) -> str:
        wiring = "pre-norm" if self.pre_norm else f"post-norm, residual × {self.residual_scale:.4g}"
        return f"{wiring}{', parallel' if self.parallel else ''}"
