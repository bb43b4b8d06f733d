"""Stacked, optionally bidirectional recurrent layers: `RNN`, `GRU`, `LSTM` and the lectures' `GatedRNN`.

The first three are drop-in replacements for `torch.nn.RNN/GRU/LSTM`: the same constructor
arguments, parameter names (`weight_ih_l{k}{_reverse}`, `weight_hh_l{k}`, `bias_ih_l{k}`,
`bias_hh_l{k}`), gate layout, initialisation and (output, h_n) shapes, so
`ours.load_state_dict(torch_module.state_dict())` works unchanged. The parity test compares
outputs, final states and gradients with torch.nn in float64. `GatedRNN` (cell in `seqlab.nn.cells`)
uses the same naming scheme, with 2·H rows per weight ordered [candidate h̄; gate z].

Each module has two paths that give the same results:
  - explicit (`forward(..., explicit=True)`): the cell equations of `seqlab.nn.cells`, one time step
    at a time in Python, layer by layer and direction by direction. Meant to be read.
  - fast (the default): RNN/GRU/LSTM call the fused kernels torch.nn itself calls (`torch._VF.*`,
    with the flat weight list; padded batches go through the packed-sequence variants). GatedRNN
    computes the input projections of all time steps in one matmul and loops only over the
    recurrent half.

Inputs are a tensor (T, B, F), (B, T, F) with `batch_first`, unbatched (T, F), or a
`PackedSequence` (packed in, packed out). `lengths` (B,) is an alternative to packing for padded
batches: each h_n is taken at its sequence's last real step and outputs at padded positions are 0.
Internally a PackedSequence is unpacked to (padded, lengths) and the output packed again with the
caller's exact layout (batch_sizes, sorted/unsorted indices), so both paths share one driver.
Dropout is applied between layers (not after the last), in training only.

Dimensions: T time · B batch · F input width · H hidden width · L layers · D directions (1 or 2).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Literal

import torch
import torch.nn.functional as F
from torch import _VF, Tensor, nn
from torch.nn.utils.rnn import PackedSequence, pack_padded_sequence, pad_packed_sequence

from seqlab.nn.cells import (
    Cell,
    State,
    gated_rnn_cell,
    gated_rnn_update,
    gru_cell,
    lstm_cell,
    rnn_relu_cell,
    rnn_tanh_cell,
)
from seqlab.nn.dropout import dropout

Step = Callable[[Tensor, State], State]


class _StackedRecurrent(nn.Module):
    """L layers × D directions of one cell, with torch.nn's parameters and (output, h_n) interface.

    Subclasses set `gates` (weight rows per hidden unit), `cell` and, for fused kernels, `_kernel`.
    """

    gates: int
    cell: Cell  # a staticmethod on the class, or (RNN) set per instance
    state_size = 1  # tensors in the recurrent state: 1 (h), or 2 for the LSTM (h, c)

    def __init__(self, input_size: int, hidden_size: int, num_layers: int = 1, *, bias: bool = True,
                 batch_first: bool = False, dropout: float = 0.0, bidirectional: bool = False,
                 weight_dropout: float = 0.0, device=None, dtype=None) -> None:
        super().__init__()
        if not 0.0 <= dropout <= 1.0:
            raise ValueError(f"dropout must be in [0, 1], got {dropout}")
        if not 0.0 <= weight_dropout < 1.0:
            raise ValueError(f"weight_dropout must be in [0, 1), got {weight_dropout}")
        if hidden_size <= 0 or num_layers <= 0:
            raise ValueError(f"hidden_size and num_layers must be positive, got {hidden_size}, {num_layers}")
        self.input_size, self.hidden_size, self.num_layers = input_size, hidden_size, num_layers
        self.bias, self.batch_first, self.dropout = bias, batch_first, float(dropout)
        self.bidirectional, self.weight_dropout = bidirectional, float(weight_dropout)
        directions = 2 if bidirectional else 1
        # Registration order is torch's (layer, direction, ih before hh, weights before biases): the
        # flat weight list of the fused kernels, and the order reset_parameters draws in.
        self._weight_names: list[list[str]] = []
        for layer in range(num_layers):
            layer_input = input_size if layer == 0 else hidden_size * directions
            for direction in range(directions):
                suffix = f"l{layer}" + ("_reverse" if direction == 1 else "")
                shapes = {f"weight_ih_{suffix}": (self.gates * hidden_size, layer_input),
                          f"weight_hh_{suffix}": (self.gates * hidden_size, hidden_size)}
                if bias:
                    shapes |= {f"bias_ih_{suffix}": (self.gates * hidden_size,),
                               f"bias_hh_{suffix}": (self.gates * hidden_size,)}
                for name, shape in shapes.items():
                    self.register_parameter(name, nn.Parameter(torch.empty(shape, device=device, dtype=dtype)))
                self._weight_names.append(list(shapes))
        self.reset_parameters()

    @property
    def num_directions(self) -> int:
        return 2 if self.bidirectional else 1

    def reset_parameters(self) -> None:
        """Every weight and bias ~ U(−1/√H, 1/√H), drawn in torch.nn's order (same seed, same weights)."""
        bound = 1.0 / math.sqrt(self.hidden_size)
        for weight in self.parameters():
            nn.init.uniform_(weight, -bound, bound)

    def _flat_weights(self) -> list[Tensor]:
        """The weights one forward uses, in the fused kernels' flat order (each index's w_ih, w_hh
        and, with bias, b_ih, b_hh). In training with `weight_dropout`, every w_hh is a DropConnect
        copy (Wan et al. 2013; AWD-LSTM, Merity et al. 2017): elements zeroed with that probability,
        the rest scaled by 1/(1 − p), one mask for the whole sequence, so the fused kernel runs as is."""
        drop = self.training and self.weight_dropout > 0.0
        return [F.dropout(getattr(self, name), self.weight_dropout, training=True)
                if drop and name.startswith("weight_hh") else getattr(self, name)
                for names in self._weight_names for name in names]

    def _weights(self, flat: list[Tensor], index: int) -> tuple[Tensor, Tensor, Tensor | None, Tensor | None]:
        """(w_ih, w_hh, b_ih, b_hh) of layer·D + direction `index` in `flat`; biases None without bias."""
        per = 4 if self.bias else 2
        group = flat[index * per:(index + 1) * per]
        return tuple(group) if self.bias else (*group, None, None)

    def extra_repr(self) -> str:
        drop = f", weight_dropout={self.weight_dropout}" if self.weight_dropout else ""
        return (f"{self.input_size}, {self.hidden_size}, num_layers={self.num_layers}, bias={self.bias}, "
                f"batch_first={self.batch_first}, dropout={self.dropout}, bidirectional={self.bidirectional}"
                + drop)

    # -- public interface --------------------------------------------------------------------------

    def forward(self, input: Tensor | PackedSequence, hx: Tensor | tuple[Tensor, Tensor] | None = None,
                lengths: Tensor | None = None, *, explicit: bool = False):
        """Run the stack; returns (output, h_n) with torch.nn's shapes and semantics.

        input: (T, B, F), (B, T, F) if batch_first, (T, F) unbatched, or a PackedSequence.
        hx: initial state (L·D, B, H), for the LSTM a pair (h_0, c_0); zeros if None.
        lengths: (B,) real lengths of a padded batch, each in [1, T]; not with a PackedSequence.
        explicit: run the cell equations step by step in Python instead of the fast path.
        output: like input, with width D·H (packed if input was); h_n: (L·D, B, H) (pair for LSTM).
        """
        if isinstance(input, PackedSequence):
            if lengths is not None:
                raise ValueError("lengths cannot be given with a PackedSequence, which carries its own")
            x, lengths = pad_packed_sequence(input)  # (T, B, F), batch in the caller's order
            output, h_n = self._run(x, self._initial_state(hx, x), lengths, explicit)
            return _repack(output, input), self._public_state(h_n)
        if input.dim() not in (2, 3):
            raise ValueError(f"expected a 2-D (unbatched) or 3-D input, got {input.dim()}-D")
        unbatched = input.dim() == 2
        if unbatched:
            if lengths is not None:
                raise ValueError("lengths needs a batch; got an unbatched 2-D input")
            input = input.unsqueeze(0 if self.batch_first else 1)
            hx = None if hx is None else tuple(s.unsqueeze(1) for s in _as_tuple(hx))
        x = input.transpose(0, 1) if self.batch_first else input  # (T, B, F)
        if lengths is not None:
            lengths = _check_lengths(lengths, x)
        output, h_n = self._run(x, self._initial_state(hx, x), lengths, explicit)
        if self.batch_first:
            output = output.transpose(0, 1)  # (B, T, D·H)
        if unbatched:
            output = output.squeeze(0 if self.batch_first else 1)
            h_n = tuple(s.squeeze(1) for s in h_n)
        return output, self._public_state(h_n)

    # -- state handling ----------------------------------------------------------------------------

    def _initial_state(self, hx, x: Tensor) -> State:
        """The caller's hx as a tuple of (L·D, B, H) tensors, zeros if None; shapes checked."""
        shape = (self.num_layers * self.num_directions, x.shape[1], self.hidden_size)
        if hx is None:
            return tuple(x.new_zeros(shape) for _ in range(self.state_size))
        state = _as_tuple(hx)
        if len(state) != self.state_size:
            raise ValueError(f"{type(self).__name__} expects hx with {self.state_size} tensor(s), got {len(state)}")
        for s in state:
            if tuple(s.shape) != shape:
                raise ValueError(f"expected hx of shape {shape} (L·D, B, H), got {tuple(s.shape)}")
        return state

    def _public_state(self, state: State) -> Tensor | tuple[Tensor, ...]:
        return state if self.state_size > 1 else state[0]

    # -- the two paths -----------------------------------------------------------------------------

    def _run(self, x: Tensor, state: State, lengths: Tensor | None, explicit: bool) -> tuple[Tensor, State]:
        """x (T, B, F), state tuple of (L·D, B, H) → output (T, B, D·H), h_n tuple of (L·D, B, H).

        Both paths read the same weights, drawn once here (see `_flat_weights`)."""
        weights = self._flat_weights()
        if explicit:
            return self._run_stack(x, state, lengths, weights, fast=False)
        return self._run_fast(x, state, lengths, weights)

    def _run_fast(self, x: Tensor, state: State, lengths: Tensor | None,
                  weights: list[Tensor]) -> tuple[Tensor, State]:
        raise NotImplementedError

    def _run_stack(self, x: Tensor, state: State, lengths: Tensor | None, weights: list[Tensor], *,
                   fast: bool) -> tuple[Tensor, State]:
        """Layer by layer, direction by direction, step by step; dropout between layers."""
        finals: list[State] = []
        layer_input = x  # (T, B, F) for the first layer, (T, B, D·H) above
        for layer in range(self.num_layers):
            outputs = []
            for direction in range(self.num_directions):
                index = layer * self.num_directions + direction
                inputs, step = self._stepper(layer_input, self._weights(weights, index), fast=fast)
                out, final = _run_direction(inputs, step, tuple(s[index] for s in state), lengths,
                                            reverse=direction == 1)
                outputs.append(out)
                finals.append(final)
            layer_input = torch.cat(outputs, dim=-1)  # (T, B, D·H)
            if self.training and self.dropout > 0.0 and layer < self.num_layers - 1:
                layer_input = dropout(layer_input, self.dropout)
        h_n = tuple(torch.stack([final[i] for final in finals]) for i in range(self.state_size))  # (L·D, B, H)
        return layer_input, h_n

    def _stepper(self, x: Tensor, weights, *, fast: bool) -> tuple[Tensor, Step]:
        """What one direction loops over: per-step inputs (T, B, ·) and the step (input_t, state) → state.

        Here the whole cell runs at each step on x itself; GatedRNN's fast path hoists the input half.
        """
        w_ih, w_hh, b_ih, b_hh = weights

        def step(x_t: Tensor, state: State) -> State:
            return self.cell(x_t, state, w_ih, w_hh, b_ih, b_hh)
        return x, step


def _run_direction(inputs: Tensor, step: Step, state: State, lengths: Tensor | None, *,
                   reverse: bool) -> tuple[Tensor, State]:
    """One direction of one layer: inputs (T, B, ·), state tuple of (B, H) → (T, B, H), final state."""
    T = inputs.shape[0]
    outputs: list[Tensor] = [inputs.new_empty(0)] * T
    for t in (range(T - 1, -1, -1) if reverse else range(T)):
        new = step(inputs[t], state)
        if lengths is not None:
            # Past a sequence's end the state is frozen, so h_n is the last real step's and the
            # reverse direction starts from hx at each sequence's own last step.
            real = (t < lengths).unsqueeze(-1)  # (B, 1)
            new = tuple(torch.where(real, n, s) for n, s in zip(new, state))
            outputs[t] = torch.where(real, new[0], torch.zeros_like(new[0]))
        else:
            outputs[t] = new[0]
        state = new
    return torch.stack(outputs), state  # (T, B, H)


class _FusedRecurrent(_StackedRecurrent):
    """A torch.nn-compatible stack whose fast path is torch's own fused kernel (`_VF.<mode>`)."""

    _kernel: str  # "rnn_tanh", "rnn_relu", "gru" or "lstm"

    def _run_fast(self, x: Tensor, state: State, lengths: Tensor | None,
                  weights: list[Tensor]) -> tuple[Tensor, State]:
        if not (self.training and self.dropout > 0.0 and self.num_layers > 1 and x.device.type == "cpu"):
            return self._run_kernel(x, state, lengths, weights, self.num_layers)
        # On the CPU the kernel draws its dropout masks one Bernoulli variable at a time, which costs
        # more than a layer's forward (seqlab.nn.dropout): there the layers run one kernel call each,
        # with the cheaper masks between them.
        per_layer = len(weights) // self.num_layers
        D, finals = self.num_directions, []
        for layer in range(self.num_layers):
            rows = slice(layer * D, (layer + 1) * D)
            x, final = self._run_kernel(x, tuple(s[rows] for s in state), lengths,
                                        weights[layer * per_layer:(layer + 1) * per_layer], 1)
            finals.append(final)
            if layer < self.num_layers - 1:
                x = dropout(x, self.dropout)
        return x, tuple(torch.cat([final[i] for final in finals]) for i in range(self.state_size))

    def _run_kernel(self, x: Tensor, state: State, lengths: Tensor | None, weights: list[Tensor],
                    num_layers: int) -> tuple[Tensor, State]:
        """`num_layers` layers of torch's fused kernel, its own dropout between them."""
        kernel = getattr(_VF, self._kernel)
        hx = state if self.state_size > 1 else state[0]
        args = (weights, self.bias, num_layers, self.dropout, self.training, self.bidirectional)
        if lengths is None:
            output, *h_n = kernel(x, hx, *args, False)  # last argument: batch_first, already time-major
            return output, tuple(h_n)
        # Padded batches go through the packed kernel, which stops each sequence at its length.
        packed = pack_padded_sequence(x, lengths.cpu(), enforce_sorted=False)
        hx = _select(hx, packed.sorted_indices)
        data, *h_n = kernel(packed.data, packed.batch_sizes, hx, *args)
        output, _ = pad_packed_sequence(packed._replace(data=data), total_length=x.shape[0])  # (T, B, D·H)
        return output, tuple(s.index_select(1, packed.unsorted_indices) for s in h_n)


class RNN(_FusedRecurrent):
    """Elman RNN with tanh or ReLU, a drop-in for `torch.nn.RNN` (arguments after num_layers by keyword)."""

    gates = 1

    def __init__(self, input_size: int, hidden_size: int, num_layers: int = 1, *,
                 nonlinearity: Literal["tanh", "relu"] = "tanh", **kwargs) -> None:
        if nonlinearity not in ("tanh", "relu"):
            raise ValueError(f"nonlinearity must be 'tanh' or 'relu', got {nonlinearity!r}")
        super().__init__(input_size, hidden_size, num_layers, **kwargs)
        self.nonlinearity = nonlinearity
        self._kernel = f"rnn_{nonlinearity}"
        self.cell = rnn_tanh_cell if nonlinearity == "tanh" else rnn_relu_cell  # per instance, not per class

    def extra_repr(self) -> str:
        return super().extra_repr() + f", nonlinearity={self.nonlinearity!r}"


class GRU(_FusedRecurrent):
    """Gated recurrent unit, a drop-in for `torch.nn.GRU`; gate rows r, z, n."""

    gates = 3
    cell = staticmethod(gru_cell)
    _kernel = "gru"


class LSTM(_FusedRecurrent):
    """Long short-term memory, a drop-in for `torch.nn.LSTM`; gate rows i, f, g, o; state (h, c)."""

    gates = 4
    cell = staticmethod(lstm_cell)
    state_size = 2
    _kernel = "lstm"

    def __init__(self, input_size: int, hidden_size: int, num_layers: int = 1, *, proj_size: int = 0,
                 **kwargs) -> None:
        if proj_size != 0:
            raise NotImplementedError("LSTM with proj_size > 0 (projected hidden state) is not supported")
        super().__init__(input_size, hidden_size, num_layers, **kwargs)


class GatedRNN(_StackedRecurrent):
    """The lectures' gated RNN (one update gate z, ReLU candidate); weights [h̄; z], torch.nn's names.

    Its fast path computes all input projections in one matmul and loops over the recurrence only.
    """

    gates = 2
    cell = staticmethod(gated_rnn_cell)

    def _run_fast(self, x: Tensor, state: State, lengths: Tensor | None,
                  weights: list[Tensor]) -> tuple[Tensor, State]:
        return self._run_stack(x, state, lengths, weights, fast=True)

    def _stepper(self, x: Tensor, weights, *, fast: bool) -> tuple[Tensor, Step]:
        if not fast:
            return super()._stepper(x, weights, fast=False)
        w_ih, w_hh, b_ih, b_hh = weights
        x_proj = F.linear(x, w_ih, b_ih)  # (T, B, 2H): every step's input half in one matmul

        def step(x_proj_t: Tensor, state: State) -> State:
            return gated_rnn_update(x_proj_t, state, w_hh, b_hh)
        return x_proj, step


def _as_tuple(hx: Tensor | tuple[Tensor, ...]) -> State:
    return tuple(hx) if isinstance(hx, (tuple, list)) else (hx,)


def _select(hx: Tensor | tuple[Tensor, ...], index: Tensor) -> Tensor | tuple[Tensor, ...]:
    """Reorder the batch dimension (dim 1) of a state or state pair."""
    if isinstance(hx, tuple):
        return tuple(s.index_select(1, index) for s in hx)
    return hx.index_select(1, index)


def _check_lengths(lengths: Tensor, x: Tensor) -> Tensor:
    """Lengths as a (B,) int64 tensor on x's device, each in [1, T]."""
    lengths = torch.as_tensor(lengths, dtype=torch.int64, device=x.device)
    if lengths.shape != (x.shape[1],):
        raise ValueError(f"lengths must have shape ({x.shape[1]},) (B,), got {tuple(lengths.shape)}")
    if lengths.min() < 1 or lengths.max() > x.shape[0]:
        raise ValueError(f"lengths must lie in [1, {x.shape[0]}] (T), got {lengths.tolist()}")
    return lengths


def _repack(output: Tensor, like: PackedSequence) -> PackedSequence:
    """Pack a padded (T, B, ·) output in the caller's batch order with `like`'s exact layout."""
    order = like.sorted_indices
    if order is not None:
        output = output.index_select(1, order)  # (T, B, ·) sorted by length, as the packing is
    data = torch.cat([output[t, :size] for t, size in enumerate(like.batch_sizes.tolist())])  # (ΣT_b, ·)
    return PackedSequence(data, like.batch_sizes, like.sorted_indices, like.unsorted_indices)
