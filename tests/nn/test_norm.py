import pytest
import torch
from torch import nn
from transformers.models.llama.modeling_llama import LlamaRMSNorm

from seqlab.config.schema import ModelConfig
from seqlab.models.parts import build_norm
from seqlab.nn.norm import RMSNorm


def random_rmsnorm(d: int, eps: float, *, dtype=torch.float64) -> RMSNorm:
    norm = RMSNorm(d, eps=eps).to(dtype)
    with torch.no_grad():
        norm.weight.normal_()  # a learned gain, so a dropped or misplaced weight shows
    return norm


@pytest.mark.parametrize("seed", [0, 1])
@pytest.mark.parametrize("eps", [1e-6, 1e-2, 1.0])
@pytest.mark.parametrize("shape", [(5, 8), (2, 3, 16), (1, 1, 1, 4)])
def test_rmsnorm_equals_torch_rmsnorm(seed, eps, shape):
    torch.manual_seed(seed)
    ours = random_rmsnorm(shape[-1], eps)
    reference = nn.RMSNorm(shape[-1], eps=eps, dtype=torch.float64)
    with torch.no_grad():
        reference.weight.copy_(ours.weight)
    x = torch.randn(shape, dtype=torch.float64) * 0.3  # small inputs: a large eps matters, and where it goes
    torch.testing.assert_close(ours(x), reference(x))


@pytest.mark.parametrize("eps", [1e-6, 0.5])
def test_eps_is_inside_the_square_root(eps):
    torch.manual_seed(0)
    x = torch.randn(3, 8, dtype=torch.float64)
    expected = x / torch.sqrt(x.pow(2).mean(-1, keepdim=True) + eps)
    torch.testing.assert_close(RMSNorm(8, eps=eps).double()(x), expected)


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("eps", [1e-6, 1e-5])
def test_rmsnorm_equals_hugging_face_llama_rmsnorm_float32(seed, eps):
    torch.manual_seed(seed)
    ours = random_rmsnorm(32, eps, dtype=torch.float32)
    reference = LlamaRMSNorm(32, eps=eps)
    with torch.no_grad():
        reference.weight.copy_(ours.weight)
    x = torch.randn(2, 7, 32) * 5.0
    torch.testing.assert_close(ours(x), reference(x))


@pytest.mark.parametrize("seed", [0, 1])
def test_bfloat16_input_takes_the_mean_square_in_float32(seed):
    torch.manual_seed(seed)
    norm = random_rmsnorm(64, 1e-6, dtype=torch.bfloat16)
    # Large values: in bfloat16, sum(x²) over 64 entries loses most of its bits.
    x = (torch.randn(4, 64) * 300.0).to(torch.bfloat16)
    h = x.float()
    normalised = h * torch.rsqrt(h.pow(2).mean(-1, keepdim=True) + 1e-6)
    expected = norm.weight * normalised.to(torch.bfloat16)  # cast back, then the gain in bfloat16
    y = norm(x)
    assert y.dtype == torch.bfloat16
    torch.testing.assert_close(y, expected, atol=0, rtol=0)


@pytest.mark.parametrize("seed", [0, 1])
@pytest.mark.parametrize("bias", [True, False])
def test_build_norm_layernorm_equals_torch_layernorm(seed, bias):
    torch.manual_seed(seed)
    config = ModelConfig(d_model=16, n_head=4, norm="layernorm", norm_eps=1e-3, bias=bias)
    ours = build_norm(config).double()
    reference = nn.LayerNorm(16, eps=1e-3, bias=bias, dtype=torch.float64)
    with torch.no_grad():
        ours.weight.normal_()
        reference.weight.copy_(ours.weight)
        if bias:
            ours.bias.normal_()
            reference.bias.copy_(ours.bias)
    assert (ours.bias is None) == (not bias)
    x = torch.randn(3, 5, 16, dtype=torch.float64) * 0.1 + 0.5
    torch.testing.assert_close(ours(x), reference(x))
    mean = x.mean(-1, keepdim=True)
    var = x.var(-1, unbiased=False, keepdim=True)
    formula = (x - mean) / torch.sqrt(var + 1e-3) * ours.weight + (ours.bias if bias else 0.0)
    torch.testing.assert_close(ours(x), formula)


def test_build_norm_rmsnorm_reads_eps():
    norm = build_norm(ModelConfig(d_model=16, n_head=4, norm="rmsnorm", norm_eps=1e-3))
    assert isinstance(norm, RMSNorm) and norm.eps == 1e-3 and norm.weight.shape == (16,)
    assert set(norm.state_dict()) == {"weight"}
