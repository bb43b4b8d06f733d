"""The recurrent language model (char-rnn; Elman 1990, Hochreiter & Schmidhuber 1997, Cho et al. 2014).

    idx → tok_emb → n_layer × recurrent layer (dropout between layers) → dropout → lm_head → logits

In training, `weight_dropout` also drops elements of every hidden-to-hidden weight matrix, one mask
per forward (DropConnect, as AWD-LSTM regularises the recurrence without touching the fused kernel).

The recurrent stack is one of `seqlab.nn`'s torch.nn-compatible layers, chosen by `model.family`:
`rnn` (Elman, `model.nonlinearity`), `gated` (the lectures' GatedRNN), `gru`, `lstm`; its hidden
width is `d_model`, and so is the embedding's unless `d_embed` narrows it (char-rnn feeds one-hot
characters: a narrow embedding shrinks the first layer's input products and loses nothing on a
small vocabulary). The output layer can be tied to the embedding (`tie_embeddings`) when both widths
are `d_model`. The reference for parity is the same model on `torch.nn.LSTM`, which
loads our state dict as is (see tests/models/test_rnn.py and benchmarks/bench_rnn.py).

State: a tuple of (L, B, H) tensors, `(h,)` or, for the LSTM, `(h, c)`. It is passed in and returned,
never kept on the module. `forward(..., state=s, return_state=True)` continues from `s` and also
returns the final state, which is how truncated BPTT (`seqlab.data.tbptt`) and exact evaluation
(`seqlab.api.evaluate`) carry it from one window to the next.

Stepper protocol (what `seqlab.generate` drives): `block_size` is None (a recurrent model has no
context limit, so sampling never re-primes: the hidden state carries the whole past),
`new_state(B, device)` → zeros, `step(tokens, state)` → (last-position logits, final state).

State-dict keys: `tok_emb.weight`, `rnn.weight_ih_l{k}` ... (torch.nn's names), `lm_head.weight`
(the embedding when tied), `lm_head.bias` when `bias`.

Dimensions: B batch · T time · E embedding width (`d_embed`, default D) · D model width = H hidden width
· L layers · V vocab.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from dataclasses import dataclass
from typing import Literal

from seqlab.config.schema import ModelSettings, _require
from seqlab.models.contract import CarriedStateMixin
from seqlab.nn.dropout import dropout
from seqlab.nn.recurrent import GRU, LSTM, RNN, GatedRNN

State = tuple[Tensor, ...]


@dataclass(frozen=True)
class RecurrentConfig(ModelSettings):
    """The recurrent language model's settings (`family` = rnn, gated, gru or lstm)."""

    family: Literal["rnn", "gated", "gru", "lstm"] = "lstm"
    n_layer: int = 4  # stacked recurrent layers
    d_model: int = 128  # the hidden width, and the embedding's unless d_embed is set
    d_embed: int = 0  # the token embedding width, the first layer's input; 0: d_model
    block_size: int = 64  # the truncated-BPTT window; the carried state reaches further back
    dropout: float = 0.0  # between layers and before the output layer
    weight_dropout: float = 0.0  # DropConnect on the hidden-to-hidden weights in training (AWD-LSTM)
    bias: bool = True
    tie_embeddings: bool = True  # the output layer is the token embedding
    nonlinearity: Literal["tanh", "relu"] = "tanh"  # family rnn only: the Elman RNN's activation

    # Settings added after runs stopped listing every family's keys: in such an older run's file,
    # d_embed is the MLP's or WaveNet's (seqlab.config.load drops it there).
    later_keys = ("d_embed",)

    def __post_init__(self) -> None:
        for name in ("n_layer", "d_model", "block_size"):
            _require(getattr(self, name) >= 1, f"model.{name}", getattr(self, name), "a positive integer")
        _require(self.d_embed >= 0, "model.d_embed", self.d_embed, "a positive integer, or 0 for d_model")
        _require(self.embed_width == self.d_model or not self.tie_embeddings, "model.d_embed", self.d_embed,
                 f"d_model ({self.d_model}) or 0 when tie_embeddings = true (the output layer is the embedding)")
        _require(0.0 <= self.dropout < 1.0, "model.dropout", self.dropout, "a number in [0, 1)")
        _require(0.0 <= self.weight_dropout < 1.0, "model.weight_dropout", self.weight_dropout, "a number in [0, 1)")
        _require(self.nonlinearity == "tanh" or self.family == "rnn", "model.nonlinearity", self.nonlinearity,
                 "\"tanh\" unless model.family = \"rnn\"")

    @property
    def embed_width(self) -> int:
        """E: the token embedding's width, which the first recurrent layer reads."""
        return self.d_embed or self.d_model


# The layer each recurrent family stacks (torch.nn's constructor arguments); only the Elman RNN
# takes a nonlinearity.
LAYERS: dict[str, type[nn.Module]] = {"rnn": RNN, "gated": GatedRNN, "gru": GRU, "lstm": LSTM}


def build_recurrent(config: RecurrentConfig) -> nn.Module:
    """The batch-first recurrent stack that `config.family` names: n_layer layers of width d_model,
    the first reading the embedding's width."""
    kwargs = dict(bias=config.bias, batch_first=True, dropout=config.dropout if config.n_layer > 1 else 0.0,
                  weight_dropout=config.weight_dropout)
    if config.nonlinearity != "tanh":  # RecurrentConfig allows it for the Elman RNN only
        kwargs["nonlinearity"] = config.nonlinearity
    return LAYERS[config.family](config.embed_width, config.d_model, config.n_layer, **kwargs)


class RNNLM(CarriedStateMixin, nn.Module):
    """A recurrent language model over tokens.

    >>> model = RNNLM(RecurrentConfig(family="lstm", n_layer=2, d_model=16), vocab_size=10)
    >>> logits, loss, state = model(torch.zeros(3, 5, dtype=torch.long), state=model.new_state(3),
    ...                             return_state=True)
    >>> logits.shape, [tuple(s.shape) for s in state]
    (torch.Size([3, 5, 10]), [(2, 3, 16), (2, 3, 16)])
    """

    block_size = None  # no context limit: see the module docstring

    def __init__(self, config: RecurrentConfig, vocab_size: int) -> None:
        super().__init__()
        if vocab_size < 1:
            raise ValueError(f"vocab_size must be positive, got {vocab_size}")
        self.config = config
        self.vocab_size = vocab_size
        self.dropout = config.dropout  # after the last layer; the stack applies it between layers
        self.tok_emb = nn.Embedding(vocab_size, config.embed_width)
        self.rnn = build_recurrent(config)
        self.lm_head = nn.Linear(config.d_model, vocab_size, bias=config.bias)
        if config.tie_embeddings:
            # A tied embedding is also the output layer: N(0, 1) rows would give logits of size √D.
            nn.init.normal_(self.tok_emb.weight, std=config.d_model ** -0.5)
            self.lm_head.weight = self.tok_emb.weight

    def forward(self, idx: Tensor, targets: Tensor | None = None, state: State | None = None, *,
                return_state: bool = False) -> tuple[Tensor, Tensor | None] | tuple[Tensor, Tensor | None, State]:
        """idx (B, T) → (logits (B, T, V), mean cross-entropy or None[, final state]).

        `targets` (B, T) may use -1 for positions to ignore. `state` continues a sequence (zeros if
        None); `return_state` adds the final state, a tuple of (L, B, H) tensors.
        """
        x = self.tok_emb(idx)  # (B, T, E)
        hx = None if state is None else (state if len(state) > 1 else state[0])
        x, h_n = self.rnn(x, hx)  # (B, T, H); h_n (L, B, H) or the LSTM's pair
        x = dropout(x, self.dropout, self.training)
        logits = self.lm_head(x)  # (B, T, V)
        loss = None
        if targets is not None:
            loss = F.cross_entropy(logits.flatten(0, 1), targets.reshape(-1), ignore_index=-1)
        if not return_state:
            return logits, loss
        return logits, loss, tuple(h_n) if isinstance(h_n, tuple) else (h_n,)

    # --- the stepper protocol of seqlab.generate -------------------------------------------------

    def new_state(self, batch_size: int, device: torch.device | str | None = None) -> State:
        """The zero state: `rnn.state_size` tensors of shape (L, B, H)."""
        shape = (self.config.n_layer, batch_size, self.config.d_model)
        dtype = self.tok_emb.weight.dtype
        return tuple(torch.zeros(shape, device=device, dtype=dtype) for _ in range(self.rnn.state_size))
