"""NBSVM: a linear support vector machine on naive-Bayes-weighted n-gram features.

Wang & Manning 2012, "Baselines and Bigrams: Simple, Good Sentiment and Topic Classification"
(ACL), section 2.3. A text is the binary indicator vector x̂ of the n-grams it holds (1..n words,
each counted once). For two classes, with f the indicator rows of the training texts,

    p = α + Σ_{label = positive} f,   q = α + Σ_{label = negative} f
    r = log((p / ‖p‖₁) / (q / ‖q‖₁))                    the naive-Bayes log-count ratio, (F,)

and an L2-regularised linear SVM with the squared hinge loss is trained on x̃ = r ∘ x̂:

    min_{w, b}  ½ (‖w‖² + b²) + C Σ_i max(0, 1 − y_i (w·x̃_i + b))²          y_i ∈ {−1, +1}

which is liblinear's problem (scikit-learn's `LinearSVC` with `intercept_scaling=1`, the bias
penalised like a weight): the parity test compares the two on random data. We solve it in the
primal by L-BFGS over sparse matrices in float64 (the loss is convex and once differentiable).
Wang & Manning then interpolate the weights towards their mean magnitude w̄ = ‖w‖₁ / F,

    w' = (1 − β) w̄ + β w,   b' = β b                       (β = 0.25 in the paper)

which trusts the naive-Bayes ratio more where the data are few. Text of more than two classes is
one problem per class against the rest. The decision value of x̂ is v · x̂ + b' with v = w' ∘ r,
stored as one weight per n-gram. Deviation: n-grams are taken over lowercased whitespace words,
with no sentence-boundary markers (MR's text is already tokenised).

Dimensions: N texts · F n-grams of the training vocabulary · P problems (1 for two classes, else
one per class).

    model = NBSVM(ngram=2).fit(texts, labels)
    model.predict(["a gorgeous , witty film"])   # ['pos']
    model.decision(texts)                         # (N,) for two classes, (N, K) otherwise
"""

from __future__ import annotations

import json
import logging
import warnings
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from seqlab.errors import DataError
from seqlab.files import atomic_folder

logger = logging.getLogger(__name__)

_FORMAT = "seqlab.nbsvm"
SEPARATOR = " "  # between the words of an n-gram (words never hold one: they are split on whitespace)


def ngrams(text: str, n: int) -> set[str]:
    """The 1..n-grams of a text's lowercased whitespace words, each once.

    >>> sorted(ngrams("Not bad", 2))
    ['bad', 'not', 'not bad']
    """
    words = text.lower().split()
    return {SEPARATOR.join(words[i:i + k]) for k in range(1, n + 1) for i in range(len(words) - k + 1)}


def _csr(crow: torch.Tensor, cols: torch.Tensor, values: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """A sparse CSR tensor, without torch's warnings that the layout is in beta (the operations used
    here, products with dense matrices and the transpose, are tested against dense ones)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        return torch.sparse_csr_tensor(crow, cols, values, size=size, check_invariants=False)


@contextmanager
def one_thread() -> Iterator[None]:
    """torch on one thread for the block: its sparse products lose time to threading at these sizes
    (MR's 9,600 × 280,000 rows: x @ w took about 1 ms on one thread and 14 ms on two, on a
    2-core Intel Xeon)."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def indicator_rows(texts: Sequence[str], index: dict[str, int], n: int) -> torch.Tensor:
    """(N, F) sparse CSR float64 of 0/1: which known n-grams each text holds (unknown ones dropped)."""
    crow, cols = [0], []
    for text in texts:
        row = sorted(index[g] for g in ngrams(text, n) if g in index)
        cols += row
        crow.append(len(cols))
    return _csr(torch.tensor(crow, dtype=torch.int64), torch.tensor(cols, dtype=torch.int64),
                torch.ones(len(cols), dtype=torch.float64), (len(texts), len(index)))


def log_count_ratio(x: torch.Tensor, y: torch.Tensor, alpha: float) -> torch.Tensor:
    """r (F,) of indicator rows x (N, F) for targets y (N,) in {−1, +1} (see the module docstring)."""
    p = alpha + (x.t() @ (y > 0).double().unsqueeze(1)).squeeze(1)  # (F,)
    q = alpha + (x.t() @ (y < 0).double().unsqueeze(1)).squeeze(1)  # (F,)
    return torch.log(p / p.sum()) - torch.log(q / q.sum())


def _scale_columns(x: torch.Tensor, r: torch.Tensor) -> torch.Tensor:
    """x ∘ r for sparse CSR rows x (N, F) and column weights r (F,)."""
    return _csr(x.crow_indices(), x.col_indices(), r[x.col_indices()], tuple(x.shape))


def squared_hinge_svm(x: torch.Tensor, y: torch.Tensor, C: float, *, tol: float = 1e-8,
                      max_iter: int = 2000) -> tuple[torch.Tensor, float]:
    """(w (F,), b) minimising ½ (‖w‖² + b²) + C Σ max(0, 1 − y (x w + b))² for sparse CSR x (N, F)
    and y (N,) in {−1, +1}, by L-BFGS; stops when no gradient entry exceeds `tol` times the first
    gradient's largest (liblinear stops on the gradient norm in the same relative way)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        xt = x.t().to_sparse_csr()  # (F, N): products with the transpose run as fast as with x
    params = torch.zeros(x.shape[1] + 1, dtype=torch.float64, requires_grad=True)  # w then b

    def loss_and_grad() -> torch.Tensor:
        w, b = params.detach()[:-1], params.detach()[-1]
        slack = (1 - y * ((x @ w.unsqueeze(1)).squeeze(1) + b)).clamp_min(0)  # (N,)
        pull = -2 * C * y * slack  # (N,) d loss / d score
        grad = torch.cat([w + (xt @ pull.unsqueeze(1)).squeeze(1), (b + pull.sum()).reshape(1)])
        params.grad = grad
        return 0.5 * (params.detach() @ params.detach()) + C * (slack @ slack)

    with torch.no_grad():
        loss_and_grad()
        scale = float(params.grad.abs().max())
    optimizer = torch.optim.LBFGS([params], lr=1, max_iter=max_iter, history_size=20,
                                  tolerance_grad=tol * max(scale, 1e-12), tolerance_change=0,
                                  line_search_fn="strong_wolfe")
    with torch.no_grad():
        optimizer.step(loss_and_grad)
    out = params.detach()
    return out[:-1].clone(), float(out[-1])


class NBSVM:
    """An NBSVM text classifier (see the module docstring): `fit`, `decision`, `predict`, `save`, `load`."""

    def __init__(self, *, ngram: int = 2, C: float = 1.0, beta: float = 0.25, alpha: float = 1.0) -> None:
        if ngram < 1 or C <= 0 or not 0 <= beta <= 1 or alpha <= 0:
            raise DataError(f"NBSVM needs ngram >= 1, C > 0, 0 <= beta <= 1 and alpha > 0; got ngram={ngram}, "
                            f"C={C}, beta={beta}, alpha={alpha}")
        self.ngram, self.C, self.beta, self.alpha = ngram, C, beta, alpha
        self.labels: tuple[str, ...] = ()
        self.vocabulary: list[str] = []  # n-gram of each feature, in index order
        self.weights = torch.zeros(0, 0, dtype=torch.float64)  # (P, F): v = w' ∘ r of each problem
        self.bias = torch.zeros(0, dtype=torch.float64)  # (P,)

    def fit(self, texts: Sequence[str], labels: Sequence[str]) -> NBSVM:
        """Learn the n-gram vocabulary, each problem's ratio r and SVM, and interpolate (β)."""
        if len(texts) != len(labels) or not texts:
            raise DataError(f"NBSVM.fit needs as many labels as texts, at least one: {len(texts)} texts, "
                            f"{len(labels)} labels")
        self.labels = tuple(sorted(set(labels)))
        if len(self.labels) < 2:
            raise DataError(f"NBSVM.fit needs two classes or more; the training labels are all {self.labels[0]!r}")
        grams = sorted(set().union(*(ngrams(t, self.ngram) for t in texts)))
        self.vocabulary = grams
        x = indicator_rows(texts, self._index(), self.ngram)  # (N, F)
        positives = self.labels[1:] if len(self.labels) == 2 else self.labels
        weights, biases = [], []
        for positive in positives:
            y = torch.tensor([1.0 if label == positive else -1.0 for label in labels], dtype=torch.float64)  # (N,)
            r = log_count_ratio(x, y, self.alpha)
            with one_thread():
                w, b = squared_hinge_svm(_scale_columns(x, r), y, self.C)
            mean_magnitude = w.abs().mean()
            weights.append(((1 - self.beta) * mean_magnitude + self.beta * w) * r)
            biases.append(self.beta * b)
        self.weights, self.bias = torch.stack(weights), torch.tensor(biases, dtype=torch.float64)
        logger.info("NBSVM: %d texts, %d %d-grams, %d classes", len(texts), len(grams), self.ngram, len(self.labels))
        return self

    def _index(self) -> dict[str, int]:
        return {g: i for i, g in enumerate(self.vocabulary)}

    def decision(self, texts: Sequence[str]) -> np.ndarray:
        """Decision values: (N,) for two classes (> 0: the second label), else (N, K), one per class."""
        if not self.labels:
            raise DataError("this NBSVM has not been fitted: call fit first")
        x = indicator_rows(texts, self._index(), self.ngram)  # (N, F)
        with one_thread():
            scores = (x @ self.weights.t()) + self.bias  # (N, P)
        return scores.squeeze(1).numpy() if len(self.labels) == 2 else scores.numpy()

    def predict(self, texts: Sequence[str]) -> list[str]:
        scores = self.decision(texts)
        picks = (scores > 0).astype(int) if scores.ndim == 1 else scores.argmax(1)
        return [self.labels[i] for i in picks]

    def save(self, folder: str | Path) -> None:
        """Write nbsvm.json (settings, labels, n-grams) and nbsvm.safetensors (weights, bias) into
        `folder`, which is replaced whole, atomically."""
        with atomic_folder(folder) as staging:
            meta = {"format": _FORMAT, "version": 1, "ngram": self.ngram, "C": self.C, "beta": self.beta,
                    "alpha": self.alpha, "labels": list(self.labels), "vocabulary": self.vocabulary}
            (staging / "nbsvm.json").write_text(json.dumps(meta), encoding="utf-8")
            save_file({"weights": self.weights.contiguous(), "bias": self.bias.contiguous()},
                      str(staging / "nbsvm.safetensors"))

    @classmethod
    def load(cls, folder: str | Path) -> NBSVM:
        folder = Path(folder)
        try:
            meta = json.loads((folder / "nbsvm.json").read_text(encoding="utf-8"))
            tensors = load_file(str(folder / "nbsvm.safetensors"))
        except (OSError, ValueError, SafetensorError) as exc:
            raise DataError(f"cannot read an NBSVM from {folder}: {exc}") from None
        if not isinstance(meta, dict) or meta.get("format") != _FORMAT or meta.get("version") != 1:
            raise DataError(f"{folder / 'nbsvm.json'} is not a version-1 {_FORMAT} document")
        model = cls(ngram=meta["ngram"], C=meta["C"], beta=meta["beta"], alpha=meta["alpha"])
        model.labels, model.vocabulary = tuple(meta["labels"]), list(meta["vocabulary"])
        model.weights, model.bias = tensors.get("weights"), tensors.get("bias")
        problems = 1 if len(model.labels) == 2 else len(model.labels)
        if (model.weights is None or model.bias is None or tuple(model.weights.shape) != (problems, len(model.vocabulary))
                or tuple(model.bias.shape) != (problems,)):
            raise DataError(f"{folder / 'nbsvm.safetensors'} does not fit its nbsvm.json ({problems} problems, "
                            f"{len(model.vocabulary)} n-grams)")
        return model


__all__ = ["NBSVM", "indicator_rows", "log_count_ratio", "ngrams", "squared_hinge_svm"]
