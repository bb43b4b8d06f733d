"""word2vec (`seqlab.models.word2vec`, kernels in `seqlab.models.word2vec_kernels`): the compiled
skip-gram and CBOW steps against the plain float64 reference step (fast path == slow path), the
counting, sentence-cutting, subsampling and noise kernels against plain numpy and gensim, and
training that must learn something: on a seeded two-topic corpus each word's vector is nearest to
words of its own topic. Then the family end to end through `seqlab train` and `seqlab embed`."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from seqlab.cli import main
from seqlab.models import word2vec_kernels as kernels
from seqlab.models.word2vec import Word2Vec, Word2VecSchedule, chunk_starts, reference_pair_step

TOPICS = {"a": [f"a{k}" for k in range(8)], "b": [f"b{k}" for k in range(8)]}


def topic_ids(seed: int, n_sentences: int = 600) -> tuple[np.ndarray, dict[str, int]]:
    """A stream of sentences (id 2 ends each), each of 6 to 10 words of one topic; ids 3.. are the
    16 topic words, id 0 (unknown) and id 1 never occur."""
    rng = np.random.default_rng(seed)
    names = TOPICS["a"] + TOPICS["b"]
    vocab = {w: i + 3 for i, w in enumerate(names)}
    stream = []
    for _ in range(n_sentences):
        topic = TOPICS["a" if rng.random() < 0.5 else "b"]
        stream += [vocab[w] for w in rng.choice(topic, size=rng.integers(6, 11))] + [2]
    return np.array(stream, dtype=np.int64), vocab


def noise_table(V: int, seed: int) -> tuple:
    counts = np.random.default_rng(seed).integers(1, 50, size=V)
    return kernels.noise_alias(counts)


def draws(noise: tuple, rng: np.uint64, n: int) -> list[int]:
    """The first `n` noise words the kernels draw from generator state `rng`."""
    out = []
    for _ in range(n):
        word, rng = kernels._draw(*noise, np.uint64(rng))  # a uint64 again, not a Python int
        out.append(int(word))
    return out


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_skipgram_pair_equals_the_float64_reference(seed) -> None:
    rng = np.random.default_rng(seed)
    V, D, negative, alpha = 6, 5, 8, 0.2
    syn0, syn1 = rng.normal(0, 0.6, (V, D)), rng.normal(0, 0.6, (V, D))
    noise, center, context = noise_table(V, seed), 2, 4
    state = next(np.uint64(s) for s in range(1000) if center in draws(noise, np.uint64(s), negative))
    # ... a generator state whose noise words include the center word: the skip is exercised
    fast0, fast1 = syn0.astype(np.float32), syn1.astype(np.float32)
    scratch = np.empty(D, np.float32), np.empty(D, np.float32)  # l1, work
    after = kernels.skipgram_pair(fast0, fast1, center, context, noise, negative, alpha, *scratch, state)
    drawn = draws(noise, state, negative)
    reference_pair_step(syn0, syn1, [context], center, drawn, alpha)
    np.testing.assert_allclose(fast0, syn0, rtol=1e-5, atol=1e-6, err_msg=f"seed {seed}")
    np.testing.assert_allclose(fast1, syn1, rtol=1e-5, atol=1e-6, err_msg=f"seed {seed}")
    assert after == draws_state(noise, state, negative)


def draws_state(noise: tuple, rng: np.uint64, n: int) -> np.uint64:
    for _ in range(n):
        _, rng = kernels._draw(*noise, np.uint64(rng))
    return np.uint64(rng)


@pytest.mark.parametrize("seed", [0, 1])
def test_cbow_word_equals_the_float64_reference(seed) -> None:
    rng = np.random.default_rng(seed)
    V, D, negative, alpha = 6, 5, 6, 0.2
    syn0, syn1 = rng.normal(0, 0.6, (V, D)), rng.normal(0, 0.6, (V, D))
    noise, state = noise_table(V, seed), np.uint64(99 + seed)
    words = np.array([5, 1, 3, 0, 3, 4, 2], dtype=np.int64)  # position 3 predicted from 1..5; 3 twice
    i, lo, hi = 3, 1, 6
    fast0, fast1 = syn0.astype(np.float32), syn1.astype(np.float32)
    kernels.cbow_word(fast0, fast1, words, i, lo, hi, noise, negative, alpha, np.empty(D, np.float32),
                      np.empty(D, np.float32), state)
    context = [int(words[j]) for j in range(lo, hi) if j != i]
    reference_pair_step(syn0, syn1, context, int(words[i]), draws(noise, state, negative), alpha)
    np.testing.assert_allclose(fast0, syn0, rtol=1e-5, atol=1e-6, err_msg=f"seed {seed}")
    np.testing.assert_allclose(fast1, syn1, rtol=1e-5, atol=1e-6, err_msg=f"seed {seed}")


def test_reference_step_is_the_gradient_of_the_objective() -> None:
    """The reference itself: each update is alpha times the gradient of log σ(u_t · h) (label 1) or
    log σ(−u_t · h) (label 0), taken by torch autograd, with the same in-turn order."""
    rng = np.random.default_rng(3)
    syn0, syn1 = rng.normal(0, 0.5, (4, 3)), rng.normal(0, 0.5, (4, 3))
    expected0, expected1 = syn0.copy(), syn1.copy()
    reference_pair_step(syn0, syn1, [1], 0, [2, 3], alpha=0.1)
    h = torch.tensor(expected0[1], requires_grad=True)
    work = torch.zeros(3, dtype=torch.float64)
    for t, sign in [(0, 1.0), (2, -1.0), (3, -1.0)]:
        u = torch.tensor(expected1[t], requires_grad=True)
        objective = torch.nn.functional.logsigmoid(sign * (h * u).sum())
        grad_h, grad_u = torch.autograd.grad(objective, (h, u))
        work += 0.1 * grad_h
        expected1[t] += 0.1 * grad_u.numpy()
    expected0[1] += work.numpy()
    np.testing.assert_allclose(syn0, expected0, rtol=1e-12)
    np.testing.assert_allclose(syn1, expected1, rtol=1e-12)


def test_count_and_sentence_kernels_equal_plain_python() -> None:
    rng = np.random.default_rng(4)
    ids = rng.integers(0, 9, size=300)
    np.testing.assert_array_equal(kernels.count_ids(ids, 9), np.bincount(ids, minlength=9))
    known = np.array([False, False, False, True, True, False, True, True, True])
    breaks = np.zeros(9, dtype=np.bool_)
    breaks[[1, 2]] = True
    words, bounds = kernels.drop_and_bound(ids, known, breaks, 7)
    sentences, current = [], []
    for w in ids.tolist():
        if (breaks[w] or len(current) >= 7) and current:
            sentences.append(current)
            current = []
        if known[w]:
            current.append(w)
    sentences += [current] if current else []
    assert words.tolist() == [w for s in sentences for w in s]
    assert np.diff(bounds).tolist() == [len(s) for s in sentences]
    starts = chunk_starts(bounds, chunk_words=20)
    assert starts[0] == 0 and starts[-1] == len(bounds) - 1 and np.all(np.diff(starts) > 0)


def test_keep_thresholds_are_word2vec_c_and_gensim_subsampling() -> None:
    """p(keep w) = (sqrt(c_w / t) + 1) t / c_w, t = sample × (words kept by min_count), capped at 1;
    compared with the formula and with the `sample_int` gensim stores for each word."""
    from gensim.models import Word2Vec as GensimWord2Vec
    rng = np.random.default_rng(5)
    words = [f"w{k}" for k in range(30)]
    sentences = [list(rng.choice(words, size=12, p=np.arange(30, 0, -1) / 465)) for _ in range(400)]
    model = GensimWord2Vec(min_count=3, sample=1e-2, vector_size=4, workers=1)
    model.build_vocab(sentences)
    counts = np.array([model.wv.get_vecattr(w, "count") for w in model.wv.index_to_key])
    ours = kernels.keep_thresholds(counts, 1e-2) / 2.0**32
    t = 1e-2 * counts.sum()
    np.testing.assert_allclose(ours, np.minimum(1.0, (np.sqrt(counts / t) + 1) * t / counts), rtol=1e-9)
    gensim_p = np.array([model.wv.get_vecattr(w, "sample_int") for w in model.wv.index_to_key]) / (2.0**32 - 1)
    np.testing.assert_allclose(ours, gensim_p, atol=1e-9)
    assert ours.min() < 0.6 and ours.max() == 1.0  # frequent words subsampled, rare ones always kept
    np.testing.assert_array_equal(kernels.keep_thresholds(counts, 0.0), 2**32)


def test_training_keeps_each_word_with_its_keep_probability() -> None:
    rng = np.random.default_rng(6)
    counts = np.array([0, 0, 0, 20_000, 4_000, 500, 100])
    ids = rng.permutation(np.repeat(np.arange(7), counts))
    bounds = np.arange(0, len(ids) + 1, 50, dtype=np.int64)
    keep = kernels.keep_thresholds(counts, 1e-2)
    p = keep / 2.0**32
    syn0, syn1 = np.zeros((7, 2), np.float32), np.zeros((7, 2), np.float32)
    kept = kernels.train_chunk(syn0, syn1, ids.astype(np.int32), bounds, keep, kernels.noise_alias(counts), 1, 1,
                               0.0, False, np.uint64(7))
    expected, spread = (counts * p).sum(), np.sqrt((counts * p * (1 - p)).sum())
    assert abs(kept - expected) < 5 * spread, (kept, expected, spread)


def test_noise_distribution_is_count_to_the_three_quarters() -> None:
    counts = np.array([0, 0, 0, 1000, 300, 50, 7, 1, 0, 120])
    noise = kernels.noise_alias(counts)
    expected = counts**0.75 / (counts**0.75).sum()
    np.testing.assert_allclose(kernels.alias_probabilities(*noise, len(counts)), expected, rtol=1e-6, atol=1e-9)
    n, state, drawn = 40_000, np.uint64(11), []
    for _ in range(n):
        word, state = kernels._draw(*noise, np.uint64(state))
        drawn.append(word)
    frequency = np.bincount(drawn, minlength=len(counts)) / n
    spread = np.sqrt(expected * (1 - expected) / n)
    assert np.all(np.abs(frequency - expected) <= 5 * spread), (frequency, expected)
    with pytest.raises(ValueError, match="at least one word"):
        kernels.noise_alias(np.zeros(4, dtype=np.int64))


def fit(architecture: str, seed: int = 1, threads: int = 1, **extra) -> tuple[Word2Vec, dict[str, int]]:
    ids, vocab = topic_ids(0)
    schedule = Word2VecSchedule(architecture=architecture, window=3, negative=5, min_count=1, sample=0.0,
                                epochs=3, threads=threads, seed=seed, **extra)
    return Word2Vec(len(vocab) + 3, 16).fit(ids, schedule, breaks=(1, 2), unknown=0), vocab


@pytest.mark.parametrize("architecture", ["skipgram", "cbow"])
def test_vectors_of_a_topic_are_nearest_each_other(architecture) -> None:
    model, vocab = fit(architecture)
    vectors = model.word_vectors().numpy()[list(vocab.values())]  # (16, D): topic a, then b
    unit = vectors / np.linalg.norm(vectors, axis=1, keepdims=True)
    cosine = unit @ unit.T
    same = np.kron(np.eye(2), np.ones((8, 8))).astype(bool)
    np.fill_diagonal(cosine, -np.inf)
    nearest = cosine.argmax(axis=1)
    assert all(same[k, nearest[k]] for k in range(16)), f"{architecture}: nearest {nearest}"
    np.fill_diagonal(cosine, np.nan)
    within, across = np.nanmean(cosine[same]), np.nanmean(cosine[~same])
    assert within > across + 0.3, (architecture, within, across)


def test_one_thread_and_a_seed_give_the_same_vectors() -> None:
    first, _ = fit("skipgram", seed=5)
    again, _ = fit("skipgram", seed=5)
    other, _ = fit("skipgram", seed=6)
    torch.testing.assert_close(first.input_vectors, again.input_vectors, rtol=0, atol=0)
    torch.testing.assert_close(first.output_vectors, again.output_vectors, rtol=0, atol=0)
    assert not torch.equal(first.input_vectors, other.input_vectors)


def test_two_threads_train_every_word() -> None:
    model, vocab = fit("skipgram", threads=2)
    assert model.known.sum() == len(vocab) and bool((model.word_vectors()[list(vocab.values())] != 0).all())


def test_words_outside_the_vocabulary_keep_zero_vectors() -> None:
    ids, vocab = topic_ids(1, n_sentences=200)
    rare = len(vocab) + 3
    ids = np.concatenate([ids, [0, 0, rare, 1, rare, 2]])  # unknown, and a word seen twice
    schedule = Word2VecSchedule(window=2, negative=2, min_count=3, sample=0.0, epochs=1, seed=1)
    model = Word2Vec(rare + 2, 8).fit(ids, schedule, breaks=(1, 2), unknown=0)
    never = [0, 1, 2, rare, rare + 1]  # unknown, TAB, newline, under min_count, absent
    assert not model.known[never].any() and model.known[list(vocab.values())].all()
    assert torch.equal(model.word_vectors()[never], torch.zeros(len(never), 8))
    assert model.counts[never].sum() == 0 and model.counts[3:rare].sum() == sum(c in vocab.values() for c in ids)
    with pytest.raises(ValueError, match="min_count = 1000"):
        Word2Vec(rare + 2, 8).fit(ids, Word2VecSchedule(min_count=1000), breaks=(1, 2), unknown=0)


# --- the family through the command line --------------------------------------------------------


def write_run_config(path, corpus, **model) -> str:
    settings = {"family": "word2vec", "d_model": 16, "window": 3, "min_count": 2, "sample": 0.0, **model}
    lines = "".join(f"{k} = {v!r}\n".replace("'", '"') for k, v in settings.items())
    path.write_text(f'[data]\ncorpus = "{corpus}"\nval_fraction = 0.05\n\n[tokenizer]\nkind = "word"\n'
                    f'vocab_size = 1000\n\n[model]\n{lines}\n[train]\nepochs = 3\nthreads = 1\nseed = 3\n',
                    encoding="utf-8")
    return str(path)


@pytest.fixture(scope="module")
def topic_corpus(tmp_path_factory):
    ids, vocab = topic_ids(2)
    names = {i: w for w, i in vocab.items()}
    lines = " ".join("\n" if i == 2 else names[i] for i in ids.tolist()).replace(" \n ", "\n")
    path = tmp_path_factory.mktemp("corpus") / "topics.txt"
    path.write_text(lines.strip() + "\n", encoding="utf-8")
    return path


def test_train_then_embed_neighbours(topic_corpus, tmp_path, capsys, monkeypatch) -> None:
    monkeypatch.setenv("SEQLAB_CACHE", str(tmp_path / "cache"))
    config = write_run_config(tmp_path / "w2v.toml", topic_corpus)
    run = tmp_path / "run"
    assert main(["train", config, "--out", str(run), "--no-progress"]) == 0
    capsys.readouterr()
    assert main(["embed", str(run), "--neighbors", "a3", "--top", "5"]) == 0
    neighbours = [line.split()[1] for line in capsys.readouterr().out.strip().splitlines()]
    assert len(neighbours) == 5 and all(w in TOPICS["a"] and w != "a3" for w in neighbours), neighbours


@pytest.mark.parametrize(("model", "message"), [
    ({"window": 0}, "model.window"),
    ({"negative": 0}, "model.negative"),
    ({"sample": -1.0}, "model.sample"),
    ({"min_alpha": 1.0}, "model.min_alpha"),
    ({"architecture": "glove"}, "model.architecture"),
    ({"min_count": 100000}, "no word occurs min_count = 100000 times"),
])
def test_bad_settings_are_one_line_errors(model, message, topic_corpus, tmp_path, capsys, monkeypatch) -> None:
    monkeypatch.setenv("SEQLAB_CACHE", str(tmp_path / "cache"))
    config = write_run_config(tmp_path / "bad.toml", topic_corpus, **model)
    code = main(["train", config, "--out", str(tmp_path / "run"), "--no-progress", "--quiet"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and err[0].startswith("seqlab: error: ") and message in err[0], err
