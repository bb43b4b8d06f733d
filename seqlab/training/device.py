"""Choosing the device a run uses: `auto` takes CUDA, then Apple's MPS, then the CPU."""

from __future__ import annotations

import torch

from seqlab.errors import SeqlabError


def resolve_device(name: str = "auto") -> torch.device:
    """The torch device for a config's `train.device`; asking for one that is absent is an error."""
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    device = torch.device(name)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise SeqlabError(f"device {name!r} was asked for but CUDA is not available here; use device = \"cpu\" or \"auto\"")
    if device.type == "cuda" and device.index is not None and device.index >= torch.cuda.device_count():
        raise SeqlabError(f"device {name!r} does not exist: this machine has {torch.cuda.device_count()} CUDA device(s)")
    if device.type == "mps" and not torch.backends.mps.is_available():
        raise SeqlabError(f"device {name!r} was asked for but MPS is not available here; use \"cpu\" or \"auto\"")
    return device
