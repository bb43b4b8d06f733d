"""Autoregressive sampling: temperature, top-k, nucleus (top-p), and the generation loop.

The loop drives any model through a small stepper protocol (`Stepper` below), so n-gram, HMM, RNN
and Transformer models share it; the state is explicit (a KV cache, a hidden state, a context).

Two paths:
  - recompute (`use_cache=False`): each step runs the model on the last `block_size` tokens with no
    state (nanoGPT's loop).
  - cached (`use_cache=True`): prefill a state with the last `block_size` tokens of the prompt, then
    feed one token per step. When the state holds `block_size` tokens it is full: the loop re-primes
    a fresh state from the last max(1, block_size // 2) tokens and continues. Each new token therefore
    sees between half and all of a full window (the recompute path always sees a full window), because
    a Transformer's learned absolute positions mean cached keys cannot be shifted to new positions.
    Within `block_size` tokens both paths give identical greedy tokens.

A model may hand the loop a faster stepper for one generation through `stepper()` (TransformerLM
offers its `FunctionalStepper`, which skips the nn.Module call overhead that dominates small models).

Sampling applies temperature, then top-k, then top-p, and draws from a float32 softmax. Temperature 0
means greedy (argmax, ties to the lowest id), as does a temperature too small for float32 (below
~1.2e-38); no filter ever removes the greedy token, so a row always has one to draw. A `seed` makes
a private `torch.Generator`, so a seeded call is reproducible and never touches the global RNG; any
integer is a seed (`seqlab.seeds`).

Dimensions: B batch · T time · V vocab.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from typing import Any, Protocol, runtime_checkable

import torch
from torch import Tensor

from seqlab.seeds import torch_generator


@runtime_checkable
class Stepper(Protocol):
    """What the generation loop needs from a model.

    block_size: the longest context the model takes, or None for unbounded (then no windowing).
    new_state(batch_size, device): an empty state (KV cache, hidden state, context, ...).
    step(tokens (B, T), state): feed tokens, return (logits for the next token (B, V), new state).
        The state may be updated in place and returned. With state None, `tokens` are the whole
        context and no state is kept (the recompute path); the returned state is then None.

    A model may also offer `stepper()`: the loop calls it once per generation, after switching the
    model to eval mode, and drives what it returns (a faster object with the same three members).
    """

    block_size: int | None

    def new_state(self, batch_size: int, device: torch.device) -> Any: ...

    def step(self, tokens: Tensor, state: Any) -> tuple[Tensor, Any]: ...


GREEDY_BELOW = torch.finfo(torch.float32).tiny  # a temperature below float32's smallest normal is greedy


def check_sampling(temperature: float, top_k: int | None, top_p: float | None) -> None:
    """Raise ValueError unless temperature is a finite number >= 0, top_k None or >= 0, and top_p
    None or in (0, 1]."""
    if not (math.isfinite(temperature) and temperature >= 0):
        raise ValueError(f"temperature must be a finite number of at least 0, got {temperature}")
    if top_k is not None and top_k < 0:
        raise ValueError(f"top_k must be at least 0, got {top_k}")
    if top_p is not None and not 0.0 < top_p <= 1.0:
        raise ValueError(f"top_p must be in (0, 1], got {top_p}")


def filter_logits(
    logits: Tensor, *, temperature: float = 1.0, top_k: int | None = None, top_p: float | None = None
) -> Tensor:
    """logits (B, V) → float32 scores (B, V): (logits - the row's maximum) / temperature, the same
    softmax as logits / temperature but never overflowing, with filtered tokens at -inf.

    temperature 0 keeps only the argmax (lowest id on ties), at 0; so does any temperature below
    `GREEDY_BELOW`, where 1 / temperature overflows float32. top_k None or 0 and top_p None or 1.0
    are off. top-k keeps exactly min(k, V) tokens; top-p keeps the smallest set of most probable
    tokens whose probability is at least top_p.

    No row is ever emptied: the greedy token (the argmax, lowest id on ties) always stays, so top-p
    1e-300 keeps it alone and ties at the top never push it out of the top k. Infinite logits are
    ties too: a row with +inf logits shares its mass among them, and a row with no finite logit is
    uniform (at temperature 0, each keeps its first such token).
    """
    check_sampling(temperature, top_k, top_p)
    logits = logits.float()  # softmax and the thresholds below in float32
    top, greedy = logits.max(dim=-1, keepdim=True)  # (B, 1) each; the index of the first maximum
    if temperature < GREEDY_BELOW:
        return torch.full_like(logits, float("-inf")).scatter_(-1, greedy, 0.0)
    logits = logits - top  # the maximum at 0, so dividing by a small temperature cannot overflow
    if temperature != 1.0:
        logits.div_(temperature)  # what overflows goes to -inf: a probability below float32's range
    # inf - inf: the +inf logits of a row (or every logit of an all -inf row) are NaN, and tie at 0.
    logits.nan_to_num_(nan=0.0, posinf=float("inf"), neginf=float("-inf"))
    V = logits.shape[-1]
    if top_k is not None and 0 < top_k < V:
        indices = torch.topk(logits, top_k, dim=-1).indices  # (B, k)
        # topk may choose other tokens tied at the maximum over the greedy one: then all k kept
        # tokens are tied with it, and it takes the place of the last.
        has_greedy = (indices == greedy).any(dim=-1, keepdim=True)  # (B, 1)
        indices[..., -1:] = torch.where(has_greedy, indices[..., -1:], greedy)
        # Scatter rather than compare with the k-th value: ties at the threshold keep exactly k.
        logits = torch.full_like(logits, float("-inf")).scatter_(-1, indices, logits.gather(-1, indices))
    if top_p is not None and top_p < 1.0:
        sorted_logits, order = torch.sort(logits, dim=-1, descending=True, stable=True)  # (B, V)
        probs = torch.softmax(sorted_logits, dim=-1)
        before = torch.cumsum(probs, dim=-1) - probs  # probability of the more likely tokens
        drop_sorted = before >= top_p  # (a top_p below float32's range compares as 0: all drop ...)
        drop = torch.zeros_like(drop_sorted).scatter_(-1, order, drop_sorted)  # back to vocab order
        drop.scatter_(-1, greedy, False)  # ... but the greedy token, which always stays
        logits = logits.masked_fill(drop, float("-inf"))
    return logits


def sample_next(
    logits: Tensor,
    *,
    temperature: float = 1.0,
    top_k: int | None = None,
    top_p: float | None = None,
    generator: torch.Generator | None = None,
) -> Tensor:
    """logits (B, V) → next token ids (B,). Temperature 0 (or below `GREEDY_BELOW`) is greedy and
    draws no random numbers."""
    check_sampling(temperature, top_k, top_p)
    if temperature < GREEDY_BELOW:
        return logits.argmax(dim=-1)  # (B,), first maximum = lowest id
    filtered = filter_logits(logits, temperature=temperature, top_k=top_k, top_p=top_p)
    probs = torch.softmax(filtered, dim=-1)  # (B, V) float32, never NaN: every row keeps a token
    # argmax(p / E) with E ~ Exp(1) is a draw from p (the exponential form of the Gumbel-max trick):
    # torch.multinomial's own algorithm for one sample, without its input checks (3x its cost here).
    noise = torch.empty_like(probs).exponential_(generator=generator)  # (B, V)
    return torch.argmax(probs / noise, dim=-1)  # (B,)


def iter_generate(
    model: Stepper,
    idx: Tensor,
    max_new_tokens: int,
    *,
    temperature: float = 1.0,
    top_k: int | None = None,
    top_p: float | None = None,
    use_cache: bool = True,
    seed: int | None = None,
) -> Iterator[Tensor]:
    """Continue idx (B, T) and yield each new token column (B,) as soon as it is made.

    The model runs in eval mode under `torch.inference_mode()` while a token is being made; its
    previous train/eval mode is restored when the iterator finishes or is closed. Inference mode is
    not held across yields, so the caller's code between tokens runs normally (the yielded columns
    are inference tensors: read them, copy them, but do not modify them in place).

    Memory does not grow with `max_new_tokens`: the loop keeps the context the model reads (its
    last block_size tokens; all of them only for a model without a block_size on the recompute
    path), in a buffer that rolls every `HISTORY_CHUNK` tokens.

    Streaming a batch of one:

        for column in iter_generate(model, prompt_ids, 100, temperature=0.8, seed=0):
            text_stream.push(column.tolist())
    """
    if idx.dim() != 2 or idx.shape[1] < 1 or idx.dtype != torch.long:
        raise ValueError(f"idx must be a (B, T) long tensor with T >= 1, got {tuple(idx.shape)} {idx.dtype}")
    if max_new_tokens < 0:
        raise ValueError(f"max_new_tokens must be at least 0, got {max_new_tokens}")
    check_sampling(temperature, top_k, top_p)
    generator = None if seed is None else torch_generator(seed, idx.device)  # any integer: seqlab.seeds

    def pick(logits: Tensor) -> Tensor:
        return sample_next(logits, temperature=temperature, top_k=top_k, top_p=top_p, generator=generator)

    steps = _cached_steps if use_cache else _recompute_steps
    # Checked above, run lazily below: bad arguments fail at the call, not at the first next().
    return _in_eval_mode(model, lambda stepper: steps(stepper, idx, max_new_tokens, pick))


def _in_eval_mode(model: Stepper, steps: Callable[[Stepper], Iterator[Tensor]]) -> Iterator[Tensor]:
    """Run `steps` on the model's stepper in eval mode (for models that have modes, i.e. nn.Modules),
    restoring the mode when done or closed."""
    was_training = getattr(model, "training", None)
    if was_training is not None:
        model.eval()
    try:
        make_stepper = getattr(model, "stepper", None)
        yield from steps(make_stepper() if make_stepper is not None else model)
    finally:
        if was_training is not None:
            model.train(was_training)


def generate(
    model: Stepper,
    idx: Tensor,
    max_new_tokens: int,
    *,
    temperature: float = 1.0,
    top_k: int | None = None,
    top_p: float | None = None,
    use_cache: bool = True,
    seed: int | None = None,
) -> Tensor:
    """Continue idx (B, T) by `max_new_tokens` tokens → (B, T + max_new_tokens). See `iter_generate`.

    The result is allocated whole before the first step (the caller sizes it: `seqlab.budget`); to
    keep less, iterate `iter_generate`."""
    columns = iter_generate(model, idx, max_new_tokens, temperature=temperature, top_k=top_k,
                            top_p=top_p, use_cache=use_cache, seed=seed)
    T = idx.shape[1]
    # Made outside inference mode and filled from the (inference-mode) columns: an ordinary tensor.
    out = idx.new_empty(idx.shape[0], T + max_new_tokens)  # (B, T + new)
    out[:, :T] = idx
    for i, column in enumerate(columns):
        out[:, T + i] = column
    return out


# Room for this many new tokens (at least) is added to the context at a time: the loop copies the
# last block_size tokens to the front of its buffer once per HISTORY_CHUNK steps, so a stream of any
# length holds O(block_size + HISTORY_CHUNK) tokens, not all it generated.
HISTORY_CHUNK = 4096


class _History:
    """The context the generation loop reads, (B, ·) token ids by absolute position: the prompt and
    the new tokens, of which only the last `keep` stay readable (all of them when keep is None)."""

    def __init__(self, idx: Tensor, max_new_tokens: int, keep: int | None) -> None:
        B, T = idx.shape
        room = min(max_new_tokens, max(keep or 0, HISTORY_CHUNK))
        self._buffer = idx.new_empty(B, T + room)
        self._buffer[:, :T] = idx
        self._first = 0  # the absolute position of _buffer[:, 0]
        self.end = T  # the absolute position after the last token
        self._keep = keep

    def __getitem__(self, positions: slice) -> Tensor:
        """The tokens at absolute positions [start, stop) (B, stop − start); start must be among the
        last `keep`."""
        start, stop = positions.start, positions.stop
        if start < self._first:
            raise IndexError(f"position {start} was dropped: the context keeps {self._keep} tokens")
        return self._buffer[:, start - self._first:stop - self._first]

    def append(self, column: Tensor) -> None:
        """Add one token per row (B,)."""
        used = self.end - self._first
        if used == self._buffer.shape[1]:
            # A new buffer, not the old one overwritten: a model's state may still hold views of it.
            kept = used if self._keep is None else min(self._keep, used)  # all of it, or the last `keep`
            fresh = self._buffer.new_empty(self._buffer.shape[0], 2 * used if self._keep is None else used)
            fresh[:, :kept] = self._buffer[:, used - kept:used]
            self._buffer, self._first, used = fresh, self.end - kept, kept
        self._buffer[:, used] = column
        self.end += 1


def _recompute_steps(
    model: Stepper, idx: Tensor, max_new_tokens: int, pick: Callable[[Tensor], Tensor]
) -> Iterator[Tensor]:
    """Each step runs the model statelessly on the last block_size tokens (nanoGPT's loop)."""
    window = model.block_size
    with torch.inference_mode():
        history = _History(idx, max_new_tokens, keep=window)
    for n in range(idx.shape[1], idx.shape[1] + max_new_tokens):  # n = position being predicted
        with torch.inference_mode():
            start = 0 if window is None else max(0, n - window)
            logits, _ = model.step(history[start:n], None)  # (B, V)
            token = pick(logits)  # (B,)
            history.append(token)
        yield token


def _cached_steps(
    model: Stepper, idx: Tensor, max_new_tokens: int, pick: Callable[[Tensor], Tensor]
) -> Iterator[Tensor]:
    """Prefill once, then one token per step; re-prime from the last half window when full."""
    if max_new_tokens == 0:
        return
    window = model.block_size
    keep = None if window is None else max(1, window // 2)
    B, T = idx.shape
    with torch.inference_mode():
        # The re-prime reads the last `keep` tokens; without a window only the last one is fed.
        history = _History(idx, max_new_tokens, keep=1 if window is None else window)
        start = 0 if window is None else max(0, T - window)  # history[start:n] is in the state
        logits, state = model.step(history[start:T], model.new_state(B, idx.device))  # (B, V)
    for n in range(T, T + max_new_tokens):  # n = position being predicted
        with torch.inference_mode():
            if n > T:  # feed the previous token (the first one's logits came from the prefill)
                if window is not None and n - 1 - start == window:  # full: re-prime from the last `keep`
                    start = n - keep
                    logits, state = model.step(history[start:n], model.new_state(B, idx.device))
                else:
                    logits, state = model.step(history[n - 1:n], state)
            token = pick(logits)  # (B,)
            history.append(token)
        yield token
