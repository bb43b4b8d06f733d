"""The decoder-only Transformer language model (GPT; Radford et al. 2018/2019) and its LLM variants.

    idx → tok_emb → pos_emb.embed → dropout → n_layer × Block → norm_f → lm_head → logits

With the default config this is GPT-2 / nanoGPT: learned positions, pre-LayerNorm blocks, GELU MLP,
tied embeddings. Every variant axis of `ModelConfig` (norm, norm_position, position, activation,
bias, n_kv_head, parallel_block, tie_embeddings, n_experts) is resolved by the builders of
`seqlab.models.parts`; this module only wires the parts together. With `n_experts` the MLPs are
mixtures of experts (`seqlab.nn.moe`), and the training loss adds `router_aux_loss` times their
load-balancing loss (in training mode only: evaluation reports the language-model loss). References
for parity are `transformers.GPT2LMHeadModel`, `LlamaForCausalLM` and `MixtralForCausalLM` (through
`seqlab.interop`).

State-dict keys are an API: `tok_emb`, `pos_emb` (learned: `pos_emb.weight`; relative:
`pos_emb.bias.weight`), `blocks.{i}.norm1`, `blocks.{i}.attn.qkv`, `blocks.{i}.attn.out`,
`blocks.{i}.norm2`, `blocks.{i}.mlp.{gate,up,down}` (a mixture: `blocks.{i}.mlp.router`,
`blocks.{i}.mlp.experts.{e}.{gate,up,down}`), `norm_f`, `lm_head` (the same tensor as
`tok_emb.weight` when tied).

KV cache: `forward(..., cache=cache)` continues positions from `cache.length`, writes the new keys and
values into the cache in place and advances `cache.length`. The model never keeps a cache itself.

Stepper protocol (what `seqlab.generate` drives): `block_size`, `new_state(batch_size, device)` → an
empty KVCache, `step(tokens, state)` → (last-position logits, state). For generation, `stepper()`
offers `FunctionalStepper` for GPT-2-shaped models: the same forward without the nn.Module
boundaries, which on small models cost more than the arithmetic of a decode step.

Dimensions: B batch · T time · D model width · H heads · G kv heads · Dh head width · V vocab · L layers.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from seqlab.config.schema import ModelConfig
from seqlab.models.contract import GenerateMixin
from seqlab.models.parts import (
    build_block,
    build_final_norm,
    build_positions,
    deepnorm_constants,
    init_deepnorm,
    init_weights,
)
from seqlab.nn.attention import attention_inputs
from seqlab.nn.kv_cache import KVCache
from seqlab.nn.moe import load_balancing_loss, recorded_router_logits
from seqlab.nn.positional import LearnedPositions


class TransformerLM(GenerateMixin, nn.Module):
    """A decoder-only (causal) Transformer language model.

    >>> model = TransformerLM(ModelConfig(n_layer=2, n_head=2, d_model=16, block_size=8), vocab_size=10)
    >>> logits, loss = model(torch.zeros(3, 5, dtype=torch.long), torch.zeros(3, 5, dtype=torch.long))
    >>> logits.shape, loss.shape
    (torch.Size([3, 5, 10]), torch.Size([]))
    """

    # torch.compile traces its training forward into one graph (the recurrent models' loops over
    # time would unroll into thousands of nodes): `train.compile = "auto"` may compile it.
    compiles_well = True

    def __init__(self, config: ModelConfig, vocab_size: int) -> None:
        super().__init__()
        if vocab_size < 1:
            raise ValueError(f"vocab_size must be positive, got {vocab_size}")
        self.config = config
        self.vocab_size = vocab_size
        self.block_size = config.block_size
        self.tok_emb = nn.Embedding(vocab_size, config.d_model)
        self.pos_emb = build_positions(config, causal=True)
        self.dropout = config.dropout  # on the embeddings; the blocks have their own
        self.blocks = nn.ModuleList(build_block(config) for _ in range(config.n_layer))
        self.norm_f = build_final_norm(config)
        self.lm_head = nn.Linear(config.d_model, vocab_size, bias=False)
        if config.tie_embeddings:
            self.lm_head.weight = self.tok_emb.weight  # weight tying (Press & Wolf 2017), as GPT-2
        if config.n_experts:
            # Routing sizes each expert's batch by the data (and the training loss hooks the routers):
            # graphs that torch.compile would break and recompile, so a mixture runs eagerly.
            self.compiles_well = False
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """GPT-2's initialisation, or DeepNorm's for deepnorm models (see `seqlab.models.parts`)."""
        init_weights(self, self.config, n_residual_layers=self.config.n_layer)
        if self.config.norm_position == "deepnorm":
            init_deepnorm(self.blocks, deepnorm_constants("decoder_only", self.config)[1])

    @property
    def max_context(self) -> int | None:
        """The longest sequence the positions can place (learned: block_size), None for any length."""
        return self.pos_emb.max_positions

    def num_parameters(self, non_embedding: bool = False) -> int:
        """Number of parameters, each shared tensor counted once. `non_embedding` leaves out the
        learned position table only, as nanoGPT does: a tied token embedding is also the output layer."""
        n = sum(p.numel() for p in self.parameters())
        if non_embedding and isinstance(self.pos_emb, LearnedPositions):
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
        x = self.pos_emb.embed(self.tok_emb(idx), past)  # (B, T, D)
        if self.training and self.dropout > 0.0:
            x = F.dropout(x, self.dropout, training=True)
        inputs = attention_inputs(self.pos_emb, start=past, n_query=T, causal=True, device=x.device, dtype=x.dtype)
        # A mixture of experts in training adds its load-balancing loss: the routers' logits are read
        # through hooks (seqlab.nn.moe), so evaluation, decoding and dense models pay nothing for it.
        balance = self.training and targets is not None and self.config.n_experts > 0 \
            and self.config.router_aux_loss > 0
        with recorded_router_logits(self.blocks, enabled=balance) as router_logits:
            if cache is None:
                for block in self.blocks:
                    x = block(x, inputs)
            else:
                for i, block in enumerate(self.blocks):
                    x = block(x, inputs, cache_layer=cache.layer(i))
                cache.advance(T)
        if last_only and T > 1:
            x = x[:, -1:, :]  # (B, 1, D): generation needs the last position only
        logits = self.lm_head(self.norm_f(x))  # (B, T, V) or (B, 1, V)
        loss = None
        if targets is not None:
            if last_only:
                raise ValueError("targets need logits at every position; do not combine them with last_only")
            loss = F.cross_entropy(logits.view(-1, logits.size(-1)), targets.reshape(-1), ignore_index=-1)
            if router_logits:
                loss = loss + self.config.router_aux_loss * load_balancing_loss(router_logits,
                                                                                self.config.experts_per_token)
        return logits, loss

    # --- the stepper protocol of seqlab.generate -------------------------------------------------

    def new_state(self, batch_size: int, device: torch.device | str | None = None) -> KVCache:
        """An empty KV cache sized for this model and `block_size` positions."""
        c = self.config
        return KVCache.empty(c.n_layer, batch_size, c.kv_heads, c.block_size, c.head_dim,
                             device=device, dtype=self.tok_emb.weight.dtype)

    def stepper(self) -> object:
        """What `seqlab.generate` should drive for one generation: a `FunctionalStepper` when it
        implements every setting of `self.config` (it declares which) and the model is in eval mode,
        built from the stock parts and without hooks; else the model itself, whose settings then
        all take effect. Both follow the stepper protocol."""
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

    def token_log_probs(self, tokens: Tensor) -> Tensor:
        """tokens (B, T ≤ block_size) → (B, T − 1): the natural-log probability of each token after the
        first, given the tokens before it."""
        logits = self(tokens[:, :-1])[0]  # (B, T-1, V)
        return torch.log_softmax(logits.float(), dim=-1).gather(-1, tokens[:, 1:, None]).squeeze(-1)
