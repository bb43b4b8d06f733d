import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from seqlab.nn.attention import AttentionInputs, SelfAttention
from seqlab.nn.kv_cache import KVCache
from seqlab.nn.masks import causal_mask

D, H = 16, 4
CAUSAL = AttentionInputs(causal=True)


def make_attention(seed: int, *, bias: bool = True, dtype=torch.float64) -> SelfAttention:
    torch.manual_seed(seed)
    attn = SelfAttention(D, H, bias=bias, dropout=0.0).to(dtype)
    if bias:  # default Linear init leaves small biases; make them matter
        nn.init.normal_(attn.qkv.bias)
        nn.init.normal_(attn.out.bias)
    return attn.eval()


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_fast_path_equals_explicit_path_float32(seed):
    attn = make_attention(seed, dtype=torch.float32)
    x = torch.randn(3, 7, D)
    fast, none = attn(x, CAUSAL)
    explicit, weights = attn(x, CAUSAL, need_weights=True)
    assert none is None and weights.shape == (3, H, 7, 7)
    torch.testing.assert_close(fast, explicit, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("seed", [0, 1])
def test_weights_are_causal_distributions(seed):
    attn = make_attention(seed)
    _, weights = attn(torch.randn(2, 6, D, dtype=torch.float64), CAUSAL, need_weights=True)  # (B, H, T, T)
    torch.testing.assert_close(weights.sum(-1), torch.ones(2, H, 6, dtype=torch.float64))
    above = ~causal_mask(6, 6)
    assert torch.all(weights[..., above] == 0)
    assert torch.all(weights[..., ~above] > 0)


@pytest.mark.parametrize("seed", [0, 1])
@pytest.mark.parametrize("bias", [True, False])
def test_parity_with_sdpa_from_the_split_packed_projection(seed, bias):
    attn = make_attention(seed, bias=bias)
    B, T = 2, 5
    x = torch.randn(B, T, D, dtype=torch.float64)
    w_q, w_k, w_v = attn.qkv.weight.chunk(3, dim=0)  # each (D, D)
    b_q, b_k, b_v = attn.qkv.bias.chunk(3) if bias else (None, None, None)

    def heads(w, b):
        return F.linear(x, w, b).view(B, T, H, D // H).transpose(1, 2)  # (B, H, T, Dh)

    y = F.scaled_dot_product_attention(heads(w_q, b_q), heads(w_k, b_k), heads(w_v, b_v), is_causal=True)
    expected = F.linear(y.transpose(1, 2).reshape(B, T, D), attn.out.weight, attn.out.bias)
    torch.testing.assert_close(attn(x, CAUSAL)[0], expected)
    torch.testing.assert_close(attn(x, CAUSAL, need_weights=True)[0], expected)


@pytest.mark.parametrize("seed", [0, 1])
def test_parity_with_torch_multihead_attention(seed):
    attn = make_attention(seed)
    mha = nn.MultiheadAttention(D, H, bias=True, batch_first=True, dtype=torch.float64).eval()
    with torch.no_grad():
        mha.in_proj_weight.copy_(attn.qkv.weight)  # the same q, k, v row order
        mha.in_proj_bias.copy_(attn.qkv.bias)
        mha.out_proj.weight.copy_(attn.out.weight)
        mha.out_proj.bias.copy_(attn.out.bias)
    x = torch.randn(2, 6, D, dtype=torch.float64)
    # MultiheadAttention's boolean mask means the opposite: True = may NOT attend.
    expected, expected_weights = mha(x, x, x, attn_mask=~causal_mask(6, 6), average_attn_weights=False)
    ours, weights = attn(x, CAUSAL, need_weights=True)
    torch.testing.assert_close(ours, expected)
    torch.testing.assert_close(weights, expected_weights)


def test_explicit_path_is_the_formula():
    attn = make_attention(0)
    x = torch.randn(1, 4, D, dtype=torch.float64)
    q, k, v = attn.qkv(x).view(1, 4, 3, H, D // H).permute(2, 0, 3, 1, 4)  # 3 × (B, H, T, Dh)
    scores = q @ k.transpose(-2, -1) / math.sqrt(D // H)
    scores = scores.masked_fill(~causal_mask(4, 4), float("-inf"))
    expected = attn.out((scores.softmax(-1) @ v).transpose(1, 2).reshape(1, 4, D))
    torch.testing.assert_close(attn(x, CAUSAL, need_weights=True)[0], expected)


@pytest.mark.parametrize("seed", [0, 1])
@pytest.mark.parametrize("need_weights", [False, True])
@pytest.mark.parametrize("chunks", [(4, 3, 1), (1, 1, 6), (2, 2, 2, 2)])
def test_cached_chunks_equal_one_shot(seed, need_weights, chunks):
    attn = make_attention(seed)
    x = torch.randn(2, sum(chunks), D, dtype=torch.float64)
    full, full_weights = attn(x, CAUSAL, need_weights=True)
    cache = KVCache.empty(1, 2, H, 10, D // H, dtype=torch.float64)
    outputs, start = [], 0
    for size in chunks:
        y, weights = attn(x[:, start:start + size], CAUSAL, cache_layer=cache.layer(0), need_weights=need_weights)
        cache.advance(size)
        if need_weights:  # the rows of the full matrix for these queries, over the keys so far
            torch.testing.assert_close(weights, full_weights[:, :, start:start + size, :start + size])
        outputs.append(y)
        start += size
    torch.testing.assert_close(torch.cat(outputs, dim=1), full)


def test_fast_path_with_cache_equals_explicit_float32():
    attn = make_attention(3, dtype=torch.float32)
    x = torch.randn(2, 9, D)
    results = {}
    for need_weights in (False, True):
        cache = KVCache.empty(1, 2, H, 9, D // H)
        attn(x[:, :4], CAUSAL, cache_layer=cache.layer(0))
        cache.advance(4)
        results[need_weights] = attn(x[:, 4:], CAUSAL, cache_layer=cache.layer(0), need_weights=need_weights)[0]
    torch.testing.assert_close(results[False], results[True], atol=1e-5, rtol=1e-5)


def test_attention_dropout_only_in_training():
    torch.manual_seed(0)
    attn = SelfAttention(D, H, bias=True, dropout=0.5)
    x = torch.randn(2, 6, D)
    attn.eval()
    torch.testing.assert_close(attn(x, CAUSAL)[0], attn(x, CAUSAL, need_weights=True)[0], atol=1e-5, rtol=1e-5)
    attn.train()
    assert not torch.equal(attn(x, CAUSAL)[0], attn(x, CAUSAL)[0])
