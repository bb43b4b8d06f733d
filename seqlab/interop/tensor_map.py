"""How one seqlab parameter corresponds to tensors of another format, in both directions.

A converter (GPT-2, LLaMA) is a list of `TensorMap`s: each names one seqlab state-dict key and the
tensor(s) it is made of in the other format, and how: stored transposed (GPT-2's `Conv1D` keeps
weights as (in, out)), or stacked by rows (LLaMA's separate q, k, v projections are the rows of
seqlab's packed `qkv`). The same maps convert weights in (`gather`) and out (`scatter`) and give the
shapes a file must hold (`expected_shapes`), so import checks every tensor before using it.

Dimensions: D model width · H heads · G kv heads · Dh head width.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import torch
from torch import Tensor

from seqlab.errors import CheckpointError

Shape = tuple[int, ...]


@dataclass(frozen=True)
class TensorMap:
    """seqlab's `ours` is `theirs` stacked by rows (`rows`: each one's row count), or the single
    tensor `theirs[0]`, transposed when `transpose` (a (in, out) layout)."""

    ours: str
    theirs: tuple[str, ...]
    rows: tuple[int, ...] = ()
    transpose: bool = False

    def __post_init__(self) -> None:
        if len(self.theirs) > 1 and len(self.rows) != len(self.theirs):
            raise ValueError(f"{self.ours}: stacking {len(self.theirs)} tensors needs their row counts")
        if len(self.theirs) > 1 and self.transpose:
            raise ValueError(f"{self.ours}: stacked tensors are not transposed")

    def their_shapes(self, our_shape: Shape) -> dict[str, Shape]:
        """The shape each of `theirs` has when `ours` has `our_shape`."""
        if len(self.theirs) > 1:
            return {name: (n, *our_shape[1:]) for name, n in zip(self.theirs, self.rows)}
        return {self.theirs[0]: tuple(reversed(our_shape)) if self.transpose else tuple(our_shape)}

    def gather(self, tensors: Mapping[str, Tensor]) -> Tensor:
        """Their tensors → ours."""
        if len(self.theirs) > 1:
            return torch.cat([tensors[name] for name in self.theirs], dim=0)  # rows stacked
        t = tensors[self.theirs[0]]
        return t.t() if self.transpose else t

    def scatter(self, ours: Tensor) -> dict[str, Tensor]:
        """Ours → their tensors, each contiguous and owning its memory (safetensors needs both)."""
        if len(self.theirs) > 1:
            parts = ours.split(list(self.rows), dim=0)
            return {name: part.detach().clone() for name, part in zip(self.theirs, parts)}
        t = ours.detach().t() if self.transpose else ours.detach()
        return {self.theirs[0]: t.contiguous().clone()}


def expected_shapes(maps: list[TensorMap], state: Mapping[str, Tensor]) -> dict[str, Shape]:
    """Every tensor name of the other format and its shape, for a model whose state is `state`."""
    shapes: dict[str, Shape] = {}
    for m in maps:
        shapes.update(m.their_shapes(tuple(state[m.ours].shape)))
    return shapes


def check_tensors(tensors: Mapping[str, Tensor], expected: Mapping[str, Shape], *, source: str) -> None:
    """Raise a one-line CheckpointError unless `tensors` has exactly the `expected` names and shapes."""
    missing = sorted(set(expected) - set(tensors))
    unexpected = sorted(set(tensors) - set(expected))
    if missing or unexpected:
        parts = []
        if missing:
            parts.append(f"missing {', '.join(missing[:3])}{' ...' if len(missing) > 3 else ''}")
        if unexpected:
            parts.append(f"unexpected {', '.join(unexpected[:3])}{' ...' if len(unexpected) > 3 else ''}")
        raise CheckpointError(f"{source} does not fit its config.json: {'; '.join(parts)}")
    for name, shape in expected.items():
        got = tuple(tensors[name].shape)
        if got != tuple(shape):
            raise CheckpointError(f"{source}: tensor {name} has shape {list(got)}, but config.json "
                                  f"implies {list(shape)}")
