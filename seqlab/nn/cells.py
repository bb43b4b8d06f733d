"""One time step of each recurrent cell, written as the equations read.

  - Elman RNN (Elman 1990): h' = act(W_ih x + b_ih + W_hh h + b_hh), act = tanh or ReLU.
  - GRU (Cho et al. 2014): gates r, z, n in that row order; the reset gate multiplies
    (W_hn h + b_hn), after the recurrent bias, as cuDNN and `torch.nn.GRU` do (the paper puts r
    inside, on h, before W_hn).
  - LSTM (Hochreiter & Schmidhuber 1997, with the forget gate of Gers et al. 2000): gates i, f, g, o.
  - Gated RNN (the lectures' single-gate RNN): h̄ = ReLU(W_xh x + W_hh h + b_h),
    z = σ(W_xz x + W_hz h + b_z), h' = z ⊙ h + (1 − z) ⊙ h̄. Its weight rows are ordered
    [candidate h̄; gate z]; its bias b is split, like torch's cells, into b_ih + b_hh.

Every cell maps (x, state, weights) to the new state, a tuple: (h,) or, for the LSTM, (h, c). The
weight layout is torch.nn's, so these equations are what the parity tests hold against
`torch.nn.RNN/GRU/LSTM`. Biases may be None (bias=False).

Dimensions: B batch · F input width · H hidden width.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import Tensor

State = tuple[Tensor, ...]
Cell = Callable[[Tensor, State, Tensor, Tensor, Tensor | None, Tensor | None], State]


def rnn_tanh_cell(x: Tensor, state: State, w_ih: Tensor, w_hh: Tensor,
                  b_ih: Tensor | None, b_hh: Tensor | None) -> State:
    """Elman step with tanh: x (B, F), h (B, H); w_ih (H, F), w_hh (H, H) → (h',)."""
    (h,) = state
    return (torch.tanh(F.linear(x, w_ih, b_ih) + F.linear(h, w_hh, b_hh)),)


def rnn_relu_cell(x: Tensor, state: State, w_ih: Tensor, w_hh: Tensor,
                  b_ih: Tensor | None, b_hh: Tensor | None) -> State:
    """Elman step with ReLU: x (B, F), h (B, H); w_ih (H, F), w_hh (H, H) → (h',)."""
    (h,) = state
    return (torch.relu(F.linear(x, w_ih, b_ih) + F.linear(h, w_hh, b_hh)),)


def gru_cell(x: Tensor, state: State, w_ih: Tensor, w_hh: Tensor,
             b_ih: Tensor | None, b_hh: Tensor | None) -> State:
    """GRU step: x (B, F), h (B, H); w_ih (3H, F), w_hh (3H, H), rows [r; z; n] → (h',)."""
    (h,) = state
    r_x, z_x, n_x = F.linear(x, w_ih, b_ih).chunk(3, dim=-1)  # 3 × (B, H)
    r_h, z_h, n_h = F.linear(h, w_hh, b_hh).chunk(3, dim=-1)  # 3 × (B, H)
    r = torch.sigmoid(r_x + r_h)
    z = torch.sigmoid(z_x + z_h)
    n = torch.tanh(n_x + r * n_h)  # r gates W_hn h + b_hn as a whole: torch's (cuDNN's) variant
    return ((1 - z) * n + z * h,)


def lstm_cell(x: Tensor, state: State, w_ih: Tensor, w_hh: Tensor,
              b_ih: Tensor | None, b_hh: Tensor | None) -> State:
    """LSTM step: x (B, F), h and c (B, H); w_ih (4H, F), w_hh (4H, H), rows [i; f; g; o] → (h', c')."""
    h, c = state
    i, f, g, o = (F.linear(x, w_ih, b_ih) + F.linear(h, w_hh, b_hh)).chunk(4, dim=-1)  # 4 × (B, H)
    c = torch.sigmoid(f) * c + torch.sigmoid(i) * torch.tanh(g)
    h = torch.sigmoid(o) * torch.tanh(c)
    return h, c


def gated_rnn_update(x_proj: Tensor, state: State, w_hh: Tensor, b_hh: Tensor | None) -> State:
    """The recurrent half of a gated-RNN step, given x_proj = W_ih x + b_ih (B, 2H) → (h',).

    Split out so that a whole sequence's input projections can be computed in one matmul.
    """
    (h,) = state
    cand_x, gate_x = x_proj.chunk(2, dim=-1)  # 2 × (B, H)
    cand_h, gate_h = F.linear(h, w_hh, b_hh).chunk(2, dim=-1)  # 2 × (B, H)
    h_bar = torch.relu(cand_x + cand_h)
    z = torch.sigmoid(gate_x + gate_h)
    return (z * h + (1 - z) * h_bar,)


def gated_rnn_cell(x: Tensor, state: State, w_ih: Tensor, w_hh: Tensor,
                   b_ih: Tensor | None, b_hh: Tensor | None) -> State:
    """Gated-RNN step: x (B, F), h (B, H); w_ih (2H, F), w_hh (2H, H), rows [h̄; z] → (h',)."""
    return gated_rnn_update(F.linear(x, w_ih, b_ih), state, w_hh, b_hh)
