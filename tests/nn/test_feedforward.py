import pytest
import torch
import torch.nn.functional as F
from torch import nn

from seqlab.config.schema import ModelConfig
from seqlab.models.parts import build_activation, build_mlp
import seqlab.nn.feedforward as feedforward
from seqlab.nn.feedforward import GELU, FeedForward, GatedFeedForward, gelu_tanh_by_sigmoid


@pytest.mark.parametrize("seed", [0, 1])
@pytest.mark.parametrize("bias", [True, False])
def test_feedforward_is_down_act_up(seed, bias):
    torch.manual_seed(seed)
    ff = FeedForward(8, 32, activation=nn.GELU(approximate="tanh"), bias=bias, dropout=0.0).double()
    x = torch.randn(2, 5, 8, dtype=torch.float64)
    hidden = F.gelu(x @ ff.up.weight.T + (ff.up.bias if bias else 0), approximate="tanh")
    expected = hidden @ ff.down.weight.T + (ff.down.bias if bias else 0)
    torch.testing.assert_close(ff(x), expected)
    assert sorted(ff.state_dict()) == sorted(["up.weight", "down.weight"] + (["up.bias", "down.bias"] if bias else []))


def test_dropout_only_in_training():
    torch.manual_seed(0)
    ff = FeedForward(8, 32, activation=nn.GELU(), bias=True, dropout=0.5)
    x = torch.randn(4, 6, 8)
    ff.eval()
    torch.testing.assert_close(ff(x), ff(x))
    ff.train()
    assert not torch.equal(ff(x), ff(x))


@pytest.mark.parametrize("seed", [0, 1])
@pytest.mark.parametrize("bias", [True, False])
@pytest.mark.parametrize("activation,formula", [
    (nn.SiLU(), F.silu),  # SwiGLU
    (nn.GELU(), F.gelu),  # GeGLU
    (nn.GELU(approximate="tanh"), lambda h: F.gelu(h, approximate="tanh")),
])
def test_gated_feedforward_is_down_of_act_gate_times_up(seed, bias, activation, formula):
    torch.manual_seed(seed)
    ff = GatedFeedForward(8, 24, activation=activation, bias=bias, dropout=0.0).double()
    if bias:
        for linear in (ff.gate, ff.up, ff.down):
            nn.init.normal_(linear.bias)
    x = torch.randn(2, 5, 8, dtype=torch.float64)

    def linear(layer, h):
        return h @ layer.weight.T + (layer.bias if bias else 0)

    expected = linear(ff.down, formula(linear(ff.gate, x)) * linear(ff.up, x))
    torch.testing.assert_close(ff(x), expected)
    # The activation is on the gate branch only: swapping gate and up changes the result.
    swapped = linear(ff.down, formula(linear(ff.up, x)) * linear(ff.gate, x))
    assert not torch.allclose(ff(x), swapped)
    names = ["gate.weight", "up.weight", "down.weight"] + (["gate.bias", "up.bias", "down.bias"] if bias else [])
    assert sorted(ff.state_dict()) == sorted(names)


@pytest.mark.parametrize("activation", ["swiglu", "geglu"])
@pytest.mark.parametrize("d_model,width", [(16, 48), (24, 64), (64, 176), (96, 256), (128, 344), (4096, 10928)])
def test_gated_hidden_width_is_two_thirds_of_four_d_rounded_up_to_eight(activation, d_model, width):
    config = ModelConfig(d_model=d_model, n_head=4, activation=activation)
    assert config.hidden_width == width
    assert width % 8 == 0 and width >= 8 * d_model / 3 > width - 8
    if d_model <= 128:  # LLaMA-7B's width is only the formula: building it would allocate 134M weights
        mlp = build_mlp(config)
        assert isinstance(mlp, GatedFeedForward) and mlp.gate.weight.shape == (width, d_model)


@pytest.mark.parametrize("activation", ["relu", "gelu", "gelu_tanh"])
def test_plain_hidden_width_is_four_d(activation):
    config = ModelConfig(d_model=24, n_head=4, activation=activation)
    assert config.hidden_width == 96
    mlp = build_mlp(config)
    assert isinstance(mlp, FeedForward) and mlp.up.weight.shape == (96, 24)


@pytest.mark.parametrize("activation", ["relu", "swiglu"])
def test_d_ff_overrides_the_hidden_width(activation):
    config = ModelConfig(d_model=24, n_head=4, activation=activation, d_ff=40)
    assert config.hidden_width == 40 and build_mlp(config).down.weight.shape == (24, 40)


@pytest.mark.parametrize("activation,expected", [
    ("relu", F.relu), ("gelu", F.gelu), ("gelu_tanh", lambda h: F.gelu(h, approximate="tanh")),
    ("swiglu", F.silu), ("geglu", F.gelu),
])
def test_build_activation_is_the_named_function(activation, expected):
    torch.manual_seed(0)
    h = torch.randn(50, dtype=torch.float64) * 3
    torch.testing.assert_close(build_activation(ModelConfig(activation=activation))(h), expected(h))


def test_tanh_gelu_by_sigmoid_is_the_same_function():
    x = torch.linspace(-12, 12, 2001, dtype=torch.float64, requires_grad=True)
    by_sigmoid, by_tanh = gelu_tanh_by_sigmoid(x), F.gelu(x, approximate="tanh")
    torch.testing.assert_close(by_sigmoid, by_tanh, rtol=1e-12, atol=1e-13)
    grads = [torch.autograd.grad(y.sum(), x)[0] for y in (by_sigmoid, by_tanh)]
    torch.testing.assert_close(*grads, rtol=1e-12, atol=1e-13)


@pytest.mark.parametrize("approximate", ["tanh", "none"])
def test_compiled_gelu_takes_the_sigmoid_form_for_tanh_only(monkeypatch, approximate):
    calls = []
    monkeypatch.setattr(feedforward, "gelu_tanh_by_sigmoid", lambda x: calls.append(1) or gelu_tanh_by_sigmoid(x))
    gelu = GELU(approximate=approximate)
    x = torch.randn(4, 16, dtype=torch.float64, generator=torch.Generator().manual_seed(0), requires_grad=True)
    eager = gelu(x)
    assert not calls  # eager: torch's own kernel
    compiled = torch.compile(gelu, backend="aot_eager")(x)
    assert bool(calls) == (approximate == "tanh")
    torch.testing.assert_close(compiled, eager, rtol=1e-12, atol=1e-13)
    torch.testing.assert_close(torch.autograd.grad(compiled.sum(), x)[0], torch.autograd.grad(eager.sum(), x)[0])
    assert isinstance(gelu, nn.GELU) and gelu.approximate == approximate  # torch.nn's module otherwise
