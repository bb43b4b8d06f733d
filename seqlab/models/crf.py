"""A linear-chain conditional random field output layer (Lafferty, McCallum & Pereira 2001).

A tagger's network gives each position t a score for each tag, the emissions e_t (K,). The CRF adds
learned transition scores between consecutive tags, and scores for the first and the last tag:

    score(y) = start[y_1] + Σ_t e_t[y_t] + Σ_{t>1} trans[y_{t-1}, y_t] + end[y_T]
    P(y | x) = exp(score(y)) / Z,     log Z by the forward algorithm in log space.

Training minimises −log P(gold tags | x). Decoding is the Viterbi of the HMM
(`seqlab.models.hmm_kernels.log_viterbi`, compiled): an HMM whose "symbols" are the positions of
the batch, emitting e_t, with the CRF's transitions and start scores; the end scores are added to
each sequence's last emission. The tests compare log Z and the best path with brute-force
enumeration over every tag sequence.

Dimensions: B batch · T time · K tags.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor, nn

from seqlab.models import hmm_kernels


class LinearChainCRF(nn.Module):
    """Transition, start and end scores over K tags; `nll` for training, `decode` for tagging."""

    def __init__(self, n_tags: int) -> None:
        super().__init__()
        self.n_tags = n_tags
        self.transitions = nn.Parameter(torch.zeros(n_tags, n_tags))  # [previous tag, next tag]
        self.start = nn.Parameter(torch.zeros(n_tags))
        self.end = nn.Parameter(torch.zeros(n_tags))

    def log_partition(self, emissions: Tensor, mask: Tensor) -> Tensor:
        """log Z of each sequence, (B,). emissions (B, T, K); mask (B, T) True on real positions,
        a prefix of each row (at least one)."""
        alpha = self.start + emissions[:, 0]  # (B, K)
        for t in range(1, emissions.shape[1]):
            # (B, K, 1) + (K, K) -> logsumexp over the previous tag -> (B, K)
            step = torch.logsumexp(alpha.unsqueeze(2) + self.transitions, dim=1) + emissions[:, t]
            alpha = torch.where(mask[:, t, None], step, alpha)
        return torch.logsumexp(alpha + self.end, dim=1)

    def score(self, emissions: Tensor, tags: Tensor, mask: Tensor) -> Tensor:
        """score(y) of the given tags, (B,)."""
        B, T, _ = emissions.shape
        rows = torch.arange(B, device=emissions.device)
        total = self.start[tags[:, 0]] + emissions[rows, 0, tags[:, 0]]
        for t in range(1, T):
            step = self.transitions[tags[:, t - 1], tags[:, t]] + emissions[rows, t, tags[:, t]]
            total = total + step * mask[:, t]
        last = mask.sum(dim=1) - 1  # (B,)
        return total + self.end[tags[rows, last]]

    def nll(self, emissions: Tensor, tags: Tensor, mask: Tensor) -> Tensor:
        """−log P(tags | x) of each sequence, (B,)."""
        return self.log_partition(emissions, mask) - self.score(emissions, tags, mask)

    @torch.no_grad()
    def decode(self, emissions: Tensor, mask: Tensor) -> list[list[int]]:
        """The best tag sequence of each row (its real positions only), by the HMM's Viterbi."""
        lengths = mask.sum(dim=1).tolist()
        scores = emissions.detach().double().cpu().numpy().copy()  # (B, T, K); a copy: the end scores go in
        columns = [scores[b, :n] for b, n in enumerate(lengths)]
        end = self.end.detach().double().cpu().numpy()
        for column in columns:
            column[-1] = column[-1] + end
        log_emission = np.ascontiguousarray(np.concatenate(columns).T)  # (K, N): one symbol per position
        offsets = np.cumsum([0] + lengths)
        positions = [np.arange(offsets[b], offsets[b + 1], dtype=np.int64) for b in range(len(lengths))]
        paths, _ = hmm_kernels.log_viterbi(self.start.detach().double().cpu().numpy(),
                                           self.transitions.detach().double().cpu().numpy(),
                                           log_emission, hmm_kernels.flatten(positions))
        return [path.tolist() for path in paths]
