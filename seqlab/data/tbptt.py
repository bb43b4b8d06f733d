"""Truncated backpropagation through time, char-rnn style: B parallel streams of consecutive windows.

B batch · T time (block_size) · S stream length · K windows per stream

The training split is cut into B contiguous streams of S = (n − 1) // B tokens. Step k of an epoch
gives row b the window tokens[b·S + k·T : b·S + k·T + T] (targets one token later), so row b of one
batch continues row b of the previous one, and the model's final hidden state of a window is the
right initial state of the next. The state is carried, detached (gradients stop at the window's
start: that is the truncation), from one step to the next; all streams wrap around together after
K = S // T windows, and the state is then reset to zeros (the model's None).

With `shift` (`data.shift_streams`), each pass after the first adds one random offset r to every
start, the text read as a ring (index mod n): the streams start elsewhere, so the windows' edges,
where the gradient is truncated, and the rows a window shares its batch with change from pass to
pass instead of repeating the first pass's. The offset comes from the training generator, the same
in every process of a data-parallel run, so the processes' rows still partition the streams.

The carry goes through the Trainer without it knowing model families: `sample("train", ...)`
returns keyword inputs `{"idx": x, "state": carried, "return_state": True}`, the model returns
(logits, loss, final state), and the trainer hands that output to `carry`, which keeps the detached
final state for the next window. Evaluation during training (`sample_eval`) never touches the
carried state: it draws random windows of 2T tokens from either split, run from the zero state, and
scores only their last T tokens (the first T are a warm-up, targets −1), an estimate of the
carried-state loss. The exact loss over a whole split is `seqlab.api.evaluate`'s, which runs the
split as one stream with the state carried across every window.

Resuming restarts the streams at their beginning with a zero state (the position is not saved):
the model has seen those tokens before, which only costs a few windows of warm-up.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch
from torch import Tensor

from seqlab.data.batches import Batches, sample_batch
from seqlab.data.cache import TokenData
from seqlab.errors import DataError


@dataclass
class TBPTTBatches(Batches):
    """Consecutive windows of B parallel streams of the training split, with the hidden state carried."""

    shards_rows = True  # its rows are streams: each process draws (and carries the state of) its own

    data: TokenData
    batch_size: int
    block_size: int
    shift: bool = False  # a random offset for each pass after the first (the module docstring)
    # The streams this process trains on (data-parallel training gives each process its rows).
    rows: slice = field(default_factory=lambda: slice(None), init=False)
    _step: int = field(default=0, init=False)  # k, the window index within the streams
    _state: tuple[Tensor, ...] | None = field(default=None, init=False)
    _offset: int = field(default=0, init=False)  # r, added to every start in this pass
    _passes: int = field(default=0, init=False)  # passes begun

    def __post_init__(self) -> None:
        if self.batch_size < 1 or self.block_size < 1:
            raise ValueError(f"batch_size = {self.batch_size} and block_size = {self.block_size} must be >= 1")
        if self.windows < 1:
            raise DataError(f"the training split has {len(self.data.train)} tokens: too few for "
                            f"{self.batch_size} streams of at least block_size = {self.block_size} + 1 tokens; "
                            f"use a smaller train.batch_size or model.block_size")

    @property
    def stream_length(self) -> int:
        """S: the tokens of each stream (its targets reach one token further)."""
        return (len(self.data.train) - 1) // self.batch_size

    @property
    def windows(self) -> int:
        """K: windows per stream before the streams wrap around."""
        return self.stream_length // self.block_size

    @property
    def tokens_per_char(self) -> dict[str, float]:
        return {"train": len(self.data.train) / self.data.train_chars,
                "val": len(self.data.val) / self.data.val_chars}

    def window(self, k: int) -> tuple[Tensor, Tensor]:
        """x, y (int64, (B, T)) of window k: row b reads tokens b·S + k·T + r .. b·S + k·T + r + T
        (mod n, the training split's length; r = 0 unless `shift`)."""
        B, T = self.batch_size, self.block_size
        starts = (np.arange(B) * self.stream_length + k * T + self._offset)[self.rows]  # (B,), or this process's rows
        index = (starts[:, None] + np.arange(T + 1)) % len(self.data.train)  # (B, T+1)
        rows = np.asarray(self.data.train[index], dtype=np.int64)  # (B, T+1)
        return (torch.from_numpy(np.ascontiguousarray(rows[:, :-1])),
                torch.from_numpy(np.ascontiguousarray(rows[:, 1:])))

    def sample(self, split: str, generator: torch.Generator) -> tuple[dict | Tensor, Tensor]:
        """The next training window with the carried state as keyword inputs; other splits (and any
        call outside training) should use `sample_eval`, which this defers to for them."""
        if split != "train":
            return self.sample_eval(split, generator)
        if self._step == 0:
            self._state = None  # the streams start (again) at their beginning: zero state
            if self.shift and self._passes > 0:
                self._offset = int(torch.randint(len(self.data.train), (1,), generator=generator))
            self._passes += 1
        x, y = self.window(self._step)
        self._step = (self._step + 1) % self.windows
        return {"idx": x, "state": self._state, "return_state": True}, y

    def carry(self, output: tuple) -> None:
        """Keep the final state of the model's output (logits, loss, state) for the next window."""
        self._state = tuple(s.detach() for s in output[2])

    def sample_eval(self, split: str, generator: torch.Generator) -> tuple[Tensor, Tensor]:
        """Random windows of 2T tokens from the zero state, scored on their last T (targets −1 before)."""
        tokens = self.data.train if split == "train" else self.data.val
        x, y = sample_batch(tokens, self.batch_size, 2 * self.block_size, generator)  # (B, 2T)
        y[:, : self.block_size] = -1  # the warm-up: the state is built, not scored
        return x, y
