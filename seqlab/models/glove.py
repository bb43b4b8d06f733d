"""GloVe: word vectors from the global co-occurrence counts (Pennington, Socher & Manning 2014).

Count X_ij, how often word j appears within `window` words of word i (each occurrence weighted by
1 / distance), then fit word vectors w_i, context vectors w~_j and biases b_i, b~_j so that
w_i . w~_j + b_i + b~_j ≈ log X_ij, minimising

    J = Σ_{X_ij > 0} f(X_ij) (w_i . w~_j + b_i + b~_j − log X_ij)^2,   f(x) = min(1, (x / x_max)^alpha)

with AdaGrad (learning rate `eta`), as the reference C tool does. The vectors users query are
W + W~ (`word_vectors`), which the paper found slightly better than W alone.

Deviation, off by default: `sample` > 0 drops frequent words from the text before counting, with
word2vec's subsampling probabilities (Mikolov et al. 2013b), drawn once. Windows then reach past
the dropped words, as word2vec's do; Levy, Goldberg & Dagan (2015), "Improving Distributional
Similarity with Lessons Learned from Word Embeddings", carry such word2vec settings over to
count-based methods. On the Brown Corpus it raises WordSim353 and lowers SimLex-999 and the
analogies (docs/embeddings.md).

Reference: Pennington et al. (2014), "GloVe: Global Vectors for Word Representation", and
stanfordnlp/GloVe (cooccur.c, glove.c). Compiled kernels: `seqlab.models.glove_kernels`.

Dimensions: V vocabulary (the run's tokenizer ids) · D vector size (`d_model`) · E nonzero X_ij.

Ids are the tokenizer's: words under `min_count`, the unknown id and the line breaks are removed
from the text before counting (so they take no window positions, as in cooccur.c) and keep zero
vectors; `counts` says how often each trained id occurs (0 for the others).
"""

from __future__ import annotations

import logging
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor, nn

from seqlab.models import glove_kernels as kernels
from seqlab.models import word2vec_kernels
from seqlab.models.word2vec import CountedVectors

log = logging.getLogger(__name__)

PAIR_CHUNK_WORDS = 1_000_000  # words whose pairs are counted, sorted and summed at a time


@dataclass(frozen=True)
class GloVeSchedule:
    """How a GloVe model is trained (read from the run's settings by the family's builder)."""

    window: int = 10
    min_count: int = 5
    sample: float = 0.0  # subsampling of frequent words before counting (0: off, as glove.c)
    x_max: float = 100.0
    alpha: float = 0.75
    eta: float = 0.05
    epochs: int = 25
    threads: int = 1
    seed: int = 1


class GloVe(CountedVectors):
    """Word vectors `W` (V, D), context vectors `W_context` (V, D), biases `bias` and
    `context_bias` (V,), and the training `counts` (V,); `fit` trains them on a stream of ids."""

    def __init__(self, vocab_size: int, d_model: int) -> None:
        super().__init__(vocab_size)
        self.W = nn.Parameter(torch.zeros(vocab_size, d_model), requires_grad=False)  # (V, D)
        self.W_context = nn.Parameter(torch.zeros(vocab_size, d_model), requires_grad=False)  # (V, D)
        self.bias = nn.Parameter(torch.zeros(vocab_size), requires_grad=False)  # (V,)
        self.context_bias = nn.Parameter(torch.zeros(vocab_size), requires_grad=False)  # (V,)

    def word_vectors(self) -> Tensor:
        """The vectors users query, (V, D): W + W~ (zero for ids outside the vocabulary)."""
        return (self.W + self.W_context).detach()

    def fit(self, ids: np.ndarray, schedule: GloVeSchedule, *, breaks: tuple[int, ...] = (),
            unknown: int | None = None) -> GloVe:
        """Count the co-occurrences of the token ids `ids` (one stream; `breaks` end a sentence,
        `unknown` is never counted) and fit the vectors to them. Returns self."""
        V, D = self.W.shape
        ids = np.ascontiguousarray(ids, dtype=np.int64)
        counts = word2vec_kernels.count_ids(ids, V)
        trainable = np.ones(V, dtype=bool)
        trainable[list(breaks) + ([unknown] if unknown is not None else [])] = False
        counts = np.where(trainable & (counts >= schedule.min_count), counts, 0)
        if not counts.any():
            raise ValueError(f"no word occurs min_count = {schedule.min_count} times in the training text")
        break_mask = np.zeros(V, dtype=np.bool_)
        break_mask[list(breaks)] = True
        words, bounds = word2vec_kernels.drop_and_bound(ids, counts > 0, break_mask, 1 << 30)
        if schedule.sample > 0:
            words, bounds = subsample(words, bounds, counts, schedule.sample, schedule.seed)
        start = time.perf_counter()
        rows, cols, x = cooccurrences(words, bounds, schedule.window, V)
        log.info("glove: %d nonzero co-occurrences of %d words counted in %.2f s", len(x), int((counts > 0).sum()),
                 time.perf_counter() - start)
        params = adagrad_fit(rows, cols, x, V, D, schedule, counts > 0)
        for name, value in zip(("W", "W_context", "bias", "context_bias"), params):
            getattr(self, name).data = torch.from_numpy(value)
        self.counts = torch.from_numpy(counts.astype(np.int64))
        return self


def subsample(words: np.ndarray, bounds: np.ndarray, counts: np.ndarray, sample: float, seed: int
              ) -> tuple[np.ndarray, np.ndarray]:
    """word2vec's subsampling of frequent words, drawn once before counting: each word w of the
    sentences words[bounds[s]:bounds[s + 1]] is kept with word2vec's probability
    (`word2vec_kernels.keep_thresholds`). Returns the kept words (N',) and their sentence bounds."""
    p = word2vec_kernels.keep_thresholds(counts, sample) / 2.0**32  # (V,)
    kept = np.random.default_rng([seed, 1]).random(len(words)) < p[words]  # (N,)
    before = np.concatenate([[0], np.cumsum(kept)])  # kept words before each position
    return words[kept], before[bounds]


def cooccurrences(words: np.ndarray, bounds: np.ndarray, window: int, vocab_size: int
                  ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The nonzero entries of X (rows (E,) int32, cols (E,) int32, values (E,) float64): the pairs
    of sentences of at most about `PAIR_CHUNK_WORDS` words at a time, sorted and summed."""
    keys, values = np.zeros(0, np.int64), np.zeros(0, np.float64)
    s = 0
    while s < len(bounds) - 1:
        e = int(np.searchsorted(bounds, bounds[s] + PAIR_CHUNK_WORDS, side="right")) - 1
        e = max(e, s + 1)
        k, v = kernels.emit_pairs(words, bounds[s:e + 1], window, vocab_size)
        k, v = kernels.reduce_pairs(k, v)
        keys, values = kernels.reduce_pairs(np.concatenate([keys, k]), np.concatenate([values, v]))
        s = e
    return (keys // vocab_size).astype(np.int32), (keys % vocab_size).astype(np.int32), values


def adagrad_fit(rows: np.ndarray, cols: np.ndarray, x: np.ndarray, V: int, D: int, schedule: GloVeSchedule,
                known: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """`schedule.epochs` epochs of AdaGrad over the entries in a fresh random order each, with
    `schedule.threads` threads; returns (W, W~, b, b~), zero outside `known`."""
    rng = np.random.default_rng(schedule.seed)
    W = ((rng.random((V, D), dtype=np.float32) - 0.5) / D).astype(np.float32)  # glove.c's init
    Wc = ((rng.random((V, D), dtype=np.float32) - 0.5) / D).astype(np.float32)
    b = ((rng.random(V, dtype=np.float32) - 0.5) / D).astype(np.float32)
    bc = ((rng.random(V, dtype=np.float32) - 0.5) / D).astype(np.float32)
    grads = [np.ones_like(a) for a in (W, Wc, b, bc)]  # AdaGrad's sums of squares start at 1
    threads = max(1, schedule.threads)
    start = time.perf_counter()
    with ThreadPoolExecutor(threads) as pool:
        for epoch in range(schedule.epochs):
            order = rng.permutation(len(x))
            slices = np.array_split(order, threads)
            costs = pool.map(lambda part: kernels.adagrad_steps(W, Wc, b, bc, *grads, rows, cols, x, part,
                                                                schedule.x_max, schedule.alpha, schedule.eta), slices)
            cost = sum(costs) / max(len(x), 1)
            elapsed = time.perf_counter() - start
            log.info("glove epoch %d/%d: cost %.4f, %.0f entries/s", epoch + 1, schedule.epochs, cost,
                     (epoch + 1) * len(x) / max(elapsed, 1e-9))
    for a in (W, Wc, b, bc):
        a[~known] = 0.0
    return W, Wc, b, bc


def glove_loss(W: Tensor, Wc: Tensor, b: Tensor, bc: Tensor, rows: Tensor, cols: Tensor, x: Tensor,
               x_max: float, alpha: float) -> Tensor:
    """J = Σ 1/2 f(x) (w_i . w~_j + b_i + b~_j − log x)^2, written in torch (the tests' reference)."""
    diff = (W[rows] * Wc[cols]).sum(-1) + b[rows] + bc[cols] - torch.log(x)
    weight = torch.clamp(x / x_max, max=1.0) ** alpha
    return 0.5 * (weight * diff**2).sum()


__all__ = ["GloVe", "GloVeSchedule", "adagrad_fit", "cooccurrences", "glove_loss", "subsample"]
