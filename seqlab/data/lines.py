"""Lines as sequences: a corpus whose lines are separate examples, each framed by a boundary token
(makemore's names, one sentence per line).

B batch · T time (the longest framed line of a batch) · L a line's tokens · K a fixed-window
model's context

The boundary is the tokenizer's own newline token: for a char tokenizer on names.txt the
vocabulary is the 26 letters and "\\n" (id 0, sorted first), makemore's 27 symbols, with "\\n"
playing makemore's ".". A line of L tokens is one row of L + 1 predictions: each of its tokens,
then the closing boundary, each predicted from the opening boundary and the tokens before it:

    x = [b]·(1 + left_pad) + ids              (then b as padding)
    y = [−1]·left_pad + ids + [b]             (then −1 as padding: ignored)

so y[t] is the token after x[t]. `left_pad` is the caller's: K − 1 for a fixed-window model reading
K tokens, so every scored prediction sees makemore's context (K tokens, boundary-padded:
`build_dataset`'s `context = [0] * block_size`, sliding); 0 for models that read from the start.
The character count of a line is its characters plus one for the closing newline, so bits per
character count the newline as the stream models' text does.

`split_lines` is makemore's split (`random.seed(42); random.shuffle(words)`, then 80 / 10 / 10 %).
`LineBatches` draws random lines with the caller's `torch.Generator` only, so its state alone
decides the batch; `iter_line_batches` and `line_nats` walk a split with every line exactly once,
for an exact loss.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from seqlab.data.batches import Batches, _to_device
from seqlab.data.cache import Encoder
from seqlab.errors import DataError, TokenizerError
from seqlab.seeds import generator_seed

SPLITS = ("train", "val", "test")


def split_lines(lines: Sequence[str], *, seed: int = 42,
                fractions: tuple[float, float, float] = (0.8, 0.1, 0.1)) -> tuple[list[str], list[str], list[str]]:
    """Shuffle the non-empty lines with `random.Random(seed)` and cut them into train / val / test.

    Empty lines are dropped first (they frame no example). With the defaults this is makemore's
    split exactly: `random.seed(42); random.shuffle(words)`, n1 = int(0.8·n), n2 = int(0.9·n)
    (a `Random(seed)` instance shuffles as the module-level API does after `random.seed(seed)`).
    """
    if len(fractions) != 3 or min(fractions) < 0 or abs(sum(fractions) - 1.0) > 1e-9:
        raise ValueError(f"fractions must be three non-negative numbers summing to 1, got {fractions}")
    words = [line for line in lines if line]
    random.Random(generator_seed(seed)).shuffle(words)
    n = len(words)
    n1 = int(fractions[0] * n)
    n2 = int((fractions[0] + fractions[1]) * n)  # 0.8 + 0.1 == 0.9 in floating point: makemore's n2
    return words[:n1], words[n1:n2], words[n2:]


def boundary_id(tokenizer: Encoder) -> int:
    """The id of the tokenizer's newline token, the boundary that frames every line.

    Raises DataError if the tokenizer cannot encode "\\n" as exactly one token.
    """
    try:
        ids = tokenizer.encode_array("\n")
    except TokenizerError as err:
        raise DataError(f"the tokenizer has no newline token to frame lines with ({err}); train it "
                        "on the text with its newlines") from None
    if len(ids) != 1:
        raise DataError(f"the tokenizer encodes a newline as {len(ids)} tokens; line data needs it "
                        "as one boundary token")
    return int(ids[0])


@dataclass(frozen=True)
class LineData:
    """The encoded lines of each split (1-D int64 arrays, without boundaries), the boundary id, and
    the characters per split (each line's characters plus one for its closing newline)."""

    train: list[np.ndarray]
    val: list[np.ndarray]
    test: list[np.ndarray]
    boundary: int
    train_chars: int
    val_chars: int
    test_chars: int

    @classmethod
    def encode(cls, splits: tuple[Sequence[str], Sequence[str], Sequence[str]], tokenizer: Encoder) -> LineData:
        """Encode each line of (train, val, test) on its own; the boundary is the newline token."""
        boundary = boundary_id(tokenizer)
        encoded = [[np.asarray(tokenizer.encode_array(line), dtype=np.int64) for line in split]
                   for split in splits]
        chars = [sum(len(line) + 1 for line in split) for split in splits]
        return cls(*encoded, boundary, *chars)

    def lines(self, split: str) -> list[np.ndarray]:
        """The encoded lines of `split` ("train", "val" or "test")."""
        if split not in SPLITS:
            raise ValueError(f"split must be one of {SPLITS}, got {split!r}")
        return getattr(self, split)

    def chars(self, split: str) -> int:
        self.lines(split)  # checks the name
        return getattr(self, f"{split}_chars")

    def predicted(self, split: str) -> int:
        """The tokens a split predicts: each line's tokens and its closing boundary."""
        return sum(len(ids) + 1 for ids in self.lines(split))


def prepare_lines(text: str, tokenizer: Encoder, *, seed: int = 42,
                  fractions: tuple[float, float, float] = (0.8, 0.1, 0.1)) -> LineData:
    """Split `text` at "\\n" into lines, split them as makemore does and encode them.

    Only "\\n" ends a line (`str.split("\\n")`, not `splitlines`, which also cuts at "\\r" and
    other separators the tokenizer may hold as characters); on "\\n"-separated text such as
    names.txt the two agree.
    """
    return LineData.encode(split_lines(text.split("\n"), seed=seed, fractions=fractions), tokenizer)


def frame_lines(lines: Sequence[np.ndarray], boundary: int, left_pad: int) -> tuple[Tensor, Tensor]:
    """x, y (int64, (B, T)), T = 1 + left_pad + the longest line, framed as the module docstring shows."""
    if left_pad < 0:
        raise ValueError(f"left_pad must be at least 0, got {left_pad}")
    lengths = [len(ids) for ids in lines]
    T = 1 + left_pad + max(lengths)
    x = np.full((len(lines), T), boundary, dtype=np.int64)  # (B, T)
    y = np.full((len(lines), T), -1, dtype=np.int64)  # (B, T)
    start = 1 + left_pad  # where a line's first token sits in x
    for row, (ids, n) in enumerate(zip(lines, lengths)):
        x[row, start:start + n] = ids
        y[row, left_pad:left_pad + n] = ids
        y[row, left_pad + n] = boundary
    return torch.from_numpy(x), torch.from_numpy(y)


def check_max_len(data: LineData, left_pad: int, max_len: int | None) -> None:
    """Raise DataError if a framed line (1 + left_pad + its tokens) is longer than `max_len`, the
    longest input the model takes (its block_size); None is no limit."""
    if max_len is None:
        return
    for split in SPLITS:
        lines = data.lines(split)
        if not lines:
            continue
        longest = max(len(ids) for ids in lines)
        if 1 + left_pad + longest > max_len:
            raise DataError(
                f"the longest {split} line has {longest} tokens, {1 + left_pad + longest} with its framing "
                f"(1 boundary + left_pad {left_pad}), but the model reads at most {max_len}: use a larger "
                f"model.block_size (at least {1 + left_pad + longest}) or shorter lines")


@dataclass
class LineBatches(Batches):
    """Random lines of a split per batch, framed as rows (see the module docstring)."""

    data: LineData
    batch_size: int
    left_pad: int = 0  # K − 1 for a fixed-window model of context K; 0 for models that read from the start
    max_len: int | None = None  # the longest input row the model takes (its block_size); None: no limit

    def __post_init__(self) -> None:
        if self.batch_size < 1 or self.left_pad < 0:
            raise ValueError(f"batch_size = {self.batch_size} must be >= 1 and left_pad = {self.left_pad} >= 0")
        for split in ("train", "val"):
            if not self.data.lines(split):
                raise DataError(f"the {split} split has no lines: the corpus needs more non-empty lines")
        check_max_len(self.data, self.left_pad, self.max_len)

    @property
    def tokens_per_char(self) -> dict[str, float]:
        return {split: self.data.predicted(split) / self.data.chars(split)
                for split in SPLITS if self.data.chars(split)}

    def sample(self, split: str, generator: torch.Generator) -> tuple[Tensor, Tensor]:
        lines = self.data.lines(split)
        if not lines:
            raise DataError(f"the {split} split has no lines to sample")
        picks = torch.randint(len(lines), (self.batch_size,), generator=generator).tolist()
        return frame_lines([lines[i] for i in picks], self.data.boundary, self.left_pad)


def iter_line_batches(lines: Sequence[np.ndarray], boundary: int, batch_size: int, left_pad: int, *,
                      device: torch.device | str = "cpu") -> Iterator[tuple[Tensor, Tensor]]:
    """Framed batches (x, y) of consecutive lines, every line exactly once, in order."""
    if batch_size < 1:
        raise ValueError(f"batch_size = {batch_size} must be >= 1")
    for first in range(0, len(lines), batch_size):
        x, y = frame_lines(lines[first:first + batch_size], boundary, left_pad)
        yield _to_device(x, device), _to_device(y, device)


def line_nats(logits_of: Callable[[Tensor], Tensor], lines: Sequence[np.ndarray], boundary: int, *,
              left_pad: int, batch_size: int = 64, device: torch.device | str = "cpu") -> tuple[float, int]:
    """(total nats, predictions) over every next token of every line, the closing boundary included.

    `logits_of(x (B, T)) → (B, T, V)`. Divide the total by the predictions for the mean loss, or by
    `LineData.chars(split)` · ln 2 for bits per character.
    """
    if not lines:
        raise DataError("there are no lines to evaluate")
    total, count = 0.0, 0
    with torch.no_grad():
        for x, y in iter_line_batches(lines, boundary, batch_size, left_pad, device=device):
            logits = logits_of(x)  # (B, T, V)
            # The sum in at least float32; each batch's sum is added in float64 (a Python float).
            logits = logits.to(torch.promote_types(logits.dtype, torch.float32))
            total += F.cross_entropy(logits.flatten(0, 1), y.reshape(-1), ignore_index=-1, reduction="sum").item()
            count += int((y != -1).sum())
    return total, count


__all__ = ["LineBatches", "LineData", "SPLITS", "boundary_id", "check_max_len", "frame_lines",
           "iter_line_batches", "line_nats", "prepare_lines", "split_lines"]
