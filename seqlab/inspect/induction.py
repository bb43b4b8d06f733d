"""Scores of what an attention head does, measured on a trace.

- Induction heads (Olsson et al. 2022, "In-context Learning and Induction Heads"): a head that, at a
  token A, attends to the token B that followed the previous occurrence of A ([A][B] … [A] → [B]).
  `induction_scores` is each head's mean attention from a position t to t' + 1, where t' < t is the
  most recent earlier position holding the same token (positions without one, or where t' + 1 = t,
  are skipped). On random tokens written twice it is the paper's "prefix matching" score over the
  repeated half. `held_out_induction` measures it on sequences drawn fresh (`seqlab.data.repeats`).
- Reversal (the `vaswani` string-reversal run): `mirrored_mass` is each cross-attention head's mean
  weight from the row that produces target token j to the mirrored source position S − 1 − j.

Dimensions: L layers · H heads · T queries · S keys.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor


def induction_targets(tokens: Sequence[int]) -> list[tuple[int, int]]:
    """(t, t' + 1) for every position t whose token occurred before, t' its most recent earlier
    position, when t' + 1 < t."""
    last: dict[int, int] = {}
    pairs = []
    for t, token in enumerate(tokens):
        if token in last and last[token] + 1 < t:
            pairs.append((t, last[token] + 1))
        last[token] = t
    return pairs


def induction_scores(trace, *, positions: Sequence[int] | None = None) -> Tensor:
    """(L, H): each causal self-attention head's mean weight on the token after the previous
    occurrence of the current token, over the positions that have one (only those in `positions`
    when given); nan where there are none. `trace` is a `Trace`, or (attention (L, H, T, T),
    tokens)."""
    weights, tokens = (trace.attention["self"], trace.tokens) if hasattr(trace, "attention") else trace
    keep = None if positions is None else set(positions)
    pairs = [(t, s) for t, s in induction_targets(tokens) if keep is None or t in keep]
    if not pairs:
        return torch.full(weights.shape[:2], float("nan"))
    rows, cols = torch.tensor(pairs).T  # (P,), (P,)
    return weights[:, :, rows, cols].mean(dim=-1)  # (L, H)


@torch.inference_mode()
def held_out_induction(model, tokenizer, *, n_sequences: int = 20, length: int = 20, seed: int = 1) -> Tensor:
    """(L, H): `induction_scores` over the repeated half of `n_sequences` fresh sequences x + x of
    `length` distinct random letters each (seeds seed, seed + 1, ...; the training corpus uses
    another). Distinct, so that the token after a token's previous occurrence is the one to copy:
    with a letter recurring inside x, even a perfect copier would score below 1 there."""
    from seqlab.data.repeats import repeated_sequence
    from seqlab.inspect.trace import trace

    total = None
    for i in range(n_sequences):
        ids = tokenizer.encode(repeated_sequence(length, seed + i, distinct=True))
        scores = induction_scores(trace(model, ids, probes=["attention"]), positions=range(length, 2 * length))
        total = scores if total is None else total + scores
    return total / n_sequences


def mirrored_mass(cross: Tensor, n_source: int | None = None) -> Tensor:
    """(L, H): each head's mean weight from row j (the row that produces target token j) to the
    source position S − 1 − j, over j < min(T, S); `n_source` counts the real source tokens when
    the source ends with others (an end token), S otherwise.
    cross: (L, H, T, S) or (H, T, S) or (T, S)."""
    S = cross.shape[-1] if n_source is None else n_source
    rows = torch.arange(min(cross.shape[-2], S))
    return cross[..., rows, S - 1 - rows].mean(dim=-1)


__all__ = ["held_out_induction", "induction_scores", "induction_targets", "mirrored_mass"]
