"""Behaviour several families share: how a split is scored, and what a model's size is.

Scoring strategies (a `Family.score`), each (model, tokens, device, context) → (summed nats, number
of predicted tokens, the window used or None) over a whole split given as one 1-D array of ids:

- `score_windows`: non-overlapping windows of the model's context (a Transformer's block_size, or
  `context`), every token after the first predicted once;
- `score_carried`: the split as ONE stream, in windows with the hidden state carried from each to the
  next (a recurrent model), so the loss is exactly one pass's;
- `score_sliding`: for a model that reads a fixed span of past tokens (`receptive_field`: the MLP's
  window, WaveNet's dilated stack), windows of new tokens each preceded by the span before them, so
  every prediction sees its whole span and the result equals scoring the stream in one pass.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from seqlab.data import iter_eval_windows, line_nats
from seqlab.models.contract import model_device
from seqlab.errors import SeqlabError

CARRIED_WINDOW = 256  # tokens per forward when a recurrent model reads a split (no effect on its loss)
SLIDING_WINDOW = 512  # new tokens per row when a fixed-span model reads a split (no effect on its loss)


def parameter_count(model: torch.nn.Module) -> int:
    """Parameters, each shared tensor counted once."""
    return sum(p.numel() for p in model.parameters())


def evaluation_context(model, context: int | None) -> int:
    """The window length to evaluate `model` with: `context`, or its block_size when None.

    A context longer than block_size needs positions that extrapolate (`model.max_context` None:
    sinusoidal, rotary, ALiBi, relative, none); learned positions end at block_size.
    """
    if context is None:
        return model.block_size
    if context < 1:
        raise SeqlabError(f"context = {context}: the evaluation context must be a positive number of tokens")
    limit = getattr(model, "max_context", None)  # positions that end somewhere (learned ones) say where
    if limit is not None and context > limit:
        raise SeqlabError(f"context = {context} is longer than the model's {limit} learned positions, which "
                          f"cannot extrapolate: evaluate with a context of at most {limit}")
    return context


@torch.inference_mode()
def stream_nats(logits_of, tokens: np.ndarray, block_size: int, *, batch_size: int = 32,
                device="cpu") -> tuple[float, int]:
    """Summed cross-entropy (nats) over every predicted token of `tokens`, and how many there are:
    non-overlapping windows of `block_size`, every token after the first predicted once.
    `logits_of` maps x (B, T) to logits (B, T, V)."""
    total, count = 0.0, 0
    for x, y in iter_eval_windows(tokens, block_size, batch_size):
        logits = logits_of(x.to(device))  # (B, T, V)
        total += F.cross_entropy(logits.flatten(0, 1).float(), y.to(device).flatten(), reduction="sum").item()
        count += y.numel()
    return total, count


def score_windows(model, tokens: np.ndarray, device, context: int | None = None, *,
                  batch_size: int = 32) -> tuple[float, int, int]:
    """Summed cross-entropy over non-overlapping windows of the model's context (see the module docstring)."""
    window = evaluation_context(model, context)
    total, count = stream_nats(lambda x: model(x)[0], tokens, window, batch_size=batch_size, device=device)
    return total, count, window


@torch.inference_mode()
def score_carried(model, tokens: np.ndarray, device, context: int | None = None) -> tuple[float, int, int]:
    """The split as one stream, the hidden state carried across windows of `CARRIED_WINDOW` tokens."""
    window = context or CARRIED_WINDOW
    if window < 1:
        raise SeqlabError(f"context = {window}: the evaluation window must be a positive number of tokens")
    total, count, state = 0.0, 0, None
    for start in range(0, len(tokens) - 1, window):
        chunk = torch.from_numpy(np.asarray(tokens[start:start + window + 1], dtype=np.int64)).to(device)[None]
        logits, _, state = model(chunk[:, :-1], state=state, return_state=True)  # (1, T, V)
        total += F.cross_entropy(logits[0].float(), chunk[0, 1:], reduction="sum").item()
        count += chunk.shape[1] - 1
    return total, count, window


@torch.inference_mode()
def score_framed_lines(model, lines: list, boundary: int, settings) -> tuple[float, int]:
    """Every next token of every line, its closing boundary included, read by a model trained on
    framed lines (`seqlab.data.lines`): the padding its family puts before each line, then the line."""
    from seqlab import families

    left_pad = families.get(settings.family).line_padding(settings)
    return line_nats(lambda x: model(x)[0], lines, boundary, left_pad=left_pad, device=model_device(model))


@torch.inference_mode()
def score_sliding(model, tokens: np.ndarray, device, context: int | None = None) -> tuple[float, int, None]:
    """Windows of `SLIDING_WINDOW` new tokens, each read after the `receptive_field` − 1 tokens
    before it (fewer at the start of the split, as in one pass), every token after the first
    predicted once."""
    span = model.receptive_field - 1
    total, count = 0.0, 0
    for first in range(1, len(tokens), SLIDING_WINDOW):  # the first predicted position of the window
        lo, hi = max(0, first - 1 - span), min(len(tokens), first + SLIDING_WINDOW)
        ids = torch.from_numpy(np.asarray(tokens[lo:hi], dtype=np.int64)).to(device)
        skip = first - 1 - lo  # warm-up predictions, already scored by the window before
        logits = model(ids[None, :-1])[0][0, skip:]  # (T', V)
        total += F.cross_entropy(logits.float(), ids[1 + skip:], reduction="sum").item()
        count += len(ids) - 1 - skip
    return total, count, None


__all__ = ["CARRIED_WINDOW", "SLIDING_WINDOW", "evaluation_context", "parameter_count", "score_carried",
           "score_sliding", "score_windows", "stream_nats"]
