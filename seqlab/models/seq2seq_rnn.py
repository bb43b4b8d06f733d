"""An RNN encoder–decoder with attention (Bahdanau, Cho & Bengio 2015; Luong, Pham & Manning 2015).

    src → src_emb → L × (bi)GRU/LSTM → states (B, S, D·H)        (the attention's keys and values)
                                    → final states → bridge → the decoder's initial state (L, B, H)
    tgt → tgt_emb → decoder (cell + attention) → attentional outputs (B, T, H) → lm_head → logits (B, T, V)

Two decoders (`attention`), each composed from a recurrent stack and an attention of `seqlab.nn`:
  - "bahdanau": at step t the previous top-layer state s_{t−1} queries the encoder states
    (`AdditiveAttention`) → context c_t; the cell reads [emb(y_{t−1}); c_t] → s_t; the output is
    o_t = tanh(W_o [s_t; c_t; emb(y_{t−1})]). Simplifications of the paper's deep output: tanh instead
    of maxout, and s_t where the paper reads s_{t−1} (as most implementations do).
  - "luong": the cell reads emb(y_{t−1}) → s_t; the current s_t queries (`DotProductAttention`, the
    "general" score sᵀ W h_i) → c_t; the attentional hidden state is h̃_t = tanh(W_c [c_t; s_t]). No input
    feeding (Luong §3.3): the cell never sees h̃_{t−1}, so teacher forcing runs the cell over the whole
    target in one call and attends from all positions at once.
Either way logits = lm_head(o_t); the loss is cross-entropy with targets -1 ignored.

Bridge: for each layer, the final states of both encoder directions are concatenated and mapped to the
decoder's width, h_0 = tanh(W_b [h→_last; h←_first]) (Bahdanau initialises from the backward state
through tanh; we read both directions). The LSTM's cell state gets its own linear map without tanh:
cell states are not confined to (−1, 1).

Padding: sources are right-padded with `src_mask` (B, S) True at real tokens. The mask becomes
per-sequence lengths for the encoder (`seqlab.nn.recurrent`), so each recurrence stops at its last
real token, the backward direction starts there, and padded positions get attention weight exactly 0:
real logits do not depend on the padding. The decoder reads left to right, so target padding after a
sequence's end never reaches its real positions; `tgt_mask` is accepted for `EncoderDecoder`'s
signature and not needed.

Generation: `stepper_for` runs the encoder once and returns a `Seq2SeqRNNStepper` (the stepper protocol
of `seqlab.generate`). Its state is explicit, an `RNNDecoderState` with the decoder's hidden state and
the attention weights of the last token fed (for alignment plots); `reorder` selects batch rows of a
state for beam search. Teacher-forced logits equal step-by-step logits (tested in float64).

With one vocabulary (`tgt_vocab_size` None), encoder and decoder share the token embedding.

State-dict keys: `src_emb`, `tgt_emb` (the same tensor when shared), `encoder.*` (torch.nn's RNN
names), `bridge.{hidden,cell}`, `decoder.rnn.*`, `decoder.attention.*`, `decoder.output`
(Bahdanau's W_o) or `decoder.combine` (Luong's W_c), `lm_head`.

Dimensions: B batch · S source length · T target length · E embedding width · H hidden width (per
direction in the encoder) · D encoder directions (1 or 2) · L layers · V target vocab.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from seqlab.config.schema import ModelSettings, _require
from seqlab.models.recurrent_encoder import build_recurrent
from seqlab.nn.rnn_attention import AdditiveAttention, DotProductAttention

Cell = Literal["gru", "lstm"]
AttentionKind = Literal["bahdanau", "luong"]


@dataclass(frozen=True)
class Seq2SeqRNNConfig(ModelSettings):
    """The recurrent encoder-decoder's settings (`family = "rnn_seq2seq"`): embeddings and hidden
    states are d_model wide."""

    family: Literal["rnn_seq2seq"] = "rnn_seq2seq"
    n_layer: int = 4  # recurrent layers of the encoder and of the decoder
    d_model: int = 128  # the embedding and hidden width
    block_size: int = 64  # the longest source and target, in tokens
    dropout: float = 0.0
    cell: Cell = "gru"
    attention: AttentionKind = "bahdanau"  # additive, or Luong's bilinear ("general")
    bidirectional: bool = True  # the encoder reads the source both ways

    def __post_init__(self) -> None:
        for name in ("n_layer", "d_model", "block_size"):
            _require(getattr(self, name) >= 1, f"model.{name}", getattr(self, name), "a positive integer")
        _require(0.0 <= self.dropout < 1.0, "model.dropout", self.dropout, "a number in [0, 1)")
CELLS: tuple[str, ...] = ("gru", "lstm")
ATTENTIONS: tuple[str, ...] = ("bahdanau", "luong")
Hidden = Tensor | tuple[Tensor, Tensor]  # (L, B, H); the LSTM's is the pair (h, c)


@dataclass(frozen=True)
class EncodedSource:
    """What the decoder reads of a batch of sources; made once per batch by `Seq2SeqRNN.encode`."""

    states: Tensor  # (B, S, D·H) the encoder's outputs, zero at padding: the attention's keys and values
    keys: Tensor  # (B, S, ·) their query-independent projection (`project_keys`), made once
    mask: Tensor | None  # (B, S) True at real tokens; None when nothing is padded
    initial: Hidden  # the decoder's initial state (L, B, H), from the bridge


@dataclass(frozen=True)
class RNNDecoderState:
    """The stepper's state: the decoder's hidden state and the attention weights of the last token fed."""

    hidden: Hidden  # (L, B, H); the LSTM's is (h, c)
    attention: Tensor | None  # (B, S); None before any token was fed


def top_state(hidden: Hidden) -> Tensor:
    """The top layer's hidden state (B, H): the attention's query."""
    return (hidden[0] if isinstance(hidden, tuple) else hidden)[-1]


def select_rows(hidden: Hidden, index: Tensor) -> Hidden:
    """Batch rows `index` (may repeat) of a hidden state (L, B, H) or pair of them."""
    if isinstance(hidden, tuple):
        return tuple(h.index_select(1, index) for h in hidden)
    return hidden.index_select(1, index)


class Bridge(nn.Module):
    """Encoder final states (L·D, B, H_enc) → decoder initial state (L, B, H): per layer, both directions
    concatenated, then tanh(W_b ·) for h and a plain linear map for the LSTM's cell state."""

    def __init__(self, encoder_width: int, decoder_width: int, *, directions: int, cell: Cell) -> None:
        super().__init__()
        self.directions = directions
        self.hidden = nn.Linear(encoder_width * directions, decoder_width)
        self.cell = nn.Linear(encoder_width * directions, decoder_width) if cell == "lstm" else None

    def _by_layer(self, final: Tensor) -> Tensor:
        """(L·D, B, H) with torch.nn's layer-major order → (L, B, D·H), forward direction first."""
        LD, B, H = final.shape
        L = LD // self.directions
        return final.view(L, self.directions, B, H).permute(0, 2, 1, 3).reshape(L, B, self.directions * H)

    def forward(self, final: Hidden) -> Hidden:
        if self.cell is None:
            return torch.tanh(self.hidden(self._by_layer(final)))  # (L, B, H)
        h, c = final
        return torch.tanh(self.hidden(self._by_layer(h))), self.cell(self._by_layer(c))


class BahdanauDecoder(nn.Module):
    """The previous state queries, the context feeds the cell; o_t = tanh(W_o [s_t; c_t; emb(y_{t−1})])."""

    def __init__(self, rnn: nn.Module, attention: AdditiveAttention, output: nn.Linear) -> None:
        super().__init__()
        self.rnn, self.attention, self.output = rnn, attention, output

    def forward(self, x: Tensor, source: EncodedSource, hidden: Hidden) -> tuple[Tensor, Hidden, Tensor]:
        """x (B, T, E) embedded inputs, continuing from `hidden` → (outputs (B, T, H), hidden, weights (B, T, S))."""
        outputs, weights = [], []
        for t in range(x.shape[1]):  # a loop: c_t depends on s_{t−1}, which the cell made at t−1
            context, w = self.attention(top_state(hidden), source.states, source.mask,
                                        projected=source.keys)  # (B, D·H), (B, S)
            s, hidden = self.rnn(torch.cat([x[:, t], context], dim=-1)[:, None], hidden)  # (B, 1, H)
            outputs.append(torch.tanh(self.output(torch.cat([s[:, 0], context, x[:, t]], dim=-1))))  # (B, H)
            weights.append(w)
        return torch.stack(outputs, dim=1), hidden, torch.stack(weights, dim=1)  # (B, T, H), ·, (B, T, S)


class LuongDecoder(nn.Module):
    """The cell runs first, its state s_t queries; h̃_t = tanh(W_c [c_t; s_t]) (no input feeding)."""

    def __init__(self, rnn: nn.Module, attention: DotProductAttention, combine: nn.Linear) -> None:
        super().__init__()
        self.rnn, self.attention, self.combine = rnn, attention, combine

    def forward(self, x: Tensor, source: EncodedSource, hidden: Hidden) -> tuple[Tensor, Hidden, Tensor]:
        """x (B, T, E) embedded inputs, continuing from `hidden` → (outputs (B, T, H), hidden, weights (B, T, S))."""
        s, hidden = self.rnn(x, hidden)  # (B, T, H): all steps in one call, the cell never reads h̃
        context, weights = self.attention(s, source.states, source.mask, projected=source.keys)  # (B, T, D·H)
        return torch.tanh(self.combine(torch.cat([context, s], dim=-1))), hidden, weights


def build_decoder(attention: AttentionKind, cell: Cell, *, d_embed: int, d_hidden: int, d_memory: int,
                  n_layer: int, dropout: float) -> BahdanauDecoder | LuongDecoder:
    """The decoder of `attention` over encoder states of width `d_memory` (the only code that reads these)."""
    match attention:
        case "bahdanau":
            rnn = build_recurrent(cell, d_embed + d_memory, d_hidden, n_layer, dropout=dropout)
            # The attention width is the decoder's width, as in the paper (n' = n).
            return BahdanauDecoder(rnn, AdditiveAttention(d_hidden, d_memory, d_hidden),
                                   nn.Linear(d_hidden + d_memory + d_embed, d_hidden))
        case "luong":
            rnn = build_recurrent(cell, d_embed, d_hidden, n_layer, dropout=dropout)
            # W_c has no bias, as Luong's eq. 5.
            return LuongDecoder(rnn, DotProductAttention(d_hidden, d_memory, score="general"),
                                nn.Linear(d_memory + d_hidden, d_hidden, bias=False))
    raise ValueError(f"unknown attention {attention!r}; choose one of {', '.join(ATTENTIONS)}")


class Seq2SeqRNN(nn.Module):
    """A recurrent sequence-to-sequence model with attention.

    >>> model = Seq2SeqRNN(7, cell="gru", d_embed=4, d_hidden=6, attention="luong", block_size=8)
    >>> src, tgt = torch.zeros(2, 5, dtype=torch.long), torch.zeros(2, 3, dtype=torch.long)
    >>> model(src, tgt)[0].shape
    torch.Size([2, 3, 7])
    """

    def __init__(self, src_vocab_size: int, tgt_vocab_size: int | None = None, *, cell: Cell = "gru",
                 d_embed: int, d_hidden: int, n_layer: int = 1, bidirectional: bool = True,
                 attention: AttentionKind = "bahdanau", dropout: float = 0.0, block_size: int) -> None:
        super().__init__()
        if cell not in CELLS:
            raise ValueError(f"unknown cell {cell!r}; choose one of {', '.join(CELLS)}")
        if block_size < 1:
            raise ValueError(f"block_size must be positive, got {block_size}")
        self.shared_vocab = tgt_vocab_size is None
        self.vocab_size = src_vocab_size if tgt_vocab_size is None else tgt_vocab_size
        self.block_size = block_size  # the longest target the decoder produces (the stepper protocol's)
        self.dropout = dropout
        directions = 2 if bidirectional else 1
        self.src_emb = nn.Embedding(src_vocab_size, d_embed)
        self.tgt_emb = self.src_emb if self.shared_vocab else nn.Embedding(self.vocab_size, d_embed)
        self.encoder = build_recurrent(cell, d_embed, d_hidden, n_layer, bidirectional=bidirectional,
                                       dropout=dropout)
        self.bridge = Bridge(d_hidden, d_hidden, directions=directions, cell=cell)
        self.decoder = build_decoder(attention, cell, d_embed=d_embed, d_hidden=d_hidden,
                                     d_memory=directions * d_hidden, n_layer=n_layer, dropout=dropout)
        self.lm_head = nn.Linear(d_hidden, self.vocab_size)

    def num_parameters(self) -> int:
        return sum(p.numel() for p in self.parameters())  # a shared embedding counts once

    def _dropout(self, x: Tensor) -> Tensor:
        return F.dropout(x, self.dropout, training=True) if self.training and self.dropout > 0.0 else x

    def encode(self, src: Tensor, src_mask: Tensor | None = None) -> EncodedSource:
        """src (B, S), src_mask (B, S) True at real tokens (right-padded) → what the decoder reads."""
        x = self._dropout(self.src_emb(src))  # (B, S, E)
        lengths = None if src_mask is None else src_mask.sum(dim=1)  # (B,)
        states, final = self.encoder(x, lengths=lengths)  # (B, S, D·H) zero at padding, (L·D, B, H)
        return EncodedSource(states, self.decoder.attention.project_keys(states), src_mask, self.bridge(final))

    def decode(self, tgt: Tensor, source: EncodedSource, hidden: Hidden) -> tuple[Tensor, Hidden, Tensor]:
        """tgt (B, T) continuing from decoder state `hidden` (`source.initial` at BOS) → (logits (B, T, V),
        the state after the last token, attention weights (B, T, S))."""
        x = self._dropout(self.tgt_emb(tgt))  # (B, T, E)
        outputs, hidden, weights = self.decoder(x, source, hidden)  # (B, T, H)
        return self.lm_head(self._dropout(outputs)), hidden, weights

    def forward(self, src: Tensor, tgt: Tensor, src_mask: Tensor | None = None, tgt_mask: Tensor | None = None,
                targets: Tensor | None = None, *, return_attention: bool = False
                ) -> tuple[Tensor, Tensor | None] | tuple[Tensor, Tensor | None, Tensor]:
        """Teacher forcing: src (B, S), tgt (B, T) (the target shifted right) → (logits (B, T, V), mean
        cross-entropy against targets (B, T) with -1 ignored, or None), and with `return_attention` the
        attention weights (B, T, S) third. tgt_mask is not needed (see the module docstring)."""
        source = self.encode(src, src_mask)
        logits, _, weights = self.decode(tgt, source, source.initial)
        loss = None
        if targets is not None:
            loss = F.cross_entropy(logits.reshape(-1, logits.size(-1)), targets.reshape(-1), ignore_index=-1)
        return (logits, loss, weights) if return_attention else (logits, loss)

    def stepper_for(self, src: Tensor, src_mask: Tensor | None = None) -> Seq2SeqRNNStepper:
        """A stepper that decodes targets for these sources (the encoder runs here, once)."""
        return Seq2SeqRNNStepper(self, self.encode(src, src_mask))


class Seq2SeqRNNStepper:
    """The stepper protocol over a `Seq2SeqRNN` with a fixed, already encoded batch of sources.

    Beam search repeats each source `beam` times (`repeat_interleave(beam, 0)`) before `stepper_for`,
    then moves decoder states between rows of the same source with `reorder`; the sources never move.
    """

    def __init__(self, model: Seq2SeqRNN, source: EncodedSource) -> None:
        self.model = model
        self.source = source
        self.block_size = model.block_size
        self.batch_size = source.states.shape[0]

    def new_state(self, batch_size: int, device: torch.device | str | None = None) -> RNNDecoderState:
        """The state at BOS: the bridge's initial decoder state, no attention yet."""
        if batch_size != self.batch_size:
            raise ValueError(f"this stepper decodes {self.batch_size} sources, not {batch_size}")
        initial = self.source.initial
        if device is not None:
            initial = tuple(h.to(device) for h in initial) if isinstance(initial, tuple) else initial.to(device)
        return RNNDecoderState(initial, None)

    def step(self, tokens: Tensor, state: RNNDecoderState | None) -> tuple[Tensor, RNNDecoderState | None]:
        """tokens (B, T) → (next-token logits (B, V), state); with state None, tokens are the whole target
        prefix from BOS and no state is returned. The new state's `attention` is the last token's (B, S)."""
        hidden = self.source.initial if state is None else state.hidden
        logits, hidden, weights = self.model.decode(tokens, self.source, hidden)  # (B, T, V), ·, (B, T, S)
        if state is None:
            return logits[:, -1], None
        return logits[:, -1], RNNDecoderState(hidden, weights[:, -1])

    def teacher_forced(self, tgt: Tensor, tgt_mask: Tensor | None = None) -> Tensor:
        """Logits (B, T, V) of whole targets tgt (B, T) for these sources, as `Seq2SeqRNN.forward` gives
        them, without encoding the sources again (`tgt_mask` is unused: the decoder reads left to right)."""
        return self.model.decode(tgt, self.source, self.source.initial)[0]

    def reorder(self, state: RNNDecoderState, index: Tensor) -> RNNDecoderState:
        """The state of batch rows `index` (B,) (rows may repeat): each row must keep its source."""
        attention = None if state.attention is None else state.attention.index_select(0, index)
        return RNNDecoderState(select_rows(state.hidden, index), attention)


__all__ = [
    "ATTENTIONS", "CELLS", "BahdanauDecoder", "Bridge", "EncodedSource", "LuongDecoder", "RNNDecoderState",
    "Seq2SeqRNN", "Seq2SeqRNNStepper", "build_decoder", "select_rows", "top_state",
]
