"""Mixed precision and compilation: what `train.dtype` and `train.compile` turn into.

Weights and optimizer moments stay float32 in every case; bfloat16 and float16 change the arithmetic
of the forward and backward passes only, through `torch.autocast` (matrix products in the low
precision, reductions such as softmax, norms and the loss in float32). float16's narrow range needs a
gradient scaler, and is offered on CUDA only.
"""

from __future__ import annotations

import contextlib

import torch
from torch import nn

from seqlab.errors import SeqlabError

DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}


def native_bfloat16(device: torch.device) -> bool:
    """Whether `device` computes bfloat16 matrix products in hardware (then they are about twice as
    fast as float32's: 385 against 168 GFLOP/s measured on a 768×128×384 product, 2 AVX512-BF16 cores)."""
    if device.type == "cuda":
        return torch.cuda.is_bf16_supported()
    if device.type == "cpu":
        return torch.cpu._is_avx512_bf16_supported() or torch.cpu._is_amx_tile_supported()
    return False


def resolve_dtype(name: str, device: torch.device) -> torch.dtype:
    """The compute dtype of `train.dtype = name` on `device`."""
    if name == "auto":
        if native_bfloat16(device):
            return torch.bfloat16
        return torch.float16 if device.type == "cuda" else torch.float32
    if name == "float16" and device.type != "cuda":
        raise SeqlabError(f"train.dtype = \"float16\" needs a CUDA device (this run is on {device.type}); "
                          "use \"bfloat16\" or \"float32\"")
    if name == "bfloat16" and device.type == "mps":
        raise SeqlabError("train.dtype = \"bfloat16\" is not supported on MPS; use \"float32\"")
    return DTYPES[name]


def autocast(device: torch.device, dtype: torch.dtype) -> contextlib.AbstractContextManager:
    """The autocast context of a forward pass in `dtype` (none for float32)."""
    if dtype == torch.float32:
        return contextlib.nullcontext()
    return torch.autocast(device_type=device.type, dtype=dtype)


def grad_scaler(device: torch.device, dtype: torch.dtype) -> torch.amp.GradScaler | None:
    """float16's loss scaler (None for the other dtypes, whose range needs none)."""
    return torch.amp.GradScaler(device.type) if dtype == torch.float16 else None


AUTO_COMPILE_MIN_STEPS = 500


def wants_compile(setting: bool | str, *, model: nn.Module | None = None,
                  steps: int = AUTO_COMPILE_MIN_STEPS) -> bool:
    """`train.compile`: true, false, or auto. Auto compiles a model that traces into one graph
    (a `compiles_well` class, the decoder-only Transformer) on CUDA or the CPU, for runs of at least
    `AUTO_COMPILE_MIN_STEPS` steps: compiling takes 15-30 s on a 2-core CPU, which a short run
    would not earn back. Measured on shakespeare-char with bfloat16 on 2 AVX512-BF16 cores: 35.4
    against 38.7 ms a step eager (float32 eager: 56.3)."""
    if setting == "auto":
        return getattr(model, "compiles_well", False) and steps >= AUTO_COMPILE_MIN_STEPS
    return bool(setting)


def compile_model(model: nn.Module) -> nn.Module:
    """torch.compile'd `model`; compilation itself happens at the first call (see Trainer)."""
    return torch.compile(model)
