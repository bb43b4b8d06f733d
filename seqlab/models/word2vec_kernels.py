"""Compiled kernels of word2vec (Mikolov et al. 2013): counting, the subsampling thresholds, the
unigram^0.75 noise distribution, and the skip-gram and CBOW updates with negative sampling, as loops
compiled by numba with no Python call per word.

Mikolov, Chen, Corrado & Dean (2013), "Efficient Estimation of Word Representations in Vector
Space" (skip-gram, CBOW), and Mikolov, Sutskever, Chen, Corrado & Dean (2013), "Distributed
Representations of Words and Phrases and their Compositionality" (negative sampling, the
unigram^0.75 noise, subsampling of frequent words). The arithmetic follows the reference C tool
(`word2vec.c`) as gensim's `word2vec_inner.pyx` restates it: the dynamic window (a window of
`window - b` words each side, b uniform in [0, window)), subsampling before windowing, CBOW over
the mean of the context vectors, and a 64-bit linear congruential generator per worker.
Parity reference: `seqlab.models.word2vec.reference_pair_step` and the tests' torch steps
(fast path == slow path); quality and speed against gensim in `benchmarks/bench_word2vec.py`.

Dimensions: V vocabulary (the tokenizer's ids) · D vector size · N words of a chunk.

Deviation from the C tool: the sigmoid is computed exactly (no 1000-entry table, no skipped update
where |x| > 6), so a step equals its float reference.

Threads: the training text is cut into chunks of whole sentences (about `CHUNK_WORDS` words each);
Python threads take chunks in turn and run `train_chunk` on them, which releases the GIL
(`nogil`), all writing the same two matrices without locks (Hogwild; Recht et al. 2011, as the C
tool and gensim do). Not numba's `parallel=True` (GNU OpenMP here), for the reason
`seqlab.models.hmm_kernels` gives.
"""

from __future__ import annotations

import numba
import numpy as np

CHUNK_WORDS = 10_000  # words per chunk of sentences (gensim's batch_words); a longer sentence is cut
_LCG_A = np.uint64(25214903917)  # word2vec.c's generator: next = next * A + 11 (mod 2^64)
_LCG_C = np.uint64(11)

# The sigmoid's argument is clipped here: beyond it sigmoid is 0 or 1 in float32, and exp of a
# float32 overflows past 88 (fastmath assumes no infinities).
MAX_LOGIT = np.float32(30.0)

_jit = numba.njit(nogil=True, cache=True, fastmath=True, error_model="numpy")
_inline = numba.njit(nogil=True, cache=True, fastmath=True, error_model="numpy", inline="always")


@_jit
def count_ids(ids: np.ndarray, vocab_size: int) -> np.ndarray:
    """How often each id occurs in `ids`: (V,) int64."""
    counts = np.zeros(vocab_size, dtype=np.int64)
    for i in range(ids.shape[0]):
        counts[ids[i]] += 1
    return counts


def keep_thresholds(counts: np.ndarray, sample: float) -> np.ndarray:
    """Subsampling (Mikolov et al. 2013b, as word2vec.c computes it): a word seen c times in a text of
    T kept words is kept with probability p = (sqrt(c / t) + 1) t / c, capped at 1, where
    t = sample * T. Returned as p * 2^32 rounded (int64, (V,)): a word is kept when its threshold
    exceeds 32 random bits. `sample` = 0 keeps every word."""
    counts = np.asarray(counts, dtype=np.float64)
    if sample <= 0:
        return np.full(counts.shape, 2**32, dtype=np.int64)
    threshold = sample * counts.sum()
    with np.errstate(divide="ignore", invalid="ignore"):
        p = (np.sqrt(counts / threshold) + 1.0) * threshold / counts
    p = np.where(counts > 0, np.minimum(p, 1.0), 0.0)
    return np.round(p * 2.0**32).astype(np.int64)


def noise_alias(counts: np.ndarray, power: float = 0.75) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The negative-sampling distribution P(w) ∝ count(w)^power over the ids with a positive count,
    as Walker's alias table (Vose's construction): (ids (K,) int32, accept (K,) float32, alias (K,)
    int32). A draw picks a slot j uniformly and returns ids[j] with probability accept[j], else
    alias[j]: O(1) per draw, where word2vec.c looks the word up in a 10^8-entry table and gensim
    bisects a cumulative one. P(w) = (accept[slot of w] + sum of (1 - accept[j]) over the slots j
    whose alias is w) / K."""
    counts = np.asarray(counts)
    ids = np.flatnonzero(counts > 0).astype(np.int32)
    if len(ids) == 0:
        raise ValueError("the noise distribution needs at least one word with a positive count")
    weights = counts[ids].astype(np.float64) ** power
    scaled = weights / weights.sum() * len(ids)  # mean 1
    accept = np.ones(len(ids), dtype=np.float64)
    alias = ids.copy()
    small = [j for j in range(len(ids)) if scaled[j] < 1.0]
    large = [j for j in range(len(ids)) if scaled[j] >= 1.0]
    while small and large:
        j, k = small.pop(), large[-1]
        accept[j], alias[j] = scaled[j], ids[k]  # slot j: itself with scaled[j], else word k
        scaled[k] -= 1.0 - scaled[j]
        if scaled[k] < 1.0:
            small.append(large.pop())
    return ids, accept.astype(np.float32), alias  # slots left in either list keep all their mass


def alias_probabilities(ids: np.ndarray, accept: np.ndarray, alias: np.ndarray, vocab_size: int) -> np.ndarray:
    """The distribution an alias table draws from, (V,) float64 (for tests and checks)."""
    p = np.zeros(vocab_size, dtype=np.float64)
    np.add.at(p, ids, accept.astype(np.float64))
    np.add.at(p, alias, 1.0 - accept.astype(np.float64))
    return p / len(ids)


@_inline
def _next(rng: np.uint64) -> np.uint64:
    return rng * _LCG_A + _LCG_C


@_inline
def _draw(ids: np.ndarray, accept: np.ndarray, alias: np.ndarray, rng: np.uint64) -> tuple[int, np.uint64]:
    """A word from the alias table, from two steps of the generator (their high bits: the slot from
    bits 32-63 of the first, the coin from bits 40-63 of the second). Returns (word, state)."""
    rng = _next(rng)
    j = np.int64(((rng >> np.uint64(32)) * np.uint64(ids.shape[0])) >> np.uint64(32))
    rng = _next(rng)
    u = np.float32(np.int64(rng >> np.uint64(40))) * np.float32(1.0 / 16777216.0)
    return (np.int64(ids[j]) if u < accept[j] else np.int64(alias[j])), rng


@_inline
def _negative_sampling(l1: np.ndarray, word: int, syn1neg: np.ndarray, noise: tuple, negative: int,
                       alpha: float, work: np.ndarray, rng: np.uint64) -> np.uint64:
    """One positive (`word`, label 1) and `negative` noise words (label 0) against the hidden vector
    `l1` (D,): each output row moves by g l1 and `work` (D,) gathers the hidden vector's update, the
    sum of g syn1neg[target], with g = alpha (label - sigmoid(l1 . syn1neg[target])). A noise draw
    equal to `word` is skipped, as in word2vec.c. Returns the generator state.

    `l1` and `work` are buffers of the calling kernel (copies, not views of the matrices): a view
    costs two atomic reference counts, and buffers the compiler sees allocated apart from the
    matrices let it vectorise the row loops without overlap checks (twice as fast)."""
    D = syn1neg.shape[1]
    for d in range(negative + 1):
        if d == 0:
            target, label = word, np.float32(1.0)
        else:
            target, rng = _draw(noise[0], noise[1], noise[2], rng)
            if target == word:
                continue
            label = np.float32(0.0)
        f = np.float32(0.0)
        for k in range(D):
            f += l1[k] * syn1neg[target, k]
        f = min(max(f, -MAX_LOGIT), MAX_LOGIT)
        g = (label - np.float32(1.0) / (np.float32(1.0) + np.exp(-f))) * np.float32(alpha)
        for k in range(D):
            work[k] += g * syn1neg[target, k]
        for k in range(D):
            syn1neg[target, k] += g * l1[k]
    return rng


@_inline
def skipgram_pair(syn0: np.ndarray, syn1neg: np.ndarray, center: int, context: int, noise: tuple,
                  negative: int, alpha: float, l1: np.ndarray, work: np.ndarray, rng: np.uint64) -> np.uint64:
    """Skip-gram with negative sampling for one (center, context) pair, as word2vec.c orders it: the
    context word's input vector predicts the center word. `l1` and `work` are scratch (D,)."""
    D = syn0.shape[1]
    for k in range(D):
        l1[k] = syn0[context, k]
        work[k] = 0.0
    rng = _negative_sampling(l1, center, syn1neg, noise, negative, alpha, work, rng)
    for k in range(D):
        syn0[context, k] += work[k]
    return rng


@_inline
def cbow_word(syn0: np.ndarray, syn1neg: np.ndarray, words: np.ndarray, i: int, lo: int, hi: int,
              noise: tuple, negative: int, alpha: float, l1: np.ndarray, work: np.ndarray,
              rng: np.uint64) -> np.uint64:
    """CBOW with negative sampling for position i of `words`: the mean `l1` of the input vectors of
    words[lo:hi] other than i predicts words[i]; each of those vectors moves by the whole update.
    `l1` and `work` are scratch (D,)."""
    D = syn0.shape[1]
    for k in range(D):
        l1[k] = 0.0
        work[k] = 0.0
    count = 0
    for j in range(lo, hi):
        if j != i:
            count += 1
            for k in range(D):
                l1[k] += syn0[words[j], k]
    if count == 0:
        return rng
    inv = np.float32(1.0 / count)
    for k in range(D):
        l1[k] *= inv
    rng = _negative_sampling(l1, words[i], syn1neg, noise, negative, alpha, work, rng)
    for j in range(lo, hi):
        if j != i:
            for k in range(D):
                syn0[words[j], k] += work[k]
    return rng


@_jit
def train_chunk(syn0: np.ndarray, syn1neg: np.ndarray, ids: np.ndarray, bounds: np.ndarray, keep: np.ndarray,
                noise: tuple, window: int, negative: int, alpha: float, cbow: bool, seed: np.uint64) -> int:
    """One pass over the sentences ids[bounds[s]:bounds[s + 1]]: each sentence subsampled (a word w
    kept when keep[w] exceeds 32 random bits), then every kept word trained in its dynamic window.
    Returns how many words were kept."""
    D = syn0.shape[1]
    longest = 0
    for s in range(bounds.shape[0] - 1):
        longest = max(longest, bounds[s + 1] - bounds[s])
    words = np.empty(longest, dtype=np.int64)
    l1 = np.empty(D, dtype=np.float32)
    work = np.empty(D, dtype=np.float32)
    rng = seed
    kept = 0
    for s in range(bounds.shape[0] - 1):
        n = 0
        for p in range(bounds[s], bounds[s + 1]):
            w = ids[p]
            if keep[w] < 4294967296:  # 2^32: always kept, no draw
                rng = _next(rng)
                if keep[w] <= np.int64((rng >> np.uint64(16)) & np.uint64(0xFFFFFFFF)):
                    continue
            words[n] = w
            n += 1
        kept += n
        for i in range(n):
            rng = _next(rng)
            b = np.int64((rng >> np.uint64(16)) % np.uint64(window))
            lo, hi = max(0, i - window + b), min(n, i + window + 1 - b)
            if cbow:
                rng = cbow_word(syn0, syn1neg, words, i, lo, hi, noise, negative, alpha, l1, work, rng)
            else:
                for j in range(lo, hi):
                    if j != i:
                        rng = skipgram_pair(syn0, syn1neg, words[i], words[j], noise, negative, alpha, l1, work, rng)
    return kept


@_jit
def drop_and_bound(ids: np.ndarray, known: np.ndarray, breaks: np.ndarray, chunk_words: int
                   ) -> tuple[np.ndarray, np.ndarray]:
    """The training stream as sentences: `ids` without the ids that are not `known` (under
    min_count, the unknown id) nor `breaks` (newline, TAB), cut into sentences at each break and
    every `chunk_words` words. Returns (kept ids (N,) int32, sentence bounds (S + 1,) int64)."""
    out = np.empty(ids.shape[0], dtype=np.int32)
    bounds = np.empty(ids.shape[0] + 2, dtype=np.int64)
    bounds[0] = 0
    n, s, start = 0, 1, 0
    for p in range(ids.shape[0]):
        w = ids[p]
        if breaks[w] or n - start >= chunk_words:
            if n > start:
                bounds[s] = n
                s += 1
                start = n
        if known[w]:
            out[n] = w
            n += 1
    if n > start:
        bounds[s] = n
        s += 1
    return out[:n].copy(), bounds[:s].copy()
