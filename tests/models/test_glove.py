"""GloVe (`seqlab.models.glove`, kernels in `seqlab.models.glove_kernels`): the co-occurrence counts
against a plain Python count, the compiled AdaGrad steps against a float64 numpy reference whose
gradient is torch autograd's on `glove_loss` (fast path == slow path), the loss falling with the
epochs, and vectors that learn something: on a seeded two-topic corpus each word is nearest to
words of its own topic. Then the family end to end through `seqlab train` and `seqlab embed`."""

from __future__ import annotations

from collections import defaultdict

import numpy as np
import pytest
import torch

from seqlab.cli import main
from seqlab.models import glove_kernels as kernels
from seqlab.models.glove import GloVe, GloVeSchedule, adagrad_fit, cooccurrences, glove_loss, subsample
from seqlab.models.word2vec_kernels import drop_and_bound, keep_thresholds

TOPICS = {"a": [f"a{k}" for k in range(8)], "b": [f"b{k}" for k in range(8)]}


def topic_ids(seed: int, n_sentences: int = 500, leak: float = 0.15) -> tuple[np.ndarray, dict[str, int]]:
    """A stream of sentences (id 2 ends each) of 6 to 10 words, each word of the sentence's topic
    but for a fraction `leak` from the other; ids 3.. are the 16 topic words."""
    rng = np.random.default_rng(seed)
    vocab = {w: i + 3 for i, w in enumerate(TOPICS["a"] + TOPICS["b"])}
    stream = []
    for _ in range(n_sentences):
        own, other = (TOPICS["a"], TOPICS["b"]) if rng.random() < 0.5 else (TOPICS["b"], TOPICS["a"])
        for _ in range(rng.integers(6, 11)):
            stream.append(vocab[rng.choice(other if rng.random() < leak else own)])
        stream.append(2)
    return np.array(stream, dtype=np.int64), vocab


def test_cooccurrences_equal_a_plain_python_count() -> None:
    rng = np.random.default_rng(0)
    V, window = 7, 3
    sentences = [list(rng.integers(0, V, size=n)) for n in (1, 5, 9, 2, 12)]
    words = np.array([w for s in sentences for w in s], dtype=np.int32)
    bounds = np.cumsum([0] + [len(s) for s in sentences]).astype(np.int64)
    expected: dict[tuple[int, int], float] = defaultdict(float)
    for sentence in sentences:
        for p, word in enumerate(sentence):
            for q in range(max(0, p - window), p):
                expected[word, sentence[q]] += 1.0 / (p - q)
                expected[sentence[q], word] += 1.0 / (p - q)
    rows, cols, x = cooccurrences(words, bounds, window, V)
    assert {(int(r), int(c)): float(v) for r, c, v in zip(rows, cols, x)} == pytest.approx(dict(expected))
    assert len(set(zip(rows.tolist(), cols.tolist()))) == len(x)  # each entry once


def test_subsampling_keeps_each_word_with_word2vecs_probability_and_the_sentences() -> None:
    rng = np.random.default_rng(1)
    counts = np.array([0, 0, 0, 30_000, 5_000, 300])
    words = rng.permutation(np.repeat(np.arange(6), counts)).astype(np.int32)
    bounds = np.arange(0, len(words) + 1, 7, dtype=np.int64)
    kept, kept_bounds = subsample(words, bounds, counts, 1e-2, seed=3)
    p = keep_thresholds(counts, 1e-2) / 2.0**32
    for w in (3, 4, 5):
        n = (kept == w).sum()
        assert abs(n - counts[w] * p[w]) <= 5 * np.sqrt(counts[w] * p[w] * (1 - p[w])) + 1e-9, (w, n, p[w])
    assert p[5] == 1.0 and (kept == 5).sum() == counts[5]  # a rare word is always kept
    assert kept_bounds[0] == 0 and kept_bounds[-1] == len(kept) and np.all(np.diff(kept_bounds) >= 0)
    for s in range(len(bounds) - 1):  # each sentence keeps some of its own words, in order
        remaining = iter(words[bounds[s]:bounds[s + 1]].tolist())
        assert all(w in remaining for w in kept[kept_bounds[s]:kept_bounds[s + 1]].tolist()), s


def adagrad_reference(params: list[np.ndarray], grads: list[np.ndarray], entries, x_max: float, alpha: float,
                      eta: float) -> float:
    """glove.c's AdaGrad, one entry (i, j, x) at a time, in float64 numpy; returns the summed cost."""
    W, Wc, b, bc = params
    gW, gWc, gb, gbc = grads
    cost = 0.0
    for i, j, x in entries:
        diff = W[i] @ Wc[j] + b[i] + bc[j] - np.log(x)
        fdiff = min(1.0, (x / x_max) ** alpha) * diff
        cost += 0.5 * fdiff * diff
        grad_w, grad_c = fdiff * Wc[j], fdiff * W[i]  # dJ/dw_i, dJ/dw~_j
        W[i] -= eta * grad_w / np.sqrt(gW[i])
        Wc[j] -= eta * grad_c / np.sqrt(gWc[j])
        gW[i] += (eta * grad_w) ** 2
        gWc[j] += (eta * grad_c) ** 2
        b[i] -= eta * fdiff / np.sqrt(gb[i])
        bc[j] -= eta * fdiff / np.sqrt(gbc[j])
        gb[i] += (eta * fdiff) ** 2
        gbc[j] += (eta * fdiff) ** 2
    return cost


def random_problem(seed: int, V: int = 5, D: int = 4):
    rng = np.random.default_rng(seed)
    params = [rng.normal(0, 0.3, (V, D)), rng.normal(0, 0.3, (V, D)), rng.normal(0, 0.3, V), rng.normal(0, 0.3, V)]
    grads = [np.ones_like(p) + rng.random(p.shape) for p in params]
    rows, cols = rng.integers(0, V, size=12).astype(np.int32), rng.integers(0, V, size=12).astype(np.int32)
    x = rng.uniform(0.5, 30.0, size=12)
    return params, grads, rows, cols, x


@pytest.mark.parametrize("seed", [0, 1])
def test_adagrad_steps_equal_the_float64_reference(seed) -> None:
    params, grads, rows, cols, x = random_problem(seed)
    order = np.random.default_rng(seed).permutation(len(x))
    fast = [p.astype(np.float32) for p in params + grads]
    cost = kernels.adagrad_steps(*fast, rows, cols, x, order, 10.0, 0.75, 0.05)
    expected = adagrad_reference(params, grads, [(rows[n], cols[n], x[n]) for n in order], 10.0, 0.75, 0.05)
    for ours, reference in zip(fast, params + grads):
        np.testing.assert_allclose(ours, reference, rtol=2e-5, atol=1e-6, err_msg=f"seed {seed}")
    assert cost == pytest.approx(expected, rel=1e-5)


def test_the_reference_gradient_is_autograds_on_glove_loss() -> None:
    """With squared-gradient sums of 1, the reference's first step is −eta × ∂J/∂θ of `glove_loss`
    for one entry (an entry with x > x_max and one below it)."""
    for x in (3.0, 40.0):
        params, _, _, _, _ = random_problem(2)
        tensors = [torch.tensor(p, requires_grad=True) for p in params]
        loss = glove_loss(*tensors, torch.tensor([1]), torch.tensor([3]), torch.tensor([x], dtype=torch.float64),
                          x_max=10.0, alpha=0.75)
        gradients = torch.autograd.grad(loss, tensors)
        before = [p.copy() for p in params]
        adagrad_reference(params, [np.ones_like(p) for p in params], [(1, 3, x)], 10.0, 0.75, 0.05)
        for after, start, gradient in zip(params, before, gradients):
            np.testing.assert_allclose(after - start, -0.05 * gradient.numpy(), rtol=1e-10, atol=1e-14)


def counted_topics(seed: int = 0, window: int = 3):
    ids, vocab = topic_ids(seed)
    V = len(vocab) + 3
    words, bounds = drop_and_bound(ids, np.arange(V) >= 3, np.isin(np.arange(V), [1, 2]), 1 << 30)
    return cooccurrences(words, bounds, window, V), vocab


def test_the_loss_falls_with_the_epochs() -> None:
    (rows, cols, x), vocab = counted_topics()
    V, known = len(vocab) + 3, np.arange(len(vocab) + 3) >= 3
    losses = []
    for epochs in (0, 2, 10):
        params = adagrad_fit(rows, cols, x, V, 8, GloVeSchedule(x_max=10.0, epochs=epochs, seed=1), known)
        tensors = [torch.from_numpy(p).double() for p in params]
        losses.append(float(glove_loss(*tensors, torch.from_numpy(rows).long(), torch.from_numpy(cols).long(),
                                       torch.from_numpy(x), x_max=10.0, alpha=0.75)))
    assert losses[2] < 0.5 * losses[1] < 0.5 * losses[0], losses


def fit(seed: int = 1, threads: int = 1) -> tuple[GloVe, dict[str, int]]:
    ids, vocab = topic_ids(0)
    schedule = GloVeSchedule(window=3, min_count=1, x_max=10.0, epochs=30, threads=threads, seed=seed)
    return GloVe(len(vocab) + 3, 16).fit(ids, schedule, breaks=(1, 2), unknown=0), vocab


def test_vectors_of_a_topic_are_nearest_each_other() -> None:
    model, vocab = fit()
    vectors = model.word_vectors().numpy()[list(vocab.values())]  # (16, D): topic a, then b
    unit = vectors / np.linalg.norm(vectors, axis=1, keepdims=True)
    cosine = unit @ unit.T
    same = np.kron(np.eye(2), np.ones((8, 8))).astype(bool)
    np.fill_diagonal(cosine, -np.inf)
    nearest = cosine.argmax(axis=1)
    assert all(same[k, nearest[k]] for k in range(16)), f"nearest {nearest}"
    np.fill_diagonal(cosine, np.nan)
    within, across = np.nanmean(cosine[same]), np.nanmean(cosine[~same])
    assert within > across + 0.3, (within, across)


def test_one_thread_and_a_seed_give_the_same_vectors() -> None:
    first, _ = fit(seed=5)
    again, _ = fit(seed=5)
    other, _ = fit(seed=6)
    for name in ("W", "W_context", "bias", "context_bias"):
        torch.testing.assert_close(getattr(first, name), getattr(again, name), rtol=0, atol=0)
    assert not torch.equal(first.W, other.W)


def test_words_outside_the_vocabulary_keep_zero_vectors() -> None:
    ids, vocab = topic_ids(1, n_sentences=100)
    rare = len(vocab) + 3
    ids = np.concatenate([ids, [0, 0, rare, 1, rare, 2]])
    model = GloVe(rare + 2, 8).fit(ids, GloVeSchedule(window=2, min_count=3, epochs=1), breaks=(1, 2), unknown=0)
    never = [0, 1, 2, rare, rare + 1]
    assert not model.known[never].any() and model.known[list(vocab.values())].all()
    for name in ("W", "W_context", "bias", "context_bias"):
        assert not getattr(model, name)[never].any(), name
    with pytest.raises(ValueError, match="min_count = 1000"):
        GloVe(rare + 2, 8).fit(ids, GloVeSchedule(min_count=1000), breaks=(1, 2), unknown=0)


# --- the family through the command line --------------------------------------------------------


def write_run_config(path, corpus, **model) -> str:
    settings = {"family": "glove", "d_model": 16, "window": 3, "min_count": 2, "x_max": 10.0, **model}
    lines = "".join(f"{k} = {v!r}\n".replace("'", '"') for k, v in settings.items())
    path.write_text(f'[data]\ncorpus = "{corpus}"\nval_fraction = 0.05\n\n[tokenizer]\nkind = "word"\n'
                    f'vocab_size = 1000\n\n[model]\n{lines}\n[train]\nepochs = 30\nthreads = 1\nseed = 3\n',
                    encoding="utf-8")
    return str(path)


@pytest.fixture(scope="module")
def topic_corpus(tmp_path_factory):
    ids, vocab = topic_ids(2)
    names = {i: w for w, i in vocab.items()}
    text = " ".join("\n" if i == 2 else names[i] for i in ids.tolist()).replace(" \n ", "\n")
    path = tmp_path_factory.mktemp("corpus") / "topics.txt"
    path.write_text(text.strip() + "\n", encoding="utf-8")
    return path


def test_train_then_embed_neighbours(topic_corpus, tmp_path, capsys, monkeypatch) -> None:
    monkeypatch.setenv("SEQLAB_CACHE", str(tmp_path / "cache"))
    config = write_run_config(tmp_path / "glove.toml", topic_corpus)
    run = tmp_path / "run"
    assert main(["train", config, "--out", str(run), "--no-progress"]) == 0
    capsys.readouterr()
    assert main(["embed", str(run), "--neighbors", "b5", "--top", "5"]) == 0
    neighbours = [line.split()[1] for line in capsys.readouterr().out.strip().splitlines()]
    assert len(neighbours) == 5 and all(w in TOPICS["b"] and w != "b5" for w in neighbours), neighbours


@pytest.mark.parametrize(("model", "message"), [
    ({"window": 0}, "model.window"),
    ({"x_max": 0.0}, "model.x_max"),
    ({"eta": -1.0}, "model.eta"),
    ({"sample": -1e-3}, "model.sample"),
    ({"negative": 5}, "negative"),
    ({"min_count": 100000}, "no word occurs min_count = 100000 times"),
])
def test_bad_settings_are_one_line_errors(model, message, topic_corpus, tmp_path, capsys, monkeypatch) -> None:
    monkeypatch.setenv("SEQLAB_CACHE", str(tmp_path / "cache"))
    config = write_run_config(tmp_path / "bad.toml", topic_corpus, **model)
    code = main(["train", config, "--out", str(tmp_path / "run"), "--no-progress", "--quiet"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and err[0].startswith("seqlab: error: ") and message in err[0], err
