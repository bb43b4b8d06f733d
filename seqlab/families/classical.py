"""The classical families, fitted to the training tokens instead of trained by gradient steps:
the n-gram language model (Shannon 1948; Kneser-Ney smoothing) and the discrete hidden Markov model
(Baum-Welch; Rabiner 1989).

- An n-gram (`NGramLM`) counts the training split's tokens once, saved in `RUN/ngram/` (JSON + npz).
- An HMM (`HMM`) runs Baum-Welch (`model.em_iterations` iterations at most, seeded by `train.seed`)
  on the training split cut into `HMM_CHUNK`-token sequences, batched; saved as `RUN/hmm.json`.

On lines (`data.sequences = "lines"`) each line is its own sequence between boundary tokens, as
makemore counts its bigrams: order − 1 boundaries of context before a line for the n-gram, one for
the HMM, and one after it.

Both are scored on the validation split as ONE stream in which every token is predicted (the n-gram
from up to order − 1 tokens before it, the HMM from everything before it through its forward
filter), so their bits per character compare directly with the neural families'.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np
import torch

from seqlab.config import Config
from seqlab.config.schema import ModelSettings, _require, _require_finite
from seqlab.data import LineData, TokenData
from seqlab.errors import ConfigError
from seqlab.families.base import Family, Shorthand
from seqlab.files import atomic_write_text
from seqlab.models.hmm import HMM
from seqlab.models.ngram import NGramLM, max_order

HMM_CHUNK = 1000  # Baum–Welch sequences: the training stream cut into pieces this long, run as one batch


@dataclass(frozen=True)
class NGramConfig(ModelSettings):
    """The n-gram's settings (an `NGramLM` over the tokenizer's ids, counted on the training split)."""

    family: Literal["ngram"] = "ngram"
    order: int = 5  # n: each token is predicted from the n - 1 before it
    smoothing: Literal["mle", "add_k", "kneser_ney"] = "kneser_ney"  # interpolated modified Kneser-Ney
    add_k: float = 1.0  # smoothing add_k only: the pseudo-count (1 = Laplace)

    def __post_init__(self) -> None:
        _require_finite(self, "model")
        _require(self.order >= 1, "model.order", self.order, "a positive integer")
        _require(self.add_k > 0, "model.add_k", self.add_k, "a positive number")


@dataclass(frozen=True)
class HMMConfig(ModelSettings):
    """The HMM's settings (a discrete HMM over the tokenizer's ids, Baum-Welch on the training split)."""

    family: Literal["hmm"] = "hmm"
    n_states: int = 64
    em_iterations: int = 50  # at most; Baum-Welch stops earlier when an iteration gains < 1e-4

    def __post_init__(self) -> None:
        for name in ("n_states", "em_iterations"):
            _require(getattr(self, name) >= 1, f"model.{name}", getattr(self, name), "a positive integer")


def _ngram_padding(settings: NGramConfig) -> int:
    """Boundaries before a line beyond the opening one: the n-gram's whole context (order − 1) is
    boundaries at a line's first token."""
    return max(settings.order - 2, 0)


def _framed(lines: list[np.ndarray], boundary: int, opening: int) -> list[np.ndarray]:
    """Each line as its own sequence between boundary tokens: `opening` before it, one after."""
    return [np.concatenate([np.full(opening, boundary), line, [boundary]]).astype(np.int64) for line in lines]


def _fit_ngram(config: Config, data: TokenData | LineData, vocab_size: int) -> NGramLM:
    m = config.model
    if m.order > max_order(vocab_size):  # checked before counting: the keys would overflow int64
        raise ConfigError(f"model.order = {m.order} is too large for a vocabulary of {vocab_size} tokens: the "
                          f"largest order that fits is {max_order(vocab_size)} ((V + 2)^order must stay below 2^63)")
    model = NGramLM(m.order, vocab_size, smoothing=m.smoothing, k=m.add_k)
    if isinstance(data, LineData):  # makemore's counting: order - 1 boundaries of context, one to close
        return model.fit(_framed(data.train, data.boundary, 1 + _ngram_padding(m)))
    return model.fit(np.asarray(data.train))


def _fit_hmm(config: Config, data: TokenData | LineData, vocab_size: int) -> HMM:
    if isinstance(data, LineData):  # each line its own sequence, opened and closed by the boundary
        chunks = _framed(data.train, data.boundary, 1)
    else:
        train = np.asarray(data.train)
        chunks = [train[i:i + HMM_CHUNK] for i in range(0, len(train), HMM_CHUNK)]
    model = HMM(config.model.n_states, vocab_size, seed=config.train.seed)
    return model.fit(chunks, n_iter=config.model.em_iterations)


def _score_ngram(model: NGramLM, tokens: np.ndarray, device=None, context=None) -> tuple[float, int, None]:
    return float(-model.log_probs(np.asarray(tokens)).sum()), len(tokens), None  # natural logs, one per token


def _score_hmm(model: HMM, tokens: np.ndarray, device=None, context=None) -> tuple[float, int, None]:
    return -model.score(np.asarray(tokens)), len(tokens), None  # the forward algorithm over the whole stream


def _score_ngram_lines(model: NGramLM, lines: list[np.ndarray], boundary: int, settings: NGramConfig
                       ) -> tuple[float, int]:
    """Every token of every line and its closing boundary, from the boundary-padded context."""
    opening = 1 + _ngram_padding(settings)
    framed = _framed(lines, boundary, opening)
    log_probs = model.log_probs(framed)  # every position of the concatenated sequences
    keep = np.concatenate([np.arange(len(f)) >= opening for f in framed])  # not the opening boundaries
    return float(-log_probs[keep].sum()), int(keep.sum())


def _score_hmm_lines(model: HMM, lines: list[np.ndarray], boundary: int, settings: HMMConfig) -> tuple[float, int]:
    """log p(line, closing boundary | opening boundary) for every line: the framed sequence's
    likelihood less the opening boundary's."""
    framed = _framed(lines, boundary, 1)
    opening = float(np.log(model.startprob @ model.emissionprob[:, boundary]))
    return float(-(model.log_likelihoods(framed).sum() - len(framed) * opening)), sum(len(f) - 1 for f in framed)


def _hmm_size(model: HMM) -> int:
    return _hmm_free_parameters(model.n_states, model.n_symbols)


def _hmm_free_parameters(K: int, M: int) -> int:
    """Free parameters of a K-state HMM over M symbols: start, transition and emission rows, each
    summing to 1."""
    return (K - 1) + K * (K - 1) + K * (M - 1)


def _hmm_units(model: HMM, ids: torch.Tensor) -> dict[str, torch.Tensor]:
    """The state posteriors P(state_t = k | text), (T, K): each state is a unit."""
    return {"state posteriors": torch.from_numpy(np.asarray(model.posteriors(ids[0].cpu().numpy()))).float()}


NGRAM = Family(
    name="ngram",
    summary="n-gram language model with interpolated modified Kneser-Ney smoothing (Chen & Goodman 1998)",
    settings=NGramConfig,
    fit=_fit_ngram,
    save=lambda model, run_dir: model.save(Path(run_dir) / "ngram"),
    load=lambda run_dir: NGramLM.load(Path(run_dir) / "ngram"),
    score=_score_ngram,
    score_lines=_score_ngram_lines,
    line_padding=_ngram_padding,
    size=lambda model: model.n_ngrams,
    size_unit="n-grams",
    traced=("backoff",),
    context_option=False,
    shorthand=(Shorthand("ngram", "shakespeare-char-ngram", "order"),),
)

HMM_FAMILY = Family(
    name="hmm",
    summary="discrete hidden Markov model fitted by Baum-Welch (Rabiner 1989)",
    settings=HMMConfig,
    fit=_fit_hmm,
    save=lambda model, run_dir: atomic_write_text(Path(run_dir) / "hmm.json", json.dumps(model.to_dict())),
    load=lambda run_dir: HMM.load(Path(run_dir) / "hmm.json"),
    score=_score_hmm,
    score_lines=_score_hmm_lines,
    size=_hmm_size,
    size_unit="free parameters",
    planned_size=lambda settings, vocab_size: _hmm_free_parameters(settings.n_states, vocab_size),
    units=_hmm_units,
    traced=("trellis",),
    context_option=False,
    shorthand=(Shorthand("hmm", "shakespeare-char-hmm", "n_states"),),
)
