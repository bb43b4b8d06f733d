"""Compiled kernels of GloVe (Pennington, Socher & Manning 2014): the co-occurrence counts with
1/distance weighting and the AdaGrad steps of the weighted least-squares objective, as loops
compiled by numba.

The arithmetic follows the reference C tool (stanfordnlp/GloVe `cooccur.c`, `glove.c`): a word
and each of the `window` words before it in the same sentence add 1/d to both X[i, j] and
X[j, i] (d their distance); one AdaGrad step per nonzero entry X_ij, in a random order each epoch,
on J = 1/2 f(X_ij) (w_i . w~_j + b_i + b~_j - log X_ij)^2 with f(x) = min(1, (x / x_max)^alpha),
the squared gradients accumulated from 1. Parity reference: torch autograd on `glove_loss`
(tests); quality against word2vec in `benchmarks/bench_word2vec.py`.

Dimensions: V vocabulary · D vector size · E nonzero co-occurrence entries.

Threads: each epoch's shuffled entries are cut into one slice per thread, run by Python threads
on `adagrad_steps`, which releases the GIL and writes the shared parameters without locks
(Hogwild, as glove.c's pthreads do).
"""

from __future__ import annotations

import numba
import numpy as np

_jit = numba.njit(nogil=True, cache=True, fastmath=True, error_model="numpy")


@_jit
def pair_count(bounds: np.ndarray, window: int) -> int:
    """How many (word, earlier word) pairs the sentences ids[bounds[s]:bounds[s + 1]] hold."""
    total = 0
    for s in range(bounds.shape[0] - 1):
        n = bounds[s + 1] - bounds[s]
        for i in range(n):
            total += min(i, window)
    return total


@_jit
def emit_pairs(ids: np.ndarray, bounds: np.ndarray, window: int, vocab_size: int) -> tuple[np.ndarray, np.ndarray]:
    """Every (word, earlier word within `window`) pair of each sentence, both ways round, as keys
    i * V + j (2P,) int64 and weights 1 / distance (2P,) float64."""
    P = pair_count(bounds, window)
    keys = np.empty(2 * P, dtype=np.int64)
    weights = np.empty(2 * P, dtype=np.float64)
    e = 0
    for s in range(bounds.shape[0] - 1):
        lo, hi = bounds[s], bounds[s + 1]
        for p in range(lo, hi):
            for q in range(max(lo, p - window), p):
                a, b = np.int64(ids[p]), np.int64(ids[q])
                w = 1.0 / (p - q)
                keys[e], weights[e] = a * vocab_size + b, w
                keys[e + 1], weights[e + 1] = b * vocab_size + a, w
                e += 2
    return keys, weights


def reduce_pairs(keys: np.ndarray, weights: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Equal keys summed: (sorted distinct keys, their summed weights)."""
    order = np.argsort(keys, kind="stable")
    keys, weights = keys[order], weights[order]
    starts = np.flatnonzero(np.concatenate([[True], keys[1:] != keys[:-1]])) if len(keys) else np.zeros(0, np.int64)
    return keys[starts], np.add.reduceat(weights, starts) if len(keys) else weights


@_jit
def adagrad_steps(W: np.ndarray, Wc: np.ndarray, b: np.ndarray, bc: np.ndarray, gW: np.ndarray, gWc: np.ndarray,
                  gb: np.ndarray, gbc: np.ndarray, rows: np.ndarray, cols: np.ndarray, x: np.ndarray,
                  order: np.ndarray, x_max: float, alpha: float, eta: float) -> float:
    """One AdaGrad step per entry order[e] of the co-occurrences (rows, cols, x), as glove.c takes
    them; returns the summed cost 1/2 f(x) diff^2 before each step."""
    D = W.shape[1]
    cost = 0.0
    for e in range(order.shape[0]):
        n = order[e]
        i, j, xij = rows[n], cols[n], x[n]
        diff = np.float32(0.0)
        for k in range(D):
            diff += W[i, k] * Wc[j, k]
        diff += b[i] + bc[j] - np.float32(np.log(xij))
        weight = np.float32(1.0) if xij >= x_max else np.float32((xij / x_max) ** alpha)
        fdiff = weight * diff
        cost += 0.5 * fdiff * diff
        fdiff *= np.float32(eta)
        for k in range(D):
            t1 = fdiff * Wc[j, k]  # the gradient of w_i (times eta)
            t2 = fdiff * W[i, k]   # ... and of w~_j
            W[i, k] -= t1 / np.sqrt(gW[i, k])
            Wc[j, k] -= t2 / np.sqrt(gWc[j, k])
            gW[i, k] += t1 * t1
            gWc[j, k] += t2 * t2
        b[i] -= fdiff / np.sqrt(gb[i])
        bc[j] -= fdiff / np.sqrt(gbc[j])
        gb[i] += fdiff * fdiff
        gbc[j] += fdiff * fdiff
    return cost
