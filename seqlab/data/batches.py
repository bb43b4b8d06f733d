"""Batch sources, and batches of language-model windows drawn from a token array.

B batch · T time (block_size)

`BatchSource` is the contract between the data and the Trainer (which knows nothing about model
families): every source has `tokens_per_char`, `sample`, `sample_eval`, `carry` and `shards_rows`.
`Batches` gives the optional ones their plain meaning, so a source states only what it changes.

`sample_batch` draws random windows for training; its offsets come from one `torch.randint` call on
the caller's generator, so the generator's state alone decides the batch and a resumed run draws
the batches it would have drawn. `iter_eval_windows` walks a split in non-overlapping windows so
that every target token is predicted exactly once, for an exact loss over the whole split.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

import numpy as np
import torch
from torch import Tensor

from seqlab.data.cache import TokenData
from seqlab.errors import DataError

Inputs = Tensor | tuple | dict  # what the trainer passes to the model: model(x, y), model(*x, y), model(**x, targets=y)


@runtime_checkable
class BatchSource(Protocol):
    """Where a Trainer's batches come from.

    tokens_per_char: per split ("train", "val"), turns nats per token into bits per character.
    sample(split, generator) → (inputs, targets): a training batch. All randomness comes from
        `generator`, so its state alone decides the batch and a resumed run draws what it would have.
    sample_eval(split, generator) → (inputs, targets): a batch for the loss estimates, which must not
        disturb a stateful training stream.
    carry(output): called with the model's output after each training forward (truncated BPTT keeps
        the final hidden state from it).
    shards_rows: False when, under data-parallel training, the trainer cuts each process's rows out
        of the global batch; True when the source draws them itself once `rows` is set (a slice).
    """

    tokens_per_char: dict[str, float]
    shards_rows: bool

    def sample(self, split: str, generator: torch.Generator) -> tuple[Inputs, Tensor]: ...

    def sample_eval(self, split: str, generator: torch.Generator) -> tuple[Inputs, Tensor]: ...

    def carry(self, output: tuple) -> None: ...


class Batches:
    """The plain meaning of `BatchSource`'s optional members: estimates draw like training, nothing
    is carried, and the trainer shards rows. Sources subclass it and override what they change."""

    shards_rows = False
    rows: slice = slice(None)  # this process's rows, for sources that shard themselves

    def sample(self, split: str, generator: torch.Generator) -> tuple[Inputs, Tensor]:
        raise NotImplementedError

    def sample_eval(self, split: str, generator: torch.Generator) -> tuple[Inputs, Tensor]:
        return self.sample(split, generator)

    def carry(self, output: Any) -> None:
        return None


@dataclass
class LMBatches(Batches):
    """Random windows of a token stream: the batch source of language-model training."""

    data: TokenData
    batch_size: int
    block_size: int

    @property
    def tokens_per_char(self) -> dict[str, float]:
        return {"train": len(self.data.train) / self.data.train_chars,
                "val": len(self.data.val) / self.data.val_chars}

    def sample(self, split: str, generator: torch.Generator) -> tuple[Tensor, Tensor]:
        tokens = self.data.train if split == "train" else self.data.val
        return sample_batch(tokens, self.batch_size, self.block_size, generator)


def sample_batch(tokens: np.ndarray, batch_size: int, block_size: int,
                 generator: torch.Generator,
                 device: torch.device | str = "cpu") -> tuple[Tensor, Tensor]:
    """Random inputs `x` and targets `y` (int64, (B, T)), `y` being `x` shifted left by one token.

    Raises DataError if `tokens` is shorter than `block_size + 1`.
    """
    _check_sizes(batch_size, block_size)
    n = len(tokens)
    if n < block_size + 1:
        raise DataError(
            f"the split has {n} tokens but the context is block_size = {block_size} (it needs "
            f"{block_size + 1}): use a smaller model.block_size or more text"
        )
    starts = torch.randint(n - block_size, (batch_size,), generator=generator).numpy()
    # One gather of T + 1 tokens per row serves as both inputs and targets.
    index = starts[:, None] + np.arange(block_size + 1)  # (B, T+1)
    windows = np.asarray(tokens[index], dtype=np.int64)  # (B, T+1)
    x = torch.from_numpy(np.ascontiguousarray(windows[:, :-1]))  # (B, T)
    y = torch.from_numpy(np.ascontiguousarray(windows[:, 1:]))  # (B, T)
    return _to_device(x, device), _to_device(y, device)


def iter_eval_windows(tokens: np.ndarray, block_size: int, batch_size: int, *,
                      device: torch.device | str = "cpu") -> Iterator[tuple[Tensor, Tensor]]:
    """Batches `(x, y)` of consecutive, non-overlapping windows covering the whole split.

    Full windows come in batches of shape (≤B, T); a final shorter window, if any, comes alone as
    (1, T') with T' < T. Every token but the first is a target exactly once, so summing the
    per-token losses (reduction="sum") and dividing by `len(tokens) - 1` gives the exact loss.
    """
    _check_sizes(batch_size, block_size)
    n_targets = len(tokens) - 1
    if n_targets < 1:
        raise DataError(f"the split has {len(tokens)} token(s): at least 2 are needed to evaluate")
    n_full, rest = divmod(n_targets, block_size)
    for first in range(0, n_full, batch_size):
        rows = min(batch_size, n_full - first)
        start, stop = first * block_size, (first + rows) * block_size
        x = np.array(tokens[start:stop], dtype=np.int64).reshape(rows, block_size)  # (B, T)
        y = np.array(tokens[start + 1:stop + 1], dtype=np.int64).reshape(rows, block_size)
        yield _to_device(torch.from_numpy(x), device), _to_device(torch.from_numpy(y), device)
    if rest:
        start = n_full * block_size
        x = np.array(tokens[start:start + rest], dtype=np.int64)[None]  # (1, T')
        y = np.array(tokens[start + 1:start + 1 + rest], dtype=np.int64)[None]
        yield _to_device(torch.from_numpy(x), device), _to_device(torch.from_numpy(y), device)


def _check_sizes(batch_size: int, block_size: int) -> None:
    if batch_size < 1 or block_size < 1:
        raise ValueError(f"batch_size = {batch_size} and block_size = {block_size} must be >= 1")


def _to_device(t: Tensor, device: torch.device | str) -> Tensor:
    """`t` on `device`; to CUDA through pinned memory, so the copy does not block the host."""
    device = torch.device(device)
    if device.type == "cuda":
        return t.pin_memory().to(device, non_blocking=True)
    return t if device.type == "cpu" else t.to(device)
