"""NBSVM (`seqlab.nbsvm`) against scikit-learn: the SVM equals liblinear's `LinearSVC`, and the whole
classifier equals NBSVM assembled from scikit-learn's parts (binary n-gram counts, the log-count
ratio in numpy, `LinearSVC`, Wang & Manning's interpolation); saving and bad input."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from seqlab.errors import DataError
from seqlab.nbsvm import NBSVM, indicator_rows, log_count_ratio, ngrams, squared_hinge_svm

sklearn_svm = pytest.importorskip("sklearn.svm", reason="scikit-learn (a test dependency) is the reference")
from sklearn.feature_extraction.text import CountVectorizer  # noqa: E402

WORDS = "good bad film plot dull witty not fun awful great boring moving a the".split()


def texts_and_labels(n: int, seed: int = 0, classes=("neg", "pos")):
    """Random texts whose label leans on a few words, so that the classes are learnable but not separable."""
    rng = np.random.default_rng(seed)
    texts, labels = [], []
    for _ in range(n):
        words = list(rng.choice(WORDS, size=rng.integers(2, 9)))
        label = classes[int(rng.integers(len(classes)))]
        if rng.random() < 0.7:
            words.append({"neg": "dull", "pos": "witty", "mixed": "plot"}[label])
        texts.append(" ".join(words))
        labels.append(label)
    return texts, labels


def reference_nbsvm(texts, labels, ngram, C, beta=0.25, alpha=1.0):
    """NBSVM from scikit-learn's parts: (vectorizer, v (F,), b') for two classes."""
    vectorizer = CountVectorizer(binary=True, ngram_range=(1, ngram), tokenizer=str.split, token_pattern=None)
    x = vectorizer.fit_transform(texts).toarray().astype(np.float64)  # (N, F)
    y = np.array([1.0 if label == sorted(set(labels))[1] else -1.0 for label in labels])
    p, q = alpha + x[y > 0].sum(0), alpha + x[y < 0].sum(0)
    r = np.log(p / p.sum()) - np.log(q / q.sum())
    svm = sklearn_svm.LinearSVC(C=C, loss="squared_hinge", tol=1e-12, max_iter=1_000_000).fit(x * r, y)
    w, b = svm.coef_[0], svm.intercept_[0]
    return vectorizer, ((1 - beta) * np.abs(w).mean() + beta * w) * r, beta * b


def test_the_svm_equals_liblinear():
    rng = np.random.default_rng(1)
    x = (rng.random((80, 30)) < 0.3) * rng.normal(size=(80, 30))  # (N, F), mostly zeros
    y = np.where(x[:, :3].sum(1) + 0.5 * rng.normal(size=80) > 0, 1.0, -1.0)
    for C in (0.05, 1.0, 20.0):
        reference = sklearn_svm.LinearSVC(C=C, loss="squared_hinge", tol=1e-12, max_iter=1_000_000).fit(x, y)
        w, b = squared_hinge_svm(torch.tensor(x).to_sparse_csr(), torch.tensor(y), C, tol=1e-10)
        np.testing.assert_allclose(w.numpy(), reference.coef_[0], atol=1e-6)
        assert b == pytest.approx(reference.intercept_[0], abs=1e-6)


@pytest.mark.parametrize("ngram,C", [(1, 0.1), (2, 1.0), (3, 0.5)])
def test_nbsvm_equals_one_built_from_scikit_learn(ngram, C):
    texts, labels = texts_and_labels(120)
    model = NBSVM(ngram=ngram, C=C).fit(texts, labels)
    vectorizer, v, b = reference_nbsvm(texts, labels, ngram, C)
    assert model.vocabulary == list(vectorizer.get_feature_names_out())
    np.testing.assert_allclose(model.weights[0].numpy(), v, atol=1e-5)
    assert float(model.bias[0]) == pytest.approx(b, abs=1e-5)
    unseen, _ = texts_and_labels(40, seed=2)
    unseen.append("words never seen")
    expected = vectorizer.transform(unseen).toarray() @ v + b
    np.testing.assert_allclose(model.decision(unseen), expected, atol=1e-5)
    assert model.predict(unseen) == ["pos" if z > 0 else "neg" for z in expected]


def test_the_log_count_ratio_by_hand():
    # Two positive texts hold feature 0, the negative one feature 1; α = 1.
    x = torch.tensor([[1.0, 0.0], [1.0, 0.0], [0.0, 1.0]], dtype=torch.float64).to_sparse_csr()
    r = log_count_ratio(x, torch.tensor([1.0, 1.0, -1.0], dtype=torch.float64), 1.0)
    p, q = np.array([3.0, 1.0]), np.array([1.0, 2.0])
    np.testing.assert_allclose(r.numpy(), np.log(p / 4) - np.log(q / 3))


def test_indicator_rows_count_each_ngram_once():
    index = {g: i for i, g in enumerate(sorted(ngrams("good good film", 2)))}  # film, good, good film, good good
    rows = indicator_rows(["good good film", "film unknown"], index, 2).to_dense()
    assert rows.tolist() == [[1, 1, 1, 1], [1, 0, 0, 0]]


def test_more_than_two_classes_are_one_problem_each():
    texts, labels = texts_and_labels(150, classes=("mixed", "neg", "pos"))
    model = NBSVM(ngram=2).fit(texts, labels)
    scores = model.decision(texts)
    assert scores.shape == (150, 3) and model.weights.shape[0] == 3
    assert model.predict(texts) == [model.labels[i] for i in scores.argmax(1)]
    accuracy = np.mean([g == t for g, t in zip(model.predict(texts), labels)])
    assert accuracy > 0.6  # well above a third: the label words are learnt


def test_save_and_load_give_the_same_model(tmp_path):
    texts, labels = texts_and_labels(60)
    model = NBSVM(ngram=2, C=0.3, beta=0.5).fit(texts, labels)
    model.save(tmp_path / "nb")
    again = NBSVM.load(tmp_path / "nb")
    assert (again.ngram, again.C, again.beta, again.labels) == (2, 0.3, 0.5, ("neg", "pos"))
    np.testing.assert_array_equal(again.decision(texts), model.decision(texts))
    (tmp_path / "nb" / "nbsvm.json").write_text('{"format": "something else"}')
    with pytest.raises(DataError, match="not a version-1 seqlab.nbsvm"):
        NBSVM.load(tmp_path / "nb")
    (tmp_path / "nb" / "nbsvm.safetensors").write_bytes(b"damaged")
    with pytest.raises(DataError, match="cannot read an NBSVM"):
        NBSVM.load(tmp_path / "nb")


def test_bad_input_is_a_clear_error():
    with pytest.raises(DataError, match="ngram >= 1"):
        NBSVM(ngram=0)
    with pytest.raises(DataError, match="as many labels as texts"):
        NBSVM().fit(["a", "b"], ["x"])
    with pytest.raises(DataError, match="two classes or more"):
        NBSVM().fit(["a", "b"], ["x", "x"])
    with pytest.raises(DataError, match="not been fitted"):
        NBSVM().predict(["a"])
