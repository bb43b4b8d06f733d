"""Layers that know nothing about whole models; `seqlab.models` composes them."""

from seqlab.nn.attention import CausalSelfAttention, causal_attention
from seqlab.nn.feedforward import FeedForward
from seqlab.nn.kv_cache import KVCache, LayerKVCache
from seqlab.nn.masks import causal_mask

__all__ = ["CausalSelfAttention", "FeedForward", "KVCache", "LayerKVCache", "causal_attention", "causal_mask"]
