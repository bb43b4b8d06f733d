"""Tests of `seqlab.models.HMM`: brute-force enumeration on tiny models, the lectures' weather
example, parity with `hmmlearn.hmm.CategoricalHMM`, Baum–Welch monotonicity, long sequences, each
for both numerics ("compiled" kernels and the numpy "reference"), and the compiled kernels equal
to the reference on 1 and 2 threads."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import torch

from seqlab.models import hmm_kernels
from seqlab.models.hmm import HMM

NUMERICS = ["compiled", "reference"]

WEATHER = dict(startprob=[0.6, 0.4], transmat=[[0.7, 0.3], [0.4, 0.6]],
               emissionprob=[[0.1, 0.4, 0.5], [0.6, 0.3, 0.1]])  # Rainy, Sunny; walk, shop, clean


def _random_model(seed: int, K: int, M: int, numerics: str = "compiled") -> HMM:
    return HMM(K, M, seed=seed, numerics=numerics)


def _sequences(seed: int, M: int, lengths: list[int]) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    return [rng.integers(0, M, size=n) for n in lengths]


def _joint_log_probs(hmm: HMM, seq: np.ndarray) -> dict[tuple[int, ...], float]:
    """log P(path, seq) for every state path: the brute-force reference."""
    out = {}
    for path in itertools.product(range(hmm.n_states), repeat=len(seq)):
        p = hmm.startprob[path[0]] * hmm.emissionprob[path[0], seq[0]]
        for t in range(1, len(seq)):
            p *= hmm.transmat[path[t - 1], path[t]] * hmm.emissionprob[path[t], seq[t]]
        out[path] = np.log(p)
    return out


@pytest.mark.parametrize("numerics", NUMERICS)
@pytest.mark.parametrize("seed,K,T", [(0, 2, 1), (1, 2, 6), (2, 3, 5), (3, 3, 6)])
def test_brute_force_likelihood_posteriors_viterbi(seed: int, K: int, T: int, numerics: str) -> None:
    hmm = _random_model(seed, K, 4, numerics)
    seq = _sequences(seed, 4, [T])[0]
    joint = _joint_log_probs(hmm, seq)
    log_total = np.logaddexp.reduce(list(joint.values()))
    assert hmm.score(seq) == pytest.approx(log_total, rel=1e-12), f"seed={seed}"
    gamma = np.zeros((T, K))
    for path, lp in joint.items():
        gamma[np.arange(T), path] += np.exp(lp - log_total)
    np.testing.assert_allclose(hmm.posteriors(seq), gamma, rtol=1e-10, atol=1e-12)
    best = max(joint, key=joint.get)
    path, log_prob = hmm.viterbi(seq)
    assert tuple(path.tolist()) == best, f"seed={seed}"
    assert log_prob == pytest.approx(joint[best], rel=1e-12)


@pytest.mark.parametrize("numerics", NUMERICS)
def test_batched_equals_one_by_one(numerics: str) -> None:
    hmm = _random_model(4, 3, 5, numerics)
    seqs = _sequences(4, 5, [7, 1, 12, 3, 12])
    np.testing.assert_allclose(hmm.log_likelihoods(seqs), [hmm.score(s) for s in seqs], rtol=1e-12)
    for s, post, (path, lp) in zip(seqs, hmm.posteriors(seqs), hmm.viterbi(seqs)):
        np.testing.assert_allclose(post, hmm.posteriors(s), rtol=1e-12)
        np.testing.assert_allclose(post.sum(1), 1.0, rtol=1e-12)
        single_path, single_lp = hmm.viterbi(s)
        np.testing.assert_array_equal(path, single_path)
        assert lp == pytest.approx(single_lp, rel=1e-12)


@pytest.mark.parametrize("numerics", NUMERICS)
def test_two_dimensional_array_is_a_batch_of_rows(numerics: str) -> None:
    hmm = _random_model(6, 3, 5, numerics)
    rows = np.stack(_sequences(6, 5, [9, 9, 9]))  # (B, T)
    np.testing.assert_allclose(hmm.log_likelihoods(rows), [hmm.score(r) for r in rows], rtol=1e-12)


@pytest.mark.parametrize("numerics", NUMERICS)
def test_weather_example(numerics: str) -> None:
    hmm = HMM(**WEATHER, numerics=numerics)
    walk_shop_clean = np.array([0, 1, 2])
    path, log_prob = hmm.viterbi(walk_shop_clean)
    assert path.tolist() == [1, 0, 0]  # Sunny, Rainy, Rainy
    assert np.exp(log_prob) == pytest.approx(0.01344, rel=1e-12)
    assert np.exp(hmm.score(walk_shop_clean)) == pytest.approx(0.033612, rel=1e-12)


@pytest.mark.parametrize("numerics", NUMERICS)
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_baum_welch_never_lowers_likelihood(seed: int, numerics: str) -> None:
    hmm = _random_model(seed, 4, 6, numerics)
    seqs = _sequences(seed + 10, 6, [40, 25, 1, 60])
    hmm.fit(seqs, n_iter=30, tol=-1.0)
    history = np.array(hmm.history_)
    assert len(history) == 30
    assert np.all(np.diff(history) >= -1e-9 * np.abs(history[1:])), f"seed={seed}"


def test_fit_restarts_keep_the_best() -> None:
    seqs = _sequences(5, 4, [30, 30, 30])
    single = _random_model(0, 3, 4).fit(seqs, n_iter=20)
    multi = _random_model(0, 3, 4).fit(seqs, n_iter=20, n_restarts=4, seed=1)
    assert multi.history_[-1] >= single.history_[-1] - 1e-9
    assert multi.score(seqs) >= multi.history_[-1] - 1e-9  # the M-step after the last E-step helps


def _hmmlearn_copy(hmm: HMM, **kwargs):
    hmmlearn_hmm = pytest.importorskip("hmmlearn.hmm")
    ref = hmmlearn_hmm.CategoricalHMM(n_components=hmm.n_states, n_features=hmm.n_symbols,
                                      init_params="", **kwargs)
    ref.startprob_, ref.transmat_, ref.emissionprob_ = hmm.startprob, hmm.transmat, hmm.emissionprob
    return ref


@pytest.mark.parametrize("numerics", NUMERICS)
@pytest.mark.parametrize("seed,K,M", [(0, 3, 5), (1, 5, 8), (2, 8, 65)])
def test_parity_with_hmmlearn(seed: int, K: int, M: int, numerics: str) -> None:
    hmm = _random_model(seed, K, M, numerics)
    seqs = _sequences(seed, M, [20, 1, 33, 7, 50])
    X, lengths = np.concatenate(seqs)[:, None], [len(s) for s in seqs]
    ref = _hmmlearn_copy(hmm, params="")
    assert hmm.score(seqs) == pytest.approx(ref.score(X, lengths), rel=1e-8), f"seed={seed}"
    ref_log_prob, ref_path = ref.decode(X, lengths)
    results = hmm.viterbi(seqs)
    np.testing.assert_array_equal(np.concatenate([p for p, _ in results]), ref_path)
    assert sum(lp for _, lp in results) == pytest.approx(ref_log_prob, rel=1e-8)
    np.testing.assert_allclose(np.concatenate(hmm.posteriors(seqs)), ref.predict_proba(X, lengths),
                               rtol=1e-8, atol=1e-12)
    ref_em = _hmmlearn_copy(hmm, params="ste", n_iter=1).fit(X, lengths)
    hmm.fit(seqs, n_iter=1)
    np.testing.assert_allclose(hmm.startprob, ref_em.startprob_, rtol=1e-8, atol=1e-14)
    np.testing.assert_allclose(hmm.transmat, ref_em.transmat_, rtol=1e-8, atol=1e-14)
    np.testing.assert_allclose(hmm.emissionprob, ref_em.emissionprob_, rtol=1e-8, atol=1e-14)


@pytest.mark.parametrize("numerics", NUMERICS)
def test_baum_welch_iterations_match_hmmlearn(numerics: str) -> None:
    """Several iterations on a ragged batch (the reference's E-steps reuse the previous one's
    arrays)."""
    hmm = _random_model(3, 4, 7, numerics)
    seqs = _sequences(3, 7, [31, 2, 18, 31, 9])
    X, lengths = np.concatenate(seqs)[:, None], [len(s) for s in seqs]
    ref = _hmmlearn_copy(hmm, params="ste", n_iter=5, tol=-np.inf, implementation="scaling").fit(X, lengths)
    hmm.fit(seqs, n_iter=5, tol=-1.0)
    np.testing.assert_allclose(hmm.history_, ref.monitor_.history, rtol=1e-10)
    np.testing.assert_allclose(hmm.transmat, ref.transmat_, rtol=1e-8, atol=1e-14)
    np.testing.assert_allclose(hmm.emissionprob, ref.emissionprob_, rtol=1e-8, atol=1e-14)


@pytest.mark.parametrize("numerics", NUMERICS)
def test_equal_length_batch_equals_ragged_batch(numerics: str) -> None:
    """Equal lengths take the unsliced path of the Viterbi recursion; a longer sequence beside them
    forces the sliced one (every step has fewer running sequences than the batch). Both agree."""
    hmm = _random_model(11, 4, 6, numerics)
    rows = _sequences(11, 6, [15, 15, 15])
    ragged = rows + _sequences(12, 6, [23])
    np.testing.assert_allclose(hmm.log_likelihoods(rows), hmm.log_likelihoods(ragged)[:3], rtol=1e-12)
    for equal, sliced in zip(hmm.posteriors(rows), hmm.posteriors(ragged)):
        np.testing.assert_allclose(equal, sliced, rtol=1e-12)
    for (path, log_prob), (sliced_path, sliced_log_prob) in zip(hmm.viterbi(rows), hmm.viterbi(ragged)):
        np.testing.assert_array_equal(path, sliced_path)
        assert log_prob == pytest.approx(sliced_log_prob, rel=1e-12)


def test_viterbi_in_blocks_equals_one_block(monkeypatch) -> None:
    """Viterbi runs large batches in blocks of sequences; any block width gives the same paths."""
    from seqlab.models import hmm_numerics
    hmm = _random_model(13, 3, 5, "reference")
    seqs = _sequences(13, 5, [12, 3, 12, 7, 1, 9, 12])
    whole = hmm.viterbi(seqs)
    for width in (1, 2, 3):  # blocks of `width` sequences: K^2 * width scores per step
        monkeypatch.setattr(hmm_numerics, "_VITERBI_BLOCK", hmm.n_states ** 2 * width)
        for (path, log_prob), (block_path, block_log_prob) in zip(whole, hmm.viterbi(seqs)):
            np.testing.assert_array_equal(path, block_path)
            assert log_prob == block_log_prob, f"width={width}"


@pytest.mark.parametrize("lengths", [[9, 9, 9, 9], [12, 11, 12, 10, 12], [12, 3, 12, 7, 1, 9, 12]])
def test_posteriors_written_in_place_equal_the_padded_gamma(lengths: list[int]) -> None:
    """`posteriors` writes alpha and gamma straight into its per-sequence result (strided views of
    a padded array for equal or nearly equal lengths, a row gather and scatter otherwise); it
    equals the padded (T, K, B) gamma of the Baum–Welch E-step, bit for bit, and its arrays do not
    overlap."""
    from seqlab.models import hmm_numerics
    hmm = _random_model(17, 3, 5, "reference")
    seqs = _sequences(17, 5, lengths)
    batch = hmm_numerics.pad(seqs)
    gamma, _, _ = hmm._e_step(batch, transitions=False)
    posteriors = hmm.posteriors(seqs)
    for expected, got, seq in zip(hmm_numerics.unpad(gamma, batch), posteriors, seqs):
        assert got.shape == (len(seq), hmm.n_states) and got.flags.c_contiguous
        np.testing.assert_array_equal(got, expected)
    posteriors[0][:] = -1.0  # writing one sequence's posteriors leaves the others alone
    assert all((p >= 0).all() for p in posteriors[1:])


def _sparse_model(seed: int, K: int, M: int) -> dict:
    """Random parameters with about a third of the entries 0 (each row keeps one nonzero entry)."""
    rng = np.random.default_rng(seed)

    def rows(n_rows: int, n_cols: int) -> np.ndarray:
        p = rng.dirichlet(np.ones(n_cols), n_rows) * (rng.random((n_rows, n_cols)) > 0.35)
        p[np.arange(n_rows), rng.integers(0, n_cols, n_rows)] += 0.1  # no empty row
        return p / p.sum(1, keepdims=True)

    return {"startprob": rows(1, K)[0], "transmat": rows(K, K), "emissionprob": rows(K, M)}


@pytest.mark.parametrize("threads", [1, 2])
@pytest.mark.parametrize("seed,K,M", [(0, 2, 3), (1, 5, 7), (2, 9, 11), (3, 17, 6)])
def test_compiled_equals_reference(seed: int, K: int, M: int, threads: int, monkeypatch) -> None:
    """The compiled kernels give the reference's scores, posteriors and one Baum–Welch step to
    1e-10, and its Viterbi paths and log-probs exactly, on models with zero entries (log 0 = -inf in
    Viterbi) and sequences of lengths 1 to 40, run as many small blocks of lanes on 1 or 2 threads.
    K = 9 and 17 leave a remainder after the kernels' products eight rows at a time."""
    params = _sparse_model(seed, K, M)
    compiled, reference = HMM(**params), HMM(**params, numerics="reference")
    lengths = [1, 40, 1, 7] + np.random.default_rng(seed).integers(1, 41, size=16).tolist()
    seqs = [compiled.sample(n, seed=seed * 100 + i)[0] for i, n in enumerate(lengths)]  # possible
    # Blocks of at most 3 sequences and 60 lanes x steps: widths 1 to 3, the last block shorter.
    monkeypatch.setattr(hmm_kernels, "_LANES", 3)
    monkeypatch.setattr(hmm_kernels, "_BLOCK_STEPS", 60)
    previous = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        np.testing.assert_allclose(compiled.log_likelihoods(seqs), reference.log_likelihoods(seqs),
                                   rtol=1e-10, err_msg=f"seed={seed}")
        for got, expected in zip(compiled.posteriors(seqs), reference.posteriors(seqs)):
            np.testing.assert_allclose(got, expected, rtol=1e-10, atol=1e-14, err_msg=f"seed={seed}")
        for (path, log_prob), (ref_path, ref_log_prob) in zip(compiled.viterbi(seqs),
                                                              reference.viterbi(seqs)):
            np.testing.assert_array_equal(path, ref_path, err_msg=f"seed={seed}")
            assert log_prob == ref_log_prob, f"seed={seed}"
        compiled.fit(seqs, n_iter=1)
        reference.fit(seqs, n_iter=1)
    finally:
        torch.set_num_threads(previous)
    np.testing.assert_allclose(compiled.history_, reference.history_, rtol=1e-10)
    for name in ("startprob", "transmat", "emissionprob"):
        np.testing.assert_allclose(getattr(compiled, name), getattr(reference, name), rtol=1e-10,
                                   atol=1e-14, err_msg=f"{name}, seed={seed}")


def test_compiled_results_do_not_depend_on_threads() -> None:
    """Blocks are fixed by the lengths, and their counts are summed in a fixed order: 1 and 2
    threads give the same numbers bit for bit."""
    hmm = _random_model(19, 6, 9)
    seqs = _sequences(19, 9, [1 + (7 * i) % 50 for i in range(150)])  # three blocks of 64 lanes
    previous, results = torch.get_num_threads(), []
    try:
        for threads in (1, 2):
            torch.set_num_threads(threads)
            fitted = _random_model(19, 6, 9).fit(seqs, n_iter=2, tol=-1.0)
            results.append([hmm.log_likelihoods(seqs), np.concatenate(hmm.posteriors(seqs)),
                            fitted.transmat, fitted.emissionprob])
    finally:
        torch.set_num_threads(previous)
    for one, two in zip(*results):
        np.testing.assert_array_equal(one, two)


def test_unknown_numerics_raise() -> None:
    with pytest.raises(ValueError, match="numerics"):
        HMM(**WEATHER, numerics="fast")


@pytest.mark.parametrize("numerics", NUMERICS)
def test_impossible_sequence_scores_minus_infinity_alone(numerics: str) -> None:
    """An observation no state can emit gives log-likelihood -inf to its own sequence only."""
    hmm = HMM(startprob=[1.0, 0.0], transmat=[[1.0, 0.0], [0.0, 1.0]],  # the chain stays in state 0
              emissionprob=[[0.5, 0.5, 0.0], [0.0, 0.0, 1.0]], numerics=numerics)
    possible, impossible = np.array([0, 1, 1, 0]), np.array([0, 2, 1, 1, 0])
    log_likelihoods = hmm.log_likelihoods([possible, impossible, possible[:2]])
    assert log_likelihoods[1] == -np.inf
    np.testing.assert_allclose(log_likelihoods[[0, 2]], [4 * np.log(0.5), 2 * np.log(0.5)], rtol=1e-12)
    np.testing.assert_allclose(hmm.posteriors([impossible, possible])[1], hmm.posteriors(possible),
                               rtol=1e-12)


def _log_space_forward(hmm: HMM, seq: np.ndarray) -> float:
    """An independent log-space forward pass (no scaling), the numerical reference."""
    log_a, log_e = np.log(hmm.transmat), np.log(hmm.emissionprob)
    log_alpha = np.log(hmm.startprob) + log_e[:, seq[0]]
    for symbol in seq[1:]:
        log_alpha = np.logaddexp.reduce(log_alpha[:, None] + log_a, axis=0) + log_e[:, symbol]
    return float(np.logaddexp.reduce(log_alpha))


@pytest.mark.parametrize("numerics", NUMERICS)
def test_long_sequences_are_stable(numerics: str) -> None:
    hmm = _random_model(7, 4, 10, numerics)
    seq = _sequences(7, 10, [10_000])[0]
    expected = _log_space_forward(hmm, seq)
    assert expected < -10_000  # far below float64's smallest positive number in linear space
    assert hmm.score(seq) == pytest.approx(expected, rel=1e-10)
    long_seq = _sequences(8, 10, [200_000])[0]
    score = hmm.score(long_seq)
    assert np.isfinite(score) and score < 0
    path, log_prob = hmm.viterbi(long_seq[:20_000])
    assert np.isfinite(log_prob) and path.shape == (20_000,)


def test_fit_supervised_recovers_parameters() -> None:
    true = HMM(startprob=[0.5, 0.3, 0.2], transmat=[[0.8, 0.1, 0.1], [0.2, 0.7, 0.1], [0.1, 0.3, 0.6]],
               emissionprob=[[0.6, 0.2, 0.1, 0.1], [0.1, 0.6, 0.2, 0.1], [0.1, 0.1, 0.2, 0.6]])
    samples = [true.sample(200, seed=s) for s in range(300)]
    learned = HMM(3, 4).fit_supervised([x for x, _ in samples], [z for _, z in samples])
    np.testing.assert_allclose(learned.transmat, true.transmat, atol=0.02)
    np.testing.assert_allclose(learned.emissionprob, true.emissionprob, atol=0.02)
    np.testing.assert_allclose(learned.startprob, true.startprob, atol=0.1)


def test_sample_follows_the_model() -> None:
    hmm = HMM(**WEATHER)
    symbols, states = hmm.sample(50_000, seed=3)
    assert symbols.shape == states.shape == (50_000,)
    rainy = states == 0
    np.testing.assert_allclose(np.bincount(symbols[rainy], minlength=3) / rainy.sum(),
                               hmm.emissionprob[0], atol=0.02)
    assert np.array_equal(hmm.sample(100, seed=5)[0], hmm.sample(100, seed=5)[0])


def test_save_load_round_trip(tmp_path) -> None:
    hmm = _random_model(9, 3, 6)
    hmm.save(tmp_path / "hmm.json")
    loaded = HMM.load(tmp_path / "hmm.json")
    for name in ("startprob", "transmat", "emissionprob"):
        np.testing.assert_array_equal(getattr(loaded, name), getattr(hmm, name))
    assert HMM.from_dict(hmm.to_dict()).score([0, 1, 5]) == hmm.score([0, 1, 5])


@pytest.mark.parametrize("kwargs,message", [
    (dict(), "n_states and n_symbols"),
    (dict(n_states=0, n_symbols=3), "n_states and n_symbols"),
    (dict(startprob=[0.5, 0.5]), "all of startprob"),
    (dict(WEATHER, startprob=[0.6, 0.5]), "startprob rows must sum to 1"),
    (dict(WEATHER, transmat=[[1.0, 0.0]]), "transmat must have shape"),
    (dict(WEATHER, emissionprob=[[0.5, 0.5], [1.5, -0.5]]), "non-negative"),
    (dict(WEATHER, n_states=3), "n_states=3"),
])
def test_bad_parameters_raise(kwargs: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        HMM(**kwargs)


@pytest.mark.parametrize("sequences,message", [
    ([0, 3], r"values must lie in \[0, 3\)"),
    (np.array([0.5, 1.0]), "integer"),
    ([], "non-empty list"),
    ([np.array([], dtype=int)], "non-empty 1-D"),
])
def test_bad_sequences_raise(sequences, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        HMM(**WEATHER).score(sequences)


def test_bad_fit_arguments_raise() -> None:
    hmm = HMM(**WEATHER)
    with pytest.raises(ValueError, match="n_iter"):
        hmm.fit([0, 1], n_iter=0)
    with pytest.raises(ValueError, match="same number and lengths"):
        hmm.fit_supervised([[0, 1, 2]], [[0, 1]])
    with pytest.raises(ValueError, match="n_steps"):
        hmm.sample(0)
