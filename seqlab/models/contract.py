"""The model contract: what every family's language model offers the rest of seqlab.

Every language model, from the n-gram to the Transformer, is driven through the same four members,
so generation, evaluation and inspection never ask which family a model is:

    block_size                    the longest context the model reads, or None when unbounded
                                  (an RNN's or HMM's state carries the whole past)
    new_state(batch, device)      an empty state: the n-gram's context, the HMM's predictive state
                                  distribution, the RNN's hidden state, the WaveNet's input queues,
                                  the Transformer's KV cache
    step(tokens, state)           tokens (B, T) continue `state`; returns (logits of the next token
                                  (B, V), the new state). With state None the tokens are the whole
                                  context and no state is kept (the recompute path); the returned
                                  state is then None. A state may be updated in place.
    token_log_probs(tokens)       tokens (B, T) → log-probabilities (B, T − 1), in nats, of each token
                                  after the first given the tokens before it (within the model's
                                  context): the scoring of a whole sequence.

Logits are natural-log scores: softmax(logits) is the model's predictive distribution, so for the
n-gram and the HMM, whose probabilities are exact, `logits` are log-probabilities (−inf where a
token is impossible). `generate` (`GenerateMixin`) drives any of them through `seqlab.generate`.

Dimensions: B batch · T time · V vocab.
"""

from __future__ import annotations

from typing import Any, Protocol, runtime_checkable

import torch
from torch import Tensor


@runtime_checkable
class LanguageModel(Protocol):
    """The contract every family's language model fulfils (see the module docstring)."""

    block_size: int | None

    def new_state(self, batch_size: int, device: torch.device | str | None = None) -> Any: ...

    def step(self, tokens: Tensor, state: Any) -> tuple[Tensor, Any]: ...

    def token_log_probs(self, tokens: Tensor) -> Tensor: ...


class GenerateMixin:
    """`generate` for any class that fulfils `LanguageModel`."""

    def generate(self, idx: Tensor, max_new_tokens: int, *, temperature: float = 1.0, top_k: int | None = None,
                 top_p: float | None = None, use_cache: bool = True, seed: int | None = None) -> Tensor:
        """Continue idx (B, T) by `max_new_tokens` sampled tokens → (B, T + max_new_tokens).

        A convenience over `seqlab.generate.generate`, which documents the arguments.
        """
        # Imported here: `generate` sits above `models` in the layering and imports nothing from it.
        from seqlab.generate.sampling import generate

        return generate(self, idx, max_new_tokens, temperature=temperature, top_k=top_k, top_p=top_p,
                        use_cache=use_cache, seed=seed)


class CarriedStateMixin(GenerateMixin):
    """`step` and `token_log_probs` for a model whose state is carried from token to token (the
    recurrent families, Mamba): its forward is `(tokens, state=, return_state=) → (logits, loss,
    final state)`, starting from the zero state when `state` is None."""

    def step(self, tokens: Tensor, state: Any) -> tuple[Tensor, Any]:
        """tokens (B, T) → (logits at the last position (B, V), state).

        With a state the tokens continue it and the final state is returned; with None they are the
        whole context, run from the zero state, and no state is kept (the recompute path).
        """
        logits, _, final = self(tokens, state=state, return_state=True)  # (B, T, V)
        return logits[:, -1], (None if state is None else final)

    def token_log_probs(self, tokens: Tensor) -> Tensor:
        """tokens (B, T) → (B, T − 1): the natural-log probability of each token after the first,
        given every token before it (from the zero state)."""
        logits = self(tokens[:, :-1])[0]  # (B, T-1, V)
        return torch.log_softmax(logits.float(), dim=-1).gather(-1, tokens[:, 1:, None]).squeeze(-1)


def model_device(model: object) -> torch.device:
    """Where a model's tensors live: its parameters' device, or the CPU for a model without any
    (the n-gram and the HMM compute in numpy)."""
    parameters = getattr(model, "parameters", None)
    if parameters is not None:
        for p in parameters():
            return p.device
    return torch.device("cpu")


__all__ = ["CarriedStateMixin", "GenerateMixin", "LanguageModel", "model_device"]
