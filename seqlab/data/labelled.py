"""Labelled data sets for classification and tagging, found by name like the corpora.

| name | task | what | splits |
|---|---|---|---|
| `sentence-polarity` | classification | Pang & Lee 2005's 10,662 movie-review sentences ("MR"), neg / pos | 10 seeded folds (the literature's cross-validation), or a seeded 80/10/10 split |
| `conll2000` | tagging | WSJ with POS tags and IOB chunks (Tjong Kim Sang & Buchholz 2000) | train = sections 15–18, test = section 20; validation = the last 10% of train |
| `ud-english-ewt` | tagging | Universal Dependencies English EWT, UPOS | train = dev minus its last 10% (validation); test |
| `brown` | tagging | the Brown Corpus, tags mapped to the 12 universal tags (Petrov et al. 2012) | seeded 80/10/10 by sentence |
| `mnist1d` | series classification | MNIST-1D (Greydanus & Kobak 2020), made by the `mnist1d` package's `make_dataset()` | its 4,000 / 1,000 train/test split; validation = the last 10% of train |

The files are read from the data folders (`$SEQLAB_DATA`, `~/.cache/seqlab`, `../shared/data`);
nothing is copied into the repository. MNIST-1D is generated in code (never its pickle download).
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from seqlab.data.conllu import TaggedSentence, read_conllu
from seqlab.data.paths import data_search_dirs
from seqlab.errors import DataError

VAL_FRACTION = 0.1


@dataclass(frozen=True)
class Example:
    """A text and its label (a classification example)."""

    text: str
    label: str


@dataclass(frozen=True)
class Splits:
    """train, validation and test examples of one set (TaggedSentence, Example or SeriesSet)."""

    train: Sequence
    val: Sequence
    test: Sequence
    labels: tuple[str, ...]  # every label or tag, sorted


@dataclass(frozen=True)
class SeriesSet:
    """Real-valued sequences: x (N, T, F) float32, y (N,) int64."""

    x: np.ndarray
    y: np.ndarray

    def __len__(self) -> int:
        return len(self.y)


def find_folder(name: str) -> Path:
    """The folder `name` in the first data folder that has it; a DataError naming where it looked."""
    dirs = data_search_dirs()
    for _, folder in dirs:
        if (folder / name).is_dir():
            return folder / name
    looked = ", ".join(f"{folder} ({label})" for label, folder in dirs)
    raise DataError(f"data set folder {name!r} not found in: {looked}; put it in one of these or set $SEQLAB_DATA")


def _read_lines(path: Path) -> list[str]:
    try:
        # MR's files are Latin-1 (a few accented words); every byte decodes.
        return [line.strip() for line in path.read_text(encoding="latin-1").splitlines() if line.strip()]
    except OSError as exc:
        raise DataError(f"cannot read {path}: {exc}") from exc


# --------------------------------------------------------------------- sentence polarity (MR)


def sentence_polarity() -> list[Example]:
    """Every MR sentence with its label, negatives first, in file order."""
    folder = find_folder("sentence-polarity")
    return [Example(text, label) for label, name in (("neg", "rt-polarity.neg"), ("pos", "rt-polarity.pos"))
            for text in _read_lines(folder / name)]


def polarity_folds(examples: Sequence[Example], n_folds: int = 10, seed: int = 0) -> list[Splits]:
    """n seeded cross-validation folds: fold k tests on every n-th shuffled example from k, and takes
    its validation examples (10%) from the rest."""
    if not 2 <= n_folds <= len(examples):
        raise DataError(f"n_folds = {n_folds} must be between 2 and the {len(examples)} examples")
    order = list(range(len(examples)))
    random.Random(seed).shuffle(order)
    folds = []
    for k in range(n_folds):
        test = [examples[i] for i in order[k::n_folds]]
        rest = [examples[i] for j, i in enumerate(order) if j % n_folds != k]
        n_val = max(1, int(len(rest) * VAL_FRACTION))
        folds.append(Splits(rest[n_val:], rest[:n_val], test, ("neg", "pos")))
    return folds


def polarity_split(examples: Sequence[Example], seed: int = 0) -> Splits:
    """A fixed seeded 80/10/10 split, for quick runs."""
    order = list(range(len(examples)))
    random.Random(seed).shuffle(order)
    n_test = n_val = len(order) // 10
    pick = [examples[i] for i in order]
    return Splits(pick[n_val + n_test:], pick[:n_val], pick[n_val:n_val + n_test], ("neg", "pos"))


# --------------------------------------------------------------------- CoNLL-2000


@dataclass(frozen=True)
class ChunkedSentence:
    """A CoNLL-2000 sentence: words, their POS tags and their IOB chunk tags."""

    words: tuple[str, ...]
    pos: tuple[str, ...]
    chunks: tuple[str, ...]


def read_conll2000(path: Path) -> list[ChunkedSentence]:
    """`word POS chunk` lines, a blank line between sentences."""
    sentences: list[ChunkedSentence] = []
    rows: list[tuple[str, str, str]] = []
    for number, line in enumerate(_read_lines_keep_blank(path), start=1):
        if not line.strip():
            if rows:
                sentences.append(ChunkedSentence(*(tuple(column) for column in zip(*rows))))
            rows = []
            continue
        fields = line.split()
        if len(fields) != 3:
            raise DataError(f"{path}:{number}: expected 'word POS chunk', got {line!r}")
        rows.append((fields[0], fields[1], fields[2]))
    if rows:
        sentences.append(ChunkedSentence(*(tuple(column) for column in zip(*rows))))
    if not sentences:
        raise DataError(f"{path} holds no sentences")
    return sentences


def _read_lines_keep_blank(path: Path) -> list[str]:
    try:
        return path.read_text(encoding="latin-1").splitlines()
    except OSError as exc:
        raise DataError(f"cannot read {path}: {exc}") from exc


def conll2000(column: str = "chunks") -> Splits:
    """CoNLL-2000 as tagging: `column` = "pos" (the POS tags as targets) or "chunks" (the chunk
    tags as targets; each sentence keeps its POS column, which the shared task allowed as input)."""
    if column not in ("pos", "chunks"):
        raise DataError(f"conll2000 column must be 'pos' or 'chunks', not {column!r}")
    folder = find_folder("conll2000")
    train = read_conll2000(folder / "train.txt")
    test = read_conll2000(folder / "test.txt")
    n_val = int(len(train) * VAL_FRACTION)
    labels = tuple(sorted({tag for sentence in train + test for tag in getattr(sentence, column)}))
    return Splits(train[:-n_val], train[-n_val:], test, labels)


# --------------------------------------------------------------------- UD English EWT, Brown


def ud_english_ewt() -> Splits:
    """UPOS tagging on UD English EWT: its dev file (minus a validation tenth) trains, test tests."""
    folder = find_folder("ud-english-ewt")
    dev = read_conllu(folder / "en_ewt-ud-dev.conllu")
    test = read_conllu(folder / "en_ewt-ud-test.conllu")
    n_val = int(len(dev) * VAL_FRACTION)
    labels = tuple(sorted({tag for sentence in dev + test for tag in sentence.tags}))
    return Splits(dev[:-n_val], dev[-n_val:], test, labels)


def brown_sentences(universal: bool = True) -> list[TaggedSentence]:
    """Every Brown sentence in file order (ca01 … cr09), tags upper-cased as the corpus documents
    them, and mapped to the universal tagset through `en-brown.map` when `universal`."""
    folder = find_folder("brown")
    mapping = {}
    if universal:
        for line in _read_lines(folder / "en-brown.map"):
            brown, _, tag = line.partition("\t")
            mapping[brown] = tag
    files = sorted(path for path in folder.iterdir() if len(path.name) == 4 and path.name[0] == "c"
                   and path.name[1].isalpha() and path.name[2:].isdigit())
    if not files:
        raise DataError(f"{folder} has none of the Brown files ca01 … cr09")
    sentences = []
    for path in files:
        for line in _read_lines(path):
            words, tags = [], []
            for token in line.split():
                word, slash, tag = token.rpartition("/")
                if not slash or not word:
                    raise DataError(f"{path}: token {token!r} is not word/tag")
                tag = tag.upper()
                words.append(word)
                tags.append(mapping.get(tag, "X") if universal else tag)
            sentences.append(TaggedSentence(tuple(words), tuple(tags)))
    return sentences


def brown(seed: int = 0) -> Splits:
    """Brown with universal tags, split 80/10/10 by sentence after a seeded shuffle."""
    sentences = brown_sentences()
    order = list(range(len(sentences)))
    random.Random(seed).shuffle(order)
    pick = [sentences[i] for i in order]
    n = len(pick) // 10
    labels = tuple(sorted({tag for sentence in sentences for tag in sentence.tags}))
    return Splits(pick[2 * n:], pick[:n], pick[n:2 * n], labels)


def brown_text() -> str:
    """The Brown Corpus as plain text, one sentence a line (for pre-training)."""
    return "\n".join(" ".join(sentence.words) for sentence in brown_sentences(universal=False)) + "\n"


# --------------------------------------------------------------------- MNIST-1D


def mnist1d(seed: int = 42) -> Splits:
    """MNIST-1D from `mnist1d.data.make_dataset` with the package's default arguments (its seed 42
    by default), x as (N, 40, 1) sequences of one feature; the global numpy random state is kept."""
    try:
        from mnist1d.data import get_dataset_args, make_dataset
    except ImportError as exc:
        raise DataError("mnist1d needs the `mnist1d` package: pip install mnist1d") from exc
    args = get_dataset_args()
    args.seed = seed
    state = np.random.get_state()
    try:
        data = make_dataset(args)
    finally:
        np.random.set_state(state)
    x = np.asarray(data["x"], dtype=np.float32)[:, :, None]
    y = np.asarray(data["y"], dtype=np.int64)
    n_val = int(len(y) * VAL_FRACTION)
    train = SeriesSet(x[:-n_val], y[:-n_val])
    val = SeriesSet(x[-n_val:], y[-n_val:])
    test = SeriesSet(np.asarray(data["x_test"], dtype=np.float32)[:, :, None],
                     np.asarray(data["y_test"], dtype=np.int64))
    return Splits(train, val, test, tuple(str(k) for k in range(10)))


LABELLED_SETS = {
    "sentence-polarity": lambda: polarity_split(sentence_polarity()),
    "conll2000": lambda: conll2000("chunks"),
    "conll2000-pos": lambda: conll2000("pos"),
    "ud-english-ewt": ud_english_ewt,
    "brown": brown,
    "mnist1d": mnist1d,
}


def load_labelled(name: str) -> Splits:
    """A labelled set by name (see the module docstring); a DataError lists the names."""
    if name not in LABELLED_SETS:
        raise DataError(f"unknown labelled data set {name!r}; known: {', '.join(LABELLED_SETS)}")
    return LABELLED_SETS[name]()
