"""Seeds: any integer, of any size or sign, as the seed a random number generator takes.

The generators disagree on what a seed is. torch's CPU generator (mt19937) keeps only the low 32
bits (`torch.manual_seed(1)` and `torch.manual_seed(2**32 + 1)` draw the same numbers) and refuses
seeds beyond 64 bits; numpy's `default_rng` refuses negative seeds; Python's `random` seeds with
|seed|, so -1 and 1 shuffle alike. `generator_seed` gives every generator the same value:

- a seed in [0, 2^32) is itself, so `train.seed = 1337` is nanoGPT's `torch.manual_seed(1337)` and
  `data.line_seed = 42` is makemore's `random.seed(42)`;
- any other seed (negative, or 2^32 and above) is hashed to 64 bits: the first 8 bytes, big-endian,
  of the SHA-256 of its decimal digits. The hash is stable (the same on every machine and Python).

Equal seeds give equal runs; different seeds give different runs except for a hash collision in
the 32 bits torch's CPU generator keeps (a chance of about 2^-32 for a pair of seeds).

    >>> generator_seed(1337), generator_seed(-1) == generator_seed(1), generator_seed(2**100) < 2**64
    (1337, False, True)
"""

from __future__ import annotations

import hashlib

import numpy as np
import torch

DIRECT_SEEDS = 1 << 32  # seeds below this (and >= 0) are used as they are
SEED_BITS = 64  # every other seed is hashed to this many bits


def generator_seed(seed: int) -> int:
    """The seed, in [0, 2^64), that every generator is given for `seed` (see the module docstring)."""
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)):
        raise TypeError(f"a seed is an integer, got {seed!r}")
    seed = int(seed)
    if 0 <= seed < DIRECT_SEEDS:
        return seed
    digest = hashlib.sha256(str(seed).encode("ascii")).digest()
    return int.from_bytes(digest[: SEED_BITS // 8], "big")


def torch_generator(seed: int, device: torch.device | str = "cpu") -> torch.Generator:
    """A private torch generator on `device`, seeded with `generator_seed(seed)`."""
    return torch.Generator(device=device).manual_seed(generator_seed(seed))


def numpy_generator(seed: int | None) -> np.random.Generator:
    """numpy's `default_rng` seeded with `generator_seed(seed)`; None draws fresh entropy."""
    return np.random.default_rng(None if seed is None else generator_seed(seed))
