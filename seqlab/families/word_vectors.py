"""The word-vector families, fitted to the training tokens by their own compiled loops rather than
by the Trainer: word2vec (skip-gram and CBOW with negative sampling; Mikolov et al. 2013) and GloVe
(Pennington et al. 2014). See `seqlab.models.word2vec` and `seqlab.models.glove`.

They learn one vector per token id of the run's tokenizer, not next-token probabilities: they are
not language models (`Family.language_model` False), so `seqlab sample`, `inspect`, `compare` and
the bits per character of `eval` do not apply to them. The vectors are saved as model.safetensors
(`word_vectors()` gives the (V, D) matrix users query).

With the word tokenizer its special ids (the unknown word, TAB and newline) are never trained, and
TAB and newline end a sentence (windows do not cross them); with byte fallback its byte tokens (an
unknown word or odd spacing spelled in bytes) are dropped as the unknown word is; on lines (`data.sequences = "lines"`)
each line is a sentence. `train.epochs` (0: the family's default, 5 for word2vec as in word2vec.c
and gensim, 25 for GloVe) counts passes over the training split; `train.threads` (0: the free
cores) the worker threads; `train.seed` seeds the initial vectors and the sampling.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np

from seqlab.config import Config
from seqlab.config.schema import ModelSettings, _require, _require_finite
from seqlab.data import LineData, TokenData
from seqlab.errors import CheckpointError, ConfigError, SeqlabError
from seqlab.families.base import Family
from seqlab.models.glove import GloVe, GloVeSchedule
from seqlab.models.word2vec import Word2Vec, Word2VecSchedule
from seqlab.seeds import generator_seed
from seqlab.tokenizers.fallback import N_BYTES
from seqlab.training.checkpoint import load_weights, save_weights
from seqlab.training.threads import choose_threads

WORD2VEC_EPOCHS = 5  # word2vec.c's and gensim's default
GLOVE_EPOCHS = 25  # glove.c's demo


@dataclass(frozen=True)
class Word2VecConfig(ModelSettings):
    """word2vec's settings (gensim's names and defaults)."""

    family: Literal["word2vec"] = "word2vec"
    architecture: Literal["skipgram", "cbow"] = "skipgram"
    d_model: int = 100  # the vector size
    window: int = 5  # the largest window each side; each word's is drawn from 1..window
    negative: int = 5  # noise words per true pair
    min_count: int = 5  # rarer words are dropped from the text before training
    sample: float = 1e-3  # subsampling of frequent words (0: off)
    alpha: float = 0.025  # the learning rate at the start, falling linearly to min_alpha
    min_alpha: float = 0.0001

    def __post_init__(self) -> None:
        _require_finite(self, "model")
        for name in ("d_model", "window", "min_count"):
            _require(getattr(self, name) >= 1, f"model.{name}", getattr(self, name), "a positive integer")
        _require(self.negative >= 1, "model.negative", self.negative, "a positive integer (negative sampling)")
        _require(self.sample >= 0, "model.sample", self.sample, "a number of at least 0")
        _require(self.alpha > 0, "model.alpha", self.alpha, "a positive number")
        _require(0 <= self.min_alpha <= self.alpha, "model.min_alpha", self.min_alpha,
                 f"a number in [0, model.alpha = {self.alpha}]")


@dataclass(frozen=True)
class GloVeConfig(ModelSettings):
    """GloVe's settings (glove.c's names and defaults)."""

    family: Literal["glove"] = "glove"
    d_model: int = 100  # the vector size
    window: int = 10  # words counted each side, weighted 1 / distance
    min_count: int = 5  # rarer words are dropped from the text before counting
    sample: float = 0.0  # word2vec's subsampling of frequent words before counting (0: off, as glove.c)
    x_max: float = 100.0  # f(x) = min(1, (x / x_max)^alpha)
    alpha: float = 0.75
    eta: float = 0.05  # AdaGrad's learning rate

    def __post_init__(self) -> None:
        _require_finite(self, "model")
        for name in ("d_model", "window", "min_count"):
            _require(getattr(self, name) >= 1, f"model.{name}", getattr(self, name), "a positive integer")
        for name in ("x_max", "alpha", "eta"):
            _require(getattr(self, name) > 0, f"model.{name}", getattr(self, name), "a positive number")
        _require(self.sample >= 0, "model.sample", self.sample, "a number of at least 0")


def _stream(config: Config, data: TokenData | LineData, vocab_size: int
            ) -> tuple[np.ndarray, tuple[int, ...], int | None]:
    """The training ids as one stream, the ids that end a sentence, and the unknown id."""
    word = config.tokenizer.kind == "word"
    if word:  # seqlab.tokenizers.word: ids 0, 1, 2 are <unk>, TAB, newline
        breaks, unknown = (1, 2), 0
    else:
        breaks, unknown = (), None
    if isinstance(data, LineData):
        boundary = np.array([data.boundary], dtype=np.int64)
        ids = np.concatenate([piece for line in data.train for piece in (np.asarray(line, np.int64), boundary)])
        breaks = tuple(sorted({*breaks, int(data.boundary)}))
    else:
        ids = np.asarray(data.train, dtype=np.int64)
    if word and config.tokenizer.byte_fallback:  # the last 256 ids are bytes: not words, dropped as <unk> is
        ids = np.where(ids >= vocab_size - N_BYTES, unknown, ids)
    return ids, breaks, unknown


def _threads(config: Config, vocab_size: int) -> int:
    return choose_threads(config.train.threads, params=vocab_size * 100, tokens=10**6)


def _fit_word2vec(config: Config, data: TokenData | LineData, vocab_size: int) -> Word2Vec:
    m = config.model
    ids, breaks, unknown = _stream(config, data, vocab_size)
    schedule = Word2VecSchedule(architecture=m.architecture, window=m.window, negative=m.negative,
                                min_count=m.min_count, sample=m.sample, alpha=m.alpha, min_alpha=m.min_alpha,
                                epochs=config.train.epochs or WORD2VEC_EPOCHS, threads=_threads(config, vocab_size),
                                seed=generator_seed(config.train.seed) % 2**31)
    try:
        return Word2Vec(vocab_size, m.d_model).fit(ids, schedule, breaks=breaks, unknown=unknown)
    except ValueError as exc:
        raise ConfigError(f"{exc}: lower model.min_count or train on more text") from None


def _fit_glove(config: Config, data: TokenData | LineData, vocab_size: int) -> GloVe:
    m = config.model
    ids, breaks, unknown = _stream(config, data, vocab_size)
    schedule = GloVeSchedule(window=m.window, min_count=m.min_count, sample=m.sample, x_max=m.x_max, alpha=m.alpha,
                             eta=m.eta, epochs=config.train.epochs or GLOVE_EPOCHS,
                             threads=_threads(config, vocab_size), seed=generator_seed(config.train.seed) % 2**31)
    try:
        return GloVe(vocab_size, m.d_model).fit(ids, schedule, breaks=breaks, unknown=unknown)
    except ValueError as exc:
        raise ConfigError(f"{exc}: lower model.min_count or train on more text") from None


def _save(model, run_dir: Path) -> None:
    save_weights(model, Path(run_dir) / "model.safetensors")


def _loader(cls):
    def load(run_dir: Path):
        from safetensors import SafetensorError, safe_open
        path = Path(run_dir) / "model.safetensors"
        try:  # the (V, D) shape from the header, then the weights with load_weights' checks
            with safe_open(str(path), framework="pt") as f:
                shape = next(f.get_slice(k).get_shape() for k in f.keys() if len(f.get_slice(k).get_shape()) == 2)
        except (SafetensorError, OSError, StopIteration) as exc:
            raise CheckpointError(f"{path} is missing, damaged or holds no word vectors: {exc}") from None
        model = cls(*shape)
        load_weights(model, path)
        return model.eval()
    return load


def _not_scored(model, tokens, device=None, context=None):
    raise SeqlabError("a word-vector model has no next-token probabilities to score a text with")


def evaluate_vectors(model, tokenizer) -> dict[str, float | int]:
    """WordSim353 and SimLex-999 Spearman, and Google analogy accuracy (3CosAdd, 3CosMul), of the
    model's vectors of its vocabulary (the ids it trained: an untrained id is out of vocabulary),
    scored as gensim scores them (`seqlab.embeddings.evaluate`)."""
    from seqlab.embeddings import WordVectors, token_names
    from seqlab.embeddings.evaluate import data_file, evaluate_analogies, evaluate_pairs

    known = np.flatnonzero(model.known.numpy())
    names = token_names(tokenizer)
    vectors = WordVectors([names[i] for i in known], model.word_vectors().numpy()[known])
    result: dict[str, float | int] = {"words": len(known)}
    for name in ("wordsim353", "simlex999"):
        score = evaluate_pairs(vectors, data_file(name))
        result[f"{name}_spearman"], result[f"{name}_pairs"] = float(score.spearman), score.used
    total = [s for s in evaluate_analogies(vectors, data_file("analogies")) if s.section == "Total accuracy"][0]
    result.update(analogy_3cosadd=float(total.accuracy_add), analogy_3cosmul=float(total.accuracy_mul),
                  analogy_questions=total.used)
    return result


def _known_count(model) -> int:
    return int(model.known.sum()) * model.word_vectors().shape[1]


def _word_vector_family(name: str, summary: str, settings, fit, model_class) -> Family:
    """A word-vector family: fitted by its own loop, saved and loaded as plain tensors, sized by
    its trained vectors, evaluated on word similarity and analogies, never scored as a language model."""
    return Family(name=name, summary=summary, settings=settings, fit=fit, save=_save, load=_loader(model_class),
                  score=_not_scored, size=_known_count, size_unit="vector parameters", context_option=False,
                  language_model=False, evaluation=evaluate_vectors)


WORD2VEC = _word_vector_family(
    "word2vec", "word2vec word vectors: skip-gram or CBOW with negative sampling (Mikolov et al. 2013)",
    Word2VecConfig, _fit_word2vec, Word2Vec)
GLOVE = _word_vector_family(
    "glove", "GloVe word vectors: weighted least squares on log co-occurrence counts (Pennington et al. 2014)",
    GloVeConfig, _fit_glove, GloVe)
