import math

import pytest
import torch
from torch import nn

from seqlab.config.schema import EncoderDecoderConfig, ModelConfig
from seqlab.models.parts import build_block, build_mlp, build_norm, deepnorm_constants
from seqlab.models.transformer import TransformerLM
from seqlab.nn.attention import (
    AttentionInputs,
    CrossAttention,
    SelfAttention,
    additive_mask,
)
from seqlab.nn.block import Block

D, H, T, S = 16, 4, 6, 5
CAUSAL = AttentionInputs(causal=True)


def randomise(module: nn.Module, seed: int) -> nn.Module:
    """Random norm gains and biases too, so that swapping norm1 and norm2 (or dropping one) shows."""
    torch.manual_seed(seed)
    with torch.no_grad():
        for name, p in module.named_parameters():
            p.normal_(0.0, 0.3 if "weight" in name and p.dim() > 1 else 1.0)
    return module.double().eval()


def make_block(seed: int, *, role: str = "decoder_only", **overrides) -> tuple[Block, ModelConfig]:
    fields = {"n_layer": 3, "n_head": H, "d_model": D, "dropout": 0.0} | overrides
    config = (EncoderDecoderConfig if role == "decoder" else ModelConfig)(**fields)
    return randomise(build_block(config, role=role), seed), config


def attn(block: Block, h: torch.Tensor) -> torch.Tensor:
    return block.attn(h, CAUSAL)[0]


@pytest.mark.parametrize("seed", [0, 1])
@pytest.mark.parametrize("norm", ["layernorm", "rmsnorm"])
def test_pre_norm_is_x_plus_f_of_norm_x(seed, norm):
    block, _ = make_block(seed, norm=norm, norm_position="pre")
    x = torch.randn(2, T, D, dtype=torch.float64)
    h = x + attn(block, block.norm1(x))
    expected = h + block.mlp(block.norm2(h))
    torch.testing.assert_close(block(x, CAUSAL), expected)
    assert block.residual_scale == 1.0


@pytest.mark.parametrize("seed", [0, 1])
@pytest.mark.parametrize("norm", ["layernorm", "rmsnorm"])
def test_post_norm_is_norm_of_x_plus_f_x(seed, norm):
    block, _ = make_block(seed, norm=norm, norm_position="post")
    x = torch.randn(2, T, D, dtype=torch.float64)
    h = block.norm1(x + attn(block, x))
    expected = block.norm2(h + block.mlp(h))
    torch.testing.assert_close(block(x, CAUSAL), expected)
    assert block.residual_scale == 1.0


@pytest.mark.parametrize("seed", [0, 1])
@pytest.mark.parametrize("n_layer", [1, 3, 12])
def test_deepnorm_is_norm_of_alpha_x_plus_f_x(seed, n_layer):
    block, config = make_block(seed, n_layer=n_layer, norm_position="deepnorm")
    alpha = deepnorm_constants("decoder_only", config)[0]
    assert alpha == pytest.approx((2 * n_layer) ** 0.25) and block.residual_scale == alpha
    x = torch.randn(2, T, D, dtype=torch.float64)
    h = block.norm1(alpha * x + attn(block, x))
    expected = block.norm2(alpha * h + block.mlp(h))
    torch.testing.assert_close(block(x, CAUSAL), expected)


@pytest.mark.parametrize("seed", [0, 1])
def test_parallel_pre_norm_is_x_plus_attn_plus_mlp_of_one_norm(seed):
    block, _ = make_block(seed, parallel_block=True)
    assert not hasattr(block, "norm2")
    x = torch.randn(2, T, D, dtype=torch.float64)
    h = block.norm1(x)
    torch.testing.assert_close(block(x, CAUSAL), x + attn(block, h) + block.mlp(h))


@pytest.mark.parametrize("seed", [0, 1])
@pytest.mark.parametrize("norm_position", ["post", "deepnorm"])
def test_parallel_post_norm_is_norm_of_alpha_x_plus_attn_plus_mlp(seed, norm_position):
    block, config = make_block(seed, parallel_block=True, norm_position=norm_position)
    alpha = deepnorm_constants("decoder_only", config)[0] if norm_position == "deepnorm" else 1.0
    x = torch.randn(2, T, D, dtype=torch.float64)
    torch.testing.assert_close(block(x, CAUSAL), block.norm1(alpha * x + attn(block, x) + block.mlp(x)))


@pytest.mark.parametrize("seed", [0, 1])
@pytest.mark.parametrize("norm_position", ["pre", "post", "deepnorm"])
@pytest.mark.parametrize("padded", [False, True])
def test_cross_attention_sits_between_self_attention_and_mlp(seed, norm_position, padded):
    block, config = make_block(seed, role="decoder", norm_position=norm_position, n_encoder_layer=2)
    assert isinstance(block.cross_attn, CrossAttention)
    memory = torch.randn(2, S, D, dtype=torch.float64)
    memory_kv = block.cross_attn.memory_kv(memory)
    memory_mask = None
    if padded:
        source = torch.tensor([[True] * S, [True] * 2 + [False] * (S - 2)])
        memory_mask = additive_mask(source[:, None, None, :], None, dtype=torch.float64, device=memory.device)
    x = torch.randn(2, T, D, dtype=torch.float64)

    def cross(h):
        return block.cross_attn(h, memory_kv, memory_mask)[0]

    if norm_position == "pre":
        h = x + attn(block, block.norm1(x))
        h = h + cross(block.norm_cross(h))
        expected = h + block.mlp(block.norm2(h))
    else:
        alpha = deepnorm_constants("decoder", config)[0] if norm_position == "deepnorm" else 1.0
        assert block.residual_scale == alpha
        h = block.norm1(alpha * x + attn(block, x))
        h = block.norm_cross(alpha * h + cross(h))
        expected = block.norm2(alpha * h + block.mlp(h))
    torch.testing.assert_close(block(x, CAUSAL, memory_kv=memory_kv, memory_mask=memory_mask), expected)
    with pytest.raises(ValueError, match="memory_kv"):
        block(x, CAUSAL)


def test_state_dict_keys():
    block, _ = make_block(0, role="decoder", n_encoder_layer=1)
    prefixes = {key.split(".")[0] for key in block.state_dict()}
    assert prefixes == {"norm1", "attn", "norm_cross", "cross_attn", "norm2", "mlp"}


def parts(config: ModelConfig) -> dict:
    return {"attn": SelfAttention(D, H), "mlp": build_mlp(config), "norm1": build_norm(config)}


def test_construction_errors():
    config = ModelConfig(n_head=H, d_model=D)
    cross = CrossAttention(D, H)
    with pytest.raises(ValueError, match="parallel"):
        Block(**parts(config), norm2=build_norm(config), parallel=True)
    with pytest.raises(ValueError, match="parallel"):
        Block(**parts(config), norm2=None, cross_attn=cross, norm_cross=build_norm(config), parallel=True)
    with pytest.raises(ValueError, match="norm2"):
        Block(**parts(config), norm2=None)
    with pytest.raises(ValueError, match="cross-attention and its norm"):
        Block(**parts(config), norm2=build_norm(config), cross_attn=cross)
    with pytest.raises(ValueError, match="cross-attention and its norm"):
        Block(**parts(config), norm2=build_norm(config), norm_cross=build_norm(config))


# --- DeepNorm's initialisation --------------------------------------------------------------------------


def xavier_std(fan_in: int, fan_out: int, gain: float) -> float:
    return gain * math.sqrt(2.0 / (fan_in + fan_out))


@pytest.mark.parametrize("n_kv_head,activation", [(0, "gelu"), (2, "swiglu")])
def test_deepnorm_initialisation_is_scaled_xavier(n_kv_head, activation):
    torch.manual_seed(0)
    d, n_layer = 128, 6
    config = ModelConfig(n_layer=n_layer, n_head=8, d_model=d, n_kv_head=n_kv_head, activation=activation,
                         norm_position="deepnorm", block_size=16)
    model = TransformerLM(config, vocab_size=50)
    beta = deepnorm_constants("decoder_only", config)[1]
    assert beta == pytest.approx((8 * n_layer) ** -0.25)
    q_rows, kv_rows = d, config.kv_heads * config.head_dim
    F = config.hidden_width

    def check(weight: torch.Tensor, expected: float, name: str) -> None:
        # Each matrix has ≥ 4096 entries: the sample std has a relative error of about 1/√(2n) ≤ 1.1%, so a
        # 10% miss is 9 standard errors away (and the seed is fixed).
        assert weight.numel() >= 4096, name
        assert abs(weight.std().item() - expected) < 0.1 * expected, (name, weight.std().item(), expected)
        assert abs(weight.mean().item()) < 0.1 * expected, name

    for i, block in enumerate(model.blocks):
        qkv = block.attn.qkv.weight
        check(qkv[:q_rows], xavier_std(d, q_rows, 1.0), f"{i} q")  # queries and keys: gain 1, each its own matrix
        check(qkv[q_rows:q_rows + kv_rows], xavier_std(d, kv_rows, 1.0), f"{i} k")
        check(qkv[q_rows + kv_rows:], xavier_std(d, kv_rows, beta), f"{i} v")
        check(block.attn.out.weight, xavier_std(d, d, beta), f"{i} out")
        for name in ("gate", "up"):
            if hasattr(block.mlp, name):
                check(getattr(block.mlp, name).weight, xavier_std(d, F, beta), f"{i} {name}")
        check(block.mlp.down.weight, xavier_std(F, d, beta), f"{i} down")
    # Biases stay zero and norms start at one, as with GPT-2's initialisation.
    assert all(torch.all(p == 0) for name, p in model.named_parameters() if name.endswith("bias"))
    assert torch.all(model.blocks[0].norm1.weight == 1)
