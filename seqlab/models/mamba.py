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
`selective_scan` (the chunked scan below); decoding (`step`) carries the state, so a step reads one
token whatever the position.

Chunked scan (`selective_scan`): the window is cut into chunks of `chunk_size` steps. (1) Within
every chunk, all chunks at once, the recurrence runs from a zero state: chunk_size steps on tensors
holding every chunk. (2) The state entering each chunk follows from the previous chunk's entering
state, decayed by the chunk's total decay exp(Σ Δ A), plus its local end state: one step per chunk.
(3) Every state is its local state plus its chunk's entering state decayed by the cumulative
log-decay since the chunk began (exp of a non-positive number: no overflow, unlike the closed form
that divides by the decay). That is chunk_size + T / chunk_size sequential steps instead of T, and
equals `sequential_scan`, the direct recurrence (tests/models/test_mamba.py).

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
from seqlab.models.contract import GenerateMixin
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
    chunk_size: int = 16  # steps per chunk of the training scan (speed only: the result is the same)
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

def sequential_scan(log_a: Tensor, b: Tensor, h0: Tensor) -> Tensor:
    """The direct recurrence h_t = exp(log_a_t) ⊙ h_{t-1} + b_t, one step at a time, through autograd
    (the reference the tests compare `linear_recurrence` and `selective_scan` with).

    log_a, b (B, T, E, N) · h0 (B, E, N) → every state (B, T, E, N).
    """
    a = log_a.exp()
    h, states = h0, []
    for t in range(b.shape[1]):
        h = a[:, t] * h + b[:, t]
        states.append(h)
    return torch.stack(states, dim=1)


class _LinearRecurrence(torch.autograd.Function):
    """h_t = a_t ⊙ h_{t-1} + b_t with a hand-written backward.

    Through autograd, each step's slice `b[:, t]` would send back a gradient the size of the whole
    (B, T, E, N) tensor, T of them per scan; here the backward is the same recurrence run in reverse,
    writing each step's gradient in place:

        g_t = ∂L/∂h_t (total) = G_t + a_{t+1} ⊙ g_{t+1}     (G: the gradient reaching the states)
        ∂L/∂b_t = g_t · ∂L/∂log_a_t = g_t ⊙ h_{t-1} ⊙ a_t · ∂L/∂h_0 = a_0 ⊙ g_0
    """

    @staticmethod
    def forward(ctx, log_a: Tensor, b: Tensor, h0: Tensor) -> Tensor:
        a = log_a.exp()  # (B, T, E, N)
        states = torch.empty_like(b)  # (B, T, E, N)
        h = h0
        for t in range(b.shape[1]):
            h = torch.addcmul(b[:, t], a[:, t], h, out=states[:, t])  # (B, E, N)
        ctx.save_for_backward(a, h0, states)
        return states

    @staticmethod
    def backward(ctx, grad_states: Tensor) -> tuple[Tensor | None, Tensor | None, Tensor | None]:
        a, h0, states = ctx.saved_tensors
        T = a.shape[1]
        grad_b = torch.empty_like(states)  # (B, T, E, N): g_t
        grad_b[:, T - 1] = grad_states[:, T - 1]
        for t in range(T - 2, -1, -1):
            torch.addcmul(grad_states[:, t], a[:, t + 1], grad_b[:, t + 1], out=grad_b[:, t])
        grad_log_a = grad_h0 = None
        if ctx.needs_input_grad[0]:
            h_prev = torch.cat([h0[:, None], states[:, :-1]], dim=1)  # (B, T, E, N): h_{t-1}
            grad_log_a = grad_b * h_prev * a
        if ctx.needs_input_grad[2]:
            grad_h0 = a[:, 0] * grad_b[:, 0]
        return grad_log_a, grad_b, grad_h0


def linear_recurrence(log_a: Tensor, b: Tensor, h0: Tensor) -> Tensor:
    """`sequential_scan`'s result, in place step by step and with the backward of `_LinearRecurrence`.

    log_a, b (B, T, E, N) · h0 (B, E, N) → every state (B, T, E, N).
    """
    h0 = h0.to(b.dtype).expand(b.shape[0], *b.shape[2:])
    return _LinearRecurrence.apply(log_a, b, h0)


def selective_scan(log_a: Tensor, b: Tensor, h0: Tensor, chunk_size: int) -> Tensor:
    """The recurrence of `sequential_scan` in chunks (see the module docstring): chunk_size + T /
    chunk_size sequential steps, each on tensors that hold every chunk. A window of one chunk is
    the recurrence itself.

    log_a (≤ 0), b (B, T, E, N) · h0 (B, E, N) → every state (B, T, E, N).
    """
    Bsz, T, E, N = b.shape
    if chunk_size >= T:
        return linear_recurrence(log_a, b, h0)
    Lc = chunk_size
    C = -(-T // Lc)
    pad = C * Lc - T
    if pad:  # padded steps at the end decay by exp(0) = 1 and add 0: no state before them changes
        log_a = F.pad(log_a, (0, 0, 0, 0, 0, pad))
        b = F.pad(b, (0, 0, 0, 0, 0, pad))
    log_a = log_a.reshape(Bsz * C, Lc, E, N)
    b = b.reshape(Bsz * C, Lc, E, N)
    # (1) every chunk from a zero state, all chunks at once: Lc steps on (B·C, E, N)
    local_states = linear_recurrence(log_a, b, b.new_zeros(())).reshape(Bsz, C, Lc, E, N)
    # (2) the state entering each chunk: C steps on (B, E, N), from the chunk's total decay and its
    # local end state (the entering states are those after chunks 0 … C − 2, h0 first)
    log_decay = log_a.cumsum(dim=1).view(Bsz, C, Lc, E, N)  # Σ log_a from the chunk's start, ≤ 0
    h_in = linear_recurrence(torch.cat([torch.zeros_like(log_decay[:, :1, -1]), log_decay[:, :-1, -1]], dim=1),
                             torch.cat([h0[:, None].to(b.dtype), local_states[:, :-1, -1]], dim=1),
                             b.new_zeros(()))  # (B, C, E, N)
    # (3) each state: its local state plus the entering state, decayed since the chunk began
    states = torch.addcmul(local_states, log_decay.exp(), h_in[:, :, None])  # (B, C, Lc, E, N)
    return states.view(Bsz, C * Lc, E, N)[:, :T]


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
        u = u.transpose(1, 2)  # (B, E, T)
        if state is None:
            window = u.new_zeros(Bsz, u.shape[1], self.d_conv)
            h0 = u.new_zeros(Bsz, u.shape[1], self.d_state)
        else:
            window, h0 = state
        extended = torch.cat([window[..., 1:], u], dim=-1)  # (B, E, K − 1 + T): the left context, then u
        new_window = extended[..., -self.d_conv:]  # (B, E, K): the last K inputs
        u = F.silu(self.conv1d(extended)).transpose(1, 2)  # (B, T, E)
        dt, B, C = self.x_proj(u).split([self.dt_rank, self.d_state, self.d_state], dim=-1)
        delta = F.softplus(self.dt_proj(dt))  # (B, T, E)
        A = -torch.exp(self.A_log)  # (E, N)
        log_a = delta[..., None] * A  # (B, T, E, N)
        b = (delta * u)[..., None] * B[:, :, None, :]  # (B, T, E, N)
        states = selective_scan(log_a, b, h0, self.chunk_size)  # (B, T, E, N)
        y = torch.einsum("bten,btn->bte", states, C) + u * self.D  # (B, T, E)
        out = self.out_proj(y * F.silu(z))  # (B, T, D)
        return out, (new_window, states[:, -1])


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


class MambaLM(GenerateMixin, nn.Module):
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

    def step(self, tokens: Tensor, state: MambaState | None) -> tuple[Tensor, MambaState | None]:
        """tokens (B, T) → (logits at the last position (B, V), state).

        With a state the tokens continue it and the new state is returned; with None they are the
        whole context, run from the zero state, and no state is kept (the recompute path).
        """
        logits, _, final = self(tokens, state=state, return_state=True)  # (B, T, V)
        return logits[:, -1], (None if state is None else final)

    def token_log_probs(self, tokens: Tensor) -> Tensor:
        """tokens (B, T) → (B, T − 1): the natural-log probability of each token after the first,
        given every token before it (from the zero state)."""
        logits = self(tokens[:, :-1])[0]  # (B, T-1, V)
        return torch.log_softmax(logits.float(), dim=-1).gather(-1, tokens[:, 1:, None]).squeeze(-1)


__all__ = ["MambaBlock", "MambaConfig", "MambaLM", "MambaMixer", "MambaState", "linear_recurrence",
           "selective_scan", "sequential_scan"]
