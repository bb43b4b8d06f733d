"""A sparse mixture of experts in place of a Transformer's feed-forward network.

Shazeer et al. 2017 ("Outrageously Large Neural Networks"), Switch Transformer (Fedus et al. 2021)
and Mixtral (Jiang et al. 2024): a layer holds E feed-forward networks, the *experts*, and a linear
*router* that scores them for every token. Each token goes to the k best-scored experts only, and
the layer's output is their outputs weighted by the gates:

    p = softmax(router(x))            (E,)  over all experts, in float32
    chosen = top-k of p               (k,)  expert ids
    g = p[chosen] / sum(p[chosen])    (k,)  gates, renormalised over the chosen k (Mixtral)
    y = sum_j g_j · expert_{chosen_j}(x)

So the parameters grow with E while the work per token grows with k: the *active* parameters of
a token are those of k experts (`active_parameters`).

The experts are computed by grouping tokens per expert: the N·k (token, expert) pairs are sorted by
expert, each expert runs once on the rows routed to it, and the weighted outputs are added back to
their tokens (`index_add_`). No expert ever sees a token not routed to it.

Load balancing (Switch, eq. 4–6): left alone, a router sends most tokens to a few experts. The
auxiliary loss E · Σ_e f_e · P_e, with f_e the fraction of routed (token, slot) pairs that chose
expert e and P_e the mean router probability of e, is smallest when both are uniform; it is
added to the training loss with the weight `model.router_aux_loss`. `load_balancing_loss` follows
Hugging Face's `load_balancing_loss_func` (Mixtral): the k slots of a token are all counted (so f
sums to k and the loss of a uniform router is k), and the layers are pooled — f and P are taken over
the tokens of all layers together, not averaged per layer.

Inspection: the router is the `nn.Linear` submodule `router`; a forward hook on it receives the
router logits (N, E), and `route(logits, k)` turns them into the expert ids and gates the layer
used. `recorded_router_logits` is that hook, in a context manager; the training loss uses it too.
Nothing is stored on the modules. Parity: tests/interop/test_mixtral.py against
`transformers.MixtralForCausalLM` (logits, and the experts chosen for every token).

Dimensions: B batch · T time · N tokens (B·T) · D model width · E experts · k experts per token.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager

import torch
from torch import Tensor, nn


def route(router_logits: Tensor, top_k: int) -> tuple[Tensor, Tensor]:
    """router_logits (N, E) → (expert ids (N, k) long, gates (N, k) float32 summing to 1 per token).

    Softmax over all E experts in float32, the k most probable kept (in decreasing order), their
    probabilities renormalised to sum to 1, as Mixtral does."""
    probs = torch.softmax(router_logits.float(), dim=-1)  # (N, E)
    gates, expert_ids = torch.topk(probs, top_k, dim=-1)  # (N, k), (N, k)
    return expert_ids, gates / gates.sum(dim=-1, keepdim=True)


class MixtureOfExperts(nn.Module):
    """x (B, T, D) → (B, T, D): each token through its `top_k` experts of `experts`, gate-weighted.

    Parameters: `router` (D → E, no bias) and `experts.{e}` (each a feed-forward network as the
    model's dense one, D → D). The experts are built by the caller, so every feed-forward variant
    (plain or gated, any activation) can be an expert.
    """

    def __init__(self, d_model: int, experts: Sequence[nn.Module], *, top_k: int) -> None:
        super().__init__()
        if not 1 <= top_k <= len(experts):
            raise ValueError(f"top_k must be in 1..{len(experts)} (the number of experts), got {top_k}")
        self.router = nn.Linear(d_model, len(experts), bias=False)
        self.experts = nn.ModuleList(experts)
        self.top_k = top_k

    @property
    def n_experts(self) -> int:
        return len(self.experts)

    def forward(self, x: Tensor) -> Tensor:
        shape = x.shape
        h = x.reshape(-1, shape[-1])  # (N, D)
        expert_ids, gates = route(self.router(h), self.top_k)  # (N, k), (N, k)
        return grouped_experts(self.experts, h, expert_ids, gates).view(shape)

    def extra_repr(self) -> str:
        return f"experts={self.n_experts}, top_k={self.top_k}"


def grouped_experts(experts: Sequence[nn.Module], h: Tensor, expert_ids: Tensor, gates: Tensor) -> Tensor:
    """Σ_j gates[n, j] · experts[expert_ids[n, j]](h[n]) for every row n of h (N, D) → (N, D),
    each expert run once on the rows routed to it."""
    N, k = expert_ids.shape
    flat = expert_ids.reshape(-1)  # (N·k,) pair p = (token p // k, slot p % k)
    order = torch.argsort(flat, stable=True)  # pairs grouped by expert, tokens in order within each
    tokens = order // k  # (N·k,) the token of each sorted pair
    weights = gates.reshape(-1)[order].unsqueeze(-1)  # (N·k, 1)
    counts = torch.bincount(flat, minlength=len(experts)).tolist()  # pairs per expert (one host read)
    y = torch.zeros_like(h)  # (N, D)
    start = 0
    for expert, count in zip(experts, counts):
        if count:
            rows = tokens[start:start + count]  # (n_e,)
            out = expert(h[rows]) * weights[start:start + count]  # (n_e, D), the gate in float32 ...
            y.index_add_(0, rows, out.to(y.dtype))  # ... and the sum in the stream's dtype
        start += count
    return y


def moe_layers(model: nn.Module) -> list[MixtureOfExperts]:
    """The mixture-of-experts layers of `model`, in module order."""
    return [m for m in model.modules() if isinstance(m, MixtureOfExperts)]


@contextmanager
def recorded_router_logits(model: nn.Module, *, enabled: bool = True) -> Iterator[list[Tensor]]:
    """A list that collects, in call order, the router logits (N, E) of every mixture-of-experts
    layer of `model` in the forwards run inside the block, through forward hooks removed on exit.
    With `enabled` False nothing is hooked and the list stays empty.

    >>> with recorded_router_logits(model) as logits:   # doctest: +SKIP
    ...     model(idx)
    >>> expert_ids, gates = route(logits[0], k)          # layer 0's choice for every token
    """
    logits: list[Tensor] = []
    handles = []
    if enabled:
        for layer in moe_layers(model):
            handles.append(layer.router.register_forward_hook(lambda _m, _args, out: logits.append(out)))
    try:
        yield logits
    finally:
        for handle in handles:
            handle.remove()


def load_balancing_loss(router_logits: Sequence[Tensor], top_k: int) -> Tensor:
    """The Switch/Mixtral load-balancing loss of the router logits of one forward (a (N, E) tensor
    per layer): E · Σ_e f_e · P_e over the tokens of all layers pooled, with f_e the fraction of
    tokens that routed one of their k slots to e (Σ f = k) and P_e the mean probability of e. A
    balanced router with uniform probabilities gives k; one that puts all its probability on the
    same k experts for every token gives E.

    The same value as Hugging Face's `load_balancing_loss_func` without an attention mask."""
    if not router_logits:
        raise ValueError("no router logits: the model has no mixture-of-experts layer, or it did not run")
    E = router_logits[0].shape[-1]
    counts = router_logits[0].new_zeros(E, dtype=torch.float32)
    prob_sums = router_logits[0].new_zeros(E, dtype=torch.float32)
    rows = 0
    for logits in router_logits:
        probs = torch.softmax(logits.float(), dim=-1)  # (N, E)
        chosen = torch.topk(probs, top_k, dim=-1).indices  # (N, k)
        counts = counts + torch.bincount(chosen.reshape(-1), minlength=E).float()  # (E,)
        prob_sums = prob_sums + probs.sum(dim=0)  # (E,)
        rows += probs.shape[0]
    return E * torch.sum((counts / rows) * (prob_sums / rows))


def active_parameters(model: nn.Module) -> int:
    """The parameters one token uses: every parameter (a shared tensor once) except the experts a
    token is not routed to, (E − k) experts' worth in each mixture-of-experts layer. Equal to the
    parameter count for a dense model."""
    total = sum(p.numel() for p in model.parameters())
    for layer in moe_layers(model):
        per_expert = sum(p.numel() for p in layer.experts[0].parameters())
        total -= (layer.n_experts - layer.top_k) * per_expert
    return total
