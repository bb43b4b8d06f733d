"""Labelled examples for a task run: found by `task.data`, encoded for a model, drawn in batches.

Three kinds of example, after `load_examples`:

- a text and its class (`classify` on sentence-polarity or a `LABEL<TAB>TEXT` file);
- words and one tag per word (`tag` on conll2000, ud-english-ewt, brown or a `word tag` file);
- a real-valued series (T, F) and its class (`classify` on mnist1d or an .npz file of x and y).

Encoding (`encode`) turns each into model inputs. A text is its token ids. A tagged sentence is the
ids of its words, each word after the first with the space before it (so the ids are those of the
sentence as text), and for each word the position of its last token: a causal model has read the
whole word there, so that is where its tag is predicted. With `task.pos_input` (CoNLL-2000 chunks)
each token also carries the index of its word's POS tag (1-based; 0 for padding or a tag the run
has not seen), which the model embeds and adds to the token's vector. A series is read as it is,
(T, F) floats.
Everything is cut at `task.max_len` tokens or steps (tagging: at the last word that fits).

`TaskBatches` is the Trainer's batch source: rows drawn at random (from its generator) and padded
to the longest, inputs as a dict of tensors (ids or features, mask; words and word_mask for tags;
pos_ids with task.pos_input),
targets (B,) class indices or (B, W) tag indices with -1 on padding.

Dimensions: B batch · T tokens or steps · F features · W words.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from seqlab.config.schema import TaskConfig
from seqlab.data.batches import Batches
from seqlab.data.labelled import (
    ChunkedSentence,
    SeriesSet,
    Splits,
    conll2000,
    load_labelled,
    polarity_folds,
    polarity_split,
    sentence_polarity,
)
from seqlab.errors import DataError, TokenizerError

# What each registered set is for: the task.kind it needs.
SET_KINDS = {"sentence-polarity": "classify", "mnist1d": "classify", "conll2000": "tag",
             "ud-english-ewt": "tag", "brown": "tag"}
SPLIT_FRACTION = 0.1  # a file's validation and test shares (seeded, by example)
SPLIT_SEED = 0


@dataclass(frozen=True)
class Labelled:
    """One split's examples, uniform across sets: `inputs` are texts (str), word tuples, or float
    arrays (T, F); `targets` class names, or tag tuples (one per word); `pos` the words' POS tag
    tuples where the task reads them as input (task.pos_input), else None."""

    inputs: Sequence
    targets: Sequence
    pos: Sequence | None = None

    def __len__(self) -> int:
        return len(self.inputs)


@dataclass(frozen=True)
class TaskExamples:
    train: Labelled
    val: Labelled
    test: Labelled
    labels: tuple[str, ...]  # every class or tag, sorted
    series: bool  # real-valued inputs (no tokenizer)

    def split(self, name: str) -> Labelled:
        if name not in ("train", "val", "test"):
            raise DataError(f"split {name!r}: a task run has train, val and test")
        return getattr(self, name)

    @property
    def n_features(self) -> int:
        """F of a series set; 0 for token inputs."""
        return int(np.asarray(self.train.inputs[0]).shape[-1]) if self.series else 0


def check_task_data(task: TaskConfig) -> None:
    """A registered set asked for the other kind of task is a one-line error before anything is read."""
    wanted = SET_KINDS.get(task.data)
    if wanted is not None and wanted != task.kind:
        raise DataError(f"task.data = {task.data!r} is a {'classification' if wanted == 'classify' else 'tagging'} "
                        f"set: set task.kind = \"{wanted}\" (got {task.kind!r})")


def load_examples(task: TaskConfig) -> TaskExamples:
    """The train, val and test examples `task.data` names (see the module docstring)."""
    check_task_data(task)
    if task.data in SET_KINDS:
        return _from_splits(_registered(task), task.kind, task.column, task.pos_input)
    path = Path(task.data).expanduser()
    if not path.is_file():
        raise DataError(f"task.data = {task.data!r} is neither a labelled set ({', '.join(SET_KINDS)}) nor a file")
    if path.suffix == ".npz":
        if task.kind != "classify":
            raise DataError(f"{path} holds series to classify: set task.kind = \"classify\"")
        return _series_file(path)
    return _text_file(path, task.kind, task.pos_input)


def _registered(task: TaskConfig) -> Splits:
    if task.data == "sentence-polarity":
        examples = sentence_polarity()
        return polarity_folds(examples)[task.fold - 1] if task.fold else polarity_split(examples)
    if task.data == "conll2000":
        return conll2000(task.column)
    return load_labelled(task.data)


def _from_splits(splits: Splits, kind: str, column: str, pos_input: bool = False) -> TaskExamples:
    def convert(items) -> Labelled:
        if isinstance(items, SeriesSet):
            return Labelled(list(items.x), [splits.labels[int(y)] for y in items.y])
        if kind == "classify":
            return Labelled([e.text for e in items], [e.label for e in items])
        pos = [tuple(s.pos) for s in items] if pos_input else None
        return Labelled([tuple(s.words) for s in items], [_tags_of(s, column) for s in items], pos)

    series = isinstance(splits.train, SeriesSet)
    return TaskExamples(convert(splits.train), convert(splits.val), convert(splits.test), tuple(splits.labels), series)


def _tags_of(sentence, column: str) -> tuple[str, ...]:
    """The tags of a TaggedSentence, or the `task.column` of a CoNLL-2000 sentence."""
    if isinstance(sentence, ChunkedSentence):
        return tuple(getattr(sentence, column))
    return tuple(sentence.tags)


def _seeded_split(inputs: list, targets: list, pos: list | None = None) -> tuple[Labelled, Labelled, Labelled]:
    order = list(range(len(inputs)))
    random.Random(SPLIT_SEED).shuffle(order)
    n = max(1, int(len(order) * SPLIT_FRACTION))
    if len(order) < 3 * n or len(order) < 3:
        raise DataError(f"{len(order)} examples are too few to split into train, val and test")

    def pick(idx: list[int]) -> Labelled:
        return Labelled([inputs[i] for i in idx], [targets[i] for i in idx],
                        None if pos is None else [pos[i] for i in idx])

    return pick(order[2 * n:]), pick(order[:n]), pick(order[n:2 * n])


def _text_file(path: Path, kind: str, pos_input: bool = False) -> TaskExamples:
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise DataError(f"cannot read {path}: {exc}") from None
    pos = None
    if kind == "classify":
        inputs, targets = _classify_lines(lines, path)
    else:
        inputs, targets, pos = _tag_lines(lines, path, pos_input)
    if not inputs:
        raise DataError(f"{path} holds no examples")
    labels = sorted({t for target in targets for t in ((target,) if kind == "classify" else target)})
    train, val, test = _seeded_split(inputs, targets, pos)
    return TaskExamples(train, val, test, tuple(labels), series=False)


def _classify_lines(lines: list[str], path: Path) -> tuple[list, list]:
    inputs, targets = [], []
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        label, tab, text = line.partition("\t")
        if not tab or not label.strip() or not text.strip():
            raise DataError(f"{path}:{number}: expected LABEL<TAB>TEXT, got {line[:60]!r}")
        inputs.append(text.strip())
        targets.append(label.strip())
    return inputs, targets


def _tag_lines(lines: list[str], path: Path, pos_input: bool = False) -> tuple[list, list, list | None]:
    """Sentences of `word tag` lines (the tag last); with `pos_input`, `word POS tag` lines."""
    inputs, targets, pos, words, tags, word_pos = [], [], [], [], [], []
    for number, line in enumerate([*lines, ""], 1):
        fields = line.split()
        if not fields:
            if words:
                inputs.append(tuple(words))
                targets.append(tuple(tags))
                pos.append(tuple(word_pos))
            words, tags, word_pos = [], [], []
            continue
        if len(fields) < (3 if pos_input else 2):
            wanted = "'word POS tag' (task.pos_input)" if pos_input else "'word tag' (the tag last)"
            raise DataError(f"{path}:{number}: expected {wanted}, got {line[:60]!r}")
        words.append(fields[0])
        tags.append(fields[-1])
        word_pos.append(fields[-2])
    return inputs, targets, pos if pos_input else None


def _series_file(path: Path) -> TaskExamples:
    try:
        with np.load(path, allow_pickle=False) as arrays:
            x, y = np.asarray(arrays["x"], dtype=np.float32), np.asarray(arrays["y"])
    except (OSError, ValueError, KeyError) as exc:
        raise DataError(f"{path}: expected an .npz with float series x (N, T) or (N, T, F) and labels y (N,): "
                        f"{exc}") from None
    if x.ndim == 2:
        x = x[:, :, None]
    if x.ndim != 3 or y.ndim != 1 or len(x) != len(y) or not np.isfinite(x).all():
        raise DataError(f"{path}: x must be finite (N, T) or (N, T, F) and y (N,), got {x.shape} and {y.shape}")
    targets = [str(v) for v in y.tolist()]
    train, val, test = _seeded_split(list(x), targets)
    return TaskExamples(train, val, test, tuple(sorted(set(targets))), series=True)


# --------------------------------------------------------------------- encoding


@dataclass(frozen=True)
class Encoded:
    """A split ready for batching: `inputs` ids (T,) int64 or series (T, F) float32; `targets`
    class indices, or tag indices per word (W,); `words` each word's last token position (W,);
    `pos` each token's word's POS index (T,), with task.pos_input."""

    inputs: list[np.ndarray]
    targets: list
    words: list[np.ndarray] | None = None
    pos: list[np.ndarray] | None = None

    def __len__(self) -> int:
        return len(self.inputs)


def encode_text(tokenizer, text: str, max_len: int) -> np.ndarray:
    ids = tokenizer.encode(text)[:max_len]
    if not ids:
        raise TokenizerError(f"the text {text[:40]!r} encodes to no tokens")
    return np.asarray(ids, dtype=np.int64)


def encode_words(tokenizer, words: Sequence[str], max_len: int) -> tuple[np.ndarray, np.ndarray]:
    """The ids of the words as a sentence and each word's last token position, cut at the last word
    that ends within `max_len` tokens (at least one word, itself cut to fit)."""
    ids: list[int] = []
    ends: list[int] = []
    for i, word in enumerate(words):
        piece = tokenizer.encode(word if i == 0 else " " + word) or tokenizer.encode(word)
        if not piece:
            raise TokenizerError(f"the word {word!r} encodes to no tokens")
        if len(ids) + len(piece) > max_len:
            if not ids:
                ids, ends = piece[:max_len], [min(len(piece), max_len) - 1]
            break
        ids += piece
        ends.append(len(ids) - 1)
    return np.asarray(ids, dtype=np.int64), np.asarray(ends, dtype=np.int64)


def token_pos(ends: np.ndarray, tags: Sequence[str], index: dict[str, int]) -> np.ndarray:
    """Each token's word's POS index (T,): `ends` the words' last token positions, `index` the run's
    POS tags (1-based; an unknown tag is 0)."""
    counts = np.diff(np.concatenate([[-1], ends]))  # tokens per word
    return np.repeat(np.asarray([index.get(t, 0) for t in tags[:len(ends)]], dtype=np.int64), counts)


def encode(examples: Labelled, *, kind: str, labels: Sequence[str], tokenizer, max_len: int,
           with_targets: bool = True, pos_tags: Sequence[str] = ()) -> Encoded:
    """`examples` as model inputs (see the module docstring); targets become label indices, and
    the examples' POS tags (if any) indices into `pos_tags`, from 1."""
    index = {label: i for i, label in enumerate(labels)}

    def label_of(name: str) -> int:
        if name not in index:
            raise DataError(f"label {name!r} is not one of the run's {len(index)} labels")
        return index[name]

    if tokenizer is None:  # series
        inputs = [np.asarray(x, dtype=np.float32)[:max_len] for x in examples.inputs]
        return Encoded(inputs, [label_of(t) for t in examples.targets] if with_targets else [])
    if kind == "classify":
        inputs = [encode_text(tokenizer, text, max_len) for text in examples.inputs]
        return Encoded(inputs, [label_of(t) for t in examples.targets] if with_targets else [])
    pairs = [encode_words(tokenizer, words, max_len) for words in examples.inputs]
    targets = []
    if with_targets:
        targets = [np.asarray([label_of(t) for t in tags[:len(ends)]], dtype=np.int64)
                   for (_, ends), tags in zip(pairs, examples.targets)]
    pos = None
    if examples.pos is not None:
        pos_index = {tag: i + 1 for i, tag in enumerate(pos_tags)}
        pos = [token_pos(ends, tags, pos_index) for (_, ends), tags in zip(pairs, examples.pos)]
    return Encoded([ids for ids, _ in pairs], targets, [ends for _, ends in pairs], pos)


def collate(encoded: Encoded, rows: Sequence[int]) -> tuple[dict[str, Tensor], Tensor | None]:
    """Rows of `encoded` padded into one batch: (inputs, targets); see the module docstring."""
    items = [encoded.inputs[i] for i in rows]
    T = max(len(x) for x in items)
    mask = torch.zeros(len(items), T, dtype=torch.bool)
    if items[0].dtype == np.float32:
        values = torch.zeros(len(items), T, items[0].shape[-1])  # (B, T, F)
        key = "features"
    else:
        values = torch.zeros(len(items), T, dtype=torch.long)  # (B, T)
        key = "ids"
    for b, x in enumerate(items):
        values[b, :len(x)] = torch.from_numpy(np.asarray(x))
        mask[b, :len(x)] = True
    inputs = {key: values, "mask": mask}
    if encoded.pos is not None:
        pos = torch.zeros(len(items), T, dtype=torch.long)  # (B, T), 0 on padding
        for b, i in enumerate(rows):
            pos[b, :len(encoded.pos[i])] = torch.from_numpy(encoded.pos[i])
        inputs["pos_ids"] = pos
    targets = None
    if encoded.words is not None:
        ends = [encoded.words[i] for i in rows]
        W = max(len(e) for e in ends)
        words = torch.zeros(len(items), W, dtype=torch.long)  # (B, W)
        word_mask = torch.zeros(len(items), W, dtype=torch.bool)
        for b, e in enumerate(ends):
            words[b, :len(e)] = torch.from_numpy(e)
            word_mask[b, :len(e)] = True
        inputs.update(words=words, word_mask=word_mask)
        if encoded.targets:
            targets = torch.full((len(items), W), -1, dtype=torch.long)  # -1: padding, ignored
            for b, i in enumerate(rows):
                targets[b, :len(encoded.targets[i])] = torch.from_numpy(encoded.targets[i])
    elif encoded.targets:
        targets = torch.tensor([encoded.targets[i] for i in rows], dtype=torch.long)  # (B,)
    return inputs, targets


class TaskBatches(Batches):
    """Random rows of the encoded train and val examples (the Trainer's batch source). A loss is
    per example (classification) or per word (tagging): `tokens_per_char` is 1, so metrics.csv's
    bits_per_char column is that loss in bits."""

    tokens_per_char = {"train": 1.0, "val": 1.0}

    def __init__(self, train: Encoded, val: Encoded, batch_size: int) -> None:
        for name, split in (("train", train), ("val", val)):
            if not len(split):
                raise DataError(f"the {name} split has no examples")
        self.splits = {"train": train, "val": val}
        self.batch_size = batch_size

    def sample(self, split: str, generator: torch.Generator) -> tuple[dict[str, Tensor], Tensor]:
        encoded = self.splits[split]
        rows = torch.randint(len(encoded), (self.batch_size,), generator=generator).tolist()
        return collate(encoded, rows)


__all__ = ["Encoded", "Labelled", "SET_KINDS", "TaskBatches", "TaskExamples", "check_task_data", "collate",
           "encode", "encode_text", "encode_words", "load_examples"]
