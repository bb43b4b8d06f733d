"""Builders for the parts of a Transformer: the only code that reads a `ModelConfig`'s variant axes.

Each axis is resolved here, in one `match`, into a part from `seqlab.nn`; models call these builders
and never look at the axes themselves. Adding a variant is one class in `seqlab.nn`, one `case` here
and one test.

Initialisation is here too, since it depends on the wiring: GPT-2's N(0, 0.02) with residual output
projections at 0.02/√(2·layers), or DeepNorm's scaled Xavier initialisation for deepnorm models.
"""

from __future__ import annotations

import math
from typing import Literal

from torch import nn

from seqlab.config.schema import ModelConfig
from seqlab.nn.attention import CrossAttention, SelfAttention
from seqlab.nn.block import Block
from seqlab.nn.feedforward import GELU, FeedForward, GatedFeedForward, NoFeedForward
from seqlab.nn.moe import MixtureOfExperts
from seqlab.nn.norm import RMSNorm
from seqlab.nn.positional import (
    ALiBiPositions,
    LearnedPositions,
    NoPositions,
    Positions,
    RelativePositions,
    RotaryPositions,
    SinusoidalPositions,
)


def build_norm(config: ModelConfig) -> nn.Module:
    match config.norm:
        case "layernorm":
            return nn.LayerNorm(config.d_model, eps=config.norm_eps, bias=config.bias)
        case "rmsnorm":
            return RMSNorm(config.d_model, eps=config.norm_eps)
    raise AssertionError(config.norm)  # the schema admits nothing else


def build_final_norm(config: ModelConfig) -> nn.Module:
    """The norm after the last block: pre-norm stacks need one; post-norm blocks end normalised."""
    return build_norm(config) if config.norm_position == "pre" else nn.Identity()


def build_activation(config: ModelConfig) -> nn.Module:
    match config.activation:
        case "relu":
            return nn.ReLU()
        case "gelu" | "geglu":
            return GELU()
        case "gelu_tanh":
            # GPT-2's GELU ("gelu_new" in Hugging Face), so imported GPT-2 weights reproduce GPT-2.
            return GELU(approximate="tanh")
        case "swiglu":
            return nn.SiLU()
    raise AssertionError(config.activation)


def build_feed_forward(config: ModelConfig) -> nn.Module:
    """The dense feed-forward network, plain or gated (`activation`)."""
    cls = GatedFeedForward if config.gated else FeedForward
    return cls(config.d_model, config.hidden_width, activation=build_activation(config), bias=config.bias,
               dropout=config.dropout)


def build_mlp(config: ModelConfig) -> nn.Module:
    """A block's feed-forward sublayer: the dense one, or with `n_experts` a mixture of that many
    copies of it, each token routed to `experts_per_token` of them; with `attention_only` none (a
    sublayer that adds zero to the residual stream)."""
    if config.attention_only:
        return NoFeedForward()
    if config.n_experts:
        return MixtureOfExperts(config.d_model, [build_feed_forward(config) for _ in range(config.n_experts)],
                                top_k=config.experts_per_token)
    return build_feed_forward(config)


def build_positions(config: ModelConfig, *, causal: bool) -> Positions:
    """The position scheme; `causal` picks T5's one-directional buckets for decoders."""
    match config.position:
        case "learned":
            return LearnedPositions(config.block_size, config.d_model)
        case "sinusoidal":
            return SinusoidalPositions(config.d_model)
        case "rope":
            return RotaryPositions(config.head_dim, base=config.rope_base)
        case "alibi":
            return ALiBiPositions(config.n_head)
        case "relative":
            return RelativePositions(config.n_head, bidirectional=not causal, n_buckets=config.relative_buckets,
                                     max_distance=config.relative_max_distance)
        case "none":
            return NoPositions()
    raise AssertionError(config.position)


def deepnorm_constants(role: Literal["decoder_only", "encoder", "decoder"], config: ModelConfig) -> tuple[float, float]:
    """DeepNorm's (α, β) (Wang et al. 2022, Table 1): α scales the residual, β the initial weights.

    N encoder and M decoder layers: decoder-only (or encoder-only) α = (2M)^¼, β = (8M)^-¼; in an
    encoder–decoder, encoder α = 0.81·(N⁴M)^1/16, β = 0.87·(N⁴M)^-1/16, decoder α = (3M)^¼, β = (12M)^-¼.
    """
    n, m = config.encoder_layers, config.n_layer
    match role:
        case "decoder_only":
            return (2 * m) ** 0.25, (8 * m) ** -0.25
        case "encoder":
            return 0.81 * (n**4 * m) ** (1 / 16), 0.87 * (n**4 * m) ** (-1 / 16)
        case "decoder":
            return (3 * m) ** 0.25, (12 * m) ** -0.25
    raise AssertionError(role)


def build_block(config: ModelConfig, *, role: Literal["decoder_only", "encoder", "decoder"] = "decoder_only") -> Block:
    """One layer. `role` "decoder" (of an encoder–decoder) adds cross-attention."""
    d, attention = config.d_model, dict(n_kv_head=config.kv_heads, bias=config.bias, dropout=config.dropout)
    post = config.norm_position != "pre"
    residual_scale = deepnorm_constants(role, config)[0] if config.norm_position == "deepnorm" else 1.0
    cross = role == "decoder"
    return Block(
        attn=SelfAttention(d, config.n_head, **attention),
        mlp=build_mlp(config),
        norm1=build_norm(config),
        norm2=None if config.parallel_block else build_norm(config),
        cross_attn=CrossAttention(d, config.n_head, **attention) if cross else None,
        norm_cross=build_norm(config) if cross else None,
        norm_position="post" if post else "pre",
        residual_scale=residual_scale,
        parallel=config.parallel_block,
    )


def init_weights(module: nn.Module, config: ModelConfig, *, n_residual_layers: int) -> None:
    """GPT-2 initialisation over `module`: N(0, 0.02) for linear and embedding weights, zero biases,
    unit norms, and the residual output projections (attention `out`, MLP `down`) at
    0.02/√(2·n_residual_layers), so the residual stream's variance does not grow with depth."""
    for m in module.modules():
        if isinstance(m, (nn.Linear, nn.Embedding)):
            nn.init.normal_(m.weight, mean=0.0, std=0.02)
            if getattr(m, "bias", None) is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, LearnedPositions):
            nn.init.normal_(m.weight, mean=0.0, std=0.02)
        elif isinstance(m, (nn.LayerNorm, RMSNorm)):
            m.reset_parameters()
    residual_std = 0.02 / math.sqrt(2 * n_residual_layers)
    for m in module.modules():
        if isinstance(m, (SelfAttention, CrossAttention)):
            nn.init.normal_(m.out.weight, mean=0.0, std=residual_std)
        elif isinstance(m, (FeedForward, GatedFeedForward)):
            nn.init.normal_(m.down.weight, mean=0.0, std=residual_std)


def init_deepnorm(blocks: nn.ModuleList, beta: float) -> None:
    """DeepNorm's initialisation of `blocks`: Xavier normal with gain β for the MLP, the value and
    the output projections, gain 1 for queries and keys (Wang et al. 2022, Figure 2)."""
    for block in blocks:
        for attn in (block.attn, getattr(block, "cross_attn", None)):
            if attn is None:
                continue
            packed = attn.qkv.weight if isinstance(attn, SelfAttention) else None
            if packed is not None:
                q_rows = attn.n_head * attn.head_dim
                kv_rows = attn.n_kv_head * attn.head_dim
                # Queries, keys and values each as their own matrix, as the paper's separate q/k/v projections.
                _xavier_rows(packed, 0, q_rows, gain=1.0)  # queries
                _xavier_rows(packed, q_rows, q_rows + kv_rows, gain=1.0)  # keys
                _xavier_rows(packed, q_rows + kv_rows, packed.shape[0], gain=beta)  # values
            else:
                nn.init.xavier_normal_(attn.q.weight, gain=1.0)
                kv_rows = attn.n_kv_head * attn.head_dim
                _xavier_rows(attn.kv.weight, 0, kv_rows, gain=1.0)
                _xavier_rows(attn.kv.weight, kv_rows, 2 * kv_rows, gain=beta)
            nn.init.xavier_normal_(attn.out.weight, gain=beta)
        for mlp in getattr(block.mlp, "experts", (block.mlp,)):  # each expert of a mixture as a dense MLP
            for name in ("gate", "up", "down"):
                linear = getattr(mlp, name, None)
                if linear is not None:
                    nn.init.xavier_normal_(linear.weight, gain=beta)


def _xavier_rows(weight: nn.Parameter, start: int, end: int, *, gain: float) -> None:
    """Xavier normal init of rows start .. end-1 as if they were their own (end-start, in) matrix."""
    fan_out, fan_in = end - start, weight.shape[1]
    std = gain * math.sqrt(2.0 / (fan_in + fan_out))
    nn.init.normal_(weight.data[start:end], mean=0.0, std=std)
