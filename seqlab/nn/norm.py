"""Normalisation layers: LayerNorm (Ba et al. 2016) comes from torch; RMSNorm (Zhang & Sennrich 2019)
is here.

RMSNorm drops LayerNorm's mean subtraction and bias: y = x / sqrt(mean(x²) + eps) · g. LLaMA, Gopher
and T5 use it. The parity test compares it with `torch.nn.RMSNorm` and with Hugging Face's
`LlamaRMSNorm` (through the LLaMA import); the pitfall is eps, which goes inside the square root.

Dimensions: ... any leading dimensions · D normalised width.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn


class RMSNorm(nn.Module):
    """Root-mean-square normalisation with a learned gain `weight` (D,) and no bias.

    >>> RMSNorm(4)(torch.tensor([[1.0, -1.0, 1.0, -1.0]]))
    tensor([[ 1.0000, -1.0000,  1.0000, -1.0000]], grad_fn=<MulBackward0>)
    """

    def __init__(self, d_model: int, *, eps: float = 1e-6) -> None:
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(d_model))

    def reset_parameters(self) -> None:
        nn.init.ones_(self.weight)

    def forward(self, x: Tensor) -> Tensor:
        """x (..., D) → (..., D)."""
        # The mean square in at least float32: in half precision x² overflows or loses the small parts.
        h = x.to(torch.promote_types(x.dtype, torch.float32))
        h = h * torch.rsqrt(h.pow(2).mean(-1, keepdim=True) + self.eps)
        return self.weight * h.to(x.dtype)

    def extra_repr(self) -> str:
        return f"{self.weight.shape[0]}, eps={self.eps}"
