"""Attention masks.

Convention used throughout seqlab (DESIGN.md): a mask is a boolean tensor where True means
"may attend". It broadcasts against attention scores of shape (B, H, T, S).

Dimensions: T queries · S keys (S = P + T when P keys are already cached).
"""

from __future__ import annotations

import torch
from torch import Tensor


def causal_mask(n_query: int, n_key: int, *, device: torch.device | str | None = None) -> Tensor:
    """The causal mask for `n_query` new queries against `n_key` keys, bottom-right aligned.

    The queries are the last `n_query` positions of the key sequence, so query i (absolute position
    P + i with P = n_key - n_query) may attend keys 0 .. P + i. With n_query == n_key this is the
    usual lower triangle.

    >>> causal_mask(2, 4).int()
    tensor([[1, 1, 1, 0],
            [1, 1, 1, 1]], dtype=torch.int32)
    """
    if not 0 <= n_query <= n_key:
        raise ValueError(f"causal_mask needs 0 <= n_query <= n_key, got {n_query} and {n_key}")
    ones = torch.ones(n_query, n_key, dtype=torch.bool, device=device)  # (T, S)
    # SDPA's own is_causal=True is top-left aligned (diagonal 0); a cache needs the offset.
    return ones.tril(diagonal=n_key - n_query)  # (T, S)
