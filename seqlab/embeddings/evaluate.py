"""The standard intrinsic evaluations of word vectors, computed as gensim computes them.

- **WordSim353** (Finkelstein et al. 2002) and **SimLex-999** (Hill et al. 2015): Spearman's ρ between
  the cosine similarity of each word pair and the human judgement (gensim's
  ``KeyedVectors.evaluate_word_pairs``);
- the **Google analogy set** (Mikolov et al. 2013, ``questions-words.txt``): 19,544 questions
  ``a b c d`` in 14 sections; a question is right when ``b − a + c`` is nearest to ``d`` (3CosAdd,
  gensim's ``evaluate_word_analogies``); 3CosMul accuracy is reported beside it.

The files are those that ship with gensim (``gensim/test/test_data``); they are read from the
installed package, never copied. OOV handling is gensim's: words are compared upper-cased (a word
with several case variants takes the first row, the most frequent in a frequency-ordered
vocabulary), only the first ``restrict_vocab`` rows count, a pair or question with a word outside
them is skipped, and ``coverage`` says how many were not.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from seqlab.embeddings.vectors import COSMUL_EPSILON, WordVectors
from seqlab.errors import SeqlabError

RESTRICT_VOCAB = 300_000  # gensim's default
FILES = {"wordsim353": "wordsim353.tsv", "simlex999": "simlex999.txt", "analogies": "questions-words.txt"}
_BATCH = 512  # analogy questions scored per matrix product


def data_file(name: str) -> Path:
    """The path of an evaluation file shipped with gensim (``FILES``)."""
    try:
        from gensim.test.utils import datapath
    except ImportError:
        raise SeqlabError(f"the evaluation file {FILES[name]} ships with gensim: pip install gensim") from None
    path = Path(datapath(FILES[name]))
    if not path.is_file():
        raise SeqlabError(f"{path} is missing from the installed gensim; reinstall gensim")
    return path


@dataclass(frozen=True)
class PairScore:
    """Correlation with human similarity judgements; ``used`` of ``total`` pairs had both words."""

    spearman: float
    pearson: float
    used: int
    total: int

    @property
    def coverage(self) -> float:
        return self.used / self.total if self.total else 0.0


@dataclass(frozen=True)
class SectionScore:
    """Analogy accuracy of one section; ``total`` questions, of which ``used`` had all four words."""

    section: str
    correct_add: int  # 3CosAdd
    correct_mul: int  # 3CosMul
    used: int
    total: int

    @property
    def accuracy_add(self) -> float:
        return self.correct_add / self.used if self.used else 0.0

    @property
    def accuracy_mul(self) -> float:
        return self.correct_mul / self.used if self.used else 0.0

    @property
    def coverage(self) -> float:
        return self.used / self.total if self.total else 0.0


def upper_vocab(vectors: WordVectors, restrict_vocab: int = RESTRICT_VOCAB) -> dict[str, int]:
    """Upper-cased word -> row, the first row winning among case variants (gensim's ``ok_vocab``)."""
    return {w.upper(): i for i, w in reversed(list(enumerate(vectors.words[:restrict_vocab])))}


def evaluate_pairs(vectors: WordVectors, path: str | Path, *,
                   restrict_vocab: int = RESTRICT_VOCAB) -> PairScore:
    """Spearman and Pearson correlation of cosine with the judgements of a ``word<TAB>word<TAB>score`` file."""
    from scipy import stats
    vocab = upper_vocab(vectors, restrict_vocab)
    gold, model, total = [], [], 0
    for line in Path(path).read_text(encoding="utf-8").splitlines(keepends=True):
        if not line or line.startswith("#"):
            continue
        try:
            a, b, score = [w.upper() for w in line.split("\t")]
            value = float(score)
        except ValueError:
            continue
        total += 1
        if a in vocab and b in vocab:
            gold.append(value)
            model.append(float(vectors.normed[vocab[a]] @ vectors.normed[vocab[b]]))
    if len(gold) < 2:
        return PairScore(float("nan"), float("nan"), len(gold), total)
    return PairScore(float(stats.spearmanr(gold, model)[0]), float(stats.pearsonr(gold, model)[0]),
                     len(gold), total)


def read_analogies(path: str | Path) -> list[tuple[str, list[tuple[str, str, str, str]]]]:
    """The sections of an analogy file (``: name`` lines, then ``a b c d`` lines), words upper-cased."""
    sections: list[tuple[str, list[tuple[str, str, str, str]]]] = []
    for line in Path(path).read_text(encoding="utf-8").splitlines():
        if line.startswith(": "):
            sections.append((line.lstrip(": ").strip(), []))
            continue
        words = [w.upper() for w in line.split()]
        if len(words) == 4 and sections:
            sections[-1][1].append(tuple(words))  # type: ignore[arg-type]
    return sections


def evaluate_analogies(vectors: WordVectors, path: str | Path, *,
                       restrict_vocab: int = RESTRICT_VOCAB) -> list[SectionScore]:
    """Accuracy per section, then ``Total accuracy``, as gensim's ``evaluate_word_analogies``."""
    vocab = upper_vocab(vectors, restrict_vocab)
    scores = []
    for section, questions in read_analogies(path):
        known = [q for q in questions if all(w in vocab for w in q)]
        ids = np.array([[vocab[w] for w in q] for q in known], dtype=np.int64).reshape(-1, 4)  # (N, 4)
        add, mul = _answers(vectors, ids, restrict_vocab, vocab)
        scores.append(SectionScore(section, int((add == ids[:, 3]).sum()), int((mul == ids[:, 3]).sum()),
                                   len(known), len(questions)))
    scores.append(SectionScore("Total accuracy", sum(s.correct_add for s in scores),
                               sum(s.correct_mul for s in scores), sum(s.used for s in scores),
                               sum(s.total for s in scores)))
    return scores


def _answers(vectors: WordVectors, ids: np.ndarray, restrict_vocab: int,
             vocab: dict[str, int]) -> tuple[np.ndarray, np.ndarray]:
    """The predicted rows of questions ``ids`` (N, 4) by 3CosAdd and by 3CosMul (-1: none)."""
    normed = vectors.normed[:restrict_vocab]  # (V, D)
    add, mul = np.full(len(ids), -1, dtype=np.int64), np.full(len(ids), -1, dtype=np.int64)
    upper = [w.upper() for w in vectors.words[:restrict_vocab]]
    for start in range(0, len(ids), _BATCH):
        q = ids[start:start + _BATCH]  # (B, 4): a b c expected
        a, b, c = (vectors.normed[q[:, k]] for k in range(3))  # (B, D) each
        mean = (b + c - a) / 3.0
        mean /= np.maximum(np.linalg.norm(mean, axis=1, keepdims=True), 1e-30)
        cos_add = mean.astype(np.float32) @ normed.T  # (B, V)
        shifted = [(1.0 + x @ normed.T) / 2.0 for x in (a, b, c)]  # (B, V) each
        cos_mul = shifted[1] * shifted[2] / (shifted[0] + COSMUL_EPSILON)
        top_add, top_mul = _top(cos_add, 8), _top(cos_mul, 8)  # (B, 8): 5 answers + 3 inputs
        for row, question in enumerate(q.tolist()):
            add[start + row] = _pick(top_add[row], question, upper, vocab)
            mul[start + row] = _pick(top_mul[row], question, upper, vocab)
    return add, mul


def _top(scores: np.ndarray, k: int) -> list[list[int]]:
    """The ``k`` best columns of each row of ``scores`` (B, V), best first."""
    k = min(k, scores.shape[1])
    part = np.argpartition(-scores, k - 1, axis=1)[:, :k] if k < scores.shape[1] else \
        np.tile(np.arange(scores.shape[1]), (len(scores), 1))  # (B, k)
    order = np.argsort(-np.take_along_axis(scores, part, axis=1), axis=1, kind="stable")
    return np.take_along_axis(part, order, axis=1).tolist()


def _pick(best: list[int], question: list[int], upper: list[str], vocab: dict[str, int]) -> int:
    """gensim's choice: of the 5 best rows other than the inputs, the first whose upper-cased word is
    none of the inputs' (another case of an input is skipped); if all 5 are, the fifth (wrong)."""
    inputs = question[:3]
    candidates = [i for i in best if i not in inputs][:5]
    ignore = {upper[i] for i in inputs}
    predicted = -1
    for i in candidates:
        predicted = i
        if upper[i] in vocab and upper[i] not in ignore:
            break
    # The answer counts as the expected word when its upper-cased form is that word's.
    if predicted >= 0 and upper[predicted] == upper[question[3]]:
        return question[3]
    return predicted
