"""Batched numerics of a discrete-emission hidden Markov model: scaled forward–backward, Baum–Welch
expected counts and log-space Viterbi, for many variable-length sequences at once.

Rabiner (1989), "A Tutorial on Hidden Markov Models and Selected Applications in Speech
Recognition", sections III.A (forward–backward with per-step scaling, eq. 91–93), III.B (Viterbi)
and III.C (Baum–Welch). Parity reference: `hmmlearn.hmm.CategoricalHMM` (`implementation="scaling"`).
This is the readable reference path (`HMM(numerics="reference")`); `seqlab.models.hmm_kernels` runs
the same recursions compiled, block by block, and is tested against it.

Dimensions: B batch (sequences) · T time (longest sequence) · K states · M symbols.

Layout: sequences are sorted by length, longest first, and observations are stored time-major,
(T, B), so the sequences still running at step t are exactly the first `n_active[t]` columns;
finished sequences are dropped by slicing, not by arithmetic. In forward–backward, per-step
quantities are state-major (K, B) blocks, stacked time-major as (T, K, B): a step's per-sequence
scale then broadcasts along contiguous rows, and a step's emissions are one column gather from the
(K, M) emission matrix. Viterbi's deltas are batch-major, (T, B, K); see `_viterbi_deltas`.

Speed: the only Python loop is over time, so each step is a handful of whole-batch operations,
and per-call overhead matters as much as arithmetic. Forward–backward uses numpy (~1-3 us a call;
the K x K product is one BLAS call), which costs a half to a fifth of the same torch calls at
these shapes. Viterbi's max-plus product (a broadcast add and a max over K_from, K^2 B elements a
step) uses torch, whose kernels run these 1.5 to 2 times as fast as numpy's. Large arrays are numpy
arrays (numpy asks the kernel for huge pages, so first touching them costs about a third as
much); the torch calls work on views of them.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np
import torch

_VITERBI_BLOCK = 1 << 18  # max-plus scores per Viterbi step: (K, block, K) float64, 2 MiB
# Viterbi's deltas per block, (T, block, K) float64: 33 MB, under glibc's largest mmap threshold
# (32 MiB = 33.55 MB), so that the buffer comes from the heap and is reused from call to call, rather than
# mapped afresh and faulted in page by page each time (which can cost more than the recursion).
_VITERBI_WORKSPACE = 33_000_000 // 8
_COUNTS_BLOCK = 1 << 18  # elements per block of `expected_counts`' bincount: 2 MiB of int64 index, in cache


@dataclass(frozen=True)
class Batch:
    """Sequences padded into one time-major array, longest first."""

    obs: np.ndarray  # (T, B) int64, padded with symbol 0 past each sequence's end
    lengths: np.ndarray  # (B,) int64, non-increasing
    n_active: list[int]  # n_active[t] = number of sequences with length > t, non-increasing
    order: np.ndarray  # (B,) batch column b holds the caller's sequence order[b]


def pad(sequences: list[np.ndarray]) -> Batch:
    lengths = np.array([len(s) for s in sequences], dtype=np.int64)
    order = np.argsort(-lengths, kind="stable")
    sorted_lengths = lengths[order]
    obs = np.zeros((int(sorted_lengths[0]), len(sequences)), dtype=np.int64)  # (T, B)
    if sorted_lengths[0] == sorted_lengths[-1]:  # all the same length: one stacked copy
        obs[:] = np.stack([sequences[i] for i in order], axis=1)
    else:
        for column, index in enumerate(order):
            obs[: sorted_lengths[column], column] = sequences[index]
    # n_active[t] = #{b : length_b > t}, from the lengths sorted in decreasing order.
    n_active = np.searchsorted(-sorted_lengths, -np.arange(1, obs.shape[0] + 1), side="right")
    return Batch(obs, sorted_lengths, n_active.tolist(), order)


def _columns(batch: Batch, start: int, stop: int) -> Batch:
    """Sequences (sorted columns) start to stop of `batch`, cut to the block's longest: a dense
    sub-batch, as sequences are sorted longest first."""
    steps = int(batch.lengths[start])
    return Batch(batch.obs[:steps, start:stop], batch.lengths[start:stop],
                 [min(max(n - start, 0), stop - start) for n in batch.n_active[:steps]],
                 batch.order[start:stop])


def unpad(values: np.ndarray | torch.Tensor, batch: Batch) -> list[np.ndarray]:
    """(T, ..., B) padded values (batch on the last axis) -> list of (T_b, ...) arrays in the
    caller's order."""
    values = np.asarray(values)
    out: list[np.ndarray] = [np.empty(0)] * len(batch.order)
    for column, index in enumerate(batch.order):
        out[index] = values[: batch.lengths[column], ..., column].copy()
    return out


def forward(startprob: np.ndarray, transmat: np.ndarray, emissionprob: np.ndarray, batch: Batch,
            store: bool, reuse: np.ndarray | None = None,
            into: Callable[[int, np.ndarray], None] | None = None
            ) -> tuple[np.ndarray | None, np.ndarray]:
    """Scaled forward pass. Returns alpha_hat (T, K, B) if `store` (columns sum to 1, 0 past each
    end) and the scales (T, B), 1 past each end, with log-likelihood = sum_t log scale_t
    (Rabiner eq. 103). `reuse` is an earlier alpha (or gamma) of the same batch to overwrite:
    Baum–Welch iterations then touch fresh memory only once. Only the steps of each sequence are
    written: past its end, `reuse` keeps what it held (zeros, for an earlier alpha or gamma).
    `into`, with `store` false: called as into(t, alpha_t) with each step's (K, n) alpha, to keep
    it elsewhere (see `posteriors`).

    An impossible observation gives scale 0 and makes the rest of that sequence's column NaN; the
    columns never mix (every operation is per column), so the other sequences are unaffected, and
    `log_likelihoods` reports -inf for it.
    """
    obs, n_active = batch.obs, batch.n_active
    T, B = obs.shape
    K = transmat.shape[0]
    transmat_t = np.ascontiguousarray(transmat.T)  # (K_to, K_from): alpha_t = A^T alpha_{t-1}
    ones = np.ones(K)
    alpha = (np.zeros((T, K, B)) if reuse is None else reuse) if store else None  # zero past each end
    buffers = None if store else (np.empty((K, B)), np.empty((K, B)))  # running alpha, swapped
    scale = np.ones((T, B))
    prev = None
    with np.errstate(divide="ignore", invalid="ignore"):
        for t in range(T):
            n = n_active[t]
            a = alpha[t, :, :n] if store else buffers[t % 2][:, :n]  # (K, n)
            emission = np.take(emissionprob, obs[t, :n], axis=1)  # (K, n)
            if t == 0:
                np.multiply(startprob[:, None], emission, out=a)
            else:
                np.matmul(transmat_t, prev[:, :n], out=a)
                a *= emission
            c = np.matmul(ones, a, out=scale[t, :n])  # (n,) column sums
            a /= c
            prev = a
            if into is not None:
                into(t, a)
    return alpha, scale


def log_likelihoods(scale: np.ndarray) -> np.ndarray:
    """log P(sequence) of each sequence, (B,), from the forward scales (T, B)."""
    with np.errstate(divide="ignore", invalid="ignore"):
        out = np.log(scale).sum(0)
    out[(scale == 0).any(0)] = -np.inf  # an impossible observation (its later scales are NaN)
    return out


@dataclass
class Counts:
    """Baum–Welch expected sufficient statistics, summed over the batch."""

    start: np.ndarray  # (K,) expected first states
    trans: np.ndarray  # (K, K) expected transitions i -> j
    emit: np.ndarray  # (K, M) expected emissions of symbol m from state k


def backward(transmat: np.ndarray, emissionprob: np.ndarray, batch: Batch, alpha: np.ndarray,
             scale: np.ndarray, transitions: bool) -> np.ndarray | None:
    """Scaled backward pass. Overwrites `alpha` (T, K, B) with the state posteriors gamma, and
    returns the expected transition counts summed over time and batch, (K, K), if `transitions`.

    With alpha_hat and beta_hat scaled by the same c_t, gamma_t = alpha_hat_t * beta_hat_t and
    xi_t(i, j) = alpha_hat_t(i) A_ij w_{t+1}(j) with w_{t+1} = e(o_{t+1}) * beta_hat_{t+1} / c_{t+1}
    (Rabiner eq. 37, 38); beta_hat_t = A w_{t+1}.
    """
    K = transmat.shape[0]
    trans = np.zeros((K, K))  # sum over t and b of alpha_t(i, b) w_{t+1}(j, b)
    xi_sum = np.empty((K, K))  # one step's sum over b
    for t, n, n_next, w_t, beta in _beta_steps(transmat, emissionprob, batch, scale):
        if transitions:
            trans += np.matmul(alpha[t, :, :n_next], w_t.T, out=xi_sum)  # (K, K)
        alpha[t, :, :n] *= beta[:, :n]  # now gamma_t
    return trans * transmat if transitions else None


def expected_counts(gamma: np.ndarray, trans: np.ndarray, batch: Batch, n_symbols: int) -> Counts:
    """Counts from the posteriors gamma (T, K, B) and the expected transitions (K, K)."""
    T, K, B = gamma.shape
    emit = np.zeros(K * n_symbols)  # (K * M,) flat index k * M + m
    offsets = n_symbols * np.arange(K)[None, :, None]  # (1, K, 1)
    # One bincount per block of steps: the flat index is as large as gamma, so make it in pieces.
    # Padded positions have gamma = 0 (and symbol 0), so they add nothing.
    steps = max(1, _COUNTS_BLOCK // (K * B))
    for start in range(0, T, steps):
        index = batch.obs[start:start + steps, None, :] + offsets  # (steps, K, B)
        emit += np.bincount(index.ravel(), weights=gamma[start:start + steps].ravel(),
                            minlength=K * n_symbols)
    return Counts(start=gamma[0].sum(1), trans=trans, emit=emit.reshape(K, n_symbols))


def posteriors(startprob: np.ndarray, transmat: np.ndarray, emissionprob: np.ndarray, batch: Batch
               ) -> list[np.ndarray]:
    """State posteriors gamma of each sequence, a list of (T_b, K) arrays in the caller's order.

    The result is one large array, returned as per-sequence views (C-contiguous, not
    overlapping), into which alpha and then gamma are written straight, step by step: a padded
    (B, T, K) array, of which a step is a strided (B, K) view, when the padding adds at most a
    quarter (as with equal lengths), else a (sum of T_b, K) array, the sequences one after the
    other, with a row gather and scatter per step. So there is no (T, K, B) temporary: that would
    be fresh memory (over glibc's mmap threshold), faulted in page by page on every call, and
    copying each sequence's column out of it reads one float64 per cache line. One large result
    also faults in faster than B separate arrays (numpy asks the kernel for huge pages for it).
    The backward recursion is `backward`'s, without the transition counts.
    """
    T, B = batch.obs.shape
    K = transmat.shape[0]
    total = int(batch.lengths.sum())
    # Strided when the padding would add at most a quarter to the memory the caller keeps.
    in_place = 4 * T * B <= 5 * total
    if in_place:  # (B, T, K), sorted columns, padded: step t of all sequences is a strided view
        result = np.empty((B, T, K))
        by_step = result.transpose(1, 0, 2)  # (T, B, K), rows T K apart
        out = [np.empty(0)] * B
        for column, (index, length) in enumerate(zip(batch.order.tolist(), batch.lengths.tolist())):
            out[index] = result[column, :length]

        def load(t: int, n: int) -> np.ndarray:  # step t of the first n sorted columns, (n, K)
            return by_step[t, :n]

        def save(t: int, values: np.ndarray) -> None:  # values (n, K), e.g. a transposed (K, n)
            by_step[t, : len(values)] = values
    else:  # (sum of T_b, K), the sequences one after the other: a row gather and scatter per step
        lengths = np.empty(B, dtype=np.int64)
        lengths[batch.order] = batch.lengths
        ends = np.cumsum(lengths)  # (B,) in the caller's order
        result = np.empty((total, K))
        out = [result[end - length: end] for end, length in zip(ends.tolist(), lengths.tolist())]
        first = (ends - lengths)[batch.order]  # (B,) row of each sorted column's first step
        rows = np.empty(B, dtype=np.int64)  # a step's rows of `result`, for the gather
        buffer = np.empty((B, K))  # a step's gathered rows

        def load(t: int, n: int) -> np.ndarray:
            return np.take(result, np.add(first[:n], t, out=rows[:n]), axis=0, out=buffer[:n],
                           mode="clip")  # clip: unbuffered out

        def save(t: int, values: np.ndarray) -> None:
            result[first[: len(values)] + t] = values

    _, scale = forward(startprob, transmat, emissionprob, batch, store=False,
                       into=lambda t, a: save(t, a.T))
    # Backward pass (see `backward`): gamma_t = alpha_t * beta_t. A sequence whose last step is t
    # has beta_t = 1 and gamma_t = alpha_t, already in place, so only the first n_active[t + 1]
    # columns change at step t.
    for t, _, n_next, _, beta in _beta_steps(transmat, emissionprob, batch, scale):
        gamma = load(t, n_next)  # (n', K) alpha_t
        gamma *= beta[:, :n_next].T
        if not in_place:
            save(t, gamma)
    return out


def _beta_steps(transmat: np.ndarray, emissionprob: np.ndarray, batch: Batch, scale: np.ndarray):
    """The scaled backward recursion, step by step from t = T-2 down to 0: yields
    (t, n, n', w_t, beta_t) with n = n_active[t], n' = n_active[t + 1], w_t (K, n') =
    e(o_{t+1}) * beta_{t+1} / c_{t+1} and beta_t (K, B), valid in its first n columns. Both arrays
    are reused: read them before the next step."""
    obs, n_active = batch.obs, batch.n_active
    T, B = scale.shape
    K = transmat.shape[0]
    betas = (np.ones((K, B)), np.ones((K, B)))  # beta_{t+1} and beta_t, swapped; beta_{T-1} = 1
    w = np.empty((K, B))
    with np.errstate(divide="ignore", invalid="ignore"):  # see `forward` on impossible sequences
        for t in range(T - 2, -1, -1):
            n, n_next = n_active[t], n_active[t + 1]
            beta_next, beta = betas[(t + 1) % 2], betas[t % 2]
            w_t = w[:, :n_next]  # (K, n')
            np.multiply(np.take(emissionprob, obs[t + 1, :n_next], axis=1), beta_next[:, :n_next],
                        out=w_t)
            w_t /= scale[t + 1, :n_next]
            np.matmul(transmat, w_t, out=beta[:, :n_next])
            if n > n_next:  # sequences whose last step is t start with beta = 1
                beta[:, n_next:n] = 1.0
            yield t, n, n_next, w_t, beta


def viterbi(log_startprob: np.ndarray | torch.Tensor, log_transmat: np.ndarray | torch.Tensor,
            log_emission_t: np.ndarray | torch.Tensor, batch: Batch
            ) -> tuple[torch.Tensor, torch.Tensor]:
    """Log-space Viterbi; `log_emission_t` is the log emission matrix transposed, (M, K). Returns
    the best paths (T, B) (padded with 0) and their log-probs (B,).

    Runs blocks of sequences one after the other in one reused buffer of deltas: at most
    `_VITERBI_BLOCK // K^2` sequences, so that a step's (K, block, K) max-plus scores stay in
    cache, and at most `_VITERBI_WORKSPACE // (T K)`, so that the buffer is heap memory, reused
    from call to call (one sequence at least, whatever its length). Sequences are sorted longest
    first, so every block is dense.
    """
    log_startprob, log_transmat = np.asarray(log_startprob), np.ascontiguousarray(log_transmat)
    log_emission_t = np.ascontiguousarray(log_emission_t)  # (M, K): a step's emissions are a row gather
    T, B = batch.obs.shape
    K = log_transmat.shape[0]
    path = np.zeros((T, B), dtype=np.int64)
    log_prob = np.empty(B)
    width = max(1, min(_VITERBI_BLOCK // (K * K), _VITERBI_WORKSPACE // (T * K)))
    width = -(-B // -(-B // width))  # as many blocks, of equal widths: each block costs T steps
    # One buffer for the deltas of every block: fresh memory is slow to touch the first time.
    workspace = np.empty(T * min(width, B) * K)
    for start in range(0, B, width):
        stop = min(start + width, B)
        block = _columns(batch, start, stop)
        steps = block.obs.shape[0]  # the block's longest sequence
        delta = workspace[: steps * (stop - start) * K].reshape(steps, stop - start, K)
        _viterbi_deltas(log_startprob, log_transmat, log_emission_t, block, out=delta)
        path[:steps, start:stop], log_prob[start:stop] = _backtrack(log_transmat, delta, block)
    return torch.from_numpy(path), torch.from_numpy(log_prob)


def _viterbi_deltas(log_startprob: np.ndarray, log_transmat: np.ndarray, log_emission_t: np.ndarray,
                    batch: Batch, out: np.ndarray) -> None:
    """The Viterbi recursion delta_t(j) = max_i delta_{t-1}(i) + log A_ij + log e_j(o_t), written
    into `out`, (T, B, K), C-contiguous.

    Stores the deltas rather than back-pointers: backtracking recomputes one argmax per step for
    the chosen state only, which costs O(K) per sequence instead of an argmax over K x K. Unlike
    the forward–backward passes, the deltas are batch-major (B, K) per step: a step's log
    emissions are then one row gather, and the backtrack's argmax runs along contiguous rows.
    """
    obs, n_active = batch.obs, batch.n_active
    T, B = obs.shape
    K = log_transmat.shape[0]
    # delta starts as the log emissions of every step, one gather; each step then adds its maxima.
    delta = np.take(log_emission_t, obs, axis=0, out=out, mode="clip")  # (T, B, K); clip: unbuffered
    delta[0] += log_startprob
    # torch views of the same memory, made once: a torch view costs about a microsecond.
    delta_ = torch.from_numpy(delta)
    previous = delta_.permute(0, 2, 1).unsqueeze(3)  # (T, K_from, B, 1): delta_{t-1}, broadcast over K_to
    log_transmat_ = torch.from_numpy(log_transmat)[:, None, :]  # (K_from, 1, K_to)
    scores = torch.empty(K, B, K, dtype=torch.float64)  # (K_from, B, K_to), reused each step
    maxima_ = torch.empty(B, K, dtype=torch.float64)
    maxima = maxima_.numpy()  # the same memory: numpy's in-place add costs a third of torch's
    for t in range(1, T):
        n = n_active[t]
        # (K_from, n, 1) + (K_from, 1, K_to), then a max over the outer axis, i.e. K elementwise
        # maxima of contiguous (n, K_to) blocks. Slicing costs microseconds in torch: only if n < B.
        if n == B:
            torch.add(previous[t - 1], log_transmat_, out=scores)
            torch.amax(scores, 0, out=maxima_)
        else:
            torch.add(previous[t - 1, :, :n], log_transmat_, out=scores[:, :n])
            torch.amax(scores[:, :n], 0, out=maxima_[:n])
        delta[t, :n] += maxima[:n]


def _backtrack(log_transmat: np.ndarray, delta: np.ndarray, batch: Batch
               ) -> tuple[np.ndarray, np.ndarray]:
    T, B, K = delta.shape
    columns = np.arange(B)
    last = batch.lengths - 1  # (B,)
    final_delta = delta[last, columns]  # (B, K)
    final = final_delta.argmax(1)  # (B,) each sequence starts backtracking from its best final state
    log_prob = final_delta[columns, final]  # (B,)
    path = np.zeros((T, B), dtype=np.int64)
    path[last, columns] = final
    log_transmat_t = np.ascontiguousarray(log_transmat.T)  # (K_to, K_from): a row gather per step
    candidates = np.empty((B, K))  # (B, K_from), reused each step
    take, add, argmax, n_active = np.take, np.add, np.argmax, batch.n_active  # bound once: a step is ~10 us
    for t in range(T - 1, 0, -1):
        n = n_active[t]
        # The best predecessor of each sequence's state s_t: argmax_i delta_{t-1}(i) + log A_{i, s_t}.
        # Slicing costs a few hundred ns a view: only if n < B.
        if n == B:
            step = take(log_transmat_t, path[t], axis=0, out=candidates, mode="clip")  # (B, K_from)
            add(step, delta[t - 1], out=step)
            argmax(step, axis=1, out=path[t - 1])
        else:
            step = take(log_transmat_t, path[t, :n], axis=0, out=candidates[:n], mode="clip")  # clip: unbuffered out
            add(step, delta[t - 1, :n], out=step)
            argmax(step, axis=1, out=path[t - 1, :n])
    return path, log_prob
