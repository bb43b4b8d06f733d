"""The causal dilated convolution (van den Oord et al. 2016, "WaveNet: A Generative Model for Raw
Audio"), with the queue-based incremental path of Paine et al. 2016 ("Fast Wavenet Generation
Algorithm").

A causal convolution over time pads only on the left, by (kernel_size − 1) · dilation, so output t
reads inputs t − (k − 1)·d, …, t − d, t and never a later one:

    y[t] = bias + Σ_m weight[:, :, m] · x[t − (k − 1 − m) · d]        m = 0 … k − 1

Tensors are (B, C, T), as torch.nn.Conv1d's; the weight is (C_out, C_in, k) and the bias (C_out,),
named as Conv1d names them, so a Conv1d's state dict loads as is. The parity test
(tests/nn/test_convolution.py) compares with `torch.nn.Conv1d` applied to the left-padded input.

Decoding one time step at a time does not need the whole past, only the n = (k − 1) · d past inputs
the taps read: the *queue*, a (B, C_in, n) ring buffer in which slot τ mod n holds the input of time τ
(zeros before the start: the padding). `step` reads the k − 1 taps from it, writes the new input over
the oldest one in place, and costs O(k · C_in · C_out) whatever the dilation; `forward` with a queue
treats it as the left context in place of the zeros (a chunked prefill) and advances it in place.
The caller keeps the clock t (how many inputs the queue has seen), so the layers of a model share one.

Dimensions: B batch · T time · C channels (C_in in, C_out out) · k kernel size · d dilation ·
n = (k − 1) · d queue length.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn


class CausalConv1d(nn.Module):
    """A 1-D convolution over (B, C_in, T) whose output t depends only on inputs at times ≤ t.

    >>> conv = CausalConv1d(3, 4, kernel_size=2, dilation=4)
    >>> conv(torch.zeros(2, 3, 10)).shape, conv.queue_length
    (torch.Size([2, 4, 10]), 4)
    """

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, dilation: int = 1,
                 bias: bool = True) -> None:
        super().__init__()
        if min(in_channels, out_channels, kernel_size, dilation) < 1:
            raise ValueError(f"channels, kernel_size and dilation must be positive, got {in_channels}, "
                             f"{out_channels}, {kernel_size}, {dilation}")
        self.in_channels, self.out_channels = in_channels, out_channels
        self.kernel_size, self.dilation = kernel_size, dilation
        self.weight = nn.Parameter(torch.empty(out_channels, in_channels, kernel_size))
        self.bias = nn.Parameter(torch.empty(out_channels)) if bias else None
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """torch.nn.Conv1d's initialization: Kaiming-uniform weight (a = √5), bias U(±1/√fan_in)."""
        nn.init.kaiming_uniform_(self.weight, a=math.sqrt(5))
        if self.bias is not None:
            bound = 1 / math.sqrt(self.in_channels * self.kernel_size)
            nn.init.uniform_(self.bias, -bound, bound)

    @property
    def queue_length(self) -> int:
        """n = (k − 1) · d: the past inputs one output reads, which is also the left padding."""
        return (self.kernel_size - 1) * self.dilation

    def new_queue(self, batch_size: int, device: torch.device | str | None = None,
                  dtype: torch.dtype | None = None) -> Tensor:
        """An empty queue: zeros (B, C_in, n), the padding before the first input."""
        return torch.zeros(batch_size, self.in_channels, self.queue_length,
                           device=self.weight.device if device is None else device,
                           dtype=self.weight.dtype if dtype is None else dtype)

    def forward(self, x: Tensor, queue: Tensor | None = None, t: int = 0) -> Tensor:
        """x (B, C_in, T) → (B, C_out, T).

        Without a queue the input is zero-padded on the left. With one, `queue` (B, C_in, n) holds
        the inputs of times t − n … t − 1 (see the module docstring) and x continues them from time
        t: they are the left context instead of the zeros, and the queue is advanced in place to
        hold times t + T − n … t + T − 1.
        """
        n = self.queue_length
        if queue is None:
            padded = F.pad(x, (n, 0))  # (B, C_in, n + T)
        else:
            ordered = queue.roll(-(t % n), dims=-1) if n else queue  # (B, C_in, n), oldest first
            padded = torch.cat([ordered, x], dim=-1)  # (B, C_in, n + T)
            if n:
                queue.copy_(padded[..., -n:].roll((t + x.shape[-1]) % n, dims=-1))  # back to ring order
        return F.conv1d(padded, self.weight, self.bias, dilation=self.dilation)  # (B, C_out, T)

    def step(self, x: Tensor, queue: Tensor | None, t: int) -> Tensor:
        """One time step: x (B, C_in), the input of time t → output (B, C_out) of time t.

        `queue` (B, C_in, n) holds the inputs of times t − n … t − 1 (None when n = 0); x replaces
        the oldest of them in place. Costs one small matrix product, whatever the dilation.
        """
        n = self.queue_length
        if n == 0:
            return F.linear(x, self.weight[:, :, 0], self.bias)  # (B, C_out)
        d = self.dilation
        # Tap m reads time t − (k − 1 − m)·d, in slot (t − (k − 1 − m)·d) mod n; the last tap is x.
        taps = [queue[:, :, (t - j * d) % n] for j in range(self.kernel_size - 1, 0, -1)] + [x]
        stacked = torch.stack(taps, dim=-1).flatten(1)  # (B, C_in · k), index c·k + m as weight's
        y = F.linear(stacked, self.weight.flatten(1), self.bias)  # (B, C_out)
        queue[:, :, t % n] = x  # time t overwrites time t − n, which no later step reads
        return y

    def extra_repr(self) -> str:
        return (f"{self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}, "
                f"dilation={self.dilation}, bias={self.bias is not None}")


__all__ = ["CausalConv1d"]
