"""Starting a run from another one (`train.init_from`), and what of it trains (`[finetune]`).

A run started from a base run takes the base's `[model]` and `[tokenizer]` (the resolved config
records them) and its weights; an `import-hf` run is a base like any other. Then:

- `method = "full"`: everything trains except the parts `freeze` names, which keep the base's
  values bit for bit (no gradient, no weight decay: they are left out of the optimizer);
- `method = "lora"`: the base's weights are fixed and the linear layers (and embeddings) `targets`
  names get low-rank adapters (`seqlab.nn.lora`, Hu et al. 2021); a task run's new parts (its head, CRF,
  input projection) train too. The run saves them on their own, `adapters.safetensors`, and is
  loaded by putting them onto its base run again; `seqlab merge` folds them into a plain run.

A name in `freeze` is matched as a LoRA target is: a module path of the model (the backbone's, for
a task run) or its end, `"tok_emb"`, `"blocks.0"`, `"attn.qkv"` (every block's).
"""

from __future__ import annotations

import logging
from dataclasses import replace
from pathlib import Path

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file
from torch import nn

from seqlab.config import Config
from seqlab.errors import CheckpointError, ConfigError
from seqlab.files import atomic_path
from seqlab.nn.lora import LoRASettings, add_lora, resolve_targets

_QUIET = logging.getLogger(__name__ + ".loading")  # prepare() when a run is loaded: nothing to announce
_QUIET.setLevel(logging.WARNING)

ADAPTERS_FILE = "adapters.safetensors"


def base_dir(config: Config) -> Path | None:
    """The run `train.init_from` names, or None."""
    return Path(config.train.init_from).expanduser() if config.train.init_from else None


def with_base(config: Config) -> Config:
    """`config` with the base run's [model] and [tokenizer] and init_from as an absolute path
    (so the run can be loaded from anywhere); unchanged without init_from. Also checks that
    `[finetune]` has a base to fine-tune."""
    from seqlab.runs import read_config  # runs reads configs with this module's help

    base = base_dir(config)
    if base is None:
        if config.finetune != type(config.finetune)():
            raise ConfigError("[finetune] says how to fine-tune the run train.init_from starts from: set "
                              "train.init_from = \"RUN_DIR\" (or leave [finetune] out)")
        return config
    saved = read_config(base)
    if saved.task.kind != "lm":
        raise ConfigError(f"train.init_from = {config.train.init_from!r} is a {saved.task.kind} run: start from "
                          f"a language model's run (trained or imported)")
    return replace(config, model=saved.model, tokenizer=saved.tokenizer,
                   train=replace(config.train, init_from=str(base.resolve())))


def lora_settings(config: Config) -> LoRASettings:
    f = config.finetune
    return LoRASettings(rank=f.rank, alpha=f.alpha, dropout=f.dropout, targets=tuple(f.targets))


def _matches(path: str, name: str) -> bool:
    return path == name or path.endswith("." + name) or path.startswith(name + ".") or f".{name}." in path


def frozen_names(model: nn.Module, names: tuple[str, ...]) -> list[str]:
    """The parameters under the modules (or parameters) `names` names. A name that matches nothing
    is a ConfigError listing the model's top-level parts."""
    frozen = set()
    for name in names:
        hits = [path for path, _ in model.named_parameters() if _matches(path, name)]
        if not hits:
            parts = ", ".join(child for child, _ in model.named_children())
            raise ConfigError(f"finetune.freeze: {name!r} names no part of this model; it has: {parts}")
        frozen.update(hits)
    return sorted(frozen)


def prepare(model: nn.Module, config: Config, *, load_base: bool, announce: bool = True) -> None:
    """Load the base run's weights into `model` (when `load_base`: not when a checkpoint will), then
    freeze it or put adapters on it, as `[finetune]` says, logging what it did when `announce`.
    `model` is the language model (a task model's backbone). The names are checked first: a name
    that matches nothing fails before anything is loaded."""
    log = logging.getLogger(__name__) if announce else _QUIET
    lora = config.finetune.method == "lora"
    frozen = frozen_names(model, config.finetune.freeze) if not lora else []
    if lora:
        resolve_targets(model, config.finetune.targets)
    base = base_dir(config)
    if base is not None and load_base:
        from seqlab.training.checkpoint import load_weights

        load_weights(model, base / "model.safetensors")
        log.info("starting from the weights of %s", base)
    if lora:
        layers = add_lora(model, lora_settings(config), seed=config.train.seed)
        log.info("LoRA rank %d on %d layer%s (%s)", config.finetune.rank, len(layers), "s" * (len(layers) != 1),
                 ", ".join(config.finetune.targets))
    elif frozen:
        for path, parameter in model.named_parameters():
            if path in frozen:
                parameter.requires_grad_(False)
        log.info("frozen: %d parameter tensors (%s)", len(frozen), ", ".join(config.finetune.freeze))


def new_tensors(model: nn.Module, prefix: str = "backbone.") -> dict[str, torch.Tensor]:
    """What a LoRA run adds to its base: the adapters and every tensor outside the backbone (a
    task model's head, CRF, input projection); keys as in the model's state dict."""
    return {key: value.detach().contiguous() for key, value in model.state_dict().items()
            if ".lora_A." in key or ".lora_B." in key or not key.startswith(prefix)}


def save_adapters(model: nn.Module, run_dir: Path, step: int | None = None) -> Path:
    path = Path(run_dir) / ADAPTERS_FILE
    with atomic_path(path) as tmp:
        save_file(new_tensors(model), str(tmp), metadata={"step": str(step)} if step is not None else None)
    return path


def load_adapters(model: nn.Module, run_dir: Path) -> None:
    """Copy a run's adapters.safetensors into `model` (built and prepared with adapters, its
    backbone holding the base's weights); every tensor must be there with its shape, and nothing else."""
    path = Path(run_dir) / ADAPTERS_FILE
    if not path.is_file():
        raise CheckpointError(f"{path} is missing: a LoRA run keeps its adapters there")
    try:
        tensors = load_file(str(path))
    except (SafetensorError, OSError) as exc:
        raise CheckpointError(f"{path} is damaged or not a safetensors file: {exc}") from None
    expected = new_tensors(model)
    missing, unexpected = sorted(set(expected) - set(tensors)), sorted(set(tensors) - set(expected))
    if missing or unexpected:
        raise CheckpointError(f"{path} does not fit this model: missing {missing[:3]}, unexpected {unexpected[:3]}")
    for key, value in tensors.items():
        if value.shape != expected[key].shape:
            raise CheckpointError(f"{path}: {key} has shape {tuple(value.shape)}, the model expects "
                                  f"{tuple(expected[key].shape)}")
    model.load_state_dict(tensors, strict=False)


__all__ = ["ADAPTERS_FILE", "base_dir", "frozen_names", "load_adapters", "lora_settings", "new_tensors", "prepare",
           "save_adapters", "with_base"]
