"""Memory budgets: what a training run, an imported model or a batch of samples will hold, estimated
from sizes alone and refused, with one line, when the machine cannot hold it.

DESIGN.md: "Sizes are checked before memory is allocated." Each check here runs before the memory it
guards is allocated and raises a `SeqlabError` (the CLI's one line on stderr and exit status 2) that
gives the estimate and the limit.

Training (`check_budget`, called by `seqlab.train` before the model is built):

    state       = P × 16 bytes          float32 weights, gradients and AdamW's two moments
    activations = 4 bytes × B × T × (ACTIVATION_FACTOR × W + LOSS_FLOATS × V + ATTENTION_FACTOR × T × H)

P, W and H are read off the model built on the meta device (shapes, no memory) through the family
registry: P its parameters, exactly; W the per-token width of every weighted layer's output, summed
(`out_features` of a Linear, the rows of a recurrent or convolution weight, an Embedding's width:
"width × layers", the LM head's V included); H the heads of every attention module (the (T, T)
scores each head keeps per row). B is `train.batch_size` (one micro-batch), T the model's block_size,
V the vocabulary. The factors are conservative for a float32 step: a Transformer layer of width D has
W = 9·D (12·D gated) and keeps about 17·D floats per token for its backward pass (Korthikanti et al.
2022, "Reducing Activation Recomputation", 34·D bytes in 16-bit), so ACTIVATION_FACTOR = 2.5 leaves
room for the backward pass's own buffers; the loss keeps a float32 log-softmax of the logits and its
gradient (2·V). bfloat16 autocast needs less; the estimate does not count on it. The shipped presets
come to 17 MiB (names-mlp) to 1.0 GiB (multi30k-de: 64 × 64 × 8000 logits a step, the vocabulary 8000 words);
shakespeare-char to 54 MiB, against 33 MiB measured above a 1-layer, 1-row run of it (its peak
resident size over 3 steps), shakespeare-char-wavenet to 173 MiB against 134 MiB measured.
tests/test_budget.py checks that every preset fits in 2 GiB.

Building a model of 100000 layers on the meta device still takes minutes (Python objects per
module), so past `EXACT_DEPTH` layers P, W and H are extrapolated from the models of depth 1 and 2:
every family's sizes grow by the same amount per added layer (checked in tests/test_budget.py).

Generation (`check_generation`): each sample row holds its decoding state (a KV cache of block_size
positions, a hidden state; measured on the meta device), `LOGIT_COPIES` float32 rows of V logits
while a token is drawn, and the tokens it keeps at `TOKEN_BYTES` each.

The limit is the memory the machine has available now (`available_memory`: /proc/meminfo's
MemAvailable, lowered by a cgroup's memory.max), or the free memory of the CUDA device a run trains on.
"""

from __future__ import annotations

import dataclasses
import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from seqlab import families
from seqlab.errors import SeqlabError
from seqlab.generate.sampling import HISTORY_CHUNK
from seqlab.training import resolve_device

log = logging.getLogger(__name__)

STATE_BYTES_PER_PARAMETER = 16  # float32 weight + gradient + AdamW's exp_avg and exp_avg_sq
FLOAT_BYTES = 4  # activations are counted in float32
ACTIVATION_FACTOR = 2.5  # floats kept per unit of summed layer width, per token (see the module docstring)
LOSS_FLOATS = 2  # the loss's float32 log-softmax of the logits and its gradient, per token per vocabulary entry
ATTENTION_FACTOR = 2  # per head, query and key: the scores and their softmax (the math path keeps both)
EXACT_DEPTH = 32  # up to this many layers the meta model is built whole; past it, extrapolated
DEPTH_FIELDS = ("n_layer", "n_encoder_layer")  # the [model] keys that count layers, in every family that has them

TOKEN_BYTES = 64  # a kept generated token: its id (8), its place in Python lists (8 to 40) and its text
LOGIT_COPIES = 8  # float32 (B, V) tensors alive while a token is drawn (logits, filtered, softmax, noise, sort, ...)


@dataclass(frozen=True)
class ModelShape:
    """What the budget reads off a model: parameters, the summed per-token width of its weighted
    layers' outputs, and the heads of its attention modules (see the module docstring)."""

    parameters: int
    width: int
    heads: int

    def __add__(self, other: ModelShape) -> ModelShape:
        return ModelShape(self.parameters + other.parameters, self.width + other.width, self.heads + other.heads)

    def __sub__(self, other: ModelShape) -> ModelShape:
        return ModelShape(self.parameters - other.parameters, self.width - other.width, self.heads - other.heads)

    def __mul__(self, k: int) -> ModelShape:
        return ModelShape(self.parameters * k, self.width * k, self.heads * k)


@dataclass(frozen=True)
class Estimate:
    """Bytes a training step holds: the parameters' state and one micro-batch's activations."""

    parameters: int
    state_bytes: int
    activation_bytes: int

    @property
    def total_bytes(self) -> int:
        return self.state_bytes + self.activation_bytes


def model_shape(settings: Any, vocab_size: int, source_vocab_size: int | None = None, *,
                exact_depth: int = EXACT_DEPTH) -> ModelShape:
    """The `ModelShape` of the model that `settings` (a family's [model] settings) describe, with no
    memory allocated: built on the meta device, or extrapolated from depths 1 and 2 past `exact_depth`
    layers."""
    depths = {name: getattr(settings, name) for name in DEPTH_FIELDS if getattr(settings, name, 0) >= 1}
    if all(d <= exact_depth for d in depths.values()):
        return _meta_shape(settings, vocab_size, source_vocab_size)
    shallow = dataclasses.replace(settings, **{name: 1 for name in depths})
    base = _meta_shape(shallow, vocab_size, source_vocab_size)
    shape = base
    for name, depth in depths.items():
        per_layer = _meta_shape(dataclasses.replace(shallow, **{name: 2}), vocab_size, source_vocab_size) - base
        shape = shape + per_layer * (depth - 1)
    return shape


def _meta_shape(settings: Any, vocab_size: int, source_vocab_size: int | None) -> ModelShape:
    with torch.device("meta"):
        model = families.get(settings.family).build_model(settings, vocab_size, source_vocab_size)
    return measure(model)


def measure(model: nn.Module) -> ModelShape:
    """The `ModelShape` of a built model (on any device, meta included)."""
    parameters = sum(p.numel() for p in model.parameters())
    width = heads = 0
    for module in model.modules():
        if isinstance(module, nn.Embedding):
            width += module.embedding_dim
        else:
            width += sum(p.shape[0] for p in module.parameters(recurse=False) if p.dim() >= 2)
        n_head = getattr(module, "n_head", None)  # SelfAttention and CrossAttention (seqlab.nn.attention)
        if isinstance(n_head, int):
            heads += n_head
    return ModelShape(parameters, width, heads)


def training_estimate(config: Any, vocab_size: int, source_vocab_size: int | None = None) -> Estimate:
    """The bytes a training step of `config` (a seqlab Config) holds; see the module docstring."""
    settings = config.model
    shape = model_shape(settings, vocab_size, source_vocab_size)
    B, T = config.train.batch_size, getattr(settings, "block_size", None) or 1
    floats_per_token = ACTIVATION_FACTOR * shape.width + LOSS_FLOATS * vocab_size + ATTENTION_FACTOR * T * shape.heads
    return Estimate(parameters=shape.parameters, state_bytes=shape.parameters * STATE_BYTES_PER_PARAMETER,
                    activation_bytes=int(FLOAT_BYTES * B * T * floats_per_token))


def check_budget(config: Any, vocab_size: int, *, source_vocab_size: int | None = None) -> Estimate:
    """Raise a SeqlabError when training `config` with a vocabulary of `vocab_size` would hold more
    memory than the machine (or the CUDA device it trains on) has available; returns the estimate.
    Families fitted by counting or EM (n-gram, HMM) are not built and are not checked here."""
    family = families.get(config.model.family)
    if not family.trained:
        return Estimate(0, 0, 0)
    estimate = training_estimate(config, vocab_size, source_vocab_size)
    log.debug("training needs about %s: %d parameters, %s of state, %s of activations per step",
              format_bytes(estimate.total_bytes), estimate.parameters, format_bytes(estimate.state_bytes),
              format_bytes(estimate.activation_bytes))
    device = _training_device(config.train.device)
    if device.type == "cuda":  # built on the host (float32 weights), then trained on the device
        checks = [(estimate.total_bytes, torch.cuda.mem_get_info(device)[0], f"the {device} device has"),
                  (estimate.parameters * FLOAT_BYTES, available_memory(), "this machine has")]
    else:
        checks = [(estimate.total_bytes, available_memory(), "this machine has")]
    for need, limit, where in checks:
        if limit is not None and need > limit:
            raise SeqlabError(
                f"training this model needs about {format_bytes(need)} ({estimate.parameters:,} parameters: "
                f"{format_bytes(estimate.state_bytes)} of weights, gradients and optimizer state, "
                f"{format_bytes(estimate.activation_bytes)} of activations per step) but {where} "
                f"{format_bytes(limit)} available: make the model smaller (model.n_layer, model.d_model, ...), "
                f"or train.batch_size or model.block_size")
    return estimate


def _training_device(name: str) -> torch.device:
    try:
        return resolve_device(name)
    except SeqlabError:  # a missing device is reported where training starts
        return torch.device("cpu")


def check_model_size(settings: Any, vocab_size: int, *, bytes_per_parameter: int = FLOAT_BYTES,
                     extra_bytes: int = 0, what: str = "this model") -> int:
    """Raise a SeqlabError unless the parameters of the model `settings` describe (at
    `bytes_per_parameter` each, plus `extra_bytes`) fit the available memory; returns the count."""
    parameters = model_shape(settings, vocab_size).parameters
    need, limit = parameters * bytes_per_parameter + extra_bytes, available_memory()
    if limit is not None and need > limit:
        raise SeqlabError(f"{what} has {parameters:,} parameters and needs about {format_bytes(need)}, but this "
                          f"machine has {format_bytes(limit)} available")
    return parameters


def check_generation(model: Any, vocab_size: int, *, rows: int, prompt_tokens: int, new_tokens: int,
                     keep_all: bool = True) -> int | None:
    """Raise a SeqlabError unless `rows` samples of `prompt_tokens` + `new_tokens` tokens fit the
    available memory: each row's decoding state, its logits while a token is drawn and the tokens it
    keeps (all of them when `keep_all`, else the prompt and the model's block_size). Returns how many
    generated tokens the rows may keep together (a caller that keeps text until a stop string stops
    there), or None where the available memory cannot be read."""
    window = getattr(model, "block_size", None) or 1
    # Streamed, a row keeps its context: block_size tokens and room for HISTORY_CHUNK more.
    held = prompt_tokens + (new_tokens if keep_all else min(new_tokens, max(window, HISTORY_CHUNK)))
    per_row = decode_state_bytes(model) + LOGIT_COPIES * FLOAT_BYTES * vocab_size
    need = rows * (per_row + TOKEN_BYTES * held)
    limit = available_memory()
    if limit is None:
        return None
    if need > limit:
        most = (limit // rows - per_row) // TOKEN_BYTES - prompt_tokens  # new tokens per row that fit
        fit = limit // (per_row + TOKEN_BYTES * held)
        advice = (f"at most {most:,} new tokens per sample fit at this number of samples" if most > 0 and keep_all
                  else f"at most {fit:,} samples fit" if fit else "not even one sample fits")
        raise SeqlabError(f"{rows:,} sample(s) of {prompt_tokens:,} prompt + {new_tokens:,} new tokens need about "
                          f"{format_bytes(need)} but this machine has {format_bytes(limit)} available: {advice} "
                          f"(lower num_samples or max_new_tokens)")
    return max(0, (limit - rows * per_row) // TOKEN_BYTES)


def decode_state_bytes(model: Any) -> int:
    """Bytes of one row's decoding state (`model.new_state(1, meta)`: a KV cache, a hidden state)."""
    new_state = getattr(model, "new_state", None)
    if new_state is None:
        return 0
    return _tensor_bytes(new_state(1, torch.device("meta")))


def _tensor_bytes(state: Any) -> int:
    if isinstance(state, Tensor):
        return state.numel() * state.element_size()
    if isinstance(state, (list, tuple)):
        return sum(_tensor_bytes(s) for s in state)
    if isinstance(state, dict):
        return sum(_tensor_bytes(s) for s in state.values())
    fields = [*getattr(state, "__dict__", {}).values(),
              *(getattr(state, name) for name in getattr(type(state), "__slots__", ()) if hasattr(state, name))]
    return sum(_tensor_bytes(s) for s in fields if isinstance(s, (Tensor, list, tuple, dict)))


def available_memory() -> int | None:
    """Bytes this process can still allocate: /proc/meminfo's MemAvailable, lowered by the memory
    cgroup's limit (memory.max − memory.current); None where neither can be read (no check)."""
    available = _meminfo_available()
    cgroup = _cgroup_room()
    if cgroup is not None:
        available = cgroup if available is None else min(available, cgroup)
    return available


def _meminfo_available() -> int | None:
    try:
        with open("/proc/meminfo", encoding="ascii") as handle:
            for line in handle:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024  # kB
    except (OSError, ValueError, IndexError):
        pass
    try:
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (AttributeError, ValueError, OSError):
        return None


def _cgroup_room() -> int | None:
    root = Path("/sys/fs/cgroup")
    try:
        limit = (root / "memory.max").read_text().strip()
        if limit == "max":
            return None
        return max(0, int(limit) - int((root / "memory.current").read_text()))
    except (OSError, ValueError):
        return None


def format_bytes(n: float) -> str:
    """1536 → '1.5 KiB'; sizes in binary units with one decimal."""
    for unit in ("B", "KiB", "MiB", "GiB", "TiB", "PiB"):
        if abs(n) < 1024 or unit == "PiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    raise AssertionError("unreachable")


__all__ = ["Estimate", "ModelShape", "available_memory", "check_budget", "check_generation", "check_model_size",
           "decode_state_bytes", "format_bytes", "measure", "model_shape", "training_estimate"]
