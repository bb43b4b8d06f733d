"""NGramLM and HMM under the model contract (`seqlab.models.contract.LanguageModel`): `step` against
the estimators' own distributions (`NGramLM.distribution`) and against brute-force enumeration over
every state path (HMM) and the lectures' weather example, `token_log_probs` against `log_probs` and
`log_likelihoods`, the cached state against recompute, and generation through `GenerateMixin`."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import torch

from seqlab.models.contract import LanguageModel
from seqlab.models.hmm import HMM
from seqlab.models.ngram import NO_TOKEN, NGramLM

SEED = 2024
V = 5  # the n-grams' vocabulary
WEATHER = dict(startprob=[0.6, 0.4], transmat=[[0.7, 0.3], [0.4, 0.6]],
               emissionprob=[[0.1, 0.4, 0.5], [0.6, 0.3, 0.1]])  # Rainy, Sunny; walk, shop, clean
WALK, SHOP, CLEAN = 0, 1, 2


def _corpus(seed: int, n: int = 400) -> np.ndarray:
    """A corpus with repeated motifs, so that higher orders see repeated contexts."""
    rng = np.random.default_rng(seed)
    motifs = [rng.integers(0, V, size=rng.integers(2, 5)) for _ in range(4)]
    parts = [motifs[i] if rng.random() < 0.7 else rng.integers(0, V, size=3)
             for i in rng.integers(0, len(motifs), size=n // 3)]
    return np.concatenate(parts)[:n].astype(np.int64)


def _sentences(seed: int) -> list[np.ndarray]:
    tokens = _corpus(seed)
    cuts = np.sort(np.random.default_rng(seed).choice(np.arange(1, len(tokens)), size=40, replace=False))
    return np.split(tokens, cuts)


def _ngram(order: int, smoothing: str, boundary: bool, seed: int = SEED) -> NGramLM:
    data = _sentences(seed) if boundary else _corpus(seed)
    return NGramLM(order, V, smoothing=smoothing, boundary=boundary).fit(data)


def _token_distribution(lm: NGramLM, context: list[int]) -> np.ndarray:
    """What `step` should give after `context`: `distribution`, less EOS and renormalised with `boundary`."""
    p = lm.distribution(context)
    return p[:V] / p[:V].sum() if lm.boundary else p


def _models() -> list[tuple[str, LanguageModel, int]]:
    """(name, model, vocabulary) of every classical family and variant that generation must serve."""
    return [("ngram3_kn", _ngram(3, "kneser_ney", False), V),
            ("ngram2_boundary", _ngram(2, "add_k", True), V),
            ("ngram1", _ngram(1, "kneser_ney", False), V),
            ("hmm", HMM(3, 6, seed=SEED), 6),
            ("weather", HMM(**WEATHER), 3)]


MODELS = _models()
MODEL_IDS = [name for name, _, _ in MODELS]


@pytest.mark.parametrize("name,model,vocab", MODELS, ids=MODEL_IDS)
def test_is_a_language_model(name: str, model: LanguageModel, vocab: int) -> None:
    assert isinstance(model, LanguageModel)
    assert model.block_size is None


# ---- n-gram: step against `distribution`, token_log_probs against `log_probs` -----------------------------------

@pytest.mark.parametrize("boundary", [False, True])
@pytest.mark.parametrize("smoothing", ["kneser_ney", "add_k"])
@pytest.mark.parametrize("order", [1, 2, 3, 4])
def test_ngram_step_equals_distribution(order: int, smoothing: str, boundary: bool) -> None:
    lm = _ngram(order, smoothing, boundary)
    rng = np.random.default_rng(SEED + order)
    for length in range(order + 2):  # shorter than, as long as and longer than the context
        tokens = torch.from_numpy(rng.integers(0, V, size=(6, length)))  # (B, T): many unseen contexts
        logits, state = lm.step(tokens, None)
        assert state is None and logits.shape == (6, V) and logits.dtype == torch.float32
        expected = np.stack([_token_distribution(lm, row.tolist()) for row in tokens])  # (B, V)
        np.testing.assert_allclose(logits.double().exp().numpy(), expected, rtol=1e-6,
                                   err_msg=f"seed={SEED + order} length={length}")
        np.testing.assert_allclose(expected.sum(1), 1.0, rtol=1e-12)


@pytest.mark.parametrize("boundary", [False, True])
@pytest.mark.parametrize("order", [2, 3, 4])
def test_ngram_distributions_equals_distribution(order: int, boundary: bool) -> None:
    lm = _ngram(order, "kneser_ney", boundary)
    L = order - 1
    rng = np.random.default_rng(SEED)
    lengths = rng.integers(0, L + 1, size=20)
    contexts = rng.integers(0, V, size=(20, L))
    contexts[np.arange(L) < (L - lengths)[:, None]] = NO_TOKEN  # left-padded to L
    expected = np.stack([lm.distribution([t for t in row if t != NO_TOKEN]) for row in contexts])  # (B, P)
    np.testing.assert_allclose(lm.distributions(contexts), expected, rtol=1e-12, err_msg=f"seed={SEED}")


def _seen_contexts(boundary: bool, order: int, n: int, rng: np.random.Generator, count: int = 5) -> np.ndarray:
    """`count` contexts of n tokens that some token follows in training, (count, n), so that `mle` has a
    distribution there: windows of the stream, or with `boundary` windows of a sentence (its first n
    tokens when n < order - 1: a shorter context is the start of a sentence)."""
    sentences = _sentences(SEED) if boundary else [_corpus(SEED)]
    rows = []
    while len(rows) < count:
        s = sentences[rng.integers(len(sentences))]
        if len(s) > n:
            end = n if boundary and n < order - 1 else int(rng.integers(n, len(s)))  # s[end] follows
            rows.append(s[end - n:end])
    return np.stack(rows)


@pytest.mark.parametrize("boundary", [False, True])
@pytest.mark.parametrize("order", [2, 3])
def test_ngram_mle_step_on_seen_contexts(order: int, boundary: bool) -> None:
    lm = _ngram(order, "mle", boundary)
    rng = np.random.default_rng(SEED)
    for n in range(order + 1):
        tokens = torch.from_numpy(_seen_contexts(boundary, order, n, rng))  # (B, n)
        logits, _ = lm.step(tokens, None)
        expected = np.stack([_token_distribution(lm, row.tolist()) for row in tokens])  # (B, V)
        np.testing.assert_allclose(logits.double().exp().numpy(), expected, rtol=1e-6, err_msg=f"seed={SEED} n={n}")


def test_ngram_mle_unseen_context_raises() -> None:
    lm = NGramLM(3, V, smoothing="mle").fit(np.array([0, 1, 2, 0, 1, 2]))
    with pytest.raises(ValueError, match=r"context \[4, 4\] was never seen"):
        lm.step(torch.tensor([[0, 1], [4, 4]]), None)
    with pytest.raises(ValueError, match=r"context \[4, 4\] was never seen"):
        lm.distributions(np.array([[4, 4]]))
    logits, state = lm.step(torch.tensor([[0, 1]]), lm.new_state(1))  # seen: "0 1" → 2
    assert logits.argmax().item() == 2 and state.tolist() == [[0, 1]]


def test_ngram_distributions_rejects_bad_contexts() -> None:
    lm = _ngram(3, "kneser_ney", False)
    with pytest.raises(ValueError, match="left-padded"):
        lm.distributions(np.array([[1, NO_TOKEN]]))
    with pytest.raises(ValueError, match="shape"):
        lm.distributions(np.array([[1, 2, 3]]))


@pytest.mark.parametrize("smoothing", ["kneser_ney", "add_k", "mle"])
@pytest.mark.parametrize("order", [1, 2, 3, 4])
def test_ngram_score_equals_log_probs(order: int, smoothing: str) -> None:
    lm = _ngram(order, smoothing, False)
    seed = SEED + 10 * order
    tokens = torch.from_numpy(np.random.default_rng(seed).integers(0, V, size=(4, 12)))  # (B, T)
    scores = lm.token_log_probs(tokens)
    assert scores.shape == (4, 11) and scores.dtype == torch.float64
    for b, row in enumerate(tokens.numpy()):
        np.testing.assert_array_equal(scores[b].numpy(), lm.log_probs(row)[1:], err_msg=f"seed={seed} row={b}")


# ---- HMM: step against brute force and the weather example, token_log_probs against log_likelihoods -------

def _brute_force_next(hmm: HMM, seq: list[int]) -> np.ndarray:
    """p(x_{T+1} = m | x_1..T) (M,) from P(x_1..T, m) summed over every state path of length T + 1."""
    joint = np.zeros(hmm.n_symbols)
    for m in range(hmm.n_symbols):
        full = [*seq, m]
        for path in itertools.product(range(hmm.n_states), repeat=len(full)):
            p = hmm.startprob[path[0]] * hmm.emissionprob[path[0], full[0]]
            for t in range(1, len(full)):
                p *= hmm.transmat[path[t - 1], path[t]] * hmm.emissionprob[path[t], full[t]]
            joint[m] += p
    return joint / joint.sum()


@pytest.mark.parametrize("K", [2, 3])
@pytest.mark.parametrize("T", [0, 1, 3, 5])
def test_hmm_step_equals_brute_force(K: int, T: int) -> None:
    seed = SEED + 10 * K + T
    hmm = HMM(K, 3, seed=seed)
    tokens = torch.from_numpy(np.random.default_rng(seed).integers(0, 3, size=(3, T)))  # (B, T)
    logits, state = hmm.step(tokens, hmm.new_state(3))
    expected = np.stack([_brute_force_next(hmm, row.tolist()) for row in tokens])  # (B, M)
    # float64 through the state; the float32 logits to float32 precision
    np.testing.assert_allclose(state.numpy() @ hmm.emissionprob, expected, rtol=1e-12, err_msg=f"seed={seed}")
    np.testing.assert_allclose(logits.double().exp().numpy(), expected, rtol=1e-6, err_msg=f"seed={seed}")
    recomputed, none = hmm.step(tokens, None)
    assert none is None
    torch.testing.assert_close(recomputed, logits, rtol=0, atol=0)


def test_hmm_weather_example_by_hand() -> None:
    # forward, unnormalised: α1 = (0.6·0.1, 0.4·0.6) = (0.06, 0.24), p(walk) = 0.3
    # α2 = ((0.06·0.7 + 0.24·0.4)·0.4, (0.06·0.3 + 0.24·0.6)·0.3) = (0.0552, 0.0486), sum 0.1038
    # α3 = ((0.0552·0.7 + 0.0486·0.4)·0.5, (0.0552·0.3 + 0.0486·0.6)·0.1) = (0.02904, 0.004572), sum 0.033612
    # next state, unnormalised: (0.02904·0.7 + 0.004572·0.4, 0.02904·0.3 + 0.004572·0.6) = (0.0221568, 0.0114552)
    # next symbol: walk 0.0221568·0.1 + 0.0114552·0.6 = 0.0090888, shop 0.01229928, clean 0.01222392
    hmm = HMM(**WEATHER)
    tokens = torch.tensor([[WALK, SHOP, CLEAN]])
    logits, state = hmm.step(tokens, hmm.new_state(1))
    np.testing.assert_allclose(state.numpy()[0], np.array([0.0221568, 0.0114552]) / 0.033612, rtol=1e-12)
    expected = np.array([0.0090888, 0.01229928, 0.01222392]) / 0.033612
    np.testing.assert_allclose(state.numpy()[0] @ hmm.emissionprob, expected, rtol=1e-12)
    np.testing.assert_allclose(logits[0].double().exp().numpy(), expected, rtol=1e-6)
    scores = hmm.token_log_probs(tokens)  # log p(shop | walk), log p(clean | walk, shop)
    np.testing.assert_allclose(scores.numpy()[0], np.log([0.1038 / 0.3, 0.033612 / 0.1038]), rtol=1e-12)


@pytest.mark.parametrize("K,M", [(2, 3), (4, 7)])
def test_hmm_score_sums_to_log_likelihoods(K: int, M: int) -> None:
    seed = SEED + K
    hmm = HMM(K, M, seed=seed)
    tokens = torch.from_numpy(np.random.default_rng(seed).integers(0, M, size=(5, 40)))  # (B, T)
    scores = hmm.token_log_probs(tokens)
    assert scores.shape == (5, 39) and scores.dtype == torch.float64
    log_first = np.log(hmm.startprob @ hmm.emissionprob[:, tokens[:, 0].numpy()])  # (B,) log p(x_0)
    np.testing.assert_allclose(scores.sum(1).numpy() + log_first, hmm.log_likelihoods(tokens.numpy()),
                               rtol=1e-12, err_msg=f"seed={seed}")
    assert hmm.score(tokens.numpy()) == pytest.approx(hmm.log_likelihoods(tokens.numpy()).sum())  # hmmlearn's


def test_hmm_impossible_token_raises_in_step() -> None:
    hmm = HMM(startprob=[1.0, 0.0], transmat=[[1.0, 0.0], [0.0, 1.0]], emissionprob=[[1.0, 0.0], [0.0, 1.0]])
    with pytest.raises(ValueError, match="token 1 at position 0 of row 1 has probability 0"):
        hmm.step(torch.tensor([[0], [1]]), None)
    scores = hmm.token_log_probs(torch.tensor([[0, 1, 0]]))
    assert scores[0, 0] == -np.inf


# ---- both: token_log_probs agrees with step; the state continues like recompute -------------------------------

@pytest.mark.parametrize("name,model,vocab", MODELS, ids=MODEL_IDS)
def test_score_is_the_log_softmax_of_step(name: str, model: LanguageModel, vocab: int) -> None:
    tokens = torch.from_numpy(np.random.default_rng(SEED).integers(0, vocab, size=(3, 8)))  # (B, T)
    scores = model.token_log_probs(tokens)  # (B, T - 1)
    for t in range(1, tokens.shape[1]):
        logits, _ = model.step(tokens[:, :t], None)  # (B, V)
        expected = torch.log_softmax(logits.double(), dim=-1).gather(1, tokens[:, t:t + 1])[:, 0]
        torch.testing.assert_close(scores[:, t - 1], expected, rtol=1e-5, atol=1e-6, msg=f"{name} t={t}")


@pytest.mark.parametrize("name,model,vocab", MODELS, ids=MODEL_IDS)
def test_state_continues_like_recompute(name: str, model: LanguageModel, vocab: int) -> None:
    tokens = torch.from_numpy(np.random.default_rng(SEED).integers(0, vocab, size=(2, 11)))  # (B, T)
    logits, state = model.step(tokens[:, :3], model.new_state(2))  # prefill
    torch.testing.assert_close(logits, model.step(tokens[:, :3], None)[0], rtol=0, atol=0)
    for start, stop in [(3, 4), (4, 6), (6, 7), (7, 11)]:  # one token and several at a time
        logits, state = model.step(tokens[:, start:stop], state)
        torch.testing.assert_close(logits, model.step(tokens[:, :stop], None)[0], rtol=1e-6, atol=1e-6,
                                   msg=f"{name} stop={stop}")


# ---- generation through GenerateMixin -------------------------------------------------------------

def _prompt(vocab: int, rows: int = 3) -> torch.Tensor:
    return torch.from_numpy(np.random.default_rng(SEED).integers(0, vocab, size=(rows, 4)))  # (B, T)


@pytest.mark.parametrize("name,model,vocab", MODELS, ids=MODEL_IDS)
def test_generate_seeded_is_reproducible(name: str, model: LanguageModel, vocab: int) -> None:
    idx = _prompt(vocab)
    options = dict(temperature=0.8, top_k=4, top_p=0.9, seed=SEED)
    first = model.generate(idx, 20, **options)
    assert first.shape == (3, 24) and torch.equal(first[:, :4], idx)
    assert int(first.min()) >= 0 and int(first.max()) < vocab
    assert torch.equal(model.generate(idx, 20, **options), first), f"{name} seed={SEED}"


@pytest.mark.parametrize("name,model,vocab", MODELS, ids=MODEL_IDS)
def test_generate_greedy(name: str, model: LanguageModel, vocab: int) -> None:
    idx = _prompt(vocab)
    greedy = model.generate(idx, 12, temperature=0)
    by_hand = idx
    for _ in range(12):  # the argmax path, recomputed from the whole context each step
        logits, _ = model.step(by_hand, None)
        by_hand = torch.cat([by_hand, logits.argmax(-1, keepdim=True)], dim=1)
    assert torch.equal(greedy, by_hand), name
    assert torch.equal(model.generate(idx, 12, temperature=0, use_cache=False), greedy), name  # cached = recompute
    assert torch.equal(model.generate(idx, 12, temperature=1.0, top_k=1, seed=SEED), greedy), name
    rows = torch.cat([model.generate(idx[b:b + 1], 12, temperature=0) for b in range(len(idx))])
    assert torch.equal(rows, greedy), name  # several rows at once = one at a time
