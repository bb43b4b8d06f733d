"""What each file of a checkpoint must hold, checked before anything of it is loaded.

- trainer.json: every field of its type (`step` a whole number >= 0, the counters numbers, the
  param groups a list of objects), and the param groups those of the optimizer that will load them;
- model.safetensors: exactly the model's tensors, each of its shape and dtype (read from the header);
- optimizer.safetensors: every moment of the shape and dtype of the parameter it belongs to, a step
  count a scalar, the moments of an Adam-family optimizer all there; `optimizer.load_state_dict`
  checks none of this, and the fused AdamW kernels then crash or read past a tensor's end;
- rng.safetensors: "batches" and "torch" (states a CPU generator takes) and optionally "cuda".

Each failure is a CheckpointError that names the file and what is wrong with it, and says what to do.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import load_file

from seqlab.errors import CheckpointError

START_OVER = "start the run over with --overwrite, or train into another --out"
_IMPLEMENTATION = ("foreach", "fused", "capturable", "differentiable")  # an optimizer's settings of how, not what
# safetensors' names of the dtypes a model's state can hold
_DTYPE_CODES = {torch.float64: "F64", torch.float32: "F32", torch.float16: "F16", torch.bfloat16: "BF16",
                torch.int64: "I64", torch.int32: "I32", torch.int16: "I16", torch.int8: "I8", torch.uint8: "U8",
                torch.bool: "BOOL"}


def _is_count(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


def _is_amount(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value) and value >= 0


_SCALER_KEYS = {"scale", "growth_factor", "backoff_factor", "growth_interval", "_growth_tracker"}  # GradScaler's
# trainer.json's fields: (required, test, what the value must be)
_FIELDS = {
    "step": (True, _is_count, "a whole number >= 0"),
    "param_groups": (True, lambda v: isinstance(v, list) and all(isinstance(g, dict) for g in v),
                     "a list of parameter groups"),
    "tokens_seen": (False, _is_count, "a whole number >= 0"),
    "train_seconds": (False, _is_amount, "a number >= 0"),
    "wall_seconds": (False, _is_amount, "a number >= 0"),
    "decay_steps": (False, lambda v: _is_count(v) and v > 0, "a whole number >= 1"),
    "lr_anchor": (False, lambda v: isinstance(v, dict) and set(v) == {"step", "lr"} and _is_count(v["step"])
                  and _is_amount(v["lr"]), "{'step': a whole number >= 0, 'lr': a number >= 0}"),
    "grad_scaler": (False, lambda v: isinstance(v, dict) and set(v) == _SCALER_KEYS
                    and all(map(_is_amount, v.values())),
                    f"float16's loss scaler (numbers >= 0 for {sorted(_SCALER_KEYS)})"),
}


def trainer_problems(trainer: dict[str, Any]):
    """What is wrong with trainer.json's fields, one sentence each."""
    for key, (required, test, what) in _FIELDS.items():
        if key not in trainer:
            if required:
                yield f"it has no {key!r}"
        elif not test(trainer[key]):
            yield f"{key!r} is {trainer[key]!r}, not {what}"


def read_tensors(path: Path) -> dict[str, torch.Tensor]:
    try:
        return load_file(str(path))
    except (SafetensorError, OSError, ValueError) as exc:
        raise CheckpointError(f"{path} is damaged or not a safetensors file ({exc}): {START_OVER}") from None


def check_weights(model: torch.nn.Module, path: Path) -> None:
    """The weights file holds exactly the model's tensors (a tied one once), each of its shape and
    dtype; read from the file's header, before any weight is loaded."""
    expected = model.state_dict()
    try:
        with safe_open(str(path), "pt") as handle:
            stored = {key: (tuple(handle.get_slice(key).get_shape()), handle.get_slice(key).get_dtype())
                      for key in handle.keys()}
    except (SafetensorError, OSError, ValueError) as exc:
        raise CheckpointError(f"{path} is damaged or not a safetensors file ({exc}): {START_OVER}") from None
    stored_storage = {expected[k].data_ptr() for k in stored if k in expected}
    missing = [k for k in expected if k not in stored and expected[k].data_ptr() not in stored_storage]
    unexpected = [k for k in stored if k not in expected]
    if missing or unexpected:
        raise CheckpointError(f"{path} does not fit this model: missing {sorted(missing)[:3]}, unexpected "
                              f"{sorted(unexpected)[:3]}; {START_OVER}")
    for key, (shape, dtype) in stored.items():
        tensor = expected[key]
        if shape != tuple(tensor.shape) or dtype != _DTYPE_CODES.get(tensor.dtype):
            raise CheckpointError(f"{path} does not fit this model: {key} is {dtype} {list(shape)}, the model's "
                                  f"is {_DTYPE_CODES.get(tensor.dtype, tensor.dtype)} {list(tensor.shape)}; "
                                  f"{START_OVER}")


def optimizer_state(path: Path, groups: list[dict], optimizer: torch.optim.Optimizer,
                    model: torch.nn.Module) -> dict[str, Any]:
    """The optimizer state dict stored in `path` (moments) and trainer.json (`groups`), checked
    against `optimizer`'s parameters: the same groups of the same parameters, and every moment of
    its parameter's shape and dtype (a step count a scalar), the moments of an Adam-family optimizer
    all there. Checked before `load_state_dict`, whose fused kernels trust what they are given."""
    groups = _checked_groups(path, groups, optimizer)
    params = [p for group in optimizer.param_groups for p in group["params"]]
    names = {id(p): name for name, p in model.named_parameters()}
    state: dict[int, dict[str, torch.Tensor]] = {}
    for key, value in read_tensors(path).items():
        index, name = _state_key(path, key, len(params))
        param = params[index]
        label = f"{key} (for {names.get(id(param), f'parameter {index}')} {list(param.shape)} {param.dtype})"
        if name == "step":
            if value.dim() != 0 or not value.is_floating_point() or not (value >= 0).item():
                raise CheckpointError(f"{path} does not fit this optimizer: {label} is {value.dtype} "
                                      f"{list(value.shape)}, not a step count; {START_OVER}")
        elif value.shape != param.shape or value.dtype != param.dtype:
            raise CheckpointError(f"{path} does not fit this model: {label} is {value.dtype} {list(value.shape)}; "
                                  f"it was written for another model: {START_OVER}")
        state.setdefault(index, {})[name] = value
    _check_moments(path, state, optimizer)
    return {"state": state, "param_groups": groups}


def _state_key(path: Path, key: str, n_params: int) -> tuple[int, str]:
    parts = key.split(".", 2)
    if len(parts) != 3 or parts[0] != "state" or not parts[1].isdigit() or int(parts[1]) >= n_params:
        raise CheckpointError(f"{path} does not fit this optimizer: it holds {key!r}, and the optimizer has "
                              f"parameters 0 to {n_params - 1}; {START_OVER}")
    return int(parts[1]), parts[2]


def _check_moments(path: Path, state: dict[int, dict[str, torch.Tensor]], optimizer: torch.optim.Optimizer) -> None:
    """An Adam-family optimizer keeps the same moments for every parameter it has stepped."""
    if not isinstance(optimizer, (torch.optim.Adam, torch.optim.AdamW)):
        return
    group_of = {i: g for i, g in enumerate(g for g in optimizer.param_groups for _ in g["params"])}
    for index, entry in state.items():
        wanted = {"step", "exp_avg", "exp_avg_sq"} | ({"max_exp_avg_sq"} if group_of[index].get("amsgrad") else set())
        if set(entry) != wanted:
            raise CheckpointError(f"{path} does not fit this optimizer: parameter {index} has {sorted(entry)}, "
                                  f"AdamW keeps {sorted(wanted)}; {START_OVER}")


def _checked_groups(path: Path, groups: list[dict], optimizer: torch.optim.Optimizer) -> list[dict]:
    """trainer.json's param groups, checked against the optimizer's: the same parameters in each,
    every setting of the same kind (numbers, flags, pairs); a setting this torch adds is taken from
    the optimizer, one it no longer has is dropped, and how to step (fused or not: the device's
    choice) is the optimizer's own."""
    current = optimizer.state_dict()["param_groups"]
    where = path.parent / "trainer.json"
    if len(groups) != len(current):
        raise CheckpointError(f"{where} does not fit this optimizer: {len(groups)} parameter groups, the "
                              f"optimizer has {len(current)}; {START_OVER}")
    checked = []
    for number, (saved, now) in enumerate(zip(groups, current)):
        if saved.get("params") != now["params"]:
            raise CheckpointError(f"{where} does not fit this model: parameter group {number} holds other "
                                  f"parameters ({_count(saved.get('params'))}, the model's has {len(now['params'])}); "
                                  f"{START_OVER}")
        group = {}
        for key, value in now.items():
            stored = value if key in _IMPLEMENTATION else saved.get(key, value)
            if not _same_kind(stored, value):
                raise CheckpointError(f"{where} is damaged: parameter group {number} has {key} = {stored!r}, "
                                      f"not a value like {value!r}; {START_OVER}")
            group[key] = tuple(stored) if isinstance(value, tuple) else stored
        checked.append(group)
    return checked


def _count(params: Any) -> str:
    return f"{len(params)} parameters" if isinstance(params, list) else repr(params)


def _same_kind(stored: Any, current: Any) -> bool:
    """Whether a stored optimizer setting can stand where `current` does."""
    if isinstance(current, bool) or current is None:
        return stored is None or isinstance(stored, bool)
    if isinstance(current, (int, float)):
        return isinstance(stored, (int, float)) and not isinstance(stored, bool) and math.isfinite(stored)
    if isinstance(current, (tuple, list)):
        return (isinstance(stored, (tuple, list)) and len(stored) == len(current)
                and all(_same_kind(s, c) for s, c in zip(stored, current)))
    return type(stored) is type(current)


def rng_states(path: Path) -> dict[str, torch.Tensor]:
    """The random states in `path`: "batches" and "torch", each a state a CPU generator takes (tried
    on a scratch one), and optionally "cuda" (a byte vector), nothing else."""
    states = read_tensors(path)
    required, allowed = {"batches", "torch"}, {"batches", "torch", "cuda"}
    wrong = sorted(required - set(states)) or sorted(set(states) - allowed)
    if wrong:
        raise CheckpointError(f"{path} is damaged: it holds {sorted(states)}, not {sorted(required)} (and "
                              f"'cuda' on a CUDA device); {START_OVER}")
    size = torch.Generator().get_state().numel()
    for key, value in states.items():
        if value.dtype != torch.uint8 or value.dim() != 1 or (key != "cuda" and value.numel() != size):
            raise CheckpointError(f"{path} is damaged: {key!r} is {value.dtype} {list(value.shape)}, not a "
                                  f"generator's state (uint8 [{size if key != 'cuda' else 'N'}]); {START_OVER}")
        if key != "cuda":
            try:
                torch.Generator().set_state(value)
            except RuntimeError as exc:
                raise CheckpointError(f"{path} is damaged: {key!r} is no generator's state ({exc}); "
                                      f"{START_OVER}") from None
    return states
