"""Task scores against the references: chunk F1 against `seqeval` (the CoNLL definition) on random
IOB sequences, valid and not, and macro-F1 and the confusion matrix against scikit-learn."""

from __future__ import annotations

import random

import numpy as np
import pytest

from seqlab.errors import DataError
from seqlab.scoring.tasks import accuracy, chunk_scores, chunks, confusion_matrix, macro_f1

seqeval_metrics = pytest.importorskip("seqeval.metrics")
sklearn_metrics = pytest.importorskip("sklearn.metrics")

TAGS = ["O", "B-NP", "I-NP", "B-VP", "I-VP", "B-PP", "I-PP"]


def random_sentences(seed: int, n: int = 200) -> tuple[list[list[str]], list[list[str]]]:
    rng = random.Random(seed)
    true, predicted = [], []
    for _ in range(n):
        length = rng.randint(1, 12)
        t = [rng.choice(TAGS) for _ in range(length)]
        p = [tag if rng.random() < 0.7 else rng.choice(TAGS) for tag in t]
        true.append(t)
        predicted.append(p)
    return true, predicted


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_chunk_scores_equal_seqeval(seed):
    true, predicted = random_sentences(seed)
    ours = chunk_scores(true, predicted)
    assert ours["f1"] == pytest.approx(seqeval_metrics.f1_score(true, predicted), abs=1e-12)
    assert ours["precision"] == pytest.approx(seqeval_metrics.precision_score(true, predicted), abs=1e-12)
    assert ours["recall"] == pytest.approx(seqeval_metrics.recall_score(true, predicted), abs=1e-12)


def test_chunks_of_a_worked_example():
    # I- after O starts a chunk; a type change ends one; B- after B- splits them.
    tags = ["B-NP", "I-NP", "O", "I-VP", "I-NP", "B-PP", "B-PP", "I-PP"]
    assert chunks(tags) == [("NP", 0, 1), ("VP", 3, 3), ("NP", 4, 4), ("PP", 5, 5), ("PP", 6, 7)]
    assert chunk_scores([tags], [tags])["f1"] == 1.0


@pytest.mark.parametrize("seed", [0, 1])
def test_macro_f1_and_confusion_matrix_equal_scikit_learn(seed):
    rng = np.random.default_rng(seed)
    labels = ["ADJ", "NOUN", "VERB", "X"]
    true = list(rng.choice(labels[:3], 300))
    predicted = [t if rng.random() < 0.6 else rng.choice(labels) for t in true]
    np.testing.assert_array_equal(confusion_matrix(true, predicted, labels),
                                  sklearn_metrics.confusion_matrix(true, predicted, labels=labels))
    assert macro_f1(true, predicted, labels) == pytest.approx(
        sklearn_metrics.f1_score(true, predicted, labels=labels, average="macro", zero_division=0), abs=1e-12)
    assert accuracy(true, predicted) == pytest.approx(sklearn_metrics.accuracy_score(true, predicted))


def test_mismatched_inputs_are_errors():
    with pytest.raises(DataError, match="2 true labels but 1"):
        accuracy(["a", "b"], ["a"])
    with pytest.raises(DataError, match="sentence 0"):
        chunk_scores([["O", "B-NP"]], [["O"]])
    with pytest.raises(DataError, match="not among"):
        confusion_matrix(["a"], ["z"], ["a", "b"])
