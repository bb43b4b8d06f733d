"""The fixed-window neural language model (Bengio, Ducharme, Vincent & Jauvin 2003, "A Neural
Probabilistic Language Model"), as Karpathy's makemore MLP builds it.

For every position t the K tokens up to and including t are embedded, concatenated and passed
through an MLP whose output layer gives the logits of token t + 1:

    x[t−K+1..t] → tok_emb → concat (K·E) → n_layer × (linear → norm → activation → dropout)
                → lm_head → logits of x[t+1]          (+ `direct`: a linear map of the concat)

`direct` adds the paper's direct connections W·x from the concatenated embeddings to the output:
y = b + W·x + U·tanh(d + H·x) (its equation 1; b is `lm_head`'s bias, so `direct` has none).
Positions before the start of the sequence read a zero embedding vector (zero padding); the paper
and makemore pad with a boundary token instead, which the line data gives (`seqlab.data.lines`,
`left_pad = K − 1`), so the zero vector is only read where a stream starts. Every position's
window is gathered at once (`Tensor.unfold` over the ids), with no loop over time; the reference
for equivalence is the per-position loop in tests/models/test_mlp.py.

Contract (`seqlab.models.contract`): `block_size` is None, since the state slides and is never
full; the state is the last K token ids (B, K), −1 standing for "before the start" (zero
embedding). `step` appends tokens to it and keeps the last K, so cached and recomputed generation
see the same windows.

State-dict keys: `tok_emb.weight`, `hidden.{i}.linear.weight`/`.bias`, `hidden.{i}.norm.weight`/
`.bias` (layernorm), `lm_head.weight`/`.bias`, `direct.weight` (when `direct`).

Dimensions: B batch · T time · K context (tokens read per prediction) · E embedding width ·
H hidden width · V vocab.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from seqlab.config.schema import ModelSettings, _require
from seqlab.models.contract import GenerateMixin

BEFORE_START = -1  # the id, in a state or window, of a position before the sequence's start


@dataclass(frozen=True)
class MLPConfig(ModelSettings):
    """The `[model]` settings of the `mlp` family (defaults: makemore's MLP, part 2 of the lectures)."""

    family: Literal["mlp"] = "mlp"
    block_size: int = 64  # tokens per training window of a stream (the model itself reads only K)
    context: int = 3  # K: the tokens read before each prediction; Bengio's n − 1
    d_embed: int = 10  # E: the embedding width of each token
    d_hidden: int = 200  # H: the width of each hidden layer
    n_layer: int = 1  # hidden layers (Bengio has one)
    activation: Literal["tanh", "relu"] = "tanh"  # the paper's tanh; relu for deeper stacks
    norm: Literal["none", "layernorm"] = "none"  # after each hidden linear, before the activation
    dropout: float = 0.0  # after each hidden activation
    bias: bool = True  # biases in the linear layers and the LayerNorms
    direct: bool = False  # Bengio's direct connections from the concatenated embeddings to the output

    def __post_init__(self) -> None:
        _require(self.family == "mlp", "model.family", self.family, '"mlp"')
        for name in ("block_size", "context", "d_embed", "d_hidden", "n_layer"):
            value = getattr(self, name)
            _require(isinstance(value, int) and value >= 1, f"model.{name}", value, "a positive integer")
        _require(self.activation in ("tanh", "relu"), "model.activation", self.activation, '"tanh" or "relu"')
        _require(self.norm in ("none", "layernorm"), "model.norm", self.norm, '"none" or "layernorm"')
        _require(0.0 <= self.dropout < 1.0, "model.dropout", self.dropout, "a number in [0, 1)")


def build_norm(kind: str, width: int, *, bias: bool) -> nn.Module:
    """The normalisation `model.norm` names, over the last dimension of width `width`."""
    match kind:
        case "none":
            return nn.Identity()
        case "layernorm":
            return nn.LayerNorm(width, bias=bias)
    raise ValueError(f"model.norm = {kind!r} is not a normalisation")


def build_activation(kind: str) -> nn.Module:
    """The nonlinearity `model.activation` names."""
    match kind:
        case "tanh":
            return nn.Tanh()
        case "relu":
            return nn.ReLU()
    raise ValueError(f"model.activation = {kind!r} is not an activation")


class HiddenLayer(nn.Module):
    """One hidden layer: linear → norm → activation → dropout, its parts given already built."""

    def __init__(self, linear: nn.Linear, norm: nn.Module, activation: nn.Module, dropout: float) -> None:
        super().__init__()
        self.linear = linear
        self.norm = norm
        self.activation = activation
        self.dropout = nn.Dropout(dropout)

    def forward(self, x: Tensor) -> Tensor:
        """x (..., in) → (..., H)."""
        return self.dropout(self.activation(self.norm(self.linear(x))))


def build_hidden(config: MLPConfig) -> nn.Sequential:
    """The n_layer hidden layers: the first reads the K·E concatenation, the others H."""
    widths = [config.context * config.d_embed] + [config.d_hidden] * config.n_layer
    return nn.Sequential(*(
        HiddenLayer(nn.Linear(d_in, d_out, bias=config.bias),
                    build_norm(config.norm, d_out, bias=config.bias),
                    build_activation(config.activation), config.dropout)
        for d_in, d_out in zip(widths[:-1], widths[1:])
    ))


def sliding_windows(ids: Tensor, context: int) -> Tensor:
    """ids (B, T) → (B, T, K): row t holds ids[t−K+1..t], BEFORE_START where t−K+1+k < 0."""
    padded = F.pad(ids, (context - 1, 0), value=BEFORE_START)  # (B, T+K−1)
    return padded.unfold(1, context, 1)  # (B, T, K), a view: window t is padded[t : t+K]


class MLPLM(nn.Module, GenerateMixin):
    """Bengio et al.'s MLP language model over tokens.

    >>> model = MLPLM(MLPConfig(context=3, d_embed=4, d_hidden=8), vocab_size=27)
    >>> logits, loss = model(torch.zeros(2, 5, dtype=torch.long), torch.zeros(2, 5, dtype=torch.long))
    >>> logits.shape, model.new_state(2).tolist()
    (torch.Size([2, 5, 27]), [[-1, -1, -1], [-1, -1, -1]])
    """

    block_size = None  # the state slides (the last K tokens) and is never full

    def __init__(self, config: MLPConfig, vocab_size: int) -> None:
        super().__init__()
        if vocab_size < 1:
            raise ValueError(f"vocab_size must be positive, got {vocab_size}")
        self.config = config
        self.vocab_size = vocab_size
        self.context = config.context
        self.tok_emb = nn.Embedding(vocab_size, config.d_embed)
        self.hidden = build_hidden(config)
        self.lm_head = nn.Linear(config.d_hidden, vocab_size, bias=config.bias)
        # W of the paper's y = b + W·x + U·tanh(d + H·x): b is lm_head's bias, so W has none.
        self.direct = nn.Linear(config.context * config.d_embed, vocab_size, bias=False) if config.direct else None

    def logits_of_windows(self, windows: Tensor) -> Tensor:
        """windows (..., K) of ids, BEFORE_START where there is no token → logits (..., V)."""
        known = windows != BEFORE_START  # (..., K)
        emb = self.tok_emb(windows.clamp(min=0))  # (..., K, E)
        emb = emb * known.unsqueeze(-1).to(emb.dtype)  # zero padding (and no gradient to id 0)
        x = emb.flatten(-2)  # (..., K·E), oldest token first (makemore's emb.view(N, K·E))
        logits = self.lm_head(self.hidden(x))  # (..., V)
        if self.direct is not None:
            logits = logits + self.direct(x)
        return logits

    @property
    def receptive_field(self) -> int:
        """The tokens a prediction reads: the context K (as WaveNet's, for scoring a stream)."""
        return self.context

    def forward(self, idx: Tensor, targets: Tensor | None = None) -> tuple[Tensor, Tensor | None]:
        """idx (B, T) → (logits (B, T, V) of each next token, mean cross-entropy or None).

        `targets` (B, T) may use -1 for positions to ignore.
        """
        logits = self.logits_of_windows(sliding_windows(idx, self.context))  # (B, T, V)
        loss = None
        if targets is not None:
            loss = F.cross_entropy(logits.flatten(0, 1), targets.reshape(-1), ignore_index=-1)
        return logits, loss

    # --- the model contract (seqlab.models.contract) ---------------------------------------------

    def new_state(self, batch_size: int, device: torch.device | str | None = None) -> Tensor:
        """The empty state: (B, K) ids, all BEFORE_START."""
        return torch.full((batch_size, self.context), BEFORE_START, dtype=torch.long, device=device)

    def step(self, tokens: Tensor, state: Tensor | None) -> tuple[Tensor, Tensor | None]:
        """tokens (B, T) → (logits of the next token (B, V), state).

        With a state (B, K) the tokens continue it and the last K ids are returned as the new state;
        with None they are the whole context (zero padding before them) and no state is kept.
        """
        past = self.new_state(tokens.shape[0], tokens.device) if state is None else state
        window = torch.cat([past, tokens], dim=1)[:, -self.context:]  # (B, K)
        logits = self.logits_of_windows(window)  # (B, V)
        return logits, (None if state is None else window)

    def token_log_probs(self, tokens: Tensor) -> Tensor:
        """tokens (B, T) → (B, T − 1) log-probabilities, in nats, of tokens[:, 1:]."""
        logits, _ = self(tokens[:, :-1])  # (B, T−1, V)
        # The log-softmax in at least float32: half precision loses the small probabilities.
        log_probs = logits.to(torch.promote_types(logits.dtype, torch.float32)).log_softmax(-1)
        return log_probs.gather(-1, tokens[:, 1:].unsqueeze(-1)).squeeze(-1)  # (B, T−1)


__all__ = ["BEFORE_START", "MLPConfig", "MLPLM", "build_hidden", "sliding_windows"]
