"""Batched numerics of a discrete-emission hidden Markov model: scaled forward–backward, Baum–Welch
expected counts and log-space Viterbi, for many variable-length sequences at once.

Rabiner (1989), "A Tutorial on Hidden Markov Models and Selected Applications in Speech
Recognition", sections III.A (forward–backward with per-step scaling, eq. 91–93), III.B (Viterbi)
and III.C (Baum–Welch). Parity reference: `hmmlearn.hmm.CategoricalHMM` (`implementation="scaling"`).

Dimensions: B batch (sequences) · T time (longest sequence) · K states · M symbols.

Layout: sequences are sorted by length, longest first, and stored time-major in a (T, B) array, so the
sequences still running at step t are exactly the first `n_active[t]` rows; finished sequences are
masked by slicing, not by arithmetic. Each time step is one batched matrix product over all running
sequences; the only Python loop is over time. Everything is float64 torch on the CPU.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

_F64 = torch.float64


@dataclass(frozen=True)
class Batch:
    """Sequences padded into one time-major array, longest first."""

    obs: torch.Tensor  # (T, B) int64, padded with symbol 0 past each sequence's end
    lengths: torch.Tensor  # (B,) int64, non-increasing
    n_active: list[int]  # n_active[t] = number of sequences with length > t, non-increasing
    order: np.ndarray  # (B,) batch row b holds the caller's sequence order[b]


def pad(sequences: list[np.ndarray]) -> Batch:
    lengths = np.array([len(s) for s in sequences], dtype=np.int64)
    order = np.argsort(-lengths, kind="stable")
    sorted_lengths = lengths[order]
    obs = np.zeros((int(sorted_lengths[0]), len(sequences)), dtype=np.int64)  # (T, B)
    for row, index in enumerate(order):
        obs[: sorted_lengths[row], row] = sequences[index]
    steps = np.arange(obs.shape[0])
    n_active = (sorted_lengths[None, :] > steps[:, None]).sum(1).tolist()  # (T,)
    return Batch(torch.from_numpy(obs), torch.from_numpy(sorted_lengths), n_active, order)


def unpad(values: torch.Tensor, batch: Batch) -> list[np.ndarray]:
    """(T, B, ...) padded values -> list of (T_b, ...) arrays in the caller's order."""
    out: list[np.ndarray] = [np.empty(0)] * len(batch.order)
    for row, index in enumerate(batch.order):
        out[index] = values[: int(batch.lengths[row]), row].numpy().copy()
    return out


def forward(startprob: torch.Tensor, transmat: torch.Tensor, emission_t: torch.Tensor, batch: Batch,
            store: bool) -> tuple[torch.Tensor | None, torch.Tensor]:
    """Scaled forward pass. Returns alpha_hat (T, B, K) if `store` (rows sum to 1) and the scales
    (T, B), 1 past each end, with log-likelihood = sum_t log scale_t (Rabiner eq. 103).

    `emission_t` is emissionprob transposed, (M, K), so that a step's emissions are one row gather.
    """
    T, B = batch.obs.shape
    K = transmat.shape[0]
    alpha = torch.zeros(T, B, K, dtype=_F64) if store else None
    scale = torch.ones(T, B, dtype=_F64)
    a = startprob * emission_t[batch.obs[0]]  # (B, K)
    for t in range(T):
        n = batch.n_active[t]
        if t > 0:
            # Written straight into alpha[t] when stored: no per-step allocation or copy.
            out = alpha[t, :n] if alpha is not None else torch.empty(n, K, dtype=_F64)
            a = torch.mm(a[:n], transmat, out=out)  # (n, K)
            a.mul_(emission_t[batch.obs[t, :n]])
        elif alpha is not None:
            alpha[0] = a
            a = alpha[0]
        c = a.sum(1)  # (n,)
        scale[t, :n] = c
        # An impossible observation gives c = 0: its log scale is -inf, and the clamp keeps the
        # rest of the batch free of NaN.
        a.div_(c.clamp_min(1e-300).unsqueeze(1))
    return alpha, scale


def log_likelihoods(scale: torch.Tensor) -> torch.Tensor:
    return torch.log(scale).sum(0)  # (B,)


@dataclass
class Counts:
    """Baum–Welch expected sufficient statistics, summed over the batch."""

    start: torch.Tensor  # (K,) expected first states
    trans: torch.Tensor  # (K, K) expected transitions i -> j
    emit: torch.Tensor  # (K, M) expected emissions of symbol m from state k


def backward(transmat: torch.Tensor, emission_t: torch.Tensor, batch: Batch, alpha: torch.Tensor,
             scale: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Scaled backward pass. Overwrites `alpha` with the state posteriors gamma (T, B, K) and returns
    them with the expected transition counts summed over time and batch, (K, K).

    With alpha_hat and beta_hat scaled by the same c_t, gamma_t = alpha_hat_t * beta_hat_t and
    xi_t(i, j) = alpha_hat_t(i) A_ij e_j(o_{t+1}) beta_hat_{t+1}(j) / c_{t+1} (Rabiner eq. 37, 38).
    """
    T, B = batch.obs.shape
    K = transmat.shape[0]
    trans = torch.zeros(K, K, dtype=_F64)
    beta = torch.ones(batch.n_active[T - 1], K, dtype=_F64)  # (n, K)
    alpha[T - 1, : beta.shape[0]] *= beta
    for t in range(T - 2, -1, -1):
        n, n_next = batch.n_active[t], batch.n_active[t + 1]
        weighted = emission_t[batch.obs[t + 1, :n_next]] * beta / scale[t + 1, :n_next, None]  # (n', K)
        trans += alpha[t, :n_next].T @ weighted  # (K, K), summed over the batch by the product
        beta = torch.ones(n, K, dtype=_F64)  # sequences ending at t start with beta = 1
        beta[:n_next] = weighted @ transmat.T
        alpha[t, :n] *= beta  # now gamma_t
    return alpha, trans * transmat


def expected_counts(gamma: torch.Tensor, trans: torch.Tensor, batch: Batch, n_symbols: int) -> Counts:
    K = gamma.shape[2]
    emit = torch.zeros(n_symbols, K, dtype=_F64)  # (M, K)
    # Padded positions have gamma = 0 and symbol 0, so they add nothing.
    emit.index_add_(0, batch.obs.reshape(-1), gamma.reshape(-1, K))
    return Counts(start=gamma[0].sum(0), trans=trans, emit=emit.T.contiguous())


def viterbi(log_startprob: torch.Tensor, log_transmat: torch.Tensor, log_emission_t: torch.Tensor,
            batch: Batch) -> tuple[torch.Tensor, torch.Tensor]:
    """Log-space Viterbi. Returns the best paths (T, B) (padded with 0) and their log-probs (B,).

    Stores the deltas (T, B, K) rather than back-pointers: backtracking recomputes one argmax per
    step for the chosen state only, which costs O(K) per sequence instead of storing O(K) pointers.
    """
    T, B = batch.obs.shape
    K = log_transmat.shape[0]
    # Every entry the backtrack reads is written below, so no fill is needed.
    delta = torch.empty(T, B, K, dtype=_F64)
    scores = torch.empty(K, B, K, dtype=_F64)  # reused each step: no 8 MB allocation per step
    delta[0] = log_startprob + log_emission_t[batch.obs[0]]  # (B, K)
    for t in range(1, T):
        n = batch.n_active[t]
        # (K_from, n, 1) + (K_from, 1, K_to), max over K_from: a reduction over the outer axis
        # is K elementwise maxima of contiguous (n, K_to) blocks, which vectorise well.
        torch.add(delta[t - 1, :n].T[:, :, None], log_transmat[:, None, :], out=scores[:, :n])
        torch.amax(scores[:, :n], 0, out=delta[t, :n])
        delta[t, :n] += log_emission_t[batch.obs[t, :n]]
    return _backtrack(log_transmat, delta, batch)


def _backtrack(log_transmat: torch.Tensor, delta: torch.Tensor, batch: Batch
               ) -> tuple[torch.Tensor, torch.Tensor]:
    # numpy views of the same memory: numpy's argmax over short rows is faster than torch's.
    delta_np = delta.numpy()  # (T, B, K)
    T, B, _ = delta_np.shape
    rows = np.arange(B)
    last = batch.lengths.numpy() - 1  # (B,)
    final_delta = delta_np[last, rows]  # (B, K)
    final = final_delta.argmax(1)  # (B,) each sequence starts backtracking from its best final state
    log_prob = final_delta[rows, final]  # (B,)
    path = np.zeros((T, B), dtype=np.int64)
    path[last, rows] = final
    log_transmat_t = log_transmat.T.contiguous().numpy()  # (K_to, K_from): a row gather per step
    for t in range(T - 1, 0, -1):
        n = batch.n_active[t]
        path[t - 1, :n] = (delta_np[t - 1, :n] + log_transmat_t[path[t, :n]]).argmax(1)
    return torch.from_numpy(path), torch.from_numpy(log_prob)
