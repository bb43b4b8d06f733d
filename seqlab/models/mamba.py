"""Mamba (Gu & Dao 2023, "Mamba: Linear-Time Sequence Modeling with Selective State Spaces"): a
language model of residual blocks around a selective state-space mixer, trained in parallel over a
window and decoded as a recurrent network, at the same cost per token at any position.

    idx → tok_emb → n_layer × (x ← x + mixer(RMSNorm(x))) → norm_f → lm_head → logits

    mixer (x (B, T, D)):
        [u; z] = in_proj(x)                        D → 2E, E = expand · D
        u      = SiLU(conv1d(u))                   causal depthwise convolution of d_conv taps
        [δ; B; C] = x_proj(u)                      E → R + 2N (R: dt_rank)
        Δ      = softplus(dt_proj(δ))              R → E: the input-dependent step size
        h_t    = exp(Δ_t A) ⊙ h_{t-1} + Δ_t B_t u_t    per channel e and state n; A = −exp(A_log)
        y_t    = C_t · h_t + D ⊙ u_t               the SSM's output with its skip D
        out    = out_proj(y ⊙ SiLU(z))             E → D, gated

The recurrence is the selective scan: A is fixed per (channel, state), but Δ, B and C are functions
of the input, which is what lets the model choose what to keep. Training reads whole windows through
`selective_scan`; decoding (`step`) carries the state, so a step reads one token whatever the
position.

Two implementations, picked by the tensors (not by any name): on the CPU in float32 or float64, the
fused numba kernels of `seqlab.models.mamba_kernels`: the scan with its skip and gate (y + D ⊙ u)
⊙ SiLU(z), and the convolution with its SiLU, one pass over time each way with the state in cache
and no (B, T, E, N) tensor (see that module). Elsewhere (CUDA, bfloat16, ...), the chunked scan
below (`chunked_scan`), `nn.Conv1d` and torch operations. Both equal `reference_scan`
(tests/models/test_mamba.py), and the model's two paths equal each other.

Chunked scan (`chunked_scan`): the window is cut into chunks of `chunk_size` steps. (1) Within
every chunk, all chunks at once, the recurrence runs from a zero state: chunk_size steps on tensors
holding every chunk. (2) Chunk by chunk, the state entering it (the previous chunk's last state, h_0
first) is added to each of its states, decayed by the product of a = exp(Δ A) since the chunk began
(`cumprod`: factors in (0, 1], so it can only underflow to 0, never overflow). That is chunk_size +
T / chunk_size sequential steps instead of T. Every step runs in place on time-major tensors, and
the backward is written by hand (`_SelectiveScan`): through autograd, each step's slice of a (B, T,
E, N) tensor sends back a gradient the size of the whole tensor, T times per layer. The backward is
the same recurrence run from the end, chunked alike. Its (B, T, E, N) tensors are memory-bound work:
on a CPU, several times the fused kernels' time (benchmarks/bench_mamba.py).

Decoding state (`MambaState`): per layer, the convolution window (the last d_conv inputs of the
convolution, (L, B, E, d_conv)) and the SSM state h ((L, B, E, N)). A step of T tokens reads the
window as the convolution's left context and the SSM state as h_0, and returns both updated, which
equals running the T tokens inside a longer forward.

Reference: `transformers.MambaForCausalLM` (its pure-PyTorch path), which imports and exports
through `seqlab.interop.mamba` with the same logits (tests/interop/test_mamba.py).

State-dict keys:
    tok_emb.weight (V, D)
    layers.{i}.norm.weight (D)
    layers.{i}.mixer.in_proj.weight (2E, D)            (.bias when `bias`)
    layers.{i}.mixer.conv1d.weight (E, 1, d_conv), .bias (E) when `conv_bias`
    layers.{i}.mixer.x_proj.weight (R + 2N, E)
    layers.{i}.mixer.dt_proj.weight (E, R), .bias (E)
    layers.{i}.mixer.A_log (E, N), layers.{i}.mixer.D (E)
    layers.{i}.mixer.out_proj.weight (D, E)            (.bias when `bias`)
    norm_f.weight (D)
    lm_head.weight (V, D)                              (the embedding when tied)

Dimensions: B batch · T time · D model width · E inner width · N state size · R Δ rank ·
K conv taps (d_conv) · L layers · V vocab · Lc chunk length · C chunks.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from seqlab.config.schema import ModelSettings, _require, _require_finite
from seqlab.models.contract import CarriedStateMixin
from seqlab.nn.norm import RMSNorm

MambaState = tuple[Tensor, Tensor]  # (conv windows (L, B, E, K), SSM states (L, B, E, N))


@dataclass(frozen=True)
class MambaConfig(ModelSettings):
    """Mamba's settings (`family = "mamba"`). The defaults are the paper's (and Hugging Face's)
    mixer: state size 16, 4 convolution taps, inner width 2·d_model, Δ rank ceil(d_model / 16)."""

    family: Literal["mamba"] = "mamba"
    n_layer: int = 4  # residual blocks
    d_model: int = 128
    d_state: int = 16  # N: the SSM state per inner channel
    d_conv: int = 4  # K: taps of the causal depthwise convolution
    expand: int = 2  # E = expand · d_model
    dt_rank: int | Literal["auto"] = "auto"  # R: the rank of Δ's projection; auto = ceil(d_model / 16)
    block_size: int = 64  # the training window (truncated BPTT: the state carries past it)
    chunk_size: int = 64  # steps per chunk of the torch scan (speed only; not the CPU's fused kernels)
    bias: bool = False  # biases of in_proj and out_proj (Mamba has none)
    conv_bias: bool = True
    norm_eps: float = 1e-5
    dt_min: float = 0.001  # Δ's initial values are log-uniform in [dt_min, dt_max] ...
    dt_max: float = 0.1
    dt_init_floor: float = 1e-4  # ... and at least this
    tie_embeddings: bool = True  # the output layer is the token embedding

    def __post_init__(self) -> None:
        _require_finite(self, "model")
        for name in ("n_layer", "d_model", "d_state", "d_conv", "expand", "block_size", "chunk_size"):
            _require(getattr(self, name) >= 1, f"model.{name}", getattr(self, name), "a positive integer")
        _require(self.dt_rank == "auto" or (isinstance(self.dt_rank, int) and self.dt_rank >= 1),
                 "model.dt_rank", self.dt_rank, "a positive integer or \"auto\"")
        _require(self.norm_eps > 0, "model.norm_eps", self.norm_eps, "a positive number")
        _require(0 < self.dt_min <= self.dt_max, "model.dt_min", self.dt_min,
                 f"a positive number at most model.dt_max = {self.dt_max}")
        _require(self.dt_init_floor > 0, "model.dt_init_floor", self.dt_init_floor, "a positive number")

    @property
    def d_inner(self) -> int:
        """E: the mixer's inner width."""
        return self.expand * self.d_model

    @property
    def time_step_rank(self) -> int:
        """R: `dt_rank`, with auto resolved."""
        return math.ceil(self.d_model / 16) if self.dt_rank == "auto" else self.dt_rank


# --- the selective scan -------------------------------------------------------------------------

def reference_scan(delta: Tensor, A: Tensor, B: Tensor, C: Tensor, u: Tensor, h0: Tensor) -> tuple[Tensor, Tensor]:
    """The selective scan as the recurrence reads, one step at a time through autograd: the slow
    reference `selective_scan` is tested against.

    delta, u (B, T, E) · A (E, N) · B, C (B, T, N) · h0 (B, E, N) → y (B, T, E), h_T (B, E, N).
    """
    a = torch.exp(delta[..., None] * A)  # (B, T, E, N)
    b = (delta * u)[..., None] * B[:, :, None, :]  # (B, T, E, N)
    h, ys = h0, []
    for t in range(delta.shape[1]):
        h = a[:, t] * h + b[:, t]  # (B, E, N)
        ys.append(torch.einsum("ben,bn->be", h, C[:, t]))
    return torch.stack(ys, dim=1), h


def _scan_(x: Tensor, a: Tensor, h0: Tensor, chunk: int) -> None:
    """In place, x[t] ← a[t] ⊙ x[t−1] + x[t] with x[−1] = h0, in chunks: x, a (T, ...) with T a
    multiple of `chunk`, h0 (...)."""
    T = x.shape[0]
    if chunk >= T:
        x[0].addcmul_(a[0], h0)
        for t in range(1, T):
            x[t].addcmul_(a[t], x[t - 1])
        return
    xv, av = x.view(T // chunk, chunk, *x.shape[1:]), a.view(T // chunk, chunk, *a.shape[1:])  # (Cn, Lc, ...)
    for t in range(1, chunk):  # (1) every chunk from a zero state, all chunks at once
        xv[:, t].addcmul_(av[:, t], xv[:, t - 1])
    decay = av.cumprod(dim=1)  # (Cn, Lc, ...): the product of a from the chunk's start to t
    h = h0
    for c in range(xv.shape[0]):  # (2) each chunk's entering state, decayed to every step of it
        xv[c].addcmul_(decay[c], h)
        h = xv[c, -1]


def _scan_reverse_(g: Tensor, a: Tensor, chunk: int) -> None:
    """In place, from the end, g[t] ← g[t] + a[t+1] ⊙ g[t+1] (the backward of `_scan_`), in chunks."""
    T = g.shape[0]
    if chunk >= T:
        for t in range(T - 2, -1, -1):
            g[t].addcmul_(a[t + 1], g[t + 1])
        return
    gv, av = g.view(T // chunk, chunk, *g.shape[1:]), a.view(T // chunk, chunk, *a.shape[1:])  # (Cn, Lc, ...)
    decay = torch.empty_like(av)  # (Cn, Lc, ...): the product of a after t to the chunk's end
    decay[:, -1] = 1
    for t in range(chunk - 2, -1, -1):  # (1) every chunk from its own end, all chunks at once
        gv[:, t].addcmul_(av[:, t + 1], gv[:, t + 1])
        torch.mul(decay[:, t + 1], av[:, t + 1], out=decay[:, t])
    for c in range(gv.shape[0] - 2, -1, -1):  # (2) what reaches each chunk from the next one
        gv[c].addcmul_(decay[c], av[c + 1, 0] * gv[c + 1, 0])


class _SelectiveScan(torch.autograd.Function):
    """`reference_scan`'s result with every step in place and a hand-written backward, in chunks.

    Inputs time-major: delta, u (T, B, E) · A (E, N) · B, C (T, B, N) · h0 (B, E, N); T is padded to
    a multiple of the chunk with Δ = 0 (a = 1, b = 0: the states after T stay h_T, and nothing
    flows back from them). The backward, with g_t the gradient of the loss w.r.t. h_t in total:

        g_t = C_t ⊗ ∂L/∂y_t + a_{t+1} ⊙ g_{t+1}          (the same recurrence, run from the end)
        ∂L/∂(Δu)_t = Σ_n g_t B_t · ∂L/∂B_t = Σ_e g_t (Δu)_t · ∂L/∂C_t = Σ_e h_t ∂L/∂y_t
        ∂L/∂(Δ_t A) = g_t ⊙ h_{t−1} ⊙ a_t, summed over n for Δ and over (t, b) for A
    """

    @staticmethod
    def forward(ctx, delta, A, B, C, u, h0, chunk_size: int):
        T, Bsz, E = delta.shape
        chunk = min(chunk_size, T)
        pad = (-T) % chunk
        if pad:
            delta, u, B, C = (F.pad(t, (0, 0, 0, 0, 0, pad)) for t in (delta, u, B, C))
        Tp, N = T + pad, A.shape[1]
        a = torch.mul(delta[..., None], A).exp_()  # (Tp, B, E, N)
        du = delta * u  # (Tp, B, E)
        states = torch.mul(du[..., None], B[:, :, None, :])  # (Tp, B, E, N): b_t, then h_t
        _scan_(states, a, h0, chunk)
        y = torch.bmm(states.view(Tp * Bsz, E, N), C.reshape(Tp * Bsz, N, 1)).view(Tp, Bsz, E)
        ctx.save_for_backward(delta, A, B, C, u, h0, a, states)
        ctx.chunk, ctx.T = chunk, T
        return y[:T], states[T - 1].clone()

    @staticmethod
    def backward(ctx, grad_y, grad_h_last):
        delta, A, B, C, u, h0, a, states = ctx.saved_tensors
        chunk, T = ctx.chunk, ctx.T
        Tp, Bsz, E = delta.shape
        N, X = A.shape[1], Tp * Bsz
        grad_y = F.pad(grad_y, (0, 0, 0, 0, 0, Tp - T)).contiguous()  # (Tp, B, E)
        g = torch.mul(grad_y[..., None], C[:, :, None, :])  # (Tp, B, E, N)
        g[T - 1] += grad_h_last
        _scan_reverse_(g, a, chunk)  # g_t: the whole gradient reaching h_t
        grad_h0 = a[0] * g[0]  # (B, E, N)
        grad_C = torch.bmm(states.view(X, E, N).transpose(1, 2), grad_y.reshape(X, E, 1)).view(Tp, Bsz, N)
        du = delta * u
        grad_du = torch.bmm(g.view(X, E, N), B.reshape(X, N, 1)).view(Tp, Bsz, E)
        grad_B = torch.bmm(g.view(X, E, N).transpose(1, 2), du.reshape(X, E, 1)).view(Tp, Bsz, N)
        grad_log_a = torch.mul(g, a)  # (Tp, B, E, N), then times h_{t−1}
        grad_log_a[1:].mul_(states[:-1])
        grad_log_a[0].mul_(h0)
        # ∂L/∂A[e, n] = Σ_x Δ[x, e] · grad_log_a[x, e, n] over the X = Tp·B positions, e the batch
        grad_A = torch.bmm(delta.reshape(X, E).t()[:, None, :], grad_log_a.view(X, E, N).transpose(0, 1))[:, 0]
        grad_delta = grad_log_a.mul_(A).sum(-1) + grad_du * u  # (Tp, B, E)
        grad_u = grad_du * delta
        return grad_delta[:T], grad_A, grad_B[:T], grad_C[:T], grad_u[:T], grad_h0, None


def chunked_scan(delta: Tensor, A: Tensor, B: Tensor, C: Tensor, u: Tensor, h0: Tensor,
                 chunk_size: int) -> tuple[Tensor, Tensor]:
    """The selective scan over a window in torch operations (see the module docstring): chunk_size
    + T / chunk_size sequential steps, each on tensors that hold every chunk; equal to
    `reference_scan`. Any device and dtype.

    delta, u (B, T, E) · A (E, N) · B, C (B, T, N) · h0 (B, E, N) → y (B, T, E), h_T (B, E, N).
    """
    delta, B, C, u = (t.transpose(0, 1).contiguous() for t in (delta, B, C, u))  # time-major: (T, B, ·)
    h0 = h0.to(delta.dtype).expand(delta.shape[1], *A.shape)
    y, h_last = _SelectiveScan.apply(delta, A, B, C, u, h0, chunk_size)  # (T, B, E), (B, E, N)
    return y.transpose(0, 1), h_last


def selective_scan(delta: Tensor, A: Tensor, B: Tensor, C: Tensor, u: Tensor, h0: Tensor,
                   chunk_size: int, D: Tensor | None = None, z: Tensor | None = None) -> tuple[Tensor, Tensor]:
    """The selective scan over a window, equal to `reference_scan`, and with D and z (together) the
    mixer's skip and gate, y ← (y + D ⊙ u) ⊙ SiLU(z): the fused kernels of `seqlab.models.mamba_kernels`
    where they take the tensors (CPU, float32 or float64), else `chunked_scan` (chunk_size is its
    chunk length) and torch operations.

    delta, u (B, T, E) · A (E, N) · B, C (B, T, N) · h0 (B, E, N) · D (E) · z (B, T, E)
    → y (B, T, E), h_T (B, E, N).
    """
    h0 = h0.to(delta.dtype).expand(delta.shape[0], *A.shape)
    inputs = (delta, A, B, C, u, h0)
    gate = () if z is None else (D, z)
    if _fused_supports(*inputs, *gate):
        return _kernels().fused_selective_scan(*inputs, *gate)
    y, h = chunked_scan(*inputs, chunk_size)
    return (y if z is None else (y + u * D) * F.silu(z)), h


def _fused_supports(*tensors: Tensor) -> bool:
    """Whether the fused kernels take these tensors: on the CPU, all in float32 or all in float64
    (checked here, so that numba is imported only where the kernels run)."""
    return len({t.dtype for t in tensors}) == 1 and all(
        t.device.type == "cpu" and t.dtype in (torch.float32, torch.float64) for t in tensors)


def _kernels():
    """`seqlab.models.mamba_kernels`, imported on first use: importing numba takes about a second."""
    from seqlab.models import mamba_kernels
    return mamba_kernels


# --- the model ------------------------------------------------------------------------------------

class MambaMixer(nn.Module):
    """The selective state-space mixer of one block (see the module docstring)."""

    def __init__(self, config: MambaConfig) -> None:
        super().__init__()
        D, E, N, R, K = config.d_model, config.d_inner, config.d_state, config.time_step_rank, config.d_conv
        self.d_state, self.d_conv, self.dt_rank, self.chunk_size = N, K, R, config.chunk_size
        self.in_proj = nn.Linear(D, 2 * E, bias=config.bias)
        self.conv1d = nn.Conv1d(E, E, K, groups=E, bias=config.conv_bias)  # left context given, not padded
        self.x_proj = nn.Linear(E, R + 2 * N, bias=False)
        self.dt_proj = nn.Linear(R, E, bias=True)
        self.A_log = nn.Parameter(torch.empty(E, N))
        self.D = nn.Parameter(torch.empty(E))
        self.out_proj = nn.Linear(E, D, bias=config.bias)
        self._init_ssm(config)

    @torch.no_grad()
    def _init_ssm(self, config: MambaConfig) -> None:
        """The paper's initialisation: A = −(1 … N) in every channel (S4D-real), D = 1, and Δ's bias
        the inverse softplus of steps drawn log-uniformly in [dt_min, dt_max]."""
        E, N, R = config.d_inner, config.d_state, config.time_step_rank
        self.A_log.copy_(torch.log(torch.arange(1, N + 1, dtype=torch.float32)).expand(E, N))
        self.D.fill_(1.0)
        nn.init.uniform_(self.dt_proj.weight, -R ** -0.5, R ** -0.5)
        low, high = math.log(config.dt_min), math.log(config.dt_max)
        dt = torch.exp(torch.rand(E) * (high - low) + low).clamp(min=config.dt_init_floor)
        self.dt_proj.bias.copy_(dt + torch.log(-torch.expm1(-dt)))  # softplus⁻¹(dt)

    def forward(self, x: Tensor, state: tuple[Tensor, Tensor] | None = None
                ) -> tuple[Tensor, tuple[Tensor, Tensor]]:
        """x (B, T, D), state (conv window (B, E, K), h (B, E, N)) or None for zeros
        → (B, T, D) and the state after the last token."""
        Bsz, T, _ = x.shape
        u, z = self.in_proj(x).chunk(2, dim=-1)  # (B, T, E) each
        if state is None:
            window = u.new_zeros(Bsz, u.shape[-1], self.d_conv)
            h0 = u.new_zeros(Bsz, u.shape[-1], self.d_state)
        else:
            window, h0 = state
        u, new_window = self._convolve(u, window)  # (B, T, E), (B, E, K)
        dt, B, C = self.x_proj(u).split([self.dt_rank, self.d_state, self.d_state], dim=-1)
        delta = F.softplus(self.dt_proj(dt))  # (B, T, E)
        A = -torch.exp(self.A_log)  # (E, N)
        y, h = selective_scan(delta, A, B, C, u, h0, self.chunk_size, D=self.D, z=z)  # (B, T, E), (B, E, N)
        out = self.out_proj(y)  # (B, T, D)
        return out, (new_window, h)

    def _convolve(self, u: Tensor, window: Tensor) -> tuple[Tensor, Tensor]:
        """SiLU(conv1d(u)) with the window's last K − 1 inputs as the left context, and the new
        window: u (B, T, E), window (B, E, K) → (B, T, E), (B, E, K). The fused kernel of
        `seqlab.models.mamba_kernels` where it takes the tensors, else `nn.Conv1d`."""
        context = window[..., 1:].transpose(1, 2)  # (B, K − 1, E): the inputs before u, time-major
        new_window = torch.cat([context, u[:, -self.d_conv:]], dim=1)[:, -self.d_conv:].transpose(1, 2)  # (B, E, K)
        conv = self.conv1d
        bias = conv.bias if conv.bias is not None else u.new_zeros(u.shape[-1])
        if _fused_supports(context, u, conv.weight, bias):
            weight = conv.weight[:, 0].t()  # (K, E)
            return _kernels().CausalConvSiLU.apply(context, u, weight, bias), new_window
        extended = torch.cat([context, u], dim=1).transpose(1, 2)  # (B, E, K − 1 + T): the context, then u
        return F.silu(conv(extended)).transpose(1, 2), new_window


class MambaBlock(nn.Module):
    """x + mixer(RMSNorm(x))."""

    def __init__(self, config: MambaConfig) -> None:
        super().__init__()
        self.norm = RMSNorm(config.d_model, eps=config.norm_eps)
        self.mixer = MambaMixer(config)

    def forward(self, x: Tensor, state: tuple[Tensor, Tensor] | None = None
                ) -> tuple[Tensor, tuple[Tensor, Tensor]]:
        out, state = self.mixer(self.norm(x), state)
        return x + out, state


class MambaLM(CarriedStateMixin, nn.Module):
    """A Mamba language model over tokens.

    >>> model = MambaLM(MambaConfig(n_layer=2, d_model=16), vocab_size=10)
    >>> logits, loss, state = model(torch.zeros(3, 5, dtype=torch.long), return_state=True)
    >>> logits.shape, [tuple(s.shape) for s in state]
    (torch.Size([3, 5, 10]), [(2, 3, 32, 4), (2, 3, 32, 16)])
    """

    block_size = None  # no context limit: the state carries the whole past

    def __init__(self, config: MambaConfig, vocab_size: int) -> None:
        super().__init__()
        if vocab_size < 1:
            raise ValueError(f"vocab_size must be positive, got {vocab_size}")
        self.config = config
        self.vocab_size = vocab_size
        self.tok_emb = nn.Embedding(vocab_size, config.d_model)
        self.layers = nn.ModuleList(MambaBlock(config) for _ in range(config.n_layer))
        self.norm_f = RMSNorm(config.d_model, eps=config.norm_eps)
        self.lm_head = nn.Linear(config.d_model, vocab_size, bias=False)
        self._init_weights(config)
        if config.tie_embeddings:
            self.lm_head.weight = self.tok_emb.weight

    @torch.no_grad()
    def _init_weights(self, config: MambaConfig) -> None:
        """GPT-2's N(0, 0.02) for the embedding and the projections in and out, the output
        projections scaled by 1/√n_layer (each adds to the residual stream); the SSM's own
        parameters keep the mixer's initialisation."""
        nn.init.normal_(self.tok_emb.weight, std=0.02)
        nn.init.normal_(self.lm_head.weight, std=0.02)
        for layer in self.layers:
            mixer = layer.mixer
            nn.init.normal_(mixer.in_proj.weight, std=0.02)
            nn.init.normal_(mixer.out_proj.weight, std=0.02 / math.sqrt(config.n_layer))
            for linear in (mixer.in_proj, mixer.out_proj):
                if linear.bias is not None:
                    nn.init.zeros_(linear.bias)

    def forward(self, idx: Tensor, targets: Tensor | None = None, state: MambaState | None = None, *,
                return_state: bool = False
                ) -> tuple[Tensor, Tensor | None] | tuple[Tensor, Tensor | None, MambaState]:
        """idx (B, T) → (logits (B, T, V), mean cross-entropy or None[, final state]).

        `targets` (B, T) may use -1 for positions to ignore. `state` continues a sequence (zeros if
        None); `return_state` adds the final state (see `new_state`).
        """
        x = self.tok_emb(idx)  # (B, T, D)
        windows, ssm = [], []
        for i, layer in enumerate(self.layers):
            x, (window, h) = layer(x, None if state is None else (state[0][i], state[1][i]))
            windows.append(window)
            ssm.append(h)
        logits = self.lm_head(self.norm_f(x))  # (B, T, V)
        loss = None
        if targets is not None:
            loss = F.cross_entropy(logits.flatten(0, 1), targets.reshape(-1), ignore_index=-1)
        if not return_state:
            return logits, loss
        return logits, loss, (torch.stack(windows), torch.stack(ssm))

    # --- the model contract (seqlab.models.contract) --------------------------------------------

    def new_state(self, batch_size: int, device: torch.device | str | None = None) -> MambaState:
        """The zero state: conv windows (L, B, E, K) and SSM states (L, B, E, N)."""
        c = self.config
        dtype = self.tok_emb.weight.dtype
        return (torch.zeros(c.n_layer, batch_size, c.d_inner, c.d_conv, device=device, dtype=dtype),
                torch.zeros(c.n_layer, batch_size, c.d_inner, c.d_state, device=device, dtype=dtype))


__all__ = ["MambaBlock", "MambaConfig", "MambaLM", "MambaMixer", "MambaState", "chunked_scan",
           "reference_scan", "selective_scan"]
