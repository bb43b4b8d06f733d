"""The position-wise feed-forward network of a Transformer block (Vaswani et al. 2017, §3.3).

Each position independently goes up to a wider hidden layer, through a nonlinearity and back down:
down(act(up(x))), with dropout on the output (the residual path), as in GPT-2 / nanoGPT. The
activation is passed in already built (GELU for GPT-2), so a variant is a different module, not a flag.

Dimensions: B batch · T time · D model width · F hidden width (4·D in GPT-2).
"""

from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor, nn


class FeedForward(nn.Module):
    """down(activation(up(x))) with residual dropout. Parameters: `up` (D → F), `down` (F → D)."""

    def __init__(self, d_model: int, d_hidden: int, *, activation: nn.Module, bias: bool, dropout: float) -> None:
        super().__init__()
        self.up = nn.Linear(d_model, d_hidden, bias=bias)
        self.activation = activation
        self.down = nn.Linear(d_hidden, d_model, bias=bias)
        self.dropout = dropout

    def forward(self, x: Tensor) -> Tensor:
        """x (B, T, D) → (B, T, D)."""
        y = self.down(self.activation(self.up(x)))  # (B, T, F) inside
        if self.training and self.dropout > 0.0:
            y = F.dropout(y, self.dropout, training=True)
        return y
