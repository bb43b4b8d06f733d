"""Low-rank adapters (LoRA, Hu et al. 2021) on a model's linear layers and embeddings.

A frozen weight W (out × in) gets a trainable update of rank r: y = x Wᵀ + b + s · dropout(x) Aᵀ Bᵀ,
with A (r × in) drawn like a linear layer's weight, B (out × r) zero at the start (so training
starts from the base model exactly) and s = alpha / r. Merging adds s · B A to W, after which the
layer is a plain linear layer again. The parity reference is `peft`'s LoRA
(tests/nn/test_lora.py, on tiny `transformers` GPT-2 and LLaMA models).

A target names a linear layer by the end of its module path, as peft's `target_modules` does:
`"attn.qkv"` is every `….attn.qkv`. A packed projection may be adapted one part at a time:
`"attn.q"`, `"attn.k"` and `"attn.v"` give the query, key and value rows of `attn.qkv` an
adapter each (what peft's `q_proj`, `v_proj` are on a model whose projections are separate),
through the rows a module declares in `packed_rows()`.

An embedding (`"tok_emb"`) gets one too, as peft's: the row of token i moves by s · B A[:, i],
with A (r × V) zero at the start and B (D × r) drawn from N(0, 1). It lets a task learn what its
words mean for it (a sentiment word's direction) when the base's vectors are fixed. A tied output
layer (`model.tie_embeddings`) reads the base matrix, unadapted; merging writes into that matrix,
so it moves the output layer too: a task run, which never reads it, merges exactly.

`LoRALinear` subclasses `nn.Linear` (`LoRAEmbedding`, `nn.Embedding`) and keeps its `weight` and
`bias` parameters, so the base weights keep their state-dict keys and their ties; the adapters add
`….lora_A.NAME` and `….lora_B.NAME`.

Dimensions: N rows of x · I in features · O out features (or the rows of one packed part) · r rank
· V embedding rows (the vocabulary) · D embedding width.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from seqlab.errors import ConfigError

WHOLE = "all"  # the adapter's name when it covers every output row of its layer


@dataclass(frozen=True)
class LoRASettings:
    """Rank, scale and dropout of every adapter, and which linear layers get one."""

    rank: int = 8
    alpha: float = 16.0
    dropout: float = 0.0
    targets: tuple[str, ...] = ("attn.qkv", "attn.out")

    def __post_init__(self) -> None:
        if self.rank < 1:
            raise ConfigError(f"finetune.rank = {self.rank} must be at least 1")
        if not math.isfinite(self.alpha) or self.alpha <= 0:
            raise ConfigError(f"finetune.alpha = {self.alpha} must be a positive number")
        if not 0.0 <= self.dropout < 1.0:
            raise ConfigError(f"finetune.dropout = {self.dropout} must be in [0, 1)")
        if not self.targets:
            raise ConfigError("finetune.targets is empty; name the linear layers to adapt, e.g. [\"attn.qkv\"]")

    @property
    def scale(self) -> float:
        return self.alpha / self.rank


class LoRALinear(nn.Linear):
    """A frozen linear layer plus low-rank adapters, each on all its output rows or on one slice."""

    def __init__(self, base: nn.Linear, settings: LoRASettings, parts: dict[str, slice]) -> None:
        nn.Module.__init__(self)
        self.in_features, self.out_features = base.in_features, base.out_features
        self.weight, self.bias = base.weight, base.bias  # the same Parameters: keys and storage unchanged
        self.weight.requires_grad_(False)
        if self.bias is not None:
            self.bias.requires_grad_(False)
        self.scale = settings.scale
        self.parts = dict(parts)
        self.lora_dropout = nn.Dropout(settings.dropout) if settings.dropout > 0 else nn.Identity()
        device, dtype = base.weight.device, base.weight.dtype
        self.lora_A = nn.ParameterDict()
        self.lora_B = nn.ParameterDict()
        for name, rows in self.parts.items():
            n_out = len(range(self.out_features)[rows])
            a = torch.empty(settings.rank, self.in_features, device=device, dtype=dtype)
            nn.init.kaiming_uniform_(a, a=math.sqrt(5))  # nn.Linear's own initialisation, as peft's
            self.lora_A[name] = nn.Parameter(a)
            self.lora_B[name] = nn.Parameter(torch.zeros(n_out, settings.rank, device=device, dtype=dtype))

    def delta(self) -> Tensor:
        """s · B A on the rows each adapter covers: (O, I)."""
        update = torch.zeros_like(self.weight)
        for name, rows in self.parts.items():
            update[rows] += self.scale * (self.lora_B[name] @ self.lora_A[name])
        return update

    def forward(self, x: Tensor) -> Tensor:
        y = F.linear(x, self.weight, self.bias)  # (..., O)
        h = self.lora_dropout(x)
        updates = [self.scale * F.linear(F.linear(h, self.lora_A[name]), self.lora_B[name])
                   for name in self.parts]  # (..., rows of each part)
        if list(self.parts) == [WHOLE]:
            return y + updates[0]
        pieces = torch.zeros_like(y)
        for (name, rows), update in zip(self.parts.items(), updates):
            pieces[..., rows] = update
        return y + pieces

    def merged(self) -> nn.Linear:
        """A plain linear layer with W + s · B A (the adapters folded in)."""
        layer = nn.Linear(self.in_features, self.out_features, bias=self.bias is not None,
                          device=self.weight.device, dtype=self.weight.dtype)
        with torch.no_grad():
            layer.weight.copy_(self.weight + self.delta())
            if self.bias is not None:
                layer.bias.copy_(self.bias)
        return layer


class LoRAEmbedding(nn.Embedding):
    """A frozen embedding plus a low-rank update of its rows (peft's embedding LoRA: no dropout)."""

    def __init__(self, base: nn.Embedding, settings: LoRASettings) -> None:
        nn.Module.__init__(self)
        self.num_embeddings, self.embedding_dim = base.num_embeddings, base.embedding_dim
        self.padding_idx, self.max_norm, self.norm_type = base.padding_idx, base.max_norm, base.norm_type
        self.scale_grad_by_freq, self.sparse = base.scale_grad_by_freq, base.sparse
        self.weight = base.weight  # the same Parameter: its key, and a tied output layer's, unchanged
        self.weight.requires_grad_(False)
        self.scale = settings.scale
        device, dtype = base.weight.device, base.weight.dtype
        self.lora_A = nn.ParameterDict(
            {WHOLE: nn.Parameter(torch.zeros(settings.rank, self.num_embeddings, device=device, dtype=dtype))})
        self.lora_B = nn.ParameterDict(
            {WHOLE: nn.Parameter(torch.randn(self.embedding_dim, settings.rank, device=device, dtype=dtype))})

    def delta(self) -> Tensor:
        """s · (B A)ᵀ: (V, D)."""
        return self.scale * (self.lora_B[WHOLE] @ self.lora_A[WHOLE]).T

    def forward(self, ids: Tensor) -> Tensor:
        y = super().forward(ids)  # (..., D)
        rows = F.embedding(ids, self.lora_A[WHOLE].T, self.padding_idx)  # (..., r): columns of A
        return y + self.scale * F.linear(rows, self.lora_B[WHOLE])

    def merged(self) -> nn.Embedding:
        """A plain embedding with W + s · (B A)ᵀ, written into the base Parameter itself, so that a
        layer tied to it stays tied (and moves with it)."""
        layer = nn.Embedding(self.num_embeddings, self.embedding_dim, padding_idx=self.padding_idx,
                             max_norm=self.max_norm, norm_type=self.norm_type,
                             scale_grad_by_freq=self.scale_grad_by_freq, sparse=self.sparse, device="meta")
        layer.weight = self.weight  # the Parameter object itself: ties are by identity
        with torch.no_grad():
            layer.weight += self.delta()
        layer.weight.requires_grad_(True)  # a plain layer again, as LoRALinear.merged's
        return layer


def _packed_parts(model: nn.Module) -> dict[str, tuple[str, slice]]:
    """"PATH.PART" -> ("PATH.LINEAR", rows) for every module that declares packed_rows()."""
    parts: dict[str, tuple[str, slice]] = {}
    for path, module in model.named_modules():
        rows_of = getattr(module, "packed_rows", None)
        if callable(rows_of):
            for part, (linear, rows) in rows_of().items():
                parts[f"{path}.{part}"] = (f"{path}.{linear}", rows)
    return parts


def _matches(path: str, target: str) -> bool:
    return path == target or path.endswith("." + target)


def resolve_targets(model: nn.Module, targets: Sequence[str]) -> dict[str, dict[str, slice]]:
    """The linear layers and embeddings the targets name: module path -> {adapter name: output
    rows}. A target that matches nothing is an error that lists what could be adapted."""
    linears = {path for path, module in model.named_modules() if isinstance(module, (nn.Linear, nn.Embedding))}
    packed = _packed_parts(model)
    chosen: dict[str, dict[str, slice]] = {}
    for target in targets:
        hits = [path for path in sorted(linears) if _matches(path, target)]
        for path in hits:
            chosen.setdefault(path, {})[WHOLE] = slice(None)
        parts = [path for path in sorted(packed) if _matches(path, target)]
        for path in parts:
            linear, rows = packed[path]
            chosen.setdefault(linear, {})[path.rsplit(".", 1)[1]] = rows
        if not hits and not parts:
            names = sorted({_short(path) for path in linears} | {_short(path) for path in packed})
            raise ConfigError(f"finetune.targets: {target!r} names no linear layer or embedding of this model; "
                              f"it has: {', '.join(names)}")
    for path, parts_of in chosen.items():
        if WHOLE in parts_of and len(parts_of) > 1:
            raise ConfigError(f"finetune.targets adapt {path} both whole and by part "
                              f"({', '.join(sorted(set(parts_of) - {WHOLE}))}); choose one")
    return chosen


def _short(path: str) -> str:
    """The name a target uses: the path without its layer indices (blocks.3.attn.qkv -> attn.qkv)."""
    words = path.split(".")
    while words and (words[0].isdigit() or words[0] in {"blocks", "layers"}):
        words = words[1:]
    tail = [word for word in words if not word.isdigit()]
    return ".".join(tail[-2:]) if len(tail) >= 2 else ".".join(tail)


def add_lora(model: nn.Module, settings: LoRASettings, *, seed: int | None = None) -> list[str]:
    """Freeze every parameter of `model`, put adapters on the target layers (in place) and return
    the adapted layers' paths. The adapters are the only trainable parameters afterwards (an
    embedding's B is drawn from the random state, seeded by `seed` when given)."""
    chosen = resolve_targets(model, settings.targets)
    for parameter in model.parameters():
        parameter.requires_grad_(False)
    generator_state = torch.random.get_rng_state()
    if seed is not None:
        torch.manual_seed(seed)
    try:
        for path, parts in chosen.items():
            parent, name = _parent(model, path)
            layer = getattr(parent, name)
            if isinstance(layer, (LoRALinear, LoRAEmbedding)):
                raise ConfigError(f"{path} already has adapters")
            adapted = (LoRAEmbedding(layer, settings) if isinstance(layer, nn.Embedding)
                       else LoRALinear(layer, settings, parts))
            setattr(parent, name, adapted)
    finally:
        if seed is not None:
            torch.random.set_rng_state(generator_state)
    return sorted(chosen)


def _parent(model: nn.Module, path: str) -> tuple[nn.Module, str]:
    head, _, name = path.rpartition(".")
    return (model.get_submodule(head) if head else model), name


def lora_layers(model: nn.Module) -> Iterable[tuple[str, LoRALinear | LoRAEmbedding]]:
    return ((path, module) for path, module in model.named_modules()
            if isinstance(module, (LoRALinear, LoRAEmbedding)))


def merge_lora(model: nn.Module) -> int:
    """Fold every adapter into its layer (in place); returns how many layers were merged."""
    layers = list(lora_layers(model))
    for path, layer in layers:
        parent, name = _parent(model, path)
        setattr(parent, name, layer.merged())
    return len(layers)


def adapter_state_dict(model: nn.Module) -> dict[str, Tensor]:
    """Only the adapters' tensors, keyed by their model paths (`….lora_A.q`, `….lora_B.q`)."""
    return {key: value.detach() for key, value in model.state_dict().items()
            if ".lora_A." in key or ".lora_B." in key}


def load_adapters(model: nn.Module, tensors: dict[str, Tensor]) -> None:
    """Copy saved adapters into a model that `add_lora` prepared with the same settings; every
    adapter must be present with its shape, and nothing else."""
    expected = adapter_state_dict(model)
    missing, unexpected = sorted(set(expected) - set(tensors)), sorted(set(tensors) - set(expected))
    if missing or unexpected:
        raise ConfigError(f"the adapters do not fit this model: missing {missing[:3]}, unexpected {unexpected[:3]}")
    for key, value in tensors.items():
        if value.shape != expected[key].shape:
            raise ConfigError(f"adapter {key} has shape {tuple(value.shape)}, the model expects "
                              f"{tuple(expected[key].shape)}")
    model.load_state_dict(tensors, strict=False)


def trainable_parameters(model: nn.Module) -> int:
    return sum(parameter.numel() for parameter in model.parameters() if parameter.requires_grad)
