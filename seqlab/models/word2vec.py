"""word2vec: skip-gram and CBOW word vectors trained with negative sampling (Mikolov et al. 2013).

Skip-gram learns an input vector v_w and an output vector u_w per word so that a word predicts the
words around it; CBOW predicts a word from the mean of its neighbours' input vectors. Each true
(word, context) pair is contrasted with `negative` noise words drawn from the unigram distribution
raised to 0.75: log σ(u_o · h) + Σ_k log σ(−u_k · h), maximised by SGD with a learning rate that
falls linearly from `alpha` to `min_alpha` over all epochs. Frequent words are randomly dropped
(subsampling, `sample`), and each word's window is shrunk to a random size in [1, window]. The
vectors users query are the input vectors (`word_vectors`).

References: Mikolov et al. (2013a) "Efficient Estimation of Word Representations in Vector Space";
Mikolov et al. (2013b) "Distributed Representations of Words and Phrases and their
Compositionality"; the reference C tool word2vec.c and gensim's Word2Vec (quality and speed
parity in `benchmarks/bench_word2vec.py`). Compiled kernels: `seqlab.models.word2vec_kernels`.

Dimensions: V vocabulary (the run's tokenizer ids) · D vector size (`d_model`) · N training words.

Ids are the tokenizer's: a word seen fewer than `min_count` times in the training text, the
unknown id and the line breaks are not trained (they are dropped from the text before windowing,
as word2vec.c drops rare words) and keep a zero vector; `counts` records how often each trained id
occurs (0 for the others), so `known` says which rows are words of the model's vocabulary.
"""

from __future__ import annotations

import logging
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor, nn

from seqlab.models import word2vec_kernels as kernels

log = logging.getLogger(__name__)

LOG_EVERY_S = 5.0  # seconds between progress lines while training


@dataclass(frozen=True)
class Word2VecSchedule:
    """How a word2vec model is trained (read from the run's settings by the family's builder)."""

    architecture: str = "skipgram"  # skipgram | cbow
    window: int = 5
    negative: int = 5
    min_count: int = 5
    sample: float = 1e-3
    alpha: float = 0.025
    min_alpha: float = 0.0001
    epochs: int = 5
    threads: int = 1
    seed: int = 1


class CountedVectors(nn.Module):
    """What the word-vector models share: the training `counts` (V,) of every token id (0 for the
    ids not trained), which say which ids are the model's vocabulary."""

    def __init__(self, vocab_size: int) -> None:
        super().__init__()
        self.register_buffer("counts", torch.zeros(vocab_size, dtype=torch.int64))  # (V,)

    @property
    def vocab_size(self) -> int:
        return self.counts.shape[0]

    @property
    def known(self) -> Tensor:
        """(V,) bool: the ids the model was trained on (its vocabulary)."""
        return self.counts > 0


class Word2Vec(CountedVectors):
    """Input vectors `input_vectors` (V, D), output vectors `output_vectors` (V, D) and the training
    `counts` (V,) of a word2vec model; `fit` trains them on a stream of token ids."""

    def __init__(self, vocab_size: int, d_model: int) -> None:
        super().__init__(vocab_size)
        self.input_vectors = nn.Parameter(torch.zeros(vocab_size, d_model), requires_grad=False)  # (V, D)
        self.output_vectors = nn.Parameter(torch.zeros(vocab_size, d_model), requires_grad=False)  # (V, D)

    def word_vectors(self) -> Tensor:
        """The vectors users query, (V, D): the input vectors (zero for ids outside the vocabulary)."""
        return self.input_vectors.detach()

    def fit(self, ids: np.ndarray, schedule: Word2VecSchedule, *, breaks: tuple[int, ...] = (),
            unknown: int | None = None) -> Word2Vec:
        """Train on the token ids `ids` (one stream; `breaks` are the ids that end a sentence, such
        as newline; `unknown` is never trained). Returns self."""
        V, D = self.input_vectors.shape
        ids = np.ascontiguousarray(ids, dtype=np.int64)
        counts = kernels.count_ids(ids, V)
        trainable = np.ones(V, dtype=bool)
        trainable[list(breaks) + ([unknown] if unknown is not None else [])] = False
        counts = np.where(trainable & (counts >= schedule.min_count), counts, 0)
        if not counts.any():
            raise ValueError(f"no word occurs min_count = {schedule.min_count} times in the training text")
        break_mask = np.zeros(V, dtype=np.bool_)
        break_mask[list(breaks)] = True
        words, bounds = kernels.drop_and_bound(ids, counts > 0, break_mask, kernels.CHUNK_WORDS)
        rng = np.random.default_rng(schedule.seed)
        syn0 = ((rng.random((V, D), dtype=np.float32) - 0.5) / D).astype(np.float32)  # word2vec.c's init
        syn0[counts == 0] = 0.0
        syn1neg = np.zeros((V, D), dtype=np.float32)
        train_sentences(syn0, syn1neg, words, bounds, counts, schedule)
        syn0[counts == 0] = 0.0  # never trained: no noise vectors in the vocabulary's place
        self.input_vectors.data = torch.from_numpy(syn0)
        self.output_vectors.data = torch.from_numpy(syn1neg)
        self.counts = torch.from_numpy(counts.astype(np.int64))
        return self


def chunk_starts(bounds: np.ndarray, chunk_words: int = kernels.CHUNK_WORDS) -> np.ndarray:
    """Indices into the sentence bounds where each chunk of whole sentences (about `chunk_words`
    words) starts, and the last bound's index: chunk c is sentences starts[c]:starts[c + 1]."""
    starts = [0]
    for s in range(1, len(bounds)):
        if bounds[s] - bounds[starts[-1]] >= chunk_words or s == len(bounds) - 1:
            starts.append(s)
    return np.array(sorted(set(starts)), dtype=np.int64)


def train_sentences(syn0: np.ndarray, syn1neg: np.ndarray, words: np.ndarray, bounds: np.ndarray,
                    counts: np.ndarray, schedule: Word2VecSchedule) -> float:
    """`schedule.epochs` passes of SGD over the sentences words[bounds[s]:bounds[s + 1]], updating
    `syn0` and `syn1neg` in place with `schedule.threads` threads; returns words per second (the
    words before subsampling, over all epochs, per second of training)."""
    keep = kernels.keep_thresholds(counts, schedule.sample)
    noise = kernels.noise_alias(counts)
    starts = chunk_starts(bounds)
    n_chunks, total = len(starts) - 1, int(bounds[-1])
    cbow = schedule.architecture == "cbow"
    # Each chunk's learning rate from its place in the whole schedule, so it does not depend on
    # which thread runs it or when.
    done_before = np.concatenate([[0], np.cumsum(np.diff(bounds[starts]))[:-1]])

    def run(task: int) -> int:
        epoch, c = divmod(task, n_chunks)
        progress = (epoch * total + done_before[c]) / (schedule.epochs * total)
        alpha = max(schedule.min_alpha, schedule.alpha - (schedule.alpha - schedule.min_alpha) * progress)
        seed = np.uint64((schedule.seed * 1_000_003 + task) % 2**63)
        kernels.train_chunk(syn0, syn1neg, words, bounds[starts[c]:starts[c + 1] + 1], keep, noise,
                            schedule.window, schedule.negative, alpha, cbow, seed)
        return int(bounds[starts[c + 1]] - bounds[starts[c]])

    start = last = time.perf_counter()
    processed = 0
    with ThreadPoolExecutor(max(1, schedule.threads)) as pool:
        for task, n in enumerate(pool.map(run, range(schedule.epochs * n_chunks))):
            processed += n
            now = time.perf_counter()
            if now - last >= LOG_EVERY_S:
                log.info("word2vec epoch %d/%d: %.0f%% of the words, %.0f words/s, alpha %.5f",
                         task // n_chunks + 1, schedule.epochs, 100 * processed / (schedule.epochs * total),
                         processed / (now - start), schedule.alpha - (schedule.alpha - schedule.min_alpha)
                         * processed / (schedule.epochs * total))
                last = now
    seconds = time.perf_counter() - start
    rate = processed / max(seconds, 1e-9)
    log.info("word2vec (%s): %d epochs over %d words in %.2f s, %.0f words/s with %d thread(s)",
             schedule.architecture, schedule.epochs, total, seconds, rate, schedule.threads)
    return rate


def reference_pair_step(syn0: np.ndarray, syn1neg: np.ndarray, hidden_rows: list[int], target: int,
                        noise: list[int], alpha: float) -> None:
    """The negative-sampling step written plainly in float64 numpy, the kernels' slow reference:
    h = mean of syn0[hidden_rows] (one row: skip-gram; the context: CBOW), the positive `target`
    and the `noise` words (a draw equal to `target` skipped) each update their output row by g h
    in turn, and every hidden row moves by the summed g syn1neg[t] before those updates."""
    h = syn0[hidden_rows].mean(axis=0)
    work = np.zeros_like(h)
    for t, label in [(target, 1.0)] + [(n, 0.0) for n in noise if n != target]:
        g = (label - 1.0 / (1.0 + np.exp(-h @ syn1neg[t]))) * alpha
        work += g * syn1neg[t]
        syn1neg[t] += g * h
    for row in hidden_rows:
        syn0[row] += work


__all__ = ["CountedVectors", "Word2Vec", "Word2VecSchedule", "chunk_starts", "reference_pair_step", "train_sentences"]
