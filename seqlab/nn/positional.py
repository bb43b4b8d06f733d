"""Position information for attention, one class per scheme, all with the same three hooks.

Attention by itself is permutation-equivariant; each scheme puts position back in at a different place:

| class | where | paper | limit |
|---|---|---|---|
| `LearnedPositions` | a learned vector added to each token embedding | GPT (Radford et al. 2018) | `block_size` |
| `SinusoidalPositions` | a fixed sin/cos vector added to each embedding | Vaswani et al. 2017, §3.5 | none |
| `RotaryPositions` | queries and keys rotated by position-dependent angles | RoFormer (Su et al. 2021) | none |
| `ALiBiPositions` | a per-head penalty linear in distance added to the scores | Press et al. 2022 | none |
| `RelativePositions` | a learned per-head bias per bucketed distance, added to the scores | T5 (Raffel et al. 2020) | none |
| `NoPositions` | nowhere (a causal mask alone leaks position) | Haviv et al. 2022 | none |

A model owns one of them (as `pos_emb`) and asks it, once per forward, for
  - `embed(x, start)`: the token embeddings with absolute positions start .. start+T-1 added;
  - `rotary(start, T)`: (cos, sin) tables for those positions, or None;
  - `score_bias(start, T, S)`: an additive (H, T, S) bias for queries start .. start+T-1 against
    keys 0 .. S-1, or None.
The hooks are no-ops by default, so each class says only what it does.

Parity: RoPE uses the half-split layout of GPT-NeoX and Hugging Face's LLaMA (`rotate_half`), so
imported LLaMA weights need no permutation; the ALiBi slopes and T5 buckets are checked against
Hugging Face's BLOOM and T5 code in tests/nn/test_positional.py.

Dimensions: B batch · T queries · S keys · D model width · H heads · Dh head width.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn


class Positions(nn.Module):
    """The common interface; the default of each hook is "this scheme does nothing here"."""

    #: The longest sequence the scheme can place, or None when any length works.
    max_positions: int | None = None

    def embed(self, x: Tensor, start: int) -> Tensor:
        """x (B, T, D) token embeddings at positions start .. start+T-1 → (B, T, D)."""
        return x

    def rotary(self, start: int, length: int, *, device: torch.device) -> tuple[Tensor, Tensor] | None:
        """(cos, sin), each (T, Dh), for rotating queries and keys at positions start .. start+T-1."""
        return None

    def score_bias(self, start: int, n_query: int, n_key: int, *, device: torch.device,
                   dtype: torch.dtype) -> Tensor | None:
        """An additive attention bias (H, T, S) for queries start .. start+T-1 and keys 0 .. S-1."""
        return None


class NoPositions(Positions):
    """No position information at all (NoPE): causal attention can still infer order."""


class LearnedPositions(Positions):
    """One learned vector per absolute position (GPT-2): x + weight[start : start+T].

    Parameter `weight` (block_size, D), so the state-dict key is `pos_emb.weight` as in nanoGPT.
    """

    def __init__(self, block_size: int, d_model: int) -> None:
        super().__init__()
        self.max_positions = block_size
        self.weight = nn.Parameter(torch.empty(block_size, d_model))
        nn.init.normal_(self.weight, std=0.02)

    def embed(self, x: Tensor, start: int) -> Tensor:
        end = start + x.shape[1]
        if end > self.weight.shape[0]:
            raise ValueError(f"position {end - 1} is beyond the {self.weight.shape[0]} learned positions "
                             f"(block_size); learned positions cannot extrapolate")
        # Slicing the table equals embedding arange(start, end), without making the arange.
        return x + self.weight[start:end]  # (B, T, D)


def sinusoidal_table(start: int, length: int, d_model: int, *, device: torch.device | None = None,
                     base: float = 10000.0) -> Tensor:
    """The lecture's formula: PE(p, 2i) = sin(p / base^(2i/D)), PE(p, 2i+1) = cos(p / base^(2i/D)).

    Returns (length, D) for positions start .. start+length-1, in float32.

    >>> sinusoidal_table(0, 2, 4)
    tensor([[0.0000, 1.0000, 0.0000, 1.0000],
            [0.8415, 0.5403, 0.0100, 0.9999]])
    """
    if d_model % 2:
        raise ValueError(f"sinusoidal positions need an even width, got {d_model}")
    p = torch.arange(start, start + length, device=device, dtype=torch.float32)[:, None]  # (T, 1)
    inv_freq = base ** (-torch.arange(0, d_model, 2, device=device, dtype=torch.float32) / d_model)  # (D/2,)
    angles = p * inv_freq  # (T, D/2)
    # Interleaved: even columns sine, odd columns cosine, as in the paper.
    return torch.stack((angles.sin(), angles.cos()), dim=-1).flatten(1)  # (T, D)


class SinusoidalPositions(Positions):
    """Fixed sinusoids added to the embeddings (Vaswani et al. 2017); no parameters, any length.

    As in the paper (§3.4), the token embeddings are first multiplied by √D: the sinusoids have
    amplitude 1, and small initial embeddings (std 0.02) added to them unscaled would be drowned out.
    """

    def __init__(self, d_model: int) -> None:
        super().__init__()
        self.d_model = d_model
        self.scale = math.sqrt(d_model)

    def embed(self, x: Tensor, start: int) -> Tensor:
        table = sinusoidal_table(start, x.shape[1], self.d_model, device=x.device)  # (T, D)
        return x * self.scale + table.to(x.dtype)


def rotate_half(x: Tensor) -> Tensor:
    """(x1, x2) → (−x2, x1) over the two halves of the last dimension."""
    x1, x2 = x.chunk(2, dim=-1)
    return torch.cat((-x2, x1), dim=-1)


def apply_rotary(x: Tensor, cos: Tensor, sin: Tensor) -> Tensor:
    """Rotate x (B, H, T, Dh) by the angles in cos, sin (T, Dh): pair i of the two halves
    (x[i], x[i + Dh/2]) turns by the angle of frequency i."""
    return x * cos.to(x.dtype) + rotate_half(x) * sin.to(x.dtype)


class RotaryPositions(Positions):
    """Rotary position embedding (RoPE): queries and keys at position p are rotated by angles
    p·θ_i with θ_i = base^(−2i/Dh), so q·k depends on positions only through their difference.

    The tables are made in float32 whatever the model's dtype (as Hugging Face's LLaMA does): they
    are constants, and bfloat16 angles at large p would be badly wrong.
    """

    def __init__(self, head_dim: int, *, base: float = 10000.0) -> None:
        super().__init__()
        if head_dim % 2:
            raise ValueError(f"rotary positions need an even head width, got {head_dim}")
        self.head_dim = head_dim
        self.base = base
        inv_freq = 1.0 / (base ** (torch.arange(0, head_dim, 2, dtype=torch.float32) / head_dim))  # (Dh/2,)
        self.register_buffer("inv_freq", inv_freq, persistent=False)  # derived, not a weight

    def rotary(self, start: int, length: int, *, device: torch.device) -> tuple[Tensor, Tensor]:
        p = torch.arange(start, start + length, device=device, dtype=torch.float32)  # (T,)
        angles = p[:, None] * self.inv_freq.to(device=device, dtype=torch.float32)  # (T, Dh/2)
        angles = torch.cat((angles, angles), dim=-1)  # (T, Dh): the same angle for both halves of a pair
        return angles.cos(), angles.sin()


def alibi_slopes(n_head: int) -> Tensor:
    """ALiBi's per-head slopes: a geometric sequence starting at 2^(−8/n) for n a power of two;
    otherwise the slopes for the power of two below n, then every other slope of the next one.

    >>> alibi_slopes(4)
    tensor([0.2500, 0.0625, 0.0156, 0.0039])
    """
    def geometric(n: int) -> list[float]:
        first = 2.0 ** (-8.0 / n)
        return [first ** (i + 1) for i in range(n)]

    below = 2 ** math.floor(math.log2(n_head))
    slopes = geometric(below)
    if below < n_head:
        slopes += geometric(2 * below)[0::2][: n_head - below]
    return torch.tensor(slopes, dtype=torch.float32)


class ALiBiPositions(Positions):
    """Attention with linear biases: head h adds −slope_h · |i − j| to the score of query i and key j.

    In a causal model only j ≤ i is seen, where this is slope·(j − i); BLOOM adds slope·j instead,
    which differs by a constant per row and so gives the same softmax. No parameters; any length.
    """

    def __init__(self, n_head: int) -> None:
        super().__init__()
        self.register_buffer("slopes", alibi_slopes(n_head), persistent=False)  # (H,)

    def score_bias(self, start: int, n_query: int, n_key: int, *, device: torch.device,
                   dtype: torch.dtype) -> Tensor:
        i = torch.arange(start, start + n_query, device=device)[:, None]  # (T, 1)
        j = torch.arange(n_key, device=device)[None, :]  # (1, S)
        distance = (i - j).abs().to(torch.float32)  # (T, S)
        return (-self.slopes.to(device)[:, None, None] * distance).to(dtype)  # (H, T, S)


def relative_position_bucket(relative: Tensor, *, bidirectional: bool, n_buckets: int,
                             max_distance: int) -> Tensor:
    """T5's buckets for relative = key position − query position.

    Half the buckets (of each direction, when bidirectional) hold exact distances 0, 1, 2, ...; the
    rest cover distances up to `max_distance` on a log scale; anything further shares the last bucket.
    A unidirectional (causal) model sees only keys at or before the query, so it buckets −relative.
    """
    bucket = torch.zeros_like(relative)
    if bidirectional:
        n_buckets //= 2
        bucket = bucket + (relative > 0).long() * n_buckets  # keys after the query: the upper half
        distance = relative.abs()
    else:
        distance = (-relative).clamp(min=0)
    exact = n_buckets // 2
    # log(distance / exact) scaled so that max_distance lands on the last bucket; clamp avoids log(0),
    # which `where` would discard anyway.
    log_ratio = torch.log(distance.clamp(min=1).float() / exact) / math.log(max_distance / exact)
    far = exact + (log_ratio * (n_buckets - exact)).long()
    far = far.clamp(max=n_buckets - 1)
    return bucket + torch.where(distance < exact, distance, far)


class RelativePositions(Positions):
    """T5's relative position bias: a learned scalar per head and distance bucket, added to the
    attention scores. One table serves every layer (as in T5, where the first layer owns it).

    Parameter `bias.weight` (n_buckets, H).
    """

    def __init__(self, n_head: int, *, bidirectional: bool, n_buckets: int = 32, max_distance: int = 128) -> None:
        super().__init__()
        self.bidirectional = bidirectional
        self.n_buckets = n_buckets
        self.max_distance = max_distance
        self.bias = nn.Embedding(n_buckets, n_head)

    def score_bias(self, start: int, n_query: int, n_key: int, *, device: torch.device,
                   dtype: torch.dtype) -> Tensor:
        i = torch.arange(start, start + n_query, device=device)[:, None]  # (T, 1)
        j = torch.arange(n_key, device=device)[None, :]  # (1, S)
        buckets = relative_position_bucket(j - i, bidirectional=self.bidirectional, n_buckets=self.n_buckets,
                                           max_distance=self.max_distance)  # (T, S)
        return self.bias(buckets).permute(2, 0, 1).to(dtype)  # (T, S, H) → (H, T, S)
