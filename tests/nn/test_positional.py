import math

import pytest
import torch
from transformers import LlamaConfig
from transformers.models.bloom.modeling_bloom import build_alibi_tensor
from transformers.models.llama.modeling_llama import (
    LlamaRotaryEmbedding,
    apply_rotary_pos_emb,
)
from transformers.models.t5.modeling_t5 import T5Attention

from seqlab.nn.masks import causal_mask
from seqlab.nn.positional import (
    ALiBiPositions,
    LearnedPositions,
    NoPositions,
    RelativePositions,
    RotaryPositions,
    SinusoidalPositions,
    alibi_slopes,
    apply_rotary,
    relative_position_bucket,
    rotate_half,
    sinusoidal_table,
)

# --- sinusoidal ----------------------------------------------------------------------------------


def lecture_table(length: int, d_model: int) -> torch.Tensor:
    """PE(p, 2i) = sin(p / 10000^(2i/D)), PE(p, 2i+1) = cos(p / 10000^(2i/D)), one entry at a time."""
    table = torch.empty(length, d_model, dtype=torch.float64)
    for p in range(length):
        for i in range(d_model // 2):
            angle = p / 10000 ** (2 * i / d_model)
            table[p, 2 * i] = math.sin(angle)
            table[p, 2 * i + 1] = math.cos(angle)
    return table


@pytest.mark.parametrize("d_model", [2, 8, 16])
def test_sinusoidal_table_is_the_lecture_formula(d_model):
    ours = sinusoidal_table(0, 40, d_model)
    assert ours.shape == (40, d_model) and ours.dtype == torch.float32
    torch.testing.assert_close(ours.double(), lecture_table(40, d_model), atol=1e-5, rtol=0)


@pytest.mark.parametrize("start,length", [(1, 5), (7, 13), (30, 1)])
def test_sinusoidal_table_with_an_offset_is_a_slice_of_the_longer_table(start, length):
    torch.testing.assert_close(sinusoidal_table(start, length, 12), sinusoidal_table(0, 50, 12)[start:start + length])


def test_sinusoidal_positions_add_the_table_at_their_start():
    torch.manual_seed(0)
    x = torch.randn(2, 5, 8, dtype=torch.float64)
    pos = SinusoidalPositions(8)
    # Embeddings scaled by √D first (Vaswani et al. §3.4), then the table for positions 3 .. 7 added.
    torch.testing.assert_close(pos.embed(x, 3), x * math.sqrt(8) + sinusoidal_table(3, 5, 8).double())
    assert pos.max_positions is None and list(pos.parameters()) == []


def test_sinusoidal_needs_an_even_width():
    with pytest.raises(ValueError, match="even"):
        sinusoidal_table(0, 3, 5)


# --- rotary --------------------------------------------------------------------------------------


def llama_rotary(head_dim: int, n_head: int, base: float) -> LlamaRotaryEmbedding:
    config = LlamaConfig(hidden_size=head_dim * n_head, num_attention_heads=n_head, num_key_value_heads=n_head,
                         intermediate_size=16, vocab_size=10, max_position_embeddings=256, rope_theta=base)
    return LlamaRotaryEmbedding(config)


@pytest.mark.parametrize("seed", [0, 1])
@pytest.mark.parametrize("head_dim,base", [(8, 10000.0), (16, 500.0)])
@pytest.mark.parametrize("start", [0, 9])
def test_rotary_equals_hugging_face_llama(seed, head_dim, base, start):
    torch.manual_seed(seed)
    B, H, T = 2, 3, 6
    q, k = torch.randn(B, H, T, head_dim), torch.randn(B, H, T, head_dim)
    cos, sin = RotaryPositions(head_dim, base=base).rotary(start, T, device=q.device)  # (T, Dh)
    hf_cos, hf_sin = llama_rotary(head_dim, H, base)(q, torch.arange(start, start + T)[None].expand(B, T))
    torch.testing.assert_close(cos, hf_cos[0])
    torch.testing.assert_close(sin, hf_sin[0])
    hf_q, hf_k = apply_rotary_pos_emb(q, k, hf_cos, hf_sin)  # (B, H, T, Dh)
    torch.testing.assert_close(apply_rotary(q, cos, sin), hf_q)
    torch.testing.assert_close(apply_rotary(k, cos, sin), hf_k)


def test_rotate_half_and_rotation_of_each_pair():
    x = torch.arange(1.0, 7.0, dtype=torch.float64)  # pairs (1, 4), (2, 5), (3, 6)
    torch.testing.assert_close(rotate_half(x), torch.tensor([-4.0, -5.0, -6.0, 1.0, 2.0, 3.0], dtype=torch.float64))
    cos, sin = RotaryPositions(6, base=100.0).rotary(3, 1, device=x.device)
    y = apply_rotary(x[None, None, None], cos, sin)[0, 0, 0]
    for i in range(3):  # pair i turns by 3·θ_i, θ_i = 100^(−2i/6)
        angle = 3 * 100.0 ** (-2 * i / 6)
        a, b = x[i].item(), x[i + 3].item()
        expected = torch.tensor([a * math.cos(angle) - b * math.sin(angle), a * math.sin(angle) + b * math.cos(angle)],
                                dtype=torch.float64)
        torch.testing.assert_close(y[[i, i + 3]], expected, atol=1e-6, rtol=1e-6)  # float32 tables


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("shift", [1, 17, 100])
def test_rotary_scores_depend_only_on_the_position_difference(seed, shift):
    torch.manual_seed(seed)
    rope = RotaryPositions(16)
    q, k = torch.randn(1, 2, 8, 16, dtype=torch.float64), torch.randn(1, 2, 8, 16, dtype=torch.float64)

    def scores(start):
        cos, sin = rope.rotary(start, 8, device=q.device)
        return apply_rotary(q, cos, sin) @ apply_rotary(k, cos, sin).transpose(-2, -1)  # (1, 2, 8, 8)

    torch.testing.assert_close(scores(shift), scores(0), atol=1e-5, rtol=1e-5)  # float32 angles
    assert not torch.allclose(scores(0), q @ k.transpose(-2, -1), atol=1e-3)  # rotation does something
    # Norms are kept: a rotation.
    cos, sin = rope.rotary(shift, 8, device=q.device)
    torch.testing.assert_close(apply_rotary(q, cos, sin).norm(dim=-1), q.norm(dim=-1), atol=1e-6, rtol=1e-6)


def test_rotary_needs_an_even_head_width():
    with pytest.raises(ValueError, match="even"):
        RotaryPositions(7)


# --- ALiBi ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("n_head", range(1, 17))
def test_alibi_slopes_equal_bloom(n_head):
    # BLOOM's bias at key j is slope·j: read the slopes off key position 1.
    bloom = build_alibi_tensor(torch.ones(1, 2), n_head, torch.float32)  # (H, 1, 2)
    torch.testing.assert_close(alibi_slopes(n_head), bloom[:, 0, 1])
    assert torch.all(bloom[:, 0, 0] == 0)


@pytest.mark.parametrize("seed", [0, 1])
@pytest.mark.parametrize("n_head", [3, 4, 6])
@pytest.mark.parametrize("start", [0, 5])
def test_alibi_causal_softmax_equals_bloom(seed, n_head, start):
    torch.manual_seed(seed)
    T = 7
    S = start + T
    scores = torch.randn(n_head, T, S, dtype=torch.float64)
    ours = ALiBiPositions(n_head).score_bias(start, T, S, device=scores.device, dtype=torch.float64)  # (H, T, S)
    bloom = build_alibi_tensor(torch.ones(1, S), n_head, torch.float64)  # (H, 1, S): slope·j
    allowed = causal_mask(T, S)
    masked = ~allowed
    ours_softmax = (scores + ours).masked_fill(masked, float("-inf")).softmax(-1)
    bloom_softmax = (scores + bloom).masked_fill(masked, float("-inf")).softmax(-1)
    torch.testing.assert_close(ours_softmax, bloom_softmax)
    # Where causal (j ≤ i), ours is slope·(j − i) and BLOOM's slope·j: they differ by −slope·i per row.
    i = torch.arange(start, start + T, dtype=torch.float64)  # (T,) absolute query positions
    row_constant = (-alibi_slopes(n_head).double()[:, None] * i)[:, :, None].expand(n_head, T, S)  # (H, T, S)
    torch.testing.assert_close((ours - bloom)[:, allowed], row_constant[:, allowed])


def test_alibi_bias_is_symmetric_in_distance():
    bias = ALiBiPositions(4).score_bias(0, 5, 5, device=torch.device("cpu"), dtype=torch.float64)
    torch.testing.assert_close(bias, bias.transpose(-2, -1))
    torch.testing.assert_close(bias[:, 2, 0], -2 * alibi_slopes(4).double())


# --- T5 relative buckets -------------------------------------------------------------------------


@pytest.mark.parametrize("bidirectional", [True, False])
@pytest.mark.parametrize("n_buckets,max_distance", [(32, 128), (8, 20), (16, 64), (4, 7), (64, 300)])
def test_relative_buckets_equal_t5(bidirectional, n_buckets, max_distance):
    relative = torch.arange(-300, 301)[None, :] + torch.zeros(3, 1, dtype=torch.long)  # (3, 601)
    ours = relative_position_bucket(relative, bidirectional=bidirectional, n_buckets=n_buckets,
                                    max_distance=max_distance)
    expected = T5Attention._relative_position_bucket(relative, bidirectional=bidirectional, num_buckets=n_buckets,
                                                     max_distance=max_distance)
    torch.testing.assert_close(ours, expected, atol=0, rtol=0)
    assert ours.min() >= 0 and ours.max() < n_buckets


@pytest.mark.parametrize("bidirectional", [True, False])
def test_relative_positions_bias_looks_up_the_bucket_of_key_minus_query(bidirectional):
    torch.manual_seed(0)
    pos = RelativePositions(3, bidirectional=bidirectional, n_buckets=8, max_distance=20).double()
    start, T, S = 4, 5, 9
    bias = pos.score_bias(start, T, S, device=torch.device("cpu"), dtype=torch.float64)  # (H, T, S)
    for t in range(T):
        for s in range(S):
            bucket = T5Attention._relative_position_bucket(torch.tensor(s - (start + t)), bidirectional=bidirectional,
                                                           num_buckets=8, max_distance=20)
            torch.testing.assert_close(bias[:, t, s], pos.bias.weight[bucket])


# --- learned and none ----------------------------------------------------------------------------


def test_learned_positions_add_their_rows():
    torch.manual_seed(0)
    pos = LearnedPositions(10, 4).double()
    x = torch.randn(2, 3, 4, dtype=torch.float64)
    torch.testing.assert_close(pos.embed(x, 6), x + pos.weight[6:9])
    assert pos.max_positions == 10


def test_learned_positions_beyond_block_size_raise():
    pos = LearnedPositions(10, 4)
    pos.embed(torch.zeros(1, 10, 4), 0)  # exactly block_size is fine
    with pytest.raises(ValueError, match="beyond the 10 learned positions"):
        pos.embed(torch.zeros(1, 11, 4), 0)
    with pytest.raises(ValueError, match="block_size"):
        pos.embed(torch.zeros(1, 2, 4), 9)


def test_no_positions_change_nothing():
    pos, x = NoPositions(), torch.zeros(2, 3, 4)
    assert pos.embed(x, 5) is x
    assert pos.rotary(0, 3, device=x.device) is None
    assert pos.score_bias(0, 3, 3, device=x.device, dtype=x.dtype) is None
