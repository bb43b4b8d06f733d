"""CausalConv1d: parity with torch.nn.Conv1d on the left-padded input (outputs and gradients, float64),
exact causality, and the queue paths (one step at a time, chunks with the queue as left context)
equal to the one-shot forward."""

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from seqlab.nn import CausalConv1d

C_IN, C_OUT, B, T = 3, 5, 2, 23
SHAPES = [(1, 1), (2, 1), (2, 4), (3, 2), (4, 3), (3, 9)]  # (kernel_size, dilation); (3, 9) reaches past T


pytestmark = pytest.mark.usefixtures("one_thread")  # tiny tensors: see conftest.py


def build(kernel_size: int, dilation: int, bias: bool = True, seed: int = 0) -> tuple[CausalConv1d, nn.Conv1d]:
    """Ours and torch.nn's Conv1d, float64, with the reference's random weights loaded into ours."""
    torch.manual_seed(seed)
    ref = nn.Conv1d(C_IN, C_OUT, kernel_size, dilation=dilation, bias=bias).double()
    ours = CausalConv1d(C_IN, C_OUT, kernel_size, dilation, bias=bias).double()
    ours.load_state_dict(ref.state_dict())
    return ours, ref


@pytest.mark.parametrize("kernel_size, dilation", SHAPES)
@pytest.mark.parametrize("bias", [True, False])
def test_equals_torch_conv1d_on_the_left_padded_input(kernel_size, dilation, bias):
    ours, ref = build(kernel_size, dilation, bias)
    x = torch.randn(B, C_IN, T, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    x_ours, x_ref = x.clone().requires_grad_(), x.clone().requires_grad_()
    y = ours(x_ours)
    y_ref = ref(F.pad(x_ref, ((kernel_size - 1) * dilation, 0)))
    torch.testing.assert_close(y, y_ref, rtol=0, atol=1e-6)
    cotangent = torch.linspace(-1, 1, y.numel(), dtype=torch.float64).reshape(y.shape)
    (y * cotangent).sum().backward()
    (y_ref * cotangent).sum().backward()
    torch.testing.assert_close(x_ours.grad, x_ref.grad, rtol=0, atol=1e-6)
    for (name, p), p_ref in zip(ours.named_parameters(), ref.parameters()):
        torch.testing.assert_close(p.grad, p_ref.grad, rtol=0, atol=1e-6, msg=name)


def test_state_dict_keys_and_shapes_are_conv1ds():
    ours, ref = build(3, 2)
    assert {k: v.shape for k, v in ours.state_dict().items()} == {k: v.shape for k, v in ref.state_dict().items()}
    assert "bias" not in CausalConv1d(C_IN, C_OUT, 2, bias=False).state_dict()
    with pytest.raises(ValueError, match="positive"):
        CausalConv1d(C_IN, C_OUT, 0)


@pytest.mark.parametrize("kernel_size, dilation", SHAPES)
def test_causality_is_exact(kernel_size, dilation):
    ours, _ = build(kernel_size, dilation, seed=2)
    x = torch.randn(B, C_IN, T, dtype=torch.float64, generator=torch.Generator().manual_seed(3))
    t = 11
    changed = x.clone()
    changed[:, :, t] += 1.0
    y, y_changed = ours(x), ours(changed)
    assert torch.equal(y[:, :, :t], y_changed[:, :, :t])
    assert not torch.equal(y[:, :, t], y_changed[:, :, t])


@pytest.mark.parametrize("kernel_size, dilation", SHAPES)
def test_steps_through_the_queue_equal_the_forward(kernel_size, dilation):
    ours, _ = build(kernel_size, dilation, seed=4)
    x = torch.randn(B, C_IN, T, dtype=torch.float64, generator=torch.Generator().manual_seed(5))
    queue = ours.new_queue(B) if ours.queue_length else None
    assert queue is None or (queue.shape == (B, C_IN, (kernel_size - 1) * dilation) and not queue.any())
    with torch.no_grad():
        stepped = torch.stack([ours.step(x[:, :, t], queue, t) for t in range(T)], dim=-1)  # (B, C_OUT, T)
        torch.testing.assert_close(stepped, ours(x), rtol=0, atol=1e-12)


@pytest.mark.parametrize("kernel_size, dilation", SHAPES)
def test_chunks_with_the_queue_as_context_equal_the_forward_and_the_steps(kernel_size, dilation):
    ours, _ = build(kernel_size, dilation, seed=6)
    x = torch.randn(B, C_IN, T, dtype=torch.float64, generator=torch.Generator().manual_seed(7))
    chunked_queue, stepped_queue = ours.new_queue(B), ours.new_queue(B)
    pieces, t = [], 0
    with torch.no_grad():
        for length in (1, 4, 2, 11, 5):  # shorter and longer than the queue, clock wrapping round it
            pieces.append(ours(x[:, :, t:t + length], chunked_queue, t))
            for s in range(t, t + length):
                ours.step(x[:, :, s], stepped_queue if ours.queue_length else None, s)
            t += length
            assert torch.equal(chunked_queue, stepped_queue)  # the same inputs in the same slots
        torch.testing.assert_close(torch.cat(pieces, dim=-1), ours(x), rtol=0, atol=1e-12)
