"""The sentiment experiment's linear rows: NBSVM on its own, and NBSVM stacked with a neural classifier.

NBSVM (`seqlab.nbsvm`, Wang & Manning 2012) is fitted per fold. Its n-gram order and C are
chosen on the fold's validation split from `GRID` (each candidate fitted on the training split
alone), then the chosen one is refitted on training and validation together and scored on test.

Stacking (Wolpert 1992, "Stacked generalization") combines a trained neural run with NBSVM: a
text's score is

    z = log-odds of the neural run + a · NBSVM decision value          (> 0: the second label)

with the weight a taken from `WEIGHTS` as the one most accurate on the validation split, which
neither model saw in training (the NBSVM there is the one fitted on the training split alone);
test is then scored with that a and the NBSVM refitted on training and validation. Two classes
only (MR's). A two-input logistic regression fitted on validation in place of the grid (so
choosing by log-loss, not accuracy) put less weight on NBSVM and scored 79.47% on MR's 10 folds
against the grid's 79.78%, NBSVM alone 79.50% (docs/tasks.md).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from seqlab.errors import SeqlabError
from seqlab.nbsvm import NBSVM
from seqlab.scoring.tasks import accuracy
from seqlab.tasks.data import Labelled, TaskExamples, encode
from seqlab.tasks.evaluate import predict_encoded
from seqlab.tasks.run import load_task_run, max_tokens

log = logging.getLogger(__name__)

GRID = ((2, 0.1), (2, 1.0), (3, 0.1), (3, 1.0))  # (n-gram order, C), the candidates chosen among on validation
WEIGHTS = (0.0, 1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0)  # NBSVM's weight a beside the neural log-odds


def fit_nbsvm(examples: TaskExamples, grid: Sequence[tuple[int, float]] | None = None
              ) -> tuple[NBSVM, NBSVM, dict]:
    """(the model fitted on train with the settings of `grid` (default `GRID`) best on val, the
    same refitted on train + val, what was chosen: {"ngram", "C", "val_accuracy"})."""
    if len(examples.labels) != 2:
        raise SeqlabError(f"the NBSVM rows classify two labels; this data set has {len(examples.labels)}")
    train, val = examples.train, examples.val
    best, best_model, best_accuracy = None, None, -1.0
    for ngram, c in grid or GRID:
        model = NBSVM(ngram=ngram, C=c).fit(train.inputs, train.targets)
        score = accuracy(val.targets, model.predict(val.inputs))
        log.info("NBSVM n-grams 1..%d, C %g: val accuracy %.4f", ngram, c, score)
        if score > best_accuracy:
            best, best_model, best_accuracy = (ngram, c), model, score
    refit = NBSVM(ngram=best[0], C=best[1]).fit([*train.inputs, *val.inputs], [*train.targets, *val.targets])
    return best_model, refit, {"ngram": best[0], "C": best[1], "val_accuracy": best_accuracy}


def neural_log_odds(run_dir: str | Path, *splits: Labelled) -> list[np.ndarray]:
    """For each split, (N,) log P(second label) − log P(first label) of the two-label task run at
    run_dir (loaded once)."""
    model, tokenizer, config, info = load_task_run(run_dir)
    odds = []
    for examples in splits:
        encoded = encode(examples, kind=info.kind, labels=info.labels, tokenizer=tokenizer,
                         max_len=max_tokens(config), with_targets=False, pos_tags=info.pos)
        probs = np.clip(np.asarray(predict_encoded(model, encoded), dtype=np.float64), 1e-12, None)  # (N, 2)
        odds.append(np.log(probs[:, 1]) - np.log(probs[:, 0]))
    return odds


def stack(run_dir: str | Path, examples: TaskExamples, nbsvm_train: NBSVM, nbsvm_refit: NBSVM
          ) -> tuple[float, float]:
    """(test accuracy of the neural run at run_dir stacked with NBSVM, the weight a chosen on
    validation); see the module docstring."""
    labels = examples.labels
    val, test = examples.val, examples.test
    y_val = np.array([labels.index(t) for t in val.targets])  # (N,)
    neural, neural_test = neural_log_odds(run_dir, val, test)  # (N,) each
    nbsvm = nbsvm_train.decision(val.inputs)  # (N,)
    scores = [float(np.mean(((neural + a * nbsvm) > 0) == y_val)) for a in WEIGHTS]
    a = WEIGHTS[int(np.argmax(scores))]  # the smallest of the best
    log.info("stacking: val accuracy %s for a in %s: a = %g", [round(s, 4) for s in scores], WEIGHTS, a)
    z = neural_test + a * nbsvm_refit.decision(test.inputs)
    return accuracy(test.targets, [labels[int(v > 0)] for v in z]), a


__all__ = ["GRID", "WEIGHTS", "fit_nbsvm", "neural_log_odds", "stack"]
