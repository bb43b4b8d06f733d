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
means greedy (argmax, ties to the lowest id). A `seed` makes a private `torch.Generator`, so a seeded
call is reproducible and never touches the global RNG.

Dimensions: B batch · T time · V vocab.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any, Protocol, runtime_checkable

import torch
from torch import Tensor


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


def filter_logits(
    logits: Tensor, *, temperature: float = 1.0, top_k: int | None = None, top_p: float | None = None
) -> Tensor:
    """logits (B, V) → float32 logits (B, V) scaled by temperature, with filtered tokens at -inf.

    temperature 0 keeps only the argmax (lowest id on ties). top_k None or 0 and top_p None or 1.0
    are off. top-k keeps exactly min(k, V) tokens; top-p keeps the smallest set of most probable
    tokens whose probability is at least top_p (never empty).
    """
    if temperature < 0:
        raise ValueError(f"temperature must be at least 0, got {temperature}")
    if top_k is not None and top_k < 0:
        raise ValueError(f"top_k must be at least 0, got {top_k}")
    if top_p is not None and not 0.0 < top_p <= 1.0:
        raise ValueError(f"top_p must be in (0, 1], got {top_p}")
    logits = logits.float()  # softmax and the thresholds below in float32
    if temperature == 0:
        keep = logits.argmax(dim=-1, keepdim=True)  # (B, 1); torch.argmax returns the first maximum
        return torch.full_like(logits, float("-inf")).scatter_(-1, keep, logits.gather(-1, keep))
    if temperature != 1.0:
        logits = logits / temperature
    V = logits.shape[-1]
    if top_k is not None and 0 < top_k < V:
        values, indices = torch.topk(logits, top_k, dim=-1)  # (B, k)
        # Scatter rather than compare with the k-th value: ties at the threshold keep exactly k.
        logits = torch.full_like(logits, float("-inf")).scatter_(-1, indices, values)
    if top_p is not None and top_p < 1.0:
        sorted_logits, order = torch.sort(logits, dim=-1, descending=True, stable=True)  # (B, V)
        probs = torch.softmax(sorted_logits, dim=-1)
        before = torch.cumsum(probs, dim=-1) - probs  # probability of the more likely tokens
        drop_sorted = before >= top_p  # the first token always has before = 0 and stays
        drop = torch.zeros_like(drop_sorted).scatter_(-1, order, drop_sorted)  # back to vocab order
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
    """logits (B, V) → next token ids (B,). Temperature 0 is greedy and draws no random numbers."""
    if temperature == 0:
        return logits.argmax(dim=-1)  # (B,), first maximum = lowest id
    filtered = filter_logits(logits, temperature=temperature, top_k=top_k, top_p=top_p)
    probs = torch.softmax(filtered, dim=-1)  # (B, V) float32
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

    Streaming a batch of one:

        for column in iter_generate(model, prompt_ids, 100, temperature=0.8, seed=0):
            text_stream.push(column.tolist())
    """
    if idx.dim() != 2 or idx.shape[1] < 1 or idx.dtype != torch.long:
        raise ValueError(f"idx must be a (B, T) long tensor with T >= 1, got {tuple(idx.shape)} {idx.dtype}")
    if max_new_tokens < 0:
        raise ValueError(f"max_new_tokens must be at least 0, got {max_new_tokens}")
    if temperature < 0:
        raise ValueError(f"temperature must be at least 0, got {temperature}")
    generator = None
    if seed is not None:
        generator = torch.Generator(device=idx.device)
        generator.manual_seed(seed)

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
    """Continue idx (B, T) by `max_new_tokens` tokens → (B, T + max_new_tokens). See `iter_generate`."""
    columns = list(iter_generate(model, idx, max_new_tokens, temperature=temperature, top_k=top_k,
                                 top_p=top_p, use_cache=use_cache, seed=seed))
    if not columns:
        return idx.clone()
    # Made outside inference mode from the (inference-mode) columns: an ordinary tensor to return.
    return torch.cat([idx, torch.stack(columns, dim=1)], dim=1)  # (B, T + new)


def _token_buffer(idx: Tensor, max_new_tokens: int) -> Tensor:
    """(B, T + max_new) with idx copied in: the growing context without a torch.cat per token."""
    buffer = idx.new_empty(idx.shape[0], idx.shape[1] + max_new_tokens)
    buffer[:, : idx.shape[1]] = idx
    return buffer


def _recompute_steps(
    model: Stepper, idx: Tensor, max_new_tokens: int, pick: Callable[[Tensor], Tensor]
) -> Iterator[Tensor]:
    """Each step runs the model statelessly on the last block_size tokens (nanoGPT's loop)."""
    window = model.block_size
    with torch.inference_mode():
        buffer = _token_buffer(idx, max_new_tokens)
    for n in range(idx.shape[1], idx.shape[1] + max_new_tokens):  # n = position being predicted
        with torch.inference_mode():
            start = 0 if window is None else max(0, n - window)
            logits, _ = model.step(buffer[:, start:n], None)  # (B, V)
            token = pick(logits)  # (B,)
            buffer[:, n] = token
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
        buffer = _token_buffer(idx, max_new_tokens)
        start = 0 if window is None else max(0, T - window)  # buffer[:, start:n] is in the state
        logits, state = model.step(buffer[:, start:T], model.new_state(B, idx.device))  # (B, V)
    for n in range(T, T + max_new_tokens):  # n = position being predicted
        with torch.inference_mode():
            if n > T:  # feed the previous token (the first one's logits came from the prefill)
                if window is not None and n - 1 - start == window:  # full: re-prime from the last `keep`
                    start = n - keep
                    logits, state = model.step(buffer[:, start:n], model.new_state(B, idx.device))
                else:
                    logits, state = model.step(buffer[:, n - 1:n], state)
            token = pick(logits)  # (B,)
            buffer[:, n] = token
        yield token
