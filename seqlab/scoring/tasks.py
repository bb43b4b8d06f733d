"""Scores of classification and tagging runs: accuracy, macro-F1, confusion matrices and chunk F1.

Chunk F1 follows the CoNLL shared tasks' `conlleval` definition, which `seqeval` implements in its
default mode (the parity reference, tests/scoring/test_tasks.py): a chunk is a maximal run of
tags of one type that starts at a `B-` (or `S-`), at an `I-`/`E-` after `O` or after another type,
and ends before the next chunk's start; precision and recall count the chunks whose type, start
and end all match. The confusion matrix has scikit-learn's layout: rows are true labels, columns
predicted labels, both in the order of `labels`.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from seqlab.errors import DataError


def _check_pair(true: Sequence, predicted: Sequence) -> None:
    if len(true) != len(predicted):
        raise DataError(f"{len(true)} true labels but {len(predicted)} predictions")
    if not true:
        raise DataError("nothing to score: no labels")


def accuracy(true: Sequence, predicted: Sequence) -> float:
    """The fraction of predictions equal to the true label."""
    _check_pair(true, predicted)
    return sum(t == p for t, p in zip(true, predicted)) / len(true)


def confusion_matrix(true: Sequence, predicted: Sequence, labels: Sequence) -> np.ndarray:
    """counts[i, j] = how many examples of label i were predicted as label j, (L, L) int64."""
    _check_pair(true, predicted)
    index = {label: i for i, label in enumerate(labels)}
    unknown = sorted({str(x) for x in (*true, *predicted) if x not in index})
    if unknown:
        raise DataError(f"labels {unknown[:5]} are not among the {len(labels)} labels given")
    counts = np.zeros((len(labels), len(labels)), dtype=np.int64)
    for t, p in zip(true, predicted):
        counts[index[t], index[p]] += 1
    return counts


def macro_f1(true: Sequence, predicted: Sequence, labels: Sequence | None = None) -> float:
    """The unweighted mean over labels of each label's F1 (a label never true nor predicted
    scores 0, as scikit-learn's `f1_score(average="macro", zero_division=0)`)."""
    labels = sorted(set(true) | set(predicted)) if labels is None else list(labels)
    counts = confusion_matrix(true, predicted, labels)
    tp = np.diag(counts).astype(float)
    denominator = counts.sum(axis=0) + counts.sum(axis=1)  # predicted + true = 2tp + fp + fn
    f1 = np.divide(2 * tp, denominator, out=np.zeros_like(tp), where=denominator > 0)
    return float(f1.mean())


def _split_tag(tag: str) -> tuple[str, str]:
    if tag == "O" or not tag:
        return "O", ""
    prefix, _, kind = tag.partition("-")
    if not kind:  # a bare type ("NP") is read as inside that type, as conlleval does
        return "I", prefix
    return prefix, kind


def _ends(prev: str, prev_kind: str, tag: str, kind: str) -> bool:
    if prev in ("E", "S"):
        return True
    if prev in ("B", "I") and tag in ("B", "S", "O"):
        return True
    return prev != "O" and prev_kind != kind


def _starts(prev: str, prev_kind: str, tag: str, kind: str) -> bool:
    if tag in ("B", "S"):
        return True
    if tag in ("I", "E") and prev in ("E", "S", "O"):
        return True
    return tag != "O" and prev_kind != kind


def chunks(tags: Sequence[str]) -> list[tuple[str, int, int]]:
    """The chunks of one sentence's IOB tags as (type, first, last) positions, inclusive."""
    found: list[tuple[str, int, int]] = []
    prev, prev_kind, begin = "O", "", -1
    for i, tag in enumerate([*tags, "O"]):  # a closing O ends the last chunk
        prefix, kind = _split_tag(tag)
        if begin >= 0 and _ends(prev, prev_kind, prefix, kind):
            found.append((prev_kind, begin, i - 1))
            begin = -1
        if _starts(prev, prev_kind, prefix, kind):
            begin = i
        prev, prev_kind = prefix, kind
    return found


def chunk_scores(true: Sequence[Sequence[str]], predicted: Sequence[Sequence[str]]) -> dict[str, float]:
    """Precision, recall and F1 over the chunks of every sentence (micro-averaged), in [0, 1]."""
    _check_pair(true, predicted)
    gold, guess = set(), set()
    for n, (t, p) in enumerate(zip(true, predicted)):
        if len(t) != len(p):
            raise DataError(f"sentence {n}: {len(t)} true tags but {len(p)} predicted")
        gold.update((n, *chunk) for chunk in chunks(t))
        guess.update((n, *chunk) for chunk in chunks(p))
    correct = len(gold & guess)
    precision = correct / len(guess) if guess else 0.0
    recall = correct / len(gold) if gold else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return {"precision": precision, "recall": recall, "f1": f1}
