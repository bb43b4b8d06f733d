"""Dropout (Srivastava et al. 2014) whose CPU masks cost a quarter of a random draw per element.

On the CPU, `F.dropout` draws one Bernoulli variable per element from the Mersenne Twister, one at a
time: on a (32, 64, 512) activation that is 9 ms, as long as a third of the LSTM layer's forward.
Here one 64-bit random word gives four 16-bit lanes, and an element is dropped where its lane falls
below k = round(p · 2¹⁶) of the 2¹⁶ values: the same mask law up to rounding p to a multiple of
2⁻¹⁶, in 1.6 ms for the same tensor. The kept elements are scaled by 2¹⁶ / (2¹⁶ − k), the inverse of
the exact keep rate, so the output's expectation is the input. Elsewhere (CUDA draws its masks in
the fused kernel) this is `F.dropout` itself.

Masks come from torch's global generator: `torch.manual_seed` makes them repeat.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

LANES = 4  # 16-bit lanes in one 64-bit random word
LEVELS = 1 << 16  # the values one lane takes


def dropout(x: Tensor, p: float, training: bool = True) -> Tensor:
    """x with each element zeroed with probability p (to within 2⁻¹⁷) and the rest scaled to keep
    the expectation; x itself outside training or when p = 0."""
    if not 0.0 <= p <= 1.0:
        raise ValueError(f"dropout probability must be in [0, 1], got {p}")
    if not training or p == 0.0:
        return x
    dropped = round(p * LEVELS)  # k of the 2¹⁶ lane values drop
    if x.device.type != "cpu" or dropped == LEVELS:  # (p within 2⁻¹⁷ of 1: no lane value is kept)
        return F.dropout(x, p, training=True)
    n = x.numel()
    # Full-range words: torch's `random_()` leaves the top bit of an int64 at 0.
    words = torch.randint(-(1 << 63), (1 << 63) - 1, (-(-n // LANES),), dtype=torch.int64, device=x.device)
    lanes = words.view(torch.int16)[:n].view(x.shape)  # uniform over [−2¹⁵, 2¹⁵)
    keep = lanes >= dropped - LEVELS // 2
    return x * (keep.to(x.dtype) * (LEVELS / (LEVELS - dropped)))
