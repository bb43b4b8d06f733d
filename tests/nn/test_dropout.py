import pytest
import torch
import torch.nn.functional as F

from seqlab.nn.dropout import LANES, LEVELS, dropout

N = 1 << 18  # elements: the drop rate's standard error is below 0.001


@pytest.mark.parametrize("p", [0.1, 0.3, 0.5, 0.9])
def test_drops_at_the_rate_of_F_dropout_and_keeps_the_mean(p):
    torch.manual_seed(0)
    ones = torch.ones(N)
    ours, theirs = dropout(ones, p), F.dropout(ones, p, training=True)
    for out in (ours, theirs):
        assert abs(out.eq(0).float().mean().item() - p) < 0.004
        assert abs(out.mean().item() - 1.0) < 0.004 / (1 - p)
    # Kept elements are scaled by the inverse of the exact keep rate of the 16-bit thresholds.
    dropped = round(p * LEVELS)
    torch.testing.assert_close(ours[ours != 0], torch.full_like(ours[ours != 0], LEVELS / (LEVELS - dropped)))


def test_every_lane_of_a_random_word_drops_at_the_rate():
    """Each 64-bit word gives LANES masks; a lane stuck at one sign (torch's random_() leaves the top
    bit of an int64 at 0) would drop at 0 or twice the rate."""
    torch.manual_seed(1)
    out = dropout(torch.ones(N), 0.5)
    rates = out.eq(0).float().reshape(-1, LANES).mean(0)
    assert rates.sub(0.5).abs().max().item() < 0.01, rates


def test_gradient_is_the_mask_the_forward_used():
    torch.manual_seed(2)
    x = torch.randn(8, 16, 32, requires_grad=True)
    out = dropout(x, 0.25)
    out.backward(torch.ones_like(out))
    torch.testing.assert_close(x.grad, out.detach() / x.detach())


def test_same_seed_same_mask_any_layout_and_dtype():
    x = torch.randn(16, 64)
    torch.manual_seed(3)
    first = dropout(x.t(), 0.4)  # not contiguous
    torch.manual_seed(3)
    again = dropout(x.t().contiguous(), 0.4)
    torch.testing.assert_close(first, again)
    assert dropout(x.bfloat16(), 0.4).dtype == torch.bfloat16


def test_identity_outside_training_or_at_zero_and_zeros_at_one():
    x = torch.randn(5, 7)
    assert dropout(x, 0.5, training=False) is x
    assert dropout(x, 0.0) is x
    assert dropout(x, 1.0).eq(0).all()
    with pytest.raises(ValueError, match="dropout probability"):
        dropout(x, 1.5)
