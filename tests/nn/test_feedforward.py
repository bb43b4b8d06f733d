import pytest
import torch
import torch.nn.functional as F
from torch import nn

from seqlab.nn.feedforward import FeedForward


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
