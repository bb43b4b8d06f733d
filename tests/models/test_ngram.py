"""NGramLM: hand-computed Kneser–Ney and Laplace on toy corpora, the vectorised scorer against a slow
per-position implementation of the formulas, normalisation, unseen tokens, sampling, save/load."""

from __future__ import annotations

from collections import Counter, defaultdict

import numpy as np
import pytest

from seqlab.models.ngram import NGramLM
from seqlab.models.ngram_counts import discounts

SEED = 1234
A, B, C = 0, 1, 2


def _corpus(rng: np.random.Generator, vocab: int, n: int) -> np.ndarray:
    """A Markov-ish random corpus: repeated structure so that high orders see repeated contexts."""
    motifs = [rng.integers(0, vocab, size=rng.integers(2, 6)) for _ in range(6)]
    parts = [motifs[i] if rng.random() < 0.7 else rng.integers(0, vocab, size=3)
             for i in rng.integers(0, len(motifs), size=n // 3)]
    return np.concatenate(parts)[:n].astype(np.int64)


def _sentences(rng: np.random.Generator, vocab: int, n: int) -> list[np.ndarray]:
    tokens = _corpus(rng, vocab, n)
    cuts = np.sort(rng.choice(np.arange(1, n), size=n // 8, replace=False))
    return [s for s in np.split(tokens, cuts)]


# ---- hand-computed probabilities ----------------------------------------------------------------

def test_discounts_from_counts_of_counts() -> None:
    # n1 = 4, n2 = 2, n3 = 2, n4 = 1 → Y = 4 / (4 + 2·2) = 0.5
    # D1 = 1 - 2·0.5·2/4 = 0.5;  D2 = 2 - 3·0.5·2/2 = 0.5;  D3+ = 3 - 4·0.5·1/2 = 2
    np.testing.assert_allclose(discounts(np.array([1, 1, 1, 1, 2, 2, 3, 3, 4, 7])), [0, 0.5, 0.5, 2])
    # n3 = n4 = 0: D3+ = 3 - 4Y·0/0 is undefined → falls back to Y = 2 / (2 + 2) = 0.5;
    # D2 = 2 - 3Y·0/1 = 2 (inside [0, 2]); D1 = 1 - 2·0.5·1/2 = 0.5
    np.testing.assert_allclose(discounts(np.array([1, 1, 2])), [0, 0.5, 2, 0.5])
    # D3+ = 3 - 4·0.5·4/1 = -5 is clipped to 0 (n1 = 2, n2 = 1, n3 = 1, n4 = 4)
    assert discounts(np.array([1, 1, 2, 3, 4, 4, 4, 4]))[3] == 0


def test_kneser_ney_bigram_by_hand() -> None:
    # corpus a b a b a c a b; bigram counts ab 3, ba 2, ac 1, ca 1 → n1 = 2, n2 = 1, n3 = 1, n4 = 0
    # Y = 2/(2+2) = 0.5, D1 = 1 - 2·0.5·1/2 = 0.5, D2 = 2 - 3·0.5·1/1 = 0.5, D3+ = 3 - 4·0.5·0/1 = 3
    # unigram continuation counts: a 2 (ba, ca), b 1 (ab), c 1 (ac); total 4; n1 = 2, n2 = 1
    #   D1 = 0.5, D2 = 2 - 0 = 2, D3+ = 0/0 → Y = 0.5; γ() = (0.5·2 + 2·1)/4 = 0.75
    #   p1(a) = (2-2)/4 + 0.75/3 = 0.25, p1(b) = p1(c) = (1-0.5)/4 + 0.25 = 0.375
    # context a: ab 3, ac 1; total 4; γ(a) = (0.5·1 + 3·1)/4 = 0.875
    #   p(b|a) = (3-3)/4 + 0.875·0.375 = 0.328125; p(c|a) = 0.5/4 + 0.328125 = 0.453125
    #   p(a|a) = 0.875·0.25 = 0.21875
    # context b: ba 2; total 2; γ(b) = 0.5·1/2 = 0.25; p(a|b) = 1.5/2 + 0.25·0.25 = 0.8125
    #   p(b|b) = p(c|b) = 0.25·0.375 = 0.09375
    # context c: ca 1; γ(c) = 0.5; p(a|c) = 0.5 + 0.5·0.25 = 0.625
    lm = NGramLM(2, 3).fit(np.array([A, B, A, B, A, C, A, B]))
    np.testing.assert_allclose(lm.distribution([]), [0.25, 0.375, 0.375])
    np.testing.assert_allclose(lm.distribution([A]), [0.21875, 0.328125, 0.453125])
    np.testing.assert_allclose(lm.distribution([B]), [0.8125, 0.09375, 0.09375])
    # the stream c a b: first token from the unigram level, then p(a|c), p(b|a)
    np.testing.assert_allclose(lm.log_probs(np.array([C, A, B])), np.log([0.375, 0.625, 0.328125]))


def test_kneser_ney_trigram_by_hand() -> None:
    # same corpus, order 3. trigrams aba 2, bab 1, bac 1, aca 1, cab 1 → n1 = 4, n2 = 1
    #   Y = 4/6, D1 = 1 - 2·(2/3)·1/4 = 2/3, D2 = 2 - 3Y·0/1 = 2, D3+ = 0/0 → Y = 2/3
    # bigram continuation counts: ab 2 (bab, cab; the first ab has no left extension), ba 1 (aba),
    #   ac 1 (bac), ca 1 (aca) → n1 = 3, n2 = 1: Y = 3/5, D1 = 1 - 2·0.6/3 = 0.6, D2 = 2
    # unigram level as in the bigram test: p1 = (1/4, 3/8, 3/8)
    # p2(·|a): ab 2, ac 1, total 3, γ(a) = (2 + 0.6)/3 = 13/15
    #   p2(a|a) = 13/15·1/4 = 13/60, p2(b|a) = 0 + 13/15·3/8 = 13/40, p2(c|a) = 0.4/3 + 13/40 = 11/24
    # p2(·|b): ba 1, total 1, γ(b) = 0.6 → p2(a|b) = 0.4 + 0.6/4 = 0.55, p2(b|b) = p2(c|b) = 0.225
    # context (b, a): bab 1, bac 1, total 2, γ = (2/3)·2/2 = 2/3
    #   p3(a|b a) = (2/3)·13/60 = 13/90
    #   p3(b|b a) = (1 - 2/3)/2 + (2/3)·13/40 = 1/6 + 13/60 = 23/60
    #   p3(c|b a) = 1/6 + (2/3)·11/24 = 17/36
    # context (a, b): aba 2, total 2, γ = D2·1/2 = 1 → p3(·|a b) = p2(·|b)
    lm = NGramLM(3, 3).fit(np.array([A, B, A, B, A, C, A, B]))
    np.testing.assert_allclose(lm.distribution([B, A]), [13 / 90, 23 / 60, 17 / 36])
    np.testing.assert_allclose(lm.distribution([A, B]), [0.55, 0.225, 0.225])
    # unseen context (c, c) passes the bigram level through: ca 1, γ(c) = 0.6 → like p2(·|b)
    np.testing.assert_allclose(lm.distribution([C, C]), [0.55, 0.225, 0.225])
    # a two-token context at the start of a stream: p(a) = p1(a), p(b|a) = p2(b|a), p(a|a b) = 0.55
    np.testing.assert_allclose(lm.log_probs(np.array([A, B, A])), np.log([0.25, 13 / 40, 0.55]))


def test_kneser_ney_with_sentence_boundaries_by_hand() -> None:
    # V = 2 (a, b), BOS = 2, EOS = 3; sentences "a b" and "a" → <s> a b </s>, <s> a </s>
    # bigrams <s>a 2, ab 1, b</s> 1, a</s> 1 → n1 = 3, n2 = 1: Y = 3/5, D1 = 1 - 2·0.6/3 = 0.6, D2 = 2
    # unigram continuation counts a 1 (<s>a), b 1 (ab), </s> 2 (b</s>, a</s>); total 4
    #   n1 = 2, n2 = 1 → D1 = 0.5, D2 = 2; γ() = (0.5·2 + 2·1)/4 = 0.75; outcomes a, b, </s>
    #   p1(a) = p1(b) = 0.5/4 + 0.75/3 = 0.375, p1(</s>) = 0 + 0.25 = 0.25
    # context <s>: <s>a 2, γ = 2·1/2 = 1 → p(·|<s>) = p1
    # context a: ab 1, a</s> 1, γ(a) = 0.6·2/2 = 0.6
    #   p(b|a) = 0.4/2 + 0.6·0.375 = 0.425, p(</s>|a) = 0.2 + 0.6·0.25 = 0.35, p(a|a) = 0.225
    # context b: b</s> 1, γ(b) = 0.6 → p(</s>|b) = 0.4 + 0.6·0.25 = 0.55
    lm = NGramLM(2, 2, boundary=True).fit([np.array([A, B]), np.array([A])])
    np.testing.assert_allclose(lm.distribution([A]), [0.225, 0.425, 0.35])
    np.testing.assert_allclose(lm.log_probs([np.array([A, B])]), np.log([0.375, 0.425, 0.55]))


def test_add_one_is_laplace_by_hand() -> None:
    # corpus 0 1 0 1 2, V = 3, order 2; bigrams 01 2, 10 1, 12 1; unigrams 0 2, 1 2, 2 1 (total 5)
    # p(0) = (2+1)/(5+3) = 3/8; p(1|0) = (2+1)/(2+3) = 3/5; p(2|1) = (1+1)/(2+3) = 2/5
    # context 2 is never followed: (0+1)/(0+3) = 1/3 for every token
    lm = NGramLM(2, 3, smoothing="add_k", k=1.0).fit(np.array([0, 1, 0, 1, 2]))
    np.testing.assert_allclose(lm.log_probs(np.array([0, 1, 2])), np.log([3 / 8, 3 / 5, 2 / 5]))
    np.testing.assert_allclose(lm.distribution([0]), [1 / 5, 3 / 5, 1 / 5])
    np.testing.assert_allclose(lm.distribution([2]), [1 / 3] * 3)


# ---- slow reference: the formulas, one position at a time ----------------------------------------

class SlowNGram:
    """Dictionaries of tuples and a recursive p(w | h), written straight from the formulas."""

    def __init__(self, seqs: list[np.ndarray], order: int, vocab: int, boundary: bool) -> None:
        self.n, self.vocab, self.boundary = order, vocab, boundary
        self.bos, self.eos = vocab, vocab + 1
        self.outcomes = vocab + int(boundary)
        self.raw = [Counter() for _ in range(order + 1)]
        for s in self._pad(seqs):
            for k in range(1, order + 1):
                for i in range(len(s) - k + 1):
                    if s[i + k - 1] != self.bos:
                        self.raw[k][tuple(s[i:i + k])] += 1
        self.adjusted = [self._continuation(k) if k < order else dict(self.raw[k]) for k in range(order + 1)]
        self.d = [np.array(discounts(np.array(list(a.values())))) if k else None
                  for k, a in enumerate(self.adjusted)]
        self.by_context = [self._group(a) if k else {} for k, a in enumerate(self.adjusted)]
        self.raw_by_context = [self._group(r) if k else {} for k, r in enumerate(self.raw)]

    def _pad(self, seqs: list[np.ndarray]) -> list[list[int]]:
        if self.boundary:
            return [[self.bos] * (self.n - 1) + list(map(int, s)) + [self.eos] for s in seqs]
        return [list(map(int, s)) for s in seqs]

    def _continuation(self, k: int) -> dict:
        left = defaultdict(set)
        for g in self.raw[k + 1]:
            left[g[1:]].add(g[0])
        return {g: len(v) for g, v in left.items()}

    @staticmethod
    def _group(counts: dict) -> dict:
        grouped = defaultdict(dict)
        for g, c in counts.items():
            grouped[g[:-1]][g[-1]] = c
        return grouped

    def p_kn(self, h: tuple, w: int) -> float:
        k = len(h) + 1
        lower = 1 / self.outcomes if k == 1 else self.p_kn(h[1:], w)
        followers = self.by_context[k].get(h, {})
        total = sum(followers.values())
        if total == 0:
            return lower
        d = self.d[k]
        gamma = sum(d[min(c, 3)] for c in followers.values()) / total
        c = followers.get(w, 0)
        return max(c - d[min(c, 3)], 0) / total + gamma * lower

    def p_count(self, h: tuple, w: int, smoothing: str, add: float) -> float:
        followers = self.raw_by_context[len(h) + 1].get(h, {})
        total, c = sum(followers.values()), followers.get(w, 0)
        if smoothing == "add_k":
            return (c + add) / (total + add * self.outcomes)
        return c / total if total else 0.0

    def log_probs(self, seqs: list[np.ndarray], smoothing: str, add: float) -> np.ndarray:
        out = []
        for s in self._pad(seqs):
            for i, w in enumerate(s):
                if w == self.bos:
                    continue
                h = tuple(s[max(0, i - self.n + 1):i])
                p = self.p_kn(h, w) if smoothing == "kneser_ney" else self.p_count(h, w, smoothing, add)
                out.append(np.log(p) if p > 0 else -np.inf)
        return np.array(out)


@pytest.mark.parametrize("boundary", [False, True])
@pytest.mark.parametrize("smoothing", ["kneser_ney", "add_k", "mle"])
@pytest.mark.parametrize("order", [1, 2, 3, 4])
def test_vectorised_log_probs_equal_slow_reference(order: int, smoothing: str, boundary: bool) -> None:
    rng = np.random.default_rng(SEED + order)
    vocab = 6
    train, test = _sentences(rng, vocab, 400), _sentences(rng, vocab, 120)
    lm = NGramLM(order, vocab, smoothing=smoothing, k=0.5, boundary=boundary).fit(train)
    slow = SlowNGram(train, order, vocab, boundary)
    np.testing.assert_allclose(lm.log_probs(test), slow.log_probs(test, smoothing, 0.5), rtol=1e-12,
                               err_msg=f"seed {SEED + order}")


# ---- invariants ------------------------------------------------------------------------------------

@pytest.mark.parametrize("boundary", [False, True])
@pytest.mark.parametrize("smoothing", ["kneser_ney", "add_k", "mle"])
@pytest.mark.parametrize("order", [1, 2, 3, 4, 5])
def test_every_distribution_sums_to_one(order: int, smoothing: str, boundary: bool) -> None:
    rng = np.random.default_rng(SEED)
    vocab = 7
    train = _sentences(rng, vocab, 600)
    lm = NGramLM(order, vocab, smoothing=smoothing, boundary=boundary).fit(train)
    contexts = [list(s[max(0, i - order + 1):i]) for s in train[:30] for i in range(len(s))]  # seen
    if smoothing != "mle":
        contexts += [list(rng.integers(0, vocab, size=rng.integers(0, order))) for _ in range(60)]
    for context in contexts:
        dist = lm.distribution(context)
        assert dist.shape == (vocab + int(boundary),)
        assert np.all(dist >= 0)
        np.testing.assert_allclose(dist.sum(), 1.0, rtol=1e-12, err_msg=f"seed {SEED}, context {context}")


@pytest.mark.parametrize("smoothing", ["kneser_ney", "add_k"])
def test_finite_perplexity_on_unseen_tokens_and_contexts(smoothing: str) -> None:
    rng = np.random.default_rng(SEED)
    train = _corpus(rng, 8, 500) % 6  # tokens 6 and 7 never occur in training
    test = rng.integers(0, 8, size=200)
    assert set(test.tolist()) & {6, 7}
    lm = NGramLM(4, 8, smoothing=smoothing).fit(train)
    assert np.all(np.isfinite(lm.log_probs(test)))
    assert np.isfinite(lm.perplexity(test)) and lm.perplexity(test) > 1


def test_mle_gives_zero_to_unseen_and_refuses_unseen_contexts() -> None:
    lm = NGramLM(2, 3, smoothing="mle").fit(np.array([0, 1, 0, 1]))
    assert lm.log_probs(np.array([0, 2]))[1] == -np.inf
    np.testing.assert_allclose(lm.distribution([0]), [0, 1, 0])
    with pytest.raises(ValueError, match="never seen"):
        lm.distribution([2])


def test_sampling_with_a_seed_is_reproducible() -> None:
    rng = np.random.default_rng(SEED)
    lm = NGramLM(3, 7).fit(_corpus(rng, 7, 500))
    first = lm.sample(50, context=[1, 2], seed=7)
    assert np.array_equal(first, lm.sample(50, context=[1, 2], seed=7))
    assert first.shape == (50,) and first.min() >= 0 and first.max() < 7
    assert not np.array_equal(first, lm.sample(50, context=[1, 2], seed=8))
    greedy = lm.sample(10, temperature=0)
    assert np.array_equal(greedy, lm.sample(10, temperature=0, seed=3))


def test_sampling_with_boundaries_stops_at_end_of_sentence() -> None:
    lm = NGramLM(2, 2, smoothing="mle", boundary=True).fit([np.array([0, 1])] * 3)
    assert np.array_equal(lm.sample(10, seed=0), [0, 1])  # <s> → a → b → </s> with probability 1


@pytest.mark.parametrize("smoothing", ["kneser_ney", "add_k", "mle"])
@pytest.mark.parametrize("boundary", [False, True])
def test_save_load_round_trip(tmp_path, smoothing: str, boundary: bool) -> None:
    rng = np.random.default_rng(SEED)
    train, test = _sentences(rng, 9, 400), _sentences(rng, 9, 100)
    lm = NGramLM(4, 9, smoothing=smoothing, k=0.25, boundary=boundary).fit(train)
    lm.save(tmp_path / "lm")
    loaded = NGramLM.load(tmp_path / "lm")
    assert (loaded.order, loaded.smoothing, loaded.k, loaded.boundary) == (4, smoothing, 0.25, boundary)
    assert np.array_equal(lm.log_probs(test), loaded.log_probs(test))


def test_bits_per_char_and_perplexity_agree() -> None:
    rng = np.random.default_rng(SEED)
    lm = NGramLM(3, 5).fit(_corpus(rng, 5, 300))
    test = _corpus(rng, 5, 100)
    bpc = lm.bits_per_char(test, len(test))
    np.testing.assert_allclose(2 ** bpc, lm.perplexity(test), rtol=1e-12)


def test_rejects_out_of_range_tokens_and_overflowing_orders() -> None:
    with pytest.raises(ValueError, match="ids in"):
        NGramLM(2, 3).fit(np.array([0, 3]))
    with pytest.raises(ValueError, match="overflows"):
        NGramLM(5, 50_000)
    assert NGramLM(2, 3).fit(np.array([0, 1])).log_probs(np.zeros(0, np.int64)).shape == (0,)
    with pytest.raises(RuntimeError, match="not fitted"):
        NGramLM(2, 3).log_probs(np.array([0]))
