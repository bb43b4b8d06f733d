"""Compiled kernels of a discrete-emission hidden Markov model: the batched numerics of
`seqlab.models.hmm_numerics` (the readable reference path, whose docstrings explain the
algorithm) as loops compiled by numba, with no Python call per time step.

Rabiner (1989), "A Tutorial on Hidden Markov Models and Selected Applications in Speech
Recognition", sections III.A (scaled forward–backward, eq. 91–93), III.B (Viterbi) and III.C
(Baum–Welch). Parity references: `hmm_numerics` (tests: fast path == reference path) and
`hmmlearn.hmm.CategoricalHMM`.

Dimensions: B batch · N symbols in all (the sum of the lengths) · T time (a block's longest) ·
K states · M alphabet · L lanes (the sequences of one block).

Layout: sequences are sorted by length, longest first, and cut into blocks of at most `_LANES`
sequences; a block runs as the reference runs its whole batch: per-step quantities are
state-major (K, L) blocks, stacked time-major as (T, K, L), and the sequences still running at
step t are the first n_t lanes. So every inner loop runs over contiguous lanes, long enough to
vectorise whatever K: one sequence at a time, a loop over K = 8 states is too short for a vector
loop, and a sum kept in memory across the rows of a K x K product waits on a store each row. The
products take eight rows at a time, to read and write their output once per eight rows. (Measured
on one core of a 2-core AVX-512 machine, K = 32: forward passes of 10^6 symbols took about 0.19 s
one sequence at a time, against 0.10 to 0.15 s in blocks; at K = 8, 0.05 s against 0.02 s.)

Numerics: float64, scaled per step as the reference (stable on 10^6-symbol sequences). The fast
math flags allow fused multiply-adds, reciprocal division and reassociation; not `nnan`/`ninf`:
Viterbi works with log 0 = -inf, and an impossible observation gives a zero scale and NaN, as in
the reference. Viterbi's deltas come from the reference's additions, and max is exact, so its
paths and log-probabilities are the reference's bit for bit.

Threads: blocks are fixed by the lengths alone (so the results do not depend on the thread
count), and `torch.get_num_threads()` threads take blocks in turn, which also adapts to a core
that another process is using. The kernels release the GIL (`nogil`) and the threads are Python
threads: not numba's `parallel=True`, whose only threading layer here is GNU OpenMP (TBB is not
installed), which terminates a forked child that runs a parallel kernel after its parent did.

The first call of each kernel compiles it (seconds); `cache=True` keeps the machine code beside
this file (`__pycache__`), from which later processes load it.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numba
import numpy as np
import torch

_LANES = 64  # sequences per block at most: 8 AVX-512 vectors of float64 per row of a (K, L) step
# Lanes x steps per block at most, so that a block's (T, K, L) float64 arrays take at most 2^19 K
# bytes (16 MiB for K = 32): fewer lanes for long sequences, one for a sequence over 2^16 symbols.
_BLOCK_STEPS = 1 << 16
# Fast math without `nnan`/`ninf` (-inf log-probabilities, NaN after an impossible observation)
# and without `afn` (log must stay accurate: log-likelihoods are compared to 1e-8).
_FASTMATH = {"nsz", "arcp", "contract", "reassoc"}
# error_model "numpy": 0 / 0 gives NaN (an impossible observation), as in numpy, rather than raising.
_jit = numba.njit(nogil=True, cache=True, fastmath=_FASTMATH, error_model="numpy")


@dataclass(frozen=True)
class Flat:
    """Sequences one after the other, and their blocks (runs of sequences, longest first)."""

    obs: np.ndarray  # (N,) int64
    starts: np.ndarray  # (B + 1,) int64: sequence b is obs[starts[b]:starts[b + 1]]
    order: np.ndarray  # (B,) int64: the sequences by length, longest first (stable)
    blocks: list[int]  # (P + 1,): block p is the sorted sequences blocks[p] to blocks[p + 1]


def flatten(sequences: list[np.ndarray]) -> Flat:
    """Concatenate non-empty int64 sequences and cut them, longest first, into blocks of at most
    `_LANES` sequences and `_BLOCK_STEPS` lanes x steps."""
    lengths = np.array([len(s) for s in sequences], dtype=np.int64)
    starts = np.zeros(len(sequences) + 1, dtype=np.int64)
    np.cumsum(lengths, out=starts[1:])
    obs = np.concatenate(sequences) if len(sequences) > 1 else sequences[0]
    order = np.argsort(-lengths, kind="stable").astype(np.int64)
    longest = lengths[order].tolist()
    blocks = [0]
    while blocks[-1] < len(sequences):  # a block's first sequence is its longest
        width = max(1, min(_LANES, _BLOCK_STEPS // longest[blocks[-1]]))
        blocks.append(min(len(sequences), blocks[-1] + width))
    return Flat(np.ascontiguousarray(obs, dtype=np.int64), starts, order, blocks)


def _run_blocks(kernel, flat: Flat, *args) -> None:
    """Call kernel(p, lo, hi, *args) for every block p (sorted sequences lo to hi), on as many
    threads as torch uses (seqlab's thread policy sets it: `seqlab.training.threads`), taking
    blocks in turn."""
    calls = list(zip(range(len(flat.blocks) - 1), flat.blocks[:-1], flat.blocks[1:]))
    n_threads = max(1, min(torch.get_num_threads(), len(calls)))
    if n_threads == 1:
        for p, lo, hi in calls:
            kernel(p, lo, hi, *args)
        return
    with ThreadPoolExecutor(n_threads) as pool:  # a few hundred microseconds: not worth keeping
        for future in [pool.submit(kernel, p, lo, hi, *args) for p, lo, hi in calls]:
            future.result()  # re-raises a kernel's exception


# --------------------------------------------------------------------- public entry points


def log_likelihoods(startprob: np.ndarray, transmat: np.ndarray, emissionprob: np.ndarray,
                    flat: Flat) -> np.ndarray:
    """log P(sequence) of each sequence, (B,); -inf for an impossible one."""
    out = np.empty(len(flat.order))
    _run_blocks(_score_block, flat, startprob, transmat, emissionprob, flat.obs, flat.starts,
                flat.order, out)
    return out


def posteriors(startprob: np.ndarray, transmat: np.ndarray, emissionprob: np.ndarray, flat: Flat
               ) -> list[np.ndarray]:
    """State posteriors gamma of each sequence, a list of (T_b, K) views of one (N, K) array."""
    gamma = _fresh_array((len(flat.obs), transmat.shape[0]))  # (N, K)
    _run_blocks(_posteriors_block, flat, startprob, transmat, np.ascontiguousarray(transmat.T),
                emissionprob, flat.obs, flat.starts, flat.order, gamma)
    return _split(gamma, flat)


def viterbi(startprob: np.ndarray, transmat: np.ndarray, emissionprob: np.ndarray, flat: Flat
            ) -> tuple[list[np.ndarray], np.ndarray]:
    """Most probable state path of each sequence (a list of (T_b,) int64 views of one array) and
    its joint log-probability, (B,)."""
    with np.errstate(divide="ignore"):  # log 0 = -inf marks forbidden moves
        log_start, log_trans, log_emission = (np.log(p) for p in (startprob, transmat, emissionprob))
    return log_viterbi(log_start, log_trans, log_emission, flat)


def log_viterbi(log_start: np.ndarray, log_trans: np.ndarray, log_emission: np.ndarray, flat: Flat
                ) -> tuple[list[np.ndarray], np.ndarray]:
    """`viterbi` from log-probabilities (K,), (K, K), (K, M): also for scores that are not
    normalised distributions, such as a tagger's unknown-word emissions."""
    log_emission = np.ascontiguousarray(log_emission)
    path = np.empty(len(flat.obs), dtype=np.int64)  # (N,)
    log_prob = np.empty(len(flat.order))  # (B,)
    _run_blocks(_viterbi_block, flat, log_start, log_trans, np.ascontiguousarray(log_trans.T),
                log_emission, flat.obs, flat.starts, flat.order, path, log_prob)
    return _split(path, flat), log_prob


def expected_counts(startprob: np.ndarray, transmat: np.ndarray, emissionprob: np.ndarray, flat: Flat
                    ) -> tuple[np.ndarray, np.ndarray, np.ndarray, float]:
    """Baum–Welch E-step: expected first states (K,), transitions (K, K) and emissions (K, M),
    summed over the batch, and the total log-likelihood."""
    (K, M), P = emissionprob.shape, len(flat.blocks) - 1
    start, trans = np.zeros((P, K)), np.zeros((P, K, K))  # per block, summed in a fixed order below
    emit, log_likelihood = np.zeros((P, K, M)), np.zeros(P)
    _run_blocks(_counts_block, flat, startprob, transmat, np.ascontiguousarray(transmat.T), emissionprob,
                flat.obs, flat.starts, flat.order, start, trans, emit, log_likelihood)
    return start.sum(0), trans.sum(0) * transmat, emit.sum(0), float(log_likelihood.sum())


def _fresh_array(shape: tuple[int, ...]) -> np.ndarray:
    """An uninitialised float64 array in ordinary 4 KiB pages. numpy asks the kernel for huge pages
    for large arrays; where the kernel must first compact memory to find them (after another
    program's large allocations), first touching a 256 MB result took 0.7 s, against 0.12 s in
    ordinary pages (and 0.03 s in huge pages already free). torch's allocator asks for none."""
    return torch.empty(shape, dtype=torch.float64).numpy()


def _split(values: np.ndarray, flat: Flat) -> list[np.ndarray]:
    return [values[s:e] for s, e in zip(flat.starts[:-1].tolist(), flat.starts[1:].tolist())]


# --------------------------------------------------------------------- a block's recursions


@_jit
def _load_block(obs, starts, order, lo, hi):
    """Lanes l = 0 .. hi - lo - 1 are the sorted sequences lo to hi: their first symbols' offsets
    (L,), lengths (L,, non-increasing) and symbols time-major (T, L), 0 past each end."""
    L = hi - lo
    first, lengths = np.empty(L, np.int64), np.empty(L, np.int64)
    for l in range(L):
        b = order[lo + l]
        first[l], lengths[l] = starts[b], starts[b + 1] - starts[b]
    symbols = np.zeros((lengths[0], L), np.int64)  # (T, L)
    for l in range(L):
        for t in range(lengths[l]):
            symbols[t, l] = obs[first[l] + t]
    return first, lengths, symbols


@_jit
def _running(lengths, t):
    """n_t: how many lanes (longest first) have a step t."""
    n = lengths.shape[0]
    while n > 0 and lengths[n - 1] <= t:
        n -= 1
    return n


@_jit
def _matmul(matrix, x, out, n):
    """out[j, :n] = sum_i matrix[i, j] x[i, :n], for (K, K) matrix and (K, L) x and out; eight
    rows of x per pass over out."""
    K = matrix.shape[0]
    for j in range(K):
        for l in range(n):
            out[j, l] = 0.0
    i = 0
    while i + 8 <= K:
        x0, x1, x2, x3 = x[i], x[i + 1], x[i + 2], x[i + 3]
        x4, x5, x6, x7 = x[i + 4], x[i + 5], x[i + 6], x[i + 7]
        for j in range(K):
            m0, m1, m2, m3 = matrix[i, j], matrix[i + 1, j], matrix[i + 2, j], matrix[i + 3, j]
            m4, m5, m6, m7 = matrix[i + 4, j], matrix[i + 5, j], matrix[i + 6, j], matrix[i + 7, j]
            o = out[j]
            for l in range(n):
                o[l] += ((m0 * x0[l] + m1 * x1[l]) + (m2 * x2[l] + m3 * x3[l])) + (
                    (m4 * x4[l] + m5 * x5[l]) + (m6 * x6[l] + m7 * x7[l]))
        i += 8
    for rest in range(i, K):  # the last K mod 8 rows, one at a time
        x_rest = x[rest]
        for j in range(K):
            m, o = matrix[rest, j], out[j]
            for l in range(n):
                o[l] += m * x_rest[l]


@_jit
def _max_plus(matrix, previous, out, n):
    """out[j, :n] = max_i previous[i, :n] + matrix[i, j], eight rows at a time (max is exact,
    so the order does not change the result)."""
    K = matrix.shape[0]
    for j in range(K):
        for l in range(n):
            out[j, l] = -np.inf
    i = 0
    while i + 8 <= K:
        x0, x1, x2, x3 = previous[i], previous[i + 1], previous[i + 2], previous[i + 3]
        x4, x5, x6, x7 = previous[i + 4], previous[i + 5], previous[i + 6], previous[i + 7]
        for j in range(K):
            m0, m1, m2, m3 = matrix[i, j], matrix[i + 1, j], matrix[i + 2, j], matrix[i + 3, j]
            m4, m5, m6, m7 = matrix[i + 4, j], matrix[i + 5, j], matrix[i + 6, j], matrix[i + 7, j]
            o = out[j]
            for l in range(n):
                v = max(max(max(x0[l] + m0, x1[l] + m1), max(x2[l] + m2, x3[l] + m3)),
                        max(max(x4[l] + m4, x5[l] + m5), max(x6[l] + m6, x7[l] + m7)))
                o[l] = max(o[l], v)
        i += 8
    for rest in range(i, K):  # the last K mod 8 rows, one at a time
        x_rest = previous[rest]
        for j in range(K):
            m, o = matrix[rest, j], out[j]
            for l in range(n):
                o[l] = max(o[l], x_rest[l] + m)


@_jit
def _forward_block(startprob, transmat, emissionprob, symbols, lengths, alpha, scale, log_likelihood,
                   first, out):
    """Scaled forward pass of a block (Rabiner eq. 91–92): alpha (T, K, L), columns summing to 1,
    or (2, K, L) to keep only the last two steps (rows alternate); scale (T, L) the column sums
    c_t; log_likelihood (L,) = sum_t log c_t, -inf if some c_t = 0. Each step's alpha is also
    written to out (N, K), row first[l] + t for lane l, unless out has no rows."""
    T, L = symbols.shape
    K = transmat.shape[0]
    keep_all = alpha.shape[0] == T
    c = np.empty(L)
    log_likelihood[:] = 0.0
    for t in range(T):
        n = _running(lengths, t)
        a = alpha[t if keep_all else t & 1]  # (K, L)
        if t == 0:
            for j in range(K):
                for l in range(n):
                    a[j, l] = startprob[j]
        else:
            _matmul(transmat, alpha[t - 1 if keep_all else (t - 1) & 1], a, n)  # A^T alpha_{t-1}
        for l in range(n):
            c[l] = 0.0
        for j in range(K):
            e = emissionprob[j]
            for l in range(n):
                a[j, l] *= e[symbols[t, l]]
                c[l] += a[j, l]
        for l in range(n):
            scale[t, l] = c[l]
            log_likelihood[l] += np.log(c[l]) if c[l] > 0.0 else -np.inf
            c[l] = 1.0 / c[l]  # 1 / 0 = inf, and 0 * inf = NaN past an impossible observation
        for j in range(K):
            for l in range(n):
                a[j, l] *= c[l]
        if out.shape[0] > 0:
            for l in range(n):
                row = out[first[l] + t]
                for k in range(K):
                    row[k] = a[k, l]


@_jit
def _backward_step(transmat_t, emissionprob, symbols, scale, lengths, t, beta_next, w, beta):
    """w = e(o_{t+1}) * beta_{t+1} / c_{t+1} and beta_t = A w (Rabiner eq. 93) for the lanes with a
    step t + 1; beta_t = 1 for those whose last step is t. Returns n_{t+1}."""
    K = transmat_t.shape[0]
    n, n_next = _running(lengths, t), _running(lengths, t + 1)
    for j in range(K):
        e = emissionprob[j]
        for l in range(n_next):
            w[j, l] = e[symbols[t + 1, l]] * beta_next[j, l] / scale[t + 1, l]
    _matmul(transmat_t, w, beta, n_next)  # beta_t(i) = sum_j A_ij w(j)
    for i in range(K):
        for l in range(n_next, n):
            beta[i, l] = 1.0
    return n_next


@_jit
def _score_block(p, lo, hi, startprob, transmat, emissionprob, obs, starts, order, out):
    """log P(sequence) of the block's sequences into out (B,); alpha kept for two steps only."""
    first, lengths, symbols = _load_block(obs, starts, order, lo, hi)
    T, L = symbols.shape
    K = transmat.shape[0]
    log_likelihood = np.empty(L)
    _forward_block(startprob, transmat, emissionprob, symbols, lengths, np.empty((2, K, L)),
                   np.empty((T, L)), log_likelihood, first, np.empty((0, K)))
    for l in range(L):
        out[order[lo + l]] = log_likelihood[l]


@_jit
def _posteriors_block(p, lo, hi, startprob, transmat, transmat_t, emissionprob, obs, starts, order,
                      gamma):
    """gamma_t = alpha_t * beta_t in each sequence's rows of gamma (N, K): the forward pass writes
    alpha there, and the backward pass multiplies it by beta (the last step keeps beta = 1), so
    the block needs no (T, K, L) alpha of its own: fresh memory is slow to touch the first time."""
    first, lengths, symbols = _load_block(obs, starts, order, lo, hi)
    T, L = symbols.shape
    K = transmat.shape[0]
    scale = np.empty((T, L))
    _forward_block(startprob, transmat, emissionprob, symbols, lengths, np.empty((2, K, L)), scale,
                   np.empty(L), first, gamma)
    betas, w = np.ones((2, K, L)), np.empty((K, L))  # beta_{t+1} and beta_t, alternating
    for t in range(T - 2, -1, -1):
        beta = betas[t & 1]
        n_next = _backward_step(transmat_t, emissionprob, symbols, scale, lengths, t,
                                 betas[(t + 1) & 1], w, beta)
        for l in range(n_next):
            row = gamma[first[l] + t]
            for k in range(K):
                row[k] *= beta[k, l]


@_jit
def _counts_block(p, lo, hi, startprob, transmat, transmat_t, emissionprob, obs, starts, order,
                  start, trans, emit, log_likelihood):
    """Expected counts of block p into start[p], trans[p] (before the final product with A,
    Rabiner eq. 37: the sum over t of alpha_t(i) w_{t+1}(j)), emit[p] and log_likelihood[p]."""
    first, lengths, symbols = _load_block(obs, starts, order, lo, hi)
    T, L = symbols.shape
    K = transmat.shape[0]
    alpha, scale, lane_ll = np.empty((T, K, L)), np.empty((T, L)), np.empty(L)
    _forward_block(startprob, transmat, emissionprob, symbols, lengths, alpha, scale, lane_ll, first,
                   np.empty((0, K)))
    log_likelihood[p] = lane_ll.sum()
    xi, em = trans[p], emit[p]
    betas, w = np.ones((2, K, L)), np.empty((K, L))
    for l in range(L):  # the last step: gamma = alpha
        for k in range(K):
            em[k, symbols[lengths[l] - 1, l]] += alpha[lengths[l] - 1, k, l]
    for t in range(T - 2, -1, -1):
        beta = betas[t & 1]
        n_next = _backward_step(transmat_t, emissionprob, symbols, scale, lengths, t,
                                 betas[(t + 1) & 1], w, beta)
        for i in range(K):
            a = alpha[t, i]
            for j in range(K):
                wj, total = w[j], 0.0
                for l in range(n_next):
                    total += a[l] * wj[l]
                xi[i, j] += total
            b, e = beta[i], em[i]
            for l in range(n_next):  # gamma_t, for the lanes whose last step is later
                e[symbols[t, l]] += a[l] * b[l]
    for k in range(K):
        for l in range(L):
            start[p, k] += alpha[0, k, l] * betas[0, k, l]  # beta_0 = 1 for a length-1 lane


@_jit
def _viterbi_block(p, lo, hi, log_start, log_trans, log_trans_t, log_emission, obs, starts, order,
                   path, log_prob):
    """delta_t(j) = max_i delta_{t-1}(i) + log A_ij + log e_j(o_t) (Rabiner eq. 105), stored for the
    block; backtracking then recomputes one argmax over K for each lane's chosen state (the first
    maximum, as numpy's argmax), instead of storing K back-pointers per step."""
    first, lengths, symbols = _load_block(obs, starts, order, lo, hi)
    T, L = symbols.shape
    K = log_trans.shape[0]
    delta = np.empty((T, K, L))
    for j in range(K):
        e = log_emission[j]
        for l in range(L):
            delta[0, j, l] = e[symbols[0, l]] + log_start[j]
    for t in range(1, T):
        n = _running(lengths, t)
        _max_plus(log_trans, delta[t - 1], delta[t], n)
        for j in range(K):
            e, d = log_emission[j], delta[t, j]
            for l in range(n):
                d[l] = e[symbols[t, l]] + d[l]
    state, new, best = np.empty(L, np.int64), np.empty(L, np.int64), np.empty(L)
    for l in range(L):
        last = lengths[l] - 1
        state[l] = 0
        for j in range(1, K):
            if delta[last, j, l] > delta[last, state[l], l]:
                state[l] = j
        log_prob[order[lo + l]] = delta[last, state[l], l]
        path[first[l] + last] = state[l]
    for t in range(T - 1, 0, -1):  # each lane's first best predecessor of its state at t
        n = _running(lengths, t)
        d = delta[t - 1]
        for l in range(n):
            best[l], new[l] = log_trans_t[state[l], 0] + d[0, l], 0
        for i in range(1, K):
            for l in range(n):
                v = log_trans_t[state[l], i] + d[i, l]
                if v > best[l]:
                    best[l], new[l] = v, i
        for l in range(n):
            state[l] = new[l]
            path[first[l] + t - 1] = new[l]

