"""Layers that know nothing about whole models; `seqlab.models` composes them."""

from seqlab.nn.attention import (
    AttentionInputs,
    CrossAttention,
    SelfAttention,
    attention_inputs,
    causal_attention,
)
from seqlab.nn.block import Block
from seqlab.nn.convolution import CausalConv1d
from seqlab.nn.feedforward import FeedForward, GatedFeedForward
from seqlab.nn.kv_cache import KVCache, LayerKVCache
from seqlab.nn.masks import causal_mask
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

__all__ = [
    "ALiBiPositions", "AttentionInputs", "Block", "CausalConv1d", "CrossAttention", "FeedForward",
    "GatedFeedForward", "KVCache", "LayerKVCache", "LearnedPositions", "NoPositions", "Positions", "RMSNorm",
    "RelativePositions", "RotaryPositions", "SelfAttention", "SinusoidalPositions", "attention_inputs",
    "causal_attention", "causal_mask",
]

from seqlab.nn.recurrent import GRU, LSTM, RNN, GatedRNN

__all__ += ["GRU", "LSTM", "RNN", "GatedRNN"]
