"""The WaveNet language model (van den Oord et al. 2016, "WaveNet: A Generative Model for Raw Audio"),
over tokens instead of audio samples, with the fast incremental decoding of Paine et al. 2016
("Fast Wavenet Generation Algorithm").

A stack of dilated causal convolutions: dilations 1, 2, 4, … double from layer to layer, so the
receptive field grows exponentially with depth while each layer costs the same.

    idx → tok_emb → input_conv (causal, width k) → n_layer × gated residual layer → Σ skips
        → ReLU → head.hidden (1×1) → ReLU → head.out (1×1) → logits

    gated residual layer i (dilation d_i = 2 ** (i % dilation_cycle)):
        [f; g] = dilated(x)                      causal conv of width k, dilation d_i, R → 2R
        z      = tanh(f) ⊙ σ(g)                  the gated activation unit (f the first R channels)
        x      ← x + residual(z)                 1×1, R → R
        skip_i = skip(z)                         1×1, R → S

The last layer's residual output would feed nothing, so that layer has no `residual` convolution
(no parameter that never trains). Dropout (`dropout`) applies to z in training.

Receptive field (`WaveNetConfig.receptive_field`): the logits at t read tokens t − R_f + 1 … t, with

    R_f = 1 + (k − 1) · (1 + Σ_i 2 ** (i % dilation_cycle))

where the lone 1 inside the brackets is the input convolution's (width k, dilation 1) and the sum
is over the n_layer residual layers; 1 + 1 + (1 + 2 + … + 128) = 257 for 8 layers of width 2.
Positions before the start of idx are zero-padded at every layer, as a causal conv pads.

Decoding (the model contract, `seqlab.models.contract`): `block_size` is None, since the state holds
exactly the past each layer reads and slides with the text, so decoding never re-primes. The state
(`WaveNetState`) is one queue per convolution of width > 1, a ring buffer of the (k − 1) · d past
inputs that convolution reads (`seqlab.nn.convolution`), plus the clock t they share. A one-token
`step` reads its taps from the queues and writes the new inputs over the oldest, O(layers) per token
instead of recomputing the receptive field; a step of T > 1 tokens (the prefill) runs the convolutions
over the T tokens at once with the queues as their left context, which equals feeding them one at a
time (tests/models/test_wavenet.py checks both against `forward`).

State-dict keys (shapes those of torch.nn.Conv1d):
    tok_emb.weight (V, E)
    input_conv.weight (R, E, k), input_conv.bias (R)
    layers.{i}.dilated.weight (2R, R, k), layers.{i}.dilated.bias (2R)
    layers.{i}.residual.weight (R, R, 1), layers.{i}.residual.bias (R)       i < n_layer − 1
    layers.{i}.skip.weight (S, R, 1), layers.{i}.skip.bias (S)
    head.hidden.weight (S, S, 1), head.hidden.bias (S)
    head.out.weight (V, S, 1), head.out.bias (V)
(no biases when `bias` is false).

Dimensions: B batch · T time · V vocab · E embedding width · R residual channels · S skip channels ·
k kernel size · d dilation.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from seqlab.config.schema import ModelSettings, _require
from seqlab.models.contract import GenerateMixin, model_device
from seqlab.nn.convolution import CausalConv1d


@dataclass(frozen=True)
class WaveNetConfig(ModelSettings):
    """The `[model]` settings of the `wavenet` family."""

    family: Literal["wavenet"] = "wavenet"
    block_size: int = 64  # tokens per training window (not the receptive field, which is derived)
    n_layer: int = 3  # dilated residual layers
    kernel_size: int = 2  # width k of the input and dilated convolutions
    dilation_cycle: int = 10  # layer i has dilation 2 ** (i % cycle): WaveNet's 1, 2, …, 512 repeated
    d_embed: int = 24  # token embedding width E
    d_residual: int = 64  # residual channels R
    d_skip: int = 64  # skip channels S, also the output head's width
    dropout: float = 0.0  # on the gated activations z, in training
    bias: bool = True  # biases in every convolution

    def __post_init__(self) -> None:
        for key in ("block_size", "n_layer", "dilation_cycle", "d_embed", "d_residual", "d_skip"):
            value = getattr(self, key)
            _require(value >= 1, f"model.{key}", value, "an integer of at least 1")
        _require(self.kernel_size >= 2, "model.kernel_size", self.kernel_size,
                 "an integer of at least 2 (a width-1 kernel sees no past)")
        _require(0.0 <= self.dropout < 1.0, "model.dropout", self.dropout, "a number in [0, 1)")

    @property
    def dilations(self) -> tuple[int, ...]:
        """The residual layers' dilations: 2 ** (i % dilation_cycle) for i < n_layer."""
        return tuple(2 ** (i % self.dilation_cycle) for i in range(self.n_layer))

    @property
    def receptive_field(self) -> int:
        """Tokens the logits at one position read: 1 + (k − 1) · (1 + Σ dilations), the 1 inside
        the brackets being the input convolution's (see the module docstring)."""
        return 1 + (self.kernel_size - 1) * (1 + sum(self.dilations))


@dataclass
class WaveNetState:
    """The decoding state: `queues[0]` is the input convolution's (B, E, k − 1), `queues[1 + i]`
    residual layer i's (B, R, (k − 1) · d_i); slot τ mod n of a queue of length n holds that
    convolution's input at time τ (zeros before the first token). `t` counts the tokens fed."""

    queues: list[Tensor]
    t: int = 0


class GatedResidualLayer(nn.Module):
    """One WaveNet layer: a dilated causal convolution into the gated activation unit, then 1×1
    convolutions to the residual stream (absent in the last layer) and to the skip connections."""

    def __init__(self, *, d_residual: int, d_skip: int, kernel_size: int, dilation: int, dropout: float,
                 bias: bool, residual: bool) -> None:
        super().__init__()
        self.dropout = dropout
        self.dilated = CausalConv1d(d_residual, 2 * d_residual, kernel_size, dilation, bias=bias)
        self.residual = nn.Conv1d(d_residual, d_residual, 1, bias=bias) if residual else None
        self.skip = nn.Conv1d(d_residual, d_skip, 1, bias=bias)

    def forward(self, x: Tensor, queue: Tensor | None = None, t: int = 0) -> tuple[Tensor, Tensor]:
        """x (B, R, T) → (next residual stream (B, R, T), skip (B, S, T)); `queue` and `t` as
        `CausalConv1d.forward` (the left context instead of zeros, advanced in place)."""
        f, g = self.dilated(x, queue, t).chunk(2, dim=1)  # (B, R, T) each
        z = F.dropout(torch.tanh(f) * torch.sigmoid(g), self.dropout, self.training)  # (B, R, T)
        x = x if self.residual is None else x + self.residual(z)
        return x, self.skip(z)


class SkipHead(nn.Module):
    """The output stack on the sum of the skips: ReLU → 1×1 (S → S) → ReLU → 1×1 (S → V)."""

    def __init__(self, d_skip: int, vocab_size: int, bias: bool) -> None:
        super().__init__()
        self.hidden = nn.Conv1d(d_skip, d_skip, 1, bias=bias)
        self.out = nn.Conv1d(d_skip, vocab_size, 1, bias=bias)

    def forward(self, skips: Tensor) -> Tensor:
        """skips (B, S, T) → logits (B, V, T)."""
        return self.out(torch.relu(self.hidden(torch.relu(skips))))


class WaveNetLM(nn.Module, GenerateMixin):
    """A WaveNet over tokens (see the module docstring).

    >>> model = WaveNetLM(WaveNetConfig(n_layer=4, kernel_size=2), vocab_size=10)
    >>> logits, loss = model(torch.zeros(3, 5, dtype=torch.long), torch.zeros(3, 5, dtype=torch.long))
    >>> logits.shape, model.receptive_field
    (torch.Size([3, 5, 10]), 17)
    """

    block_size = None  # no context limit to re-prime at: the queues slide (see the module docstring)

    def __init__(self, config: WaveNetConfig, vocab_size: int) -> None:
        super().__init__()
        if vocab_size < 1:
            raise ValueError(f"vocab_size must be positive, got {vocab_size}")
        self.config = config
        self.vocab_size = vocab_size
        self.tok_emb = nn.Embedding(vocab_size, config.d_embed)
        self.input_conv = CausalConv1d(config.d_embed, config.d_residual, config.kernel_size, bias=config.bias)
        last = config.n_layer - 1
        self.layers = nn.ModuleList(
            GatedResidualLayer(d_residual=config.d_residual, d_skip=config.d_skip, kernel_size=config.kernel_size,
                               dilation=d, dropout=config.dropout, bias=config.bias, residual=i < last)
            for i, d in enumerate(config.dilations))
        self.head = SkipHead(config.d_skip, vocab_size, config.bias)

    @property
    def receptive_field(self) -> int:
        """Tokens the logits at one position read (`WaveNetConfig.receptive_field`)."""
        return self.config.receptive_field

    def forward(self, idx: Tensor, targets: Tensor | None = None) -> tuple[Tensor, Tensor | None]:
        """idx (B, T) → (logits (B, T, V), mean cross-entropy over targets (B, T) or None).

        Targets of -1 are ignored. Positions before the start of idx are zeros at every layer.
        """
        logits = self._logits(idx, None)  # (B, V, T)
        loss = None
        if targets is not None:
            loss = F.cross_entropy(logits, targets, ignore_index=-1)  # class dimension 1
        return logits.transpose(1, 2).contiguous(), loss  # (B, T, V)

    def _logits(self, idx: Tensor, state: WaveNetState | None) -> Tensor:
        """idx (B, T) → logits (B, V, T), from zero padding or continuing `state` (advanced in place)."""
        queues, t = (None, 0) if state is None else (state.queues, state.t)
        x = self.tok_emb(idx).transpose(1, 2)  # (B, E, T)
        x = self.input_conv(x, None if queues is None else queues[0], t)  # (B, R, T)
        skips = 0
        for i, layer in enumerate(self.layers):
            x, skip = layer(x, None if queues is None else queues[1 + i], t)  # (B, R, T), (B, S, T)
            skips = skips + skip
        if state is not None:
            state.t += idx.shape[1]
        return self.head(skips)  # (B, V, T)

    # --- the model contract (seqlab.models.contract) ---------------------------------------------

    def new_state(self, batch_size: int, device: torch.device | str | None = None) -> WaveNetState:
        """Empty queues (zeros: the padding before the first token) at time 0."""
        device = model_device(self) if device is None else device
        convs = [self.input_conv] + [layer.dilated for layer in self.layers]
        return WaveNetState([conv.new_queue(batch_size, device) for conv in convs])

    def stepper(self) -> WaveNetStepper:
        """What `seqlab.generate` drives for one generation: a `WaveNetStepper`, which reads the
        weights once instead of at every token."""
        return WaveNetStepper(self)

    def step(self, tokens: Tensor, state: WaveNetState | None) -> tuple[Tensor, WaveNetState | None]:
        """tokens (B, T) → (logits at the last position (B, V), state); see `WaveNetStepper.step`."""
        return WaveNetStepper(self).step(tokens, state)

    def token_log_probs(self, tokens: Tensor) -> Tensor:
        """tokens (B, T) → log-probabilities (B, T − 1), in nats, of tokens[:, 1:] given those before."""
        if tokens.shape[1] < 2:
            return tokens.new_zeros(tokens.shape[0], 0, dtype=self.tok_emb.weight.dtype)
        logits, _ = self(tokens[:, :-1])  # (B, T − 1, V)
        log_probs = F.log_softmax(logits, dim=-1, dtype=torch.promote_types(logits.dtype, torch.float32))
        return log_probs.gather(-1, tokens[:, 1:, None]).squeeze(-1)  # (B, T − 1)


class WaveNetStepper:
    """The decoding steps of one `WaveNetLM` (the stepper protocol of `seqlab.generate`).

    Why a separate object: a one-token step is a few small matrix products per layer, so on CPU the
    per-call work around them matters. The stepper reads the weights once per generation (views of
    the 1×1 convolutions as matrices; the skip convolutions concatenated, so the L of them are one
    product per token), runs the layers as plain functional calls, and must not outlive changes to
    the model. The math is the model's; tests/models/test_wavenet.py checks it against `forward`.
    It calls no module's forward: forward hooks see the prefill and the recompute path only.
    """

    block_size = None

    def __init__(self, model: WaveNetLM) -> None:
        self.model = model
        layers = list(model.layers)
        self._d_residual = model.config.d_residual
        self._dropout = model.config.dropout if model.training else 0.0
        self._dilated = [layer.dilated for layer in layers]
        self._residual = [None if layer.residual is None else (layer.residual.weight[:, :, 0], layer.residual.bias)
                          for layer in layers]  # (R, R) and (R,) each
        # Σ_i skip_i(z_i) = [W_0 … W_{L−1}] · [z_0; …; z_{L−1}] + Σ_i b_i: one product for all layers.
        self._skip_weight = torch.cat([layer.skip.weight[:, :, 0] for layer in layers], dim=1)  # (S, L·R)
        self._skip_bias = None if not model.config.bias else sum(layer.skip.bias for layer in layers)  # (S,)
        self._hidden = (model.head.hidden.weight[:, :, 0], model.head.hidden.bias)  # (S, S), (S,)
        self._out = (model.head.out.weight[:, :, 0], model.head.out.bias)  # (V, S), (V,)

    def new_state(self, batch_size: int, device: torch.device | str | None = None) -> WaveNetState:
        return self.model.new_state(batch_size, device)

    def step(self, tokens: Tensor, state: WaveNetState | None) -> tuple[Tensor, WaveNetState | None]:
        """tokens (B, T) → (logits at the last position (B, V), state).

        With a state, the tokens continue it: one token runs through the queues (O(layers)), several
        run at once through the convolutions with the queues as left context; the state is advanced
        in place and returned. With None, the tokens are the whole context and no state is kept:
        `forward` runs on the last `receptive_field` of them, all the last position reads (the
        recompute path).
        """
        if state is None:
            return self.model._logits(tokens[:, -self.model.receptive_field:], None)[:, :, -1], None
        if tokens.shape[1] > 1:
            return self.model._logits(tokens, state)[:, :, -1], state
        return self._step_one(tokens[:, 0], state), state

    def _step_one(self, token: Tensor, state: WaveNetState) -> Tensor:
        """token (B,) → logits (B, V) of the next one; the queues and the clock advance."""
        t, queues, R = state.t, state.queues, self._d_residual
        x = self.model.input_conv.step(F.embedding(token, self.model.tok_emb.weight), queues[0], t)  # (B, R)
        zs = []
        for dilated, residual, queue in zip(self._dilated, self._residual, queues[1:]):
            h = dilated.step(x, queue, t)  # (B, 2R): filter, gate
            z = torch.tanh(h[:, :R]) * torch.sigmoid(h[:, R:])  # (B, R)
            if self._dropout:
                z = F.dropout(z, self._dropout, training=True)
            zs.append(z)
            if residual is not None:
                x = x + F.linear(z, *residual)  # (B, R)
        skips = F.linear(torch.cat(zs, dim=1), self._skip_weight, self._skip_bias)  # (B, S)
        state.t = t + 1
        h = F.linear(torch.relu(skips), *self._hidden)  # (B, S)
        return F.linear(torch.relu(h), *self._out)  # (B, V)


__all__ = ["GatedResidualLayer", "SkipHead", "WaveNetConfig", "WaveNetLM", "WaveNetState", "WaveNetStepper"]
