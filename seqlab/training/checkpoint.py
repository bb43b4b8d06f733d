"""Checkpoints: everything `--resume` needs, in safetensors and JSON, never pickled.

Layout inside a run directory:

    model.safetensors             the latest weights (a hard link to the checkpoint's copy)
    state/latest.json             {"checkpoint": "ckpt-0000250", "step": 250}: the commit point
    state/ckpt-0000250/
        model.safetensors         weights of the unwrapped module
        optimizer.safetensors     optimizer moments, flattened as state.<param index>.<name>
        rng.safetensors           the batch sampler's and torch's random states
        trainer.json              step, optimizer param groups, counters

A checkpoint is written into its own folder first and becomes current only when `latest.json` is
replaced (atomically) to name it; older folders are removed after that. A kill at any moment
therefore leaves the previous checkpoint loadable.
"""

from __future__ import annotations

import json
import logging
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import load_file, load_model, save_file, save_model

from seqlab.errors import CheckpointError
from seqlab.files import atomic_path, atomic_write_text, link_or_copy

log = logging.getLogger(__name__)

FORMAT = "seqlab-checkpoint-1"


def unwrap(model: torch.nn.Module) -> torch.nn.Module:
    """The plain module under torch.compile's and DDP's wrappers (their prefixes never reach a file)."""
    while True:
        if hasattr(model, "_orig_mod"):
            model = model._orig_mod
        elif isinstance(model, torch.nn.parallel.DistributedDataParallel):
            model = model.module
        else:
            return model


def save_weights(model: torch.nn.Module, path: Path, metadata: dict[str, str] | None = None) -> None:
    """Weights as safetensors, written atomically; tied parameters are stored once."""
    with atomic_path(path) as tmp:
        save_model(unwrap(model), str(tmp), metadata={"format": FORMAT, **(metadata or {})})


def load_weights(model: torch.nn.Module, path: Path) -> None:
    """Load weights into `model`, turning every way a file can be wrong into a CheckpointError."""
    if not path.is_file():
        raise CheckpointError(f"missing weights file {path}")
    try:
        missing, unexpected = load_model(unwrap(model), str(path), strict=False)
    except (SafetensorError, OSError, ValueError) as exc:
        raise CheckpointError(f"{path} is damaged or not a safetensors file: {exc}") from None
    except RuntimeError as exc:
        first = str(exc).strip().splitlines()[-1].strip()
        raise CheckpointError(f"{path} does not fit this model (different sizes): {first}") from None
    if missing or unexpected:
        raise CheckpointError(f"{path} does not fit this model: missing {sorted(missing)[:3]}, "
                              f"unexpected {sorted(unexpected)[:3]}")


def read_metadata(path: Path) -> dict[str, str]:
    try:
        with safe_open(str(path), "pt") as handle:
            return dict(handle.metadata() or {})
    except (SafetensorError, OSError) as exc:
        raise CheckpointError(f"{path} is damaged or not a safetensors file: {exc}") from None


def _flatten_optimizer(optimizer: torch.optim.Optimizer) -> tuple[dict[str, torch.Tensor], list[dict]]:
    state = optimizer.state_dict()
    tensors = {f"state.{index}.{name}": value.detach().contiguous()
               for index, entry in state["state"].items() for name, value in entry.items()
               if isinstance(value, torch.Tensor)}
    groups = [{k: (list(v) if isinstance(v, tuple) else v) for k, v in group.items()}
              for group in state["param_groups"]]
    return tensors, groups


def _unflatten_optimizer(tensors: dict[str, torch.Tensor], groups: list[dict]) -> dict[str, Any]:
    state: dict[int, dict[str, torch.Tensor]] = {}
    for key, value in tensors.items():
        _, index, name = key.split(".", 2)
        state.setdefault(int(index), {})[name] = value
    groups = [{k: (tuple(v) if k == "betas" else v) for k, v in group.items()} for group in groups]
    return {"state": state, "param_groups": groups}


@dataclass
class Checkpoint:
    step: int
    folder: Path
    trainer: dict[str, Any]  # the trainer.json content

    def load_into(self, model: torch.nn.Module, optimizer: torch.optim.Optimizer | None = None
                  ) -> dict[str, torch.Tensor]:
        """Restore weights (and optimizer state); returns the saved random states."""
        load_weights(model, self.folder / "model.safetensors")
        try:
            if optimizer is not None:
                tensors = load_file(str(self.folder / "optimizer.safetensors"))
                optimizer.load_state_dict(_unflatten_optimizer(tensors, self.trainer["param_groups"]))
            return load_file(str(self.folder / "rng.safetensors"))
        except (SafetensorError, OSError, KeyError, ValueError) as exc:
            raise CheckpointError(f"checkpoint {self.folder} is damaged or incompatible: {exc}") from None


def save_checkpoint(run_dir: Path, *, step: int, model: torch.nn.Module, optimizer: torch.optim.Optimizer,
                    rng: dict[str, torch.Tensor], trainer: dict[str, Any]) -> Path:
    """Write a complete checkpoint for `step` and make it the current one."""
    state_dir = run_dir / "state"
    name = f"ckpt-{step:07d}"
    folder = state_dir / name
    staging = state_dir / f".{name}.partial"
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    metadata = {"step": str(step)}
    save_weights(model, staging / "model.safetensors", metadata)
    tensors, groups = _flatten_optimizer(optimizer)
    save_file(tensors, str(staging / "optimizer.safetensors"))
    save_file({k: v.contiguous() for k, v in rng.items()}, str(staging / "rng.safetensors"))
    atomic_write_text(staging / "trainer.json",
                      json.dumps({"format": FORMAT, "step": step, "param_groups": groups, **trainer}, indent=1))
    shutil.rmtree(folder, ignore_errors=True)
    staging.rename(folder)
    atomic_write_text(state_dir / "latest.json", json.dumps({"checkpoint": name, "step": step}))
    link_or_copy(folder / "model.safetensors", run_dir / "model.safetensors")
    for old in state_dir.glob("ckpt-*"):
        if old.name != name:
            shutil.rmtree(old, ignore_errors=True)
    log.debug("checkpoint at step %d written to %s", step, folder)
    return folder


def latest_checkpoint(run_dir: Path) -> Checkpoint | None:
    """The current checkpoint of a run, None when it has none; a damaged one is a CheckpointError."""
    pointer = run_dir / "state" / "latest.json"
    if not pointer.is_file():
        return None
    try:
        name = json.loads(pointer.read_text(encoding="utf-8"))["checkpoint"]
        folder = run_dir / "state" / name
        trainer = json.loads((folder / "trainer.json").read_text(encoding="utf-8"))
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise CheckpointError(f"checkpoint of {run_dir} is damaged: {exc}") from None
    if trainer.get("format") != FORMAT:
        raise CheckpointError(f"checkpoint {folder} has format {trainer.get('format')!r}, "
                              f"this seqlab reads {FORMAT!r}")
    return Checkpoint(step=int(trainer["step"]), folder=folder, trainer=trainer)
