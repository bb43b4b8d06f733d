"""The classical families, fitted to the training tokens instead of trained by gradient steps:
the n-gram language model (Shannon 1948; Kneser-Ney smoothing) and the discrete hidden Markov model
(Baum-Welch; Rabiner 1989).

- An n-gram (`NGramLM`) counts the training split's tokens once, saved in `RUN/ngram/` (JSON + npz).
- An HMM (`HMM`) runs Baum-Welch (`model.em_iterations` iterations at most, seeded by `train.seed`)
  on the training split cut into `HMM_CHUNK`-token sequences, batched; saved as `RUN/hmm.json`.

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
from seqlab.config.schema import ModelSettings, _require
from seqlab.data import TokenData
from seqlab.families.base import Family, Shorthand
from seqlab.files import atomic_write_text
from seqlab.models.hmm import HMM
from seqlab.models.ngram import NGramLM

HMM_CHUNK = 1000  # Baum–Welch sequences: the training stream cut into pieces this long, run as one batch


@dataclass(frozen=True)
class NGramConfig(ModelSettings):
    """The n-gram's settings (an `NGramLM` over the tokenizer's ids, counted on the training split)."""

    family: Literal["ngram"] = "ngram"
    order: int = 5  # n: each token is predicted from the n - 1 before it
    smoothing: Literal["mle", "add_k", "kneser_ney"] = "kneser_ney"  # interpolated modified Kneser-Ney
    add_k: float = 1.0  # smoothing add_k only: the pseudo-count (1 = Laplace)

    def __post_init__(self) -> None:
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


def _fit_ngram(config: Config, data: TokenData, vocab_size: int) -> NGramLM:
    m = config.model
    return NGramLM(m.order, vocab_size, smoothing=m.smoothing, k=m.add_k).fit(np.asarray(data.train))


def _fit_hmm(config: Config, data: TokenData, vocab_size: int) -> HMM:
    train = np.asarray(data.train)
    chunks = [train[i:i + HMM_CHUNK] for i in range(0, len(train), HMM_CHUNK)]
    model = HMM(config.model.n_states, vocab_size, seed=config.train.seed)
    return model.fit(chunks, n_iter=config.model.em_iterations)


def _score_ngram(model: NGramLM, tokens: np.ndarray, device=None, context=None) -> tuple[float, int, None]:
    return float(-model.log_probs(np.asarray(tokens)).sum()), len(tokens), None  # natural logs, one per token


def _score_hmm(model: HMM, tokens: np.ndarray, device=None, context=None) -> tuple[float, int, None]:
    return -model.score(np.asarray(tokens)), len(tokens), None  # the forward algorithm over the whole stream


def _hmm_size(model: HMM) -> int:
    K, M = model.n_states, model.n_symbols
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
    size=lambda model: model.n_ngrams,
    size_unit="n-grams",
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
    size=_hmm_size,
    size_unit="free parameters",
    units=_hmm_units,
    context_option=False,
    shorthand=(Shorthand("hmm", "shakespeare-char-hmm", "n_states"),),
)
