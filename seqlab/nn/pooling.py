"""Pooling a sequence of hidden states into one vector, for sequence classification.

Four ways, one class each, all taking hidden states h (B, T, D) and a mask (B, T) (True on real
positions, a prefix of each row) and returning (B, D):

- `LastPooling`: the state at each row's last real position (what an RNN classifier reads; for a
  causal model the only state that has seen the whole sequence);
- `MeanPooling`: the mean over real positions (padding excluded);
- `FirstPooling`: the state at position 0 (BERT's [CLS]; for a bidirectional encoder);
- `AttentionPooling`: a learned query scores each position, softmax over real positions, the
  weighted sum (Yang et al. 2016's attention over words; Bahdanau-style additive scoring).

`POOLINGS` maps the config's names to the classes.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn


def _lengths(mask: Tensor) -> Tensor:
    return mask.sum(dim=1).clamp(min=1)  # (B,)


class LastPooling(nn.Module):
    def forward(self, h: Tensor, mask: Tensor) -> Tensor:
        last = _lengths(mask) - 1  # (B,)
        return h[torch.arange(h.shape[0], device=h.device), last]  # (B, D)


class MeanPooling(nn.Module):
    def forward(self, h: Tensor, mask: Tensor) -> Tensor:
        weights = mask.to(h.dtype).unsqueeze(-1)  # (B, T, 1)
        return (h * weights).sum(dim=1) / _lengths(mask).to(h.dtype).unsqueeze(-1)


class FirstPooling(nn.Module):
    def forward(self, h: Tensor, mask: Tensor) -> Tensor:
        return h[:, 0]


class AttentionPooling(nn.Module):
    """score_t = vᵀ tanh(W h_t + b); weights = softmax over the real positions."""

    def __init__(self, d_model: int) -> None:
        super().__init__()
        self.project = nn.Linear(d_model, d_model)
        self.query = nn.Linear(d_model, 1, bias=False)

    def weights(self, h: Tensor, mask: Tensor) -> Tensor:
        """The attention over positions, (B, T), zero on padding, each row summing to 1."""
        scores = self.query(torch.tanh(self.project(h))).squeeze(-1)  # (B, T)
        scores = scores.masked_fill(~mask, float("-inf"))
        return torch.softmax(scores.float(), dim=-1).to(h.dtype)  # softmax in fp32

    def forward(self, h: Tensor, mask: Tensor) -> Tensor:
        return torch.einsum("bt,btd->bd", self.weights(h, mask), h)


POOLINGS = {"last": LastPooling, "mean": MeanPooling, "first": FirstPooling, "attention": AttentionPooling}


def build_pooling(kind: str, d_model: int) -> nn.Module:
    if kind == "attention":
        return AttentionPooling(d_model)
    return POOLINGS[kind]()
