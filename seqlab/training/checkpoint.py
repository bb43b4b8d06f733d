"""Checkpoints: everything `--resume` needs, in safetensors and JSON, never pickled.

Layout inside a run directory:

    model.safetensors             the latest weights (a hard link to the checkpoint's copy)
    state/latest.json             {"checkpoint": "ckpt-0000250", "step": 250}: the commit point
    state/ckpt-0000250/
        model.safetensors         weights of the unwrapped module
        optimizer.safetensors     optimizer moments, flattened as state.<param index>.<name>
        rng.safetensors           the batch sampler's and torch's random states ("batches", "torch",
                                  and "cuda" on a CUDA device)
        trainer.json              step, optimizer param groups, counters

A checkpoint is written into a hidden folder first (`.ckpt-0000250.partial`) and becomes current
only when `latest.json` is replaced (atomically) to name it; older folders are removed after that.
A kill at any moment therefore leaves the previous checkpoint loadable, and a write that fails (a
full disk) removes what it wrote and says that the previous checkpoint is still the current one.

Reading checks every file against the model and optimizer it is for before anything is loaded
(`seqlab.training.checkpoint_checks`): a checkpoint of another model, or a damaged one, is one
`CheckpointError` that says what is wrong, never a crash in a kernel or a run on the wrong state.
"""

from __future__ import annotations

import errno
import json
import logging
import re
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import load_model, save_file, save_model

from seqlab.errors import CheckpointError
from seqlab.files import atomic_path, atomic_write_text, link_or_copy
from seqlab.training.checkpoint_checks import START_OVER, check_weights, optimizer_state, rng_states, trainer_problems

log = logging.getLogger(__name__)

FORMAT = "seqlab-checkpoint-1"
FILES = ("model.safetensors", "optimizer.safetensors", "rng.safetensors", "trainer.json")
_NAME = re.compile(r"ckpt-(\d{7,})")


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


# ---- writing ---------------------------------------------------------------------------------------


def _flatten_optimizer(optimizer: torch.optim.Optimizer) -> tuple[dict[str, torch.Tensor], list[dict]]:
    state = optimizer.state_dict()
    tensors = {f"state.{index}.{name}": value.detach().contiguous()
               for index, entry in state["state"].items() for name, value in entry.items()
               if isinstance(value, torch.Tensor)}
    groups = [{k: (list(v) if isinstance(v, tuple) else v) for k, v in group.items()}
              for group in state["param_groups"]]
    return tensors, groups


def save_checkpoint(run_dir: Path, *, step: int, model: torch.nn.Module, optimizer: torch.optim.Optimizer,
                    rng: dict[str, torch.Tensor], trainer: dict[str, Any]) -> Path:
    """Write a complete checkpoint for `step` and make it the current one. A write that fails
    (a full disk) leaves no trace and the previous checkpoint current: a CheckpointError says so."""
    state_dir = run_dir / "state"
    name = f"ckpt-{step:07d}"
    folder = state_dir / name
    staging = state_dir / f".{name}.partial"
    if _is_current(state_dir, name):  # this step's checkpoint is current already: never delete it
        log.debug("the checkpoint of step %d is current already", step)
        return folder
    try:
        for stale in state_dir.glob(".ckpt-*.partial"):  # left by a kill during an earlier write
            shutil.rmtree(stale, ignore_errors=True)
        # ... as are the temporary files of the atomic writes a kill interrupted (seqlab.files).
        for stale in [*state_dir.glob(".latest.json.*.tmp"), *run_dir.glob(".model.safetensors.*.tmp")]:
            stale.unlink(missing_ok=True)
        staging.mkdir(parents=True)
        save_weights(model, staging / "model.safetensors", {"step": str(step)})
        tensors, groups = _flatten_optimizer(optimizer)
        # Through atomic_path, as every file: it gives them the umask's mode (safetensors makes 0600 files).
        with atomic_path(staging / "optimizer.safetensors") as tmp:
            save_file(tensors, str(tmp))
        with atomic_path(staging / "rng.safetensors") as tmp:
            save_file({k: v.contiguous() for k, v in rng.items()}, str(tmp))
        atomic_write_text(staging / "trainer.json",
                          json.dumps({"format": FORMAT, "step": step, "param_groups": groups, **trainer}, indent=1))
        shutil.rmtree(folder, ignore_errors=True)
        staging.rename(folder)
        atomic_write_text(state_dir / "latest.json", json.dumps({"checkpoint": name, "step": step}))
    except BaseException as exc:  # a kill (KeyboardInterrupt) too: nothing half-written stays
        shutil.rmtree(staging, ignore_errors=True)
        if not _is_current(state_dir, name):
            shutil.rmtree(folder, ignore_errors=True)
        if isinstance(exc, (OSError, SafetensorError)):
            raise CheckpointError(_write_failure(run_dir, step, exc)) from None
        raise
    try:
        link_or_copy(folder / "model.safetensors", run_dir / "model.safetensors")
    except OSError as exc:
        raise CheckpointError(f"the checkpoint of step {step} is saved, but {run_dir / 'model.safetensors'} could "
                              f"not be updated ({_reason(exc)}): make room, then continue with --resume") from None
    for old in state_dir.glob("ckpt-*"):
        if old.name != name:
            shutil.rmtree(old, ignore_errors=True)
    log.debug("checkpoint at step %d written to %s", step, folder)
    return folder


def _is_current(state_dir: Path, name: str) -> bool:
    try:
        return json.loads((state_dir / "latest.json").read_text(encoding="utf-8")).get("checkpoint") == name
    except (OSError, ValueError, AttributeError):
        return False


def _reason(exc: BaseException) -> str:
    """An OS error's reason in words; safetensors reports a full disk in its own message."""
    if isinstance(exc, OSError) and exc.errno is not None:
        return (exc.strerror or str(exc)).lower()
    if "os error 28" in str(exc) or "No space left" in str(exc):
        return "no space left on device"
    return str(exc)


def _write_failure(run_dir: Path, step: int, exc: BaseException) -> str:
    full = getattr(exc, "errno", None) == errno.ENOSPC or _reason(exc) == "no space left on device"
    try:
        previous = latest_checkpoint(run_dir)
    except CheckpointError:
        previous = None
    kept = (f"the checkpoint of step {previous.step} is intact and still the current one"
            if previous is not None else "the run has no earlier checkpoint")
    advice = "make room, then continue with --resume" if full else "then continue with --resume"
    return f"could not write the checkpoint of step {step} in {run_dir / 'state'} ({_reason(exc)}); {kept}: {advice}"


# ---- reading ---------------------------------------------------------------------------------------


@dataclass
class Checkpoint:
    step: int
    folder: Path
    trainer: dict[str, Any]  # the trainer.json content, its fields checked

    def load_into(self, model: torch.nn.Module, optimizer: torch.optim.Optimizer | None = None
                  ) -> dict[str, torch.Tensor]:
        """Restore weights (and optimizer state); returns the saved random states. Every file is
        checked before anything is loaded, so a CheckpointError leaves `model` and `optimizer` as
        they were."""
        weights = self.folder / "model.safetensors"
        check_weights(unwrap(model), weights)
        state = None if optimizer is None else optimizer_state(
            self.folder / "optimizer.safetensors", self.trainer["param_groups"], optimizer, unwrap(model))
        rng = rng_states(self.folder / "rng.safetensors")
        load_weights(model, weights)
        if state is not None:
            try:
                optimizer.load_state_dict(state)
            except (KeyError, ValueError, RuntimeError) as exc:  # checked above: kept as a safety net
                raise CheckpointError(f"{self.folder / 'optimizer.safetensors'} does not fit: {exc}; "
                                      f"{START_OVER}") from None
        return rng


def latest_checkpoint(run_dir: Path) -> Checkpoint | None:
    """The current checkpoint of a run, None when it has none; a damaged or incomplete one is a
    CheckpointError that says what is wrong."""
    pointer = run_dir / "state" / "latest.json"
    if not pointer.is_file():
        return None
    try:
        content = json.loads(pointer.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        raise CheckpointError(f"{pointer} is damaged ({exc}): {START_OVER}") from None
    name = content.get("checkpoint") if isinstance(content, dict) else None
    match = _NAME.fullmatch(name) if isinstance(name, str) else None
    if match is None:
        raise CheckpointError(f"{pointer} is damaged: it names no checkpoint folder (ckpt-NNNNNNN); {START_OVER}")
    folder = run_dir / "state" / name
    for file in FILES:
        if not (folder / file).is_file():
            raise CheckpointError(f"checkpoint {folder} is incomplete: {file} is missing; {START_OVER}")
    trainer = _read_trainer_json(folder / "trainer.json")
    if trainer["step"] != int(match.group(1)) or content.get("step", trainer["step"]) != trainer["step"]:
        raise CheckpointError(f"checkpoint {folder} is damaged: its trainer.json says step {trainer['step']}, "
                              f"{pointer.name} and the folder's name another; {START_OVER}")
    return Checkpoint(step=trainer["step"], folder=folder, trainer=trainer)


def _read_trainer_json(path: Path) -> dict[str, Any]:
    try:
        trainer = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        raise CheckpointError(f"{path} is damaged ({exc}): {START_OVER}") from None
    if not isinstance(trainer, dict):
        raise CheckpointError(f"{path} is damaged: it holds no JSON object; {START_OVER}")
    if trainer.get("format") != FORMAT:
        raise CheckpointError(f"{path} has format {trainer.get('format')!r}, this seqlab reads {FORMAT!r}")
    problem = next(trainer_problems(trainer), None)
    if problem is not None:
        raise CheckpointError(f"{path} is damaged: {problem}; {START_OVER}")
    return trainer
