"""The decoder-only Transformer language model (GPT; Radford et al. 2018/2019), nanoGPT layout.

    idx → tok_emb + pos_emb → dropout → n_layer × Block → norm_f → lm_head (tied to tok_emb) → logits

Each Block is pre-norm: x = x + attn(norm1(x)); x = x + mlp(norm2(x)). Positions are learned absolute
embeddings, so the context is limited to `block_size` tokens. The reference for parity is
`transformers.GPT2LMHeadModel` (through the interop converter; GPT-2's Conv1D weights are transposed).

State-dict keys are an API: `tok_emb`, `pos_emb`, `blocks.{i}.norm1`, `blocks.{i}.attn.qkv`,
`blocks.{i}.attn.out`, `blocks.{i}.norm2`, `blocks.{i}.mlp.up`, `blocks.{i}.mlp.down`, `norm_f`,
`lm_head` (the same tensor as `tok_emb.weight`).

KV cache: `forward(..., cache=cache)` continues positions from `cache.length`, writes the new keys and
values into the cache in place and advances `cache.length`. The model never keeps a cache itself.

Stepper protocol (what `seqlab.generate` drives): `block_size`, `new_state(batch_size, device)` → an
empty KVCache, `step(tokens, state)` → (last-position logits, state). For generation, `stepper()`
offers `FunctionalStepper`: the same forward without the nn.Module boundaries, which on small models
cost more than the arithmetic of a decode step.

Dimensions: B batch · T time · D model width · H heads · Dh head width · V vocab · L layers.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from seqlab.config.schema import ModelConfig
from seqlab.nn.attention import CausalSelfAttention
from seqlab.nn.feedforward import FeedForward
from seqlab.nn.kv_cache import KVCache, LayerKVCache


class Block(nn.Module):
    """A pre-norm Transformer block built from parts: x + attn(norm1(x)), then x + mlp(norm2(x))."""

    def __init__(self, *, norm1: nn.Module, attn: nn.Module, norm2: nn.Module, mlp: nn.Module) -> None:
        super().__init__()
        self.norm1 = norm1
        self.attn = attn
        self.norm2 = norm2
        self.mlp = mlp

    def forward(self, x: Tensor, *, cache_layer: LayerKVCache | None = None) -> Tensor:
        """x (B, T, D) → (B, T, D)."""
        x = x + self.attn(self.norm1(x), cache_layer=cache_layer)[0]
        return x + self.mlp(self.norm2(x))


def gpt2_block(config: ModelConfig) -> Block:
    """The GPT-2 block: LayerNorm, causal self-attention, LayerNorm, 4× GELU feed-forward."""
    d = config.d_model
    return Block(
        norm1=nn.LayerNorm(d, bias=config.bias),
        attn=CausalSelfAttention(d, config.n_head, bias=config.bias, dropout=config.dropout),
        norm2=nn.LayerNorm(d, bias=config.bias),
        # GPT-2's GELU is the tanh approximation ("gelu_new" in HF), so converted GPT-2 weights
        # reproduce GPT-2 exactly (nanoGPT uses the exact erf form; the two differ by < 1e-3). On CPU it
        # also skips the oneDNN exact-GELU kernel, whose fixed ~8 µs per call is felt in a decode step.
        mlp=FeedForward(d, 4 * d, activation=nn.GELU(approximate="tanh"), bias=config.bias, dropout=config.dropout),
    )


class TransformerLM(nn.Module):
    """A GPT-style decoder-only language model.

    >>> model = TransformerLM(ModelConfig(n_layer=2, n_head=2, d_model=16, block_size=8), vocab_size=10)
    >>> logits, loss = model(torch.zeros(3, 5, dtype=torch.long), torch.zeros(3, 5, dtype=torch.long))
    >>> logits.shape, loss.shape
    (torch.Size([3, 5, 10]), torch.Size([]))
    """

    def __init__(self, config: ModelConfig, vocab_size: int) -> None:
        super().__init__()
        if vocab_size < 1:
            raise ValueError(f"vocab_size must be positive, got {vocab_size}")
        self.config = config
        self.vocab_size = vocab_size
        self.block_size = config.block_size
        self.tok_emb = nn.Embedding(vocab_size, config.d_model)
        self.pos_emb = nn.Embedding(config.block_size, config.d_model)
        self.dropout = config.dropout  # on the embeddings' sum; the blocks have their own
        self.blocks = nn.ModuleList(gpt2_block(config) for _ in range(config.n_layer))
        self.norm_f = nn.LayerNorm(config.d_model, bias=config.bias)
        self.lm_head = nn.Linear(config.d_model, vocab_size, bias=False)
        self.lm_head.weight = self.tok_emb.weight  # weight tying (Press & Wolf 2017), as GPT-2
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """GPT-2 initialisation: N(0, 0.02) weights, zero biases, unit LayerNorms, and the residual
        output projections (attn.out, mlp.down) at 0.02/√(2·n_layer) so the residual stream's
        variance does not grow with depth."""
        for module in self.modules():
            if isinstance(module, (nn.Linear, nn.Embedding)):
                nn.init.normal_(module.weight, mean=0.0, std=0.02)
                if getattr(module, "bias", None) is not None:
                    nn.init.zeros_(module.bias)
            elif isinstance(module, nn.LayerNorm):
                module.reset_parameters()
        residual_std = 0.02 / math.sqrt(2 * self.config.n_layer)
        for block in self.blocks:
            nn.init.normal_(block.attn.out.weight, mean=0.0, std=residual_std)
            nn.init.normal_(block.mlp.down.weight, mean=0.0, std=residual_std)

    def num_parameters(self, non_embedding: bool = False) -> int:
        """Number of parameters, each shared tensor counted once. `non_embedding` leaves out the
        position embedding only, as nanoGPT does: the token embedding is also the output layer."""
        n = sum(p.numel() for p in self.parameters())
        if non_embedding:
            n -= self.pos_emb.weight.numel()
        return n

    def forward(
        self,
        idx: Tensor,
        targets: Tensor | None = None,
        *,
        cache: KVCache | None = None,
        last_only: bool = False,
    ) -> tuple[Tensor, Tensor | None]:
        """idx (B, T) → (logits (B, T, V) or (B, 1, V) with `last_only`, mean cross-entropy or None).

        `targets` (B, T) may use -1 for positions to ignore. With `cache`, idx continues the cached
        sequence: positions start at `cache.length`, and the cache is written and advanced in place.
        """
        T = idx.shape[1]
        past = 0 if cache is None else cache.length
        if past + T > self.block_size:
            raise ValueError(f"sequence of {past} cached + {T} new tokens exceeds block_size {self.block_size}")
        # Slicing the position table equals embedding arange(past, past+T), without making the arange.
        x = self.tok_emb(idx) + self.pos_emb.weight[past:past + T]  # (B, T, D)
        if self.training and self.dropout > 0.0:
            x = F.dropout(x, self.dropout, training=True)
        if cache is None:
            for block in self.blocks:
                x = block(x)
        else:
            for i, block in enumerate(self.blocks):
                x = block(x, cache_layer=cache.layer(i))
            cache.advance(T)
        if last_only and T > 1:
            x = x[:, -1:, :]  # (B, 1, D): generation needs the last position only
        logits = self.lm_head(self.norm_f(x))  # (B, T, V) or (B, 1, V)
        loss = None
        if targets is not None:
            if last_only:
                raise ValueError("targets need logits at every position; do not combine them with last_only")
            loss = F.cross_entropy(logits.view(-1, logits.size(-1)), targets.reshape(-1), ignore_index=-1)
        return logits, loss

    # --- the stepper protocol of seqlab.generate -------------------------------------------------

    def new_state(self, batch_size: int, device: torch.device | str | None = None) -> KVCache:
        """An empty KV cache sized for this model and `block_size` positions."""
        c = self.config
        return KVCache.empty(c.n_layer, batch_size, c.n_head, c.block_size, c.head_dim,
                             device=device, dtype=self.tok_emb.weight.dtype)

    def stepper(self) -> object:
        """What `seqlab.generate` should drive for one generation: a `FunctionalStepper` when the
        model qualifies (eval mode, stock parts, no hooks), else the model itself. Both follow the
        stepper protocol."""
        from seqlab.models.functional_decode import (
            FunctionalStepper,  # it imports this module
        )

        return FunctionalStepper(self) if FunctionalStepper.supports(self) else self

    def step(self, tokens: Tensor, state: KVCache | None) -> tuple[Tensor, KVCache | None]:
        """tokens (B, T) → (logits at the last position (B, V), state).

        With a state, the tokens continue it (the cache is written and advanced in place and
        returned). With None, the tokens are the whole context and no state is kept (recompute).
        """
        logits, _ = self(tokens, cache=state, last_only=True)  # (B, 1, V)
        return logits.squeeze(1), state  # (B, V)

    def generate(
        self,
        idx: Tensor,
        max_new_tokens: int,
        *,
        temperature: float = 1.0,
        top_k: int | None = None,
        top_p: float | None = None,
        use_cache: bool = True,
        seed: int | None = None,
    ) -> Tensor:
        """Continue idx (B, T) by `max_new_tokens` sampled tokens → (B, T + max_new_tokens).

        A convenience over `seqlab.generate.generate`, which documents the arguments.
        """
        # Imported here: `generate` sits above `models` in the layering and imports nothing from it.
        from seqlab.generate.sampling import generate

        return generate(self, idx, max_new_tokens, temperature=temperature, top_k=top_k, top_p=top_p,
                        use_cache=use_cache, seed=seed)
