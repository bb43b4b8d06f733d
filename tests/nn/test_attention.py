import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from seqlab.nn.attention import (
    AttentionInputs,
    CrossAttention,
    SelfAttention,
    additive_mask,
    attention_inputs,
    repeat_kv,
    written_out_sdpa,
)
from seqlab.nn.kv_cache import KVCache
from seqlab.nn.masks import causal_mask
from seqlab.nn.positional import (
    ALiBiPositions,
    NoPositions,
    RelativePositions,
    RotaryPositions,
)

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


# --- grouped-query and multi-query attention ---------------------------------------------------------


def make_gqa(seed: int, n_kv_head: int, *, bias: bool = True) -> SelfAttention:
    torch.manual_seed(seed)
    attn = SelfAttention(D, H, n_kv_head=n_kv_head, bias=bias, dropout=0.0).double()
    if bias:
        nn.init.normal_(attn.qkv.bias)
        nn.init.normal_(attn.out.bias)
    return attn.eval()


def split_heads(attn: SelfAttention, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The packed projection split by hand: q (B, H, T, Dh), k and v (B, G, T, Dh)."""
    B, T, _ = x.shape
    Dh, G = D // H, attn.n_kv_head
    w_q, w_k, w_v = attn.qkv.weight.split((H * Dh, G * Dh, G * Dh), dim=0)
    b_q, b_k, b_v = attn.qkv.bias.split((H * Dh, G * Dh, G * Dh)) if attn.qkv.bias is not None else (None,) * 3
    q = F.linear(x, w_q, b_q).view(B, T, H, Dh).transpose(1, 2)
    k = F.linear(x, w_k, b_k).view(B, T, G, Dh).transpose(1, 2)
    v = F.linear(x, w_v, b_v).view(B, T, G, Dh).transpose(1, 2)
    return q, k, v


@pytest.mark.parametrize("seed", [0, 1])
@pytest.mark.parametrize("n_kv_head", [1, 2])
@pytest.mark.parametrize("bias", [True, False])
def test_grouped_query_attention_equals_sdpa_enable_gqa(seed, n_kv_head, bias):
    attn = make_gqa(seed, n_kv_head, bias=bias)
    assert attn.qkv.weight.shape == ((H + 2 * n_kv_head) * (D // H), D)
    B, T = 2, 7
    x = torch.randn(B, T, D, dtype=torch.float64)
    q, k, v = split_heads(attn, x)
    y = F.scaled_dot_product_attention(q, k, v, is_causal=True, enable_gqa=True)  # (B, H, T, Dh)
    expected = attn.out(y.transpose(1, 2).reshape(B, T, D))
    torch.testing.assert_close(attn(x, CAUSAL)[0], expected)
    torch.testing.assert_close(attn(x, CAUSAL, need_weights=True)[0], expected)
    # The same with each kv head repeated for its group of query heads (head h uses kv head h // (H/G)).
    group = torch.arange(H) // (H // n_kv_head)
    y = F.scaled_dot_product_attention(q, k[:, group], v[:, group], is_causal=True)
    torch.testing.assert_close(attn(x, CAUSAL)[0], attn.out(y.transpose(1, 2).reshape(B, T, D)))


def test_repeat_kv_serves_consecutive_query_heads():
    torch.manual_seed(0)
    x = torch.randn(2, 2, 3, 4)
    repeated = repeat_kv(x, 3)  # (2, 6, 3, 4)
    for h in range(6):
        torch.testing.assert_close(repeated[:, h], x[:, h // 3])
    assert repeat_kv(x, 1) is x


@pytest.mark.parametrize("seed", [0, 1])
@pytest.mark.parametrize("n_kv_head", [1, 2, H])
@pytest.mark.parametrize("positions", ["rope", "alibi"])
@pytest.mark.parametrize("chunks", [(4, 3, 1), (1, 1, 6), (8,)])
def test_cached_grouped_chunks_equal_one_shot(seed, n_kv_head, positions, chunks):
    attn = make_gqa(seed, n_kv_head)
    pos = RotaryPositions(D // H) if positions == "rope" else ALiBiPositions(H)
    B, T = 2, sum(chunks)
    x = torch.randn(B, T, D, dtype=torch.float64)
    kw = {"causal": True, "device": x.device, "dtype": x.dtype}
    full, _ = attn(x, attention_inputs(pos, start=0, n_query=T, **kw))
    cache = KVCache.empty(1, B, n_kv_head, T, D // H, dtype=torch.float64)
    outputs, start = [], 0
    for size in chunks:
        inputs = attention_inputs(pos, start=start, n_query=size, **kw)
        outputs.append(attn(x[:, start:start + size], inputs, cache_layer=cache.layer(0))[0])
        cache.advance(size)
        start += size
    torch.testing.assert_close(torch.cat(outputs, dim=1), full)


def test_heads_must_divide():
    with pytest.raises(ValueError, match="n_kv_head"):
        SelfAttention(D, H, n_kv_head=3)
    with pytest.raises(ValueError, match="n_head"):
        SelfAttention(D, 5)


# --- padding and additive masks -------------------------------------------------------------------------


def copy_into_mha(attn: SelfAttention) -> nn.MultiheadAttention:
    mha = nn.MultiheadAttention(D, H, bias=True, batch_first=True, dtype=torch.float64).eval()
    with torch.no_grad():
        mha.in_proj_weight.copy_(attn.qkv.weight)
        mha.in_proj_bias.copy_(attn.qkv.bias)
        mha.out_proj.weight.copy_(attn.out.weight)
        mha.out_proj.bias.copy_(attn.out.bias)
    return mha


PADDING = torch.tensor([[True] * 6, [True] * 4 + [False] * 2, [False] * 3 + [True] * 3])  # (B=3, S=6)


@pytest.mark.parametrize("seed", [0, 1])
@pytest.mark.parametrize("need_weights", [False, True])
def test_padding_mask_equals_multihead_attention_key_padding_mask(seed, need_weights):
    attn = make_attention(seed)
    mha = copy_into_mha(attn)
    x = torch.randn(3, 6, D, dtype=torch.float64)
    inputs = attention_inputs(NoPositions(), start=0, n_query=6, causal=False, padding_mask=PADDING,
                              device=x.device, dtype=x.dtype)
    assert inputs.mask.shape == (3, 1, 1, 6) and not inputs.causal
    expected, expected_weights = mha(x, x, x, key_padding_mask=~PADDING, average_attn_weights=False)
    ours, weights = attn(x, inputs, need_weights=need_weights)
    torch.testing.assert_close(ours, expected)
    if need_weights:
        torch.testing.assert_close(weights, expected_weights)


@pytest.mark.parametrize("seed", [0, 1])
def test_causal_padding_mask_equals_multihead_attention(seed):
    attn = make_attention(seed)
    mha = copy_into_mha(attn)
    padding = PADDING[:2]  # right padding only: with causality, left padding would leave rows fully masked
    x = torch.randn(2, 6, D, dtype=torch.float64)
    inputs = attention_inputs(NoPositions(), start=0, n_query=6, causal=True, padding_mask=padding,
                              device=x.device, dtype=x.dtype)
    expected, _ = mha(x, x, x, attn_mask=~causal_mask(6, 6), key_padding_mask=~padding)
    torch.testing.assert_close(attn(x, inputs)[0], expected)
    torch.testing.assert_close(attn(x, inputs, need_weights=True)[0], expected)


def test_padding_does_not_change_the_real_positions():
    attn = make_attention(0)
    x = torch.randn(1, 4, D, dtype=torch.float64)
    padded = torch.cat([x, torch.randn(1, 3, D, dtype=torch.float64)], dim=1)  # 3 junk positions after
    mask = torch.tensor([[True] * 4 + [False] * 3])
    inputs = attention_inputs(NoPositions(), start=0, n_query=7, causal=False, padding_mask=mask,
                              device=x.device, dtype=x.dtype)
    plain = AttentionInputs(causal=False)
    torch.testing.assert_close(attn(padded, inputs)[0][:, :4], attn(x, plain)[0])


@pytest.mark.parametrize("seed", [0, 1])
@pytest.mark.parametrize("positions", ["alibi", "relative_causal", "relative_bidirectional"])
@pytest.mark.parametrize("padded", [False, True])
def test_fast_path_equals_explicit_path_with_additive_masks(seed, positions, padded):
    attn = make_attention(seed)
    torch.manual_seed(seed)
    pos = {"alibi": ALiBiPositions(H),
           "relative_causal": RelativePositions(H, bidirectional=False, n_buckets=8, max_distance=16),
           "relative_bidirectional": RelativePositions(H, bidirectional=True, n_buckets=8, max_distance=16)}[positions]
    pos = pos.double()
    causal = positions != "relative_bidirectional"
    padding = PADDING[:2] if padded else None  # right padding: no fully masked row
    x = torch.randn(2, 6, D, dtype=torch.float64)
    inputs = attention_inputs(pos, start=0, n_query=6, causal=causal, padding_mask=padding,
                              device=x.device, dtype=x.dtype)
    assert inputs.mask is not None
    fast, _ = attn(x, inputs)
    explicit, weights = attn(x, inputs, need_weights=True)
    torch.testing.assert_close(fast, explicit)
    torch.testing.assert_close(weights.sum(-1), torch.ones(2, H, 6, dtype=torch.float64))
    allowed = torch.ones(2, 1, 6, 6, dtype=torch.bool)
    if causal:
        allowed = allowed & causal_mask(6, 6)
    if padding is not None:
        allowed = allowed & padding[:, None, None, :]
    allowed = allowed.expand_as(weights)
    assert torch.all(weights[~allowed] == 0)
    assert torch.all(weights[allowed] > 0)
    # And the formula: softmax(q kᵀ/√Dh + bias) over the allowed keys.
    q, k, _v = split_heads(attn, x)
    bias = pos.score_bias(0, 6, 6, device=x.device, dtype=x.dtype)  # (H, T, S)
    scores = (q @ k.transpose(-2, -1) / math.sqrt(D // H) + bias).masked_fill(~allowed, float("-inf"))
    torch.testing.assert_close(weights, scores.softmax(-1))


def test_additive_mask_is_zero_where_allowed_and_most_negative_where_not():
    allowed = causal_mask(3, 3)
    mask = additive_mask(allowed, None, dtype=torch.float64, device=torch.device("cpu"))
    assert torch.all(mask[allowed] == 0) and torch.all(mask[~allowed] == torch.finfo(torch.float64).min)
    torch.manual_seed(0)
    bias = torch.randn(2, 3, 3, dtype=torch.float64)
    with_bias = additive_mask(allowed, bias, dtype=torch.float64, device=torch.device("cpu"))
    torch.testing.assert_close(with_bias[:, allowed], bias[:, allowed])


def test_attention_inputs_without_bias_or_padding_use_the_causal_flag():
    inputs = attention_inputs(RotaryPositions(4), start=2, n_query=3, causal=True, device=torch.device("cpu"),
                              dtype=torch.float64)
    assert inputs.mask is None and inputs.causal and inputs.rotary[0].shape == (3, 4)


# --- cross-attention -------------------------------------------------------------------------------------


def make_cross(seed: int, n_kv_head: int | None = None) -> CrossAttention:
    torch.manual_seed(seed)
    cross = CrossAttention(D, H, n_kv_head=n_kv_head, bias=True, dropout=0.0).double()
    for linear in (cross.q, cross.kv, cross.out):
        nn.init.normal_(linear.bias)
    return cross.eval()


@pytest.mark.parametrize("seed", [0, 1])
@pytest.mark.parametrize("padded", [False, True])
@pytest.mark.parametrize("need_weights", [False, True])
def test_cross_attention_equals_multihead_attention(seed, padded, need_weights):
    cross = make_cross(seed)
    mha = nn.MultiheadAttention(D, H, bias=True, batch_first=True, dtype=torch.float64).eval()
    with torch.no_grad():  # the packed in-projection is q, then k, then v: ours keeps q apart, k and v packed
        mha.in_proj_weight.copy_(torch.cat([cross.q.weight, cross.kv.weight]))
        mha.in_proj_bias.copy_(torch.cat([cross.q.bias, cross.kv.bias]))
        mha.out_proj.weight.copy_(cross.out.weight)
        mha.out_proj.bias.copy_(cross.out.bias)
    x, memory = torch.randn(2, 5, D, dtype=torch.float64), torch.randn(2, 7, D, dtype=torch.float64)
    source = torch.tensor([[True] * 7, [True] * 4 + [False] * 3]) if padded else None  # (B, S)
    memory_mask = None
    if padded:
        memory_mask = additive_mask(source[:, None, None, :], None, dtype=torch.float64, device=x.device)
    expected, expected_weights = mha(x, memory, memory, key_padding_mask=None if source is None else ~source,
                                     average_attn_weights=False)
    ours, weights = cross(x, cross.memory_kv(memory), memory_mask, need_weights=need_weights)
    torch.testing.assert_close(ours, expected)
    if need_weights:
        torch.testing.assert_close(weights, expected_weights)
        if padded:
            assert torch.all(weights[1, :, :, 4:] == 0)


@pytest.mark.parametrize("seed", [0, 1])
@pytest.mark.parametrize("n_kv_head", [1, 2])
def test_grouped_cross_attention_equals_sdpa_enable_gqa(seed, n_kv_head):
    cross = make_cross(seed, n_kv_head)
    B, T, S, Dh = 2, 5, 7, D // H
    x, memory = torch.randn(B, T, D, dtype=torch.float64), torch.randn(B, S, D, dtype=torch.float64)
    k_rows = n_kv_head * Dh
    q = cross.q(x).view(B, T, H, Dh).transpose(1, 2)
    k = F.linear(memory, cross.kv.weight[:k_rows], cross.kv.bias[:k_rows]).view(B, S, n_kv_head, Dh).transpose(1, 2)
    v = F.linear(memory, cross.kv.weight[k_rows:], cross.kv.bias[k_rows:]).view(B, S, n_kv_head, Dh).transpose(1, 2)
    keys, values = cross.memory_kv(memory)
    torch.testing.assert_close(keys, k)
    torch.testing.assert_close(values, v)
    y = F.scaled_dot_product_attention(q, k, v, enable_gqa=True)  # no causality across source and target
    expected = cross.out(y.transpose(1, 2).reshape(B, T, D))
    torch.testing.assert_close(cross(x, (keys, values))[0], expected)
    torch.testing.assert_close(cross(x, (keys, values), need_weights=True)[0], expected)


@pytest.mark.parametrize("case", ["none", "causal", "offset bool", "additive"])
def test_written_out_sdpa_equals_sdpa(case):
    g = torch.Generator().manual_seed(0)
    T, S = (5, 9) if case in ("offset bool", "additive") else (7, 7)
    q = torch.randn(2, 3, T, 4, generator=g, dtype=torch.float64)
    k, v = (torch.randn(2, 3, S, 4, generator=g, dtype=torch.float64) for _ in range(2))
    options = {"none": {}, "causal": {"is_causal": True},
               "offset bool": {"attn_mask": causal_mask(T, S, device=q.device)},
               "additive": {"attn_mask": torch.randn(T, S, generator=g, dtype=torch.float64)}}[case]
    expected = F.scaled_dot_product_attention(q, k, v, **options)
    torch.testing.assert_close(written_out_sdpa(q, k, v, **options), expected)


def test_compiled_half_precision_attention_is_written_out_and_agrees(monkeypatch):
    import seqlab.nn.attention as attention
    calls = []
    monkeypatch.setattr(attention, "written_out_sdpa",
                        lambda *a, **kw: calls.append(1) or written_out_sdpa(*a, **kw))
    g = torch.Generator().manual_seed(0)
    q, k, v = (torch.randn(2, 2, 16, 8, generator=g) for _ in range(3))

    def attend(q, k, v):
        with torch.autocast("cpu", dtype=torch.bfloat16):
            return attention.sdpa(q, k, v, is_causal=True)

    exact = F.scaled_dot_product_attention(q, k, v, is_causal=True)
    eager = attend(q, k, v)
    assert not calls  # eager: SDPA's kernel, in float32
    compiled = torch.compile(attend, backend="aot_eager")(q, k, v)
    assert calls  # traced through the written-out form
    torch.testing.assert_close(eager.float(), exact, atol=2e-2, rtol=0)
    torch.testing.assert_close(compiled.float(), exact, atol=3e-2, rtol=0)
