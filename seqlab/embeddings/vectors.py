"""Word vectors: the rows of an embedding matrix, named by the tokens they stand for, and queried by
cosine similarity — the nearest neighbours of a word and the analogies of Mikolov et al. (2013).

    V vocabulary (rows) · D vector width

``WordVectors`` holds the names (one per row, unique, no whitespace), the float32 matrix (V, D) and
its rows scaled to unit length. It comes from a word2vec or GloVe run (the model's
``word_vectors()``) or from any language model run (its input token embedding), so the vectors a
Transformer learned by backpropagation can be queried like word2vec's.

Queries follow gensim's ``KeyedVectors`` (the reference of the parity tests), which follows Levy &
Goldberg (2014), "Linguistic Regularities in Sparse and Explicit Word Representations":

- ``most_similar(positive, negative)``: cosine with the unit-length mean of the ± unit vectors; for
  one word, its neighbours; for ``[b, c], [a]``, **3CosAdd** (``b − a + c``);
- ``most_similar_cosmul``: **3CosMul**, ``argmax cos'(x,b)·cos'(x,c) / (cos'(x,a) + ε)`` with the
  cosines shifted to [0, 1] (their footnote 7); ε = 1e-6 as gensim has it (the paper: 0.001);
- the query words themselves are never answers.

A zero row (a token never trained) has unit vector 0, so every cosine with it is 0 (gensim divides
by its zero norm and gets NaN).
"""

from __future__ import annotations

import difflib
import logging
import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from torch import nn

from seqlab.errors import SeqlabError
from seqlab.files import atomic_open
from seqlab.tokenizers import Tokenizer
from seqlab.tokenizers.base import printable

log = logging.getLogger(__name__)

COSMUL_EPSILON = 1e-6  # gensim's most_similar_cosmul (Levy & Goldberg use 0.001)


class UnknownWord(SeqlabError):
    """A query word that has no vector."""


class WordVectors:
    """Named rows of a (V, D) matrix with cosine queries; ``vectors[i]`` is the vector of ``words[i]``."""

    def __init__(self, words: Sequence[str], vectors: np.ndarray | torch.Tensor, *, name: str = "") -> None:
        matrix = np.asarray(vectors.detach().cpu().float().numpy() if isinstance(vectors, torch.Tensor)
                            else vectors, dtype=np.float32)
        if matrix.ndim != 2 or matrix.shape[0] != len(words):
            raise SeqlabError(f"word vectors need one row per word: {len(words)} words, matrix of shape "
                              f"{tuple(matrix.shape)}")
        self.words: list[str] = list(words)
        self.index: dict[str, int] = {w: i for i, w in enumerate(self.words)}
        if len(self.index) != len(self.words):
            raise SeqlabError("word vectors need distinct words; a word is listed twice")
        self.vectors = np.ascontiguousarray(matrix)  # (V, D)
        norms = np.linalg.norm(self.vectors, axis=1, keepdims=True)  # (V, 1)
        self.normed = self.vectors / np.where(norms > 0, norms, 1.0)  # (V, D), zero rows stay zero
        self.name = name

    @classmethod
    def from_model(cls, model: nn.Module, tokenizer: Tokenizer, *, name: str = "") -> WordVectors:
        """The rows of ``model``'s word vectors (see ``embedding_matrix``), named by ``tokenizer``."""
        matrix = embedding_matrix(model, tokenizer.vocab_size)
        names = token_names(tokenizer)
        if matrix.shape[0] < len(names):
            raise SeqlabError(f"the model has {matrix.shape[0]} embedding rows for a tokenizer of "
                              f"{len(names)} tokens; the run's files do not belong together")
        return cls(names, matrix[:len(names)], name=name)

    @classmethod
    def from_run(cls, run_dir: str | os.PathLike[str]) -> WordVectors:
        """The word vectors of the run saved in ``run_dir`` (any family with token vectors)."""
        from seqlab.runs import load_run
        model, tokenizer, config = load_run(run_dir)
        if not isinstance(model, nn.Module):
            raise SeqlabError(f"{run_dir} is a {config.model.family} run: it counts, it has no token "
                              "vectors to query (word2vec, GloVe and the neural language models have)")
        return cls.from_model(model, tokenizer, name=f"{Path(run_dir).name} ({config.model.family})")

    def __len__(self) -> int:
        return len(self.words)

    @property
    def dim(self) -> int:
        return self.vectors.shape[1]

    def index_of(self, word: str) -> int:
        """The row of ``word``; an unknown word is an ``UnknownWord`` error naming close matches."""
        if word in self.index:
            return self.index[word]
        close = difflib.get_close_matches(word, self.words, n=3)
        if not close:  # case and the leading-space marker of subword pieces, before giving up
            close = [w for w in (word.lower(), word.capitalize(), "\u2581" + word) if w in self.index]
        hint = f"; did you mean {', '.join(repr(w) for w in close)}?" if close else ""
        raise UnknownWord(f"{word!r} is not in the vocabulary of {self.name or 'these vectors'} "
                          f"({len(self.words):,} tokens){hint}")

    def similarity(self, a: str, b: str) -> float:
        """Cosine similarity of two words."""
        return float(self.normed[self.index_of(a)] @ self.normed[self.index_of(b)])

    def most_similar(self, positive: Sequence[str] = (), negative: Sequence[str] = (), *,
                     topn: int = 10, restrict_vocab: int | None = None) -> list[tuple[str, float]]:
        """The ``topn`` words nearest by cosine to the unit mean of +unit(positive), −unit(negative)."""
        ids = self._query_ids(positive, negative)
        weights = np.array([1.0] * len(positive) + [-1.0] * len(negative), dtype=np.float32)
        mean = weights @ self.normed[ids] / len(ids)  # (D,)
        mean = mean / max(float(np.linalg.norm(mean)), 1e-30)
        scores = self.normed[:restrict_vocab] @ mean.astype(np.float32)  # (V,)
        return self._best(scores, ids, topn)

    def most_similar_cosmul(self, positive: Sequence[str] = (), negative: Sequence[str] = (), *,
                            topn: int = 10) -> list[tuple[str, float]]:
        """3CosMul: product of the positives' shifted cosines over that of the negatives (+ ε)."""
        ids = self._query_ids(positive, negative)
        shifted = (1.0 + self.normed @ self.normed[ids].T) / 2.0  # (V, n_query)
        p = len(positive)
        scores = shifted[:, :p].prod(axis=1) / (shifted[:, p:].prod(axis=1) + COSMUL_EPSILON)
        return self._best(scores, ids, topn)

    def analogy(self, a: str, b: str, c: str, *, topn: int = 1) -> dict[str, list[tuple[str, float]]]:
        """``a − b + c`` (king − man + woman ≈ queen) by 3CosAdd and by 3CosMul."""
        return {"3CosAdd": self.most_similar([a, c], [b], topn=topn),
                "3CosMul": self.most_similar_cosmul([a, c], [b], topn=topn)}

    def save_word2vec_format(self, path: str | os.PathLike[str]) -> None:
        """The word2vec text format: a ``V D`` header, then a word and its D numbers a line (float32
        written with 9 significant digits, which read back to the same float32)."""
        with atomic_open(Path(path), "w") as f:
            f.write(f"{len(self.words)} {self.dim}\n")
            for word, row in zip(self.words, self.vectors):
                f.write(word + " " + " ".join(f"{x:.9g}" for x in row.tolist()) + "\n")

    def _query_ids(self, positive: Sequence[str], negative: Sequence[str]) -> list[int]:
        if not positive and not negative:
            raise SeqlabError("a similarity query needs at least one word")
        return [self.index_of(w) for w in [*positive, *negative]]

    def _best(self, scores: np.ndarray, exclude: Sequence[int], topn: int) -> list[tuple[str, float]]:
        """The ``topn`` best rows by ``scores``, highest first, without the rows in ``exclude``."""
        k = min(len(scores), topn + len(exclude))
        if k <= 0:
            return []
        best = np.argpartition(-scores, k - 1)[:k] if k < len(scores) else np.arange(len(scores))
        best = best[np.argsort(-scores[best], kind="stable")]
        skip = set(exclude)
        return [(self.words[i], float(scores[i])) for i in best.tolist() if i not in skip][:topn]


def embedding_matrix(model: nn.Module, vocab_size: int) -> torch.Tensor:
    """The (V, D) word vectors of ``model``: its ``word_vectors()`` (word2vec, GloVe), else its
    ``input_embeddings()``, else its ``tok_emb`` embedding (seqlab's language models), else the
    first ``nn.Embedding`` with ``vocab_size`` rows (a seq2seq model's source embedding)."""
    with torch.no_grad():
        for method in ("word_vectors", "input_embeddings"):
            if callable(getattr(model, method, None)):
                return getattr(model, method)().detach().float().cpu()
        candidates = [getattr(model, "tok_emb", None)] + [m for m in model.modules() if isinstance(m, nn.Embedding)
                                                           and m.num_embeddings >= vocab_size]
        for module in candidates:
            if isinstance(module, nn.Embedding):
                return module.weight.detach().float().cpu()
    raise SeqlabError(f"a {type(model).__name__} has no token embedding to read word vectors from")


def token_names(tokenizer: Tokenizer) -> list[str]:
    """A distinct name per id with no whitespace in it (the word2vec text format splits on spaces).

    The name is the token's text: a space is written ``▁`` (U+2581, as SentencePiece shows it),
    other whitespace and controls ``<U+000A>``, and bytes that are not whole UTF-8 characters
    ``<0xE0>``. A name taken by an earlier id is replaced by the tokenizer's own display string
    (WordPiece's ``##`` continuation pieces), else suffixed with its id.
    """
    names: list[str] = []
    taken: set[str] = set()
    display = None
    for i in range(tokenizer.vocab_size):
        name = _piece_name(tokenizer.decode_bytes([i]))
        if name in taken:
            display = display or tokenizer.token_strings()
            name = display[i].replace(" ", "\u2581")
            if name in taken:
                name = f"{name}<{i}>"
        names.append(name)
        taken.add(name)
    return names


def _piece_name(piece: bytes) -> str:
    try:
        text = piece.decode("utf-8")
    except UnicodeDecodeError:
        return "".join(f"<0x{b:02X}>" for b in piece)
    return printable(text.replace(" ", "\u2581")) if text else "<empty>"
