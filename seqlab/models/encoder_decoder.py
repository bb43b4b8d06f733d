"""The encoder–decoder Transformer (Vaswani et al. 2017; T5, Raffel et al. 2020).

    src → TransformerEncoder → memory (B, S, D)
    tgt → tok_emb → pos_emb.embed → L × Block (causal self-attention, cross-attention to memory, MLP)
        → norm_f → lm_head → logits (B, T, V)

Training is teacher-forced: the decoder reads the target shifted right (starting with a BOS token) and
predicts every next token at once under a causal mask. Both sides take padding masks (True at real
tokens); source padding is never attended to, and target padding is ignored by the loss (targets -1).

Generation: the encoder runs once; each decoder layer's cross-attention keys and values are projected
from the memory once per source sequence (`Seq2SeqStepper`), and the decoder's self-attention uses the
same in-place KV cache as the decoder-only model. `Seq2SeqStepper` follows the stepper protocol of
`seqlab.generate`, so greedy decoding and sampling are the same loop as for language models.

With one vocabulary (`tgt_vocab_size` None), encoder and decoder share the token embedding, as T5.

State-dict keys: `encoder.*` (a `TransformerEncoder`), `tok_emb` (decoder; the encoder's when shared),
`pos_emb`, `blocks.{i}.{norm1,attn,norm_cross,cross_attn,norm2,mlp}`, `norm_f`, `lm_head`.

Dimensions: B batch · S source length · T target length · D model width · G kv heads · Dh head width
· V target vocab · L decoder layers.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from seqlab.config.schema import EncoderDecoderConfig, ModelConfig
from seqlab.models.encoder import TransformerEncoder
from seqlab.models.parts import (
    build_block,
    build_final_norm,
    build_positions,
    deepnorm_constants,
    init_deepnorm,
    init_weights,
)
from seqlab.nn.attention import additive_mask, attention_inputs
from seqlab.nn.kv_cache import KVCache
from seqlab.nn.moe import load_balancing_loss, recorded_router_logits


class EncoderDecoder(nn.Module):
    """A sequence-to-sequence Transformer.

    >>> model = EncoderDecoder(EncoderDecoderConfig(n_layer=1, n_head=2, d_model=8), 7)
    >>> src, tgt = torch.zeros(2, 5, dtype=torch.long), torch.zeros(2, 3, dtype=torch.long)
    >>> model(src, tgt)[0].shape
    torch.Size([2, 3, 7])
    """

    def __init__(self, config: EncoderDecoderConfig, src_vocab_size: int, tgt_vocab_size: int | None = None) -> None:
        super().__init__()
        self.config = config
        self.shared_vocab = tgt_vocab_size is None
        self.vocab_size = src_vocab_size if tgt_vocab_size is None else tgt_vocab_size
        self.block_size = config.block_size  # the longest target the decoder's cache holds
        self.encoder = TransformerEncoder(config, src_vocab_size, n_layer=config.encoder_layers, role="encoder")
        self.tok_emb = nn.Embedding(self.vocab_size, config.d_model)
        self.pos_emb = build_positions(config, causal=True)
        self.dropout = config.dropout
        self.blocks = nn.ModuleList(build_block(config, role="decoder") for _ in range(config.n_layer))
        self.norm_f = build_final_norm(config)
        self.lm_head = nn.Linear(config.d_model, self.vocab_size, bias=False)
        self.reset_parameters()
        if self.shared_vocab:
            self.tok_emb.weight = self.encoder.tok_emb.weight
        if config.tie_embeddings:
            self.lm_head.weight = self.tok_emb.weight

    def reset_parameters(self) -> None:
        self.encoder.reset_parameters()
        decoder = [self.tok_emb, self.pos_emb, self.blocks, self.norm_f, self.lm_head]
        for part in decoder:
            init_weights(part, self.config, n_residual_layers=self.config.n_layer)
        if self.config.norm_position == "deepnorm":
            init_deepnorm(self.blocks, deepnorm_constants("decoder", self.config)[1])

    def num_parameters(self) -> int:
        return sum(p.numel() for p in self.parameters())

    def encode(self, src: Tensor, src_mask: Tensor | None = None) -> Tensor:
        """src (B, S) → memory (B, S, D)."""
        return self.encoder(src, src_mask)

    def memory_kv(self, memory: Tensor) -> list[tuple[Tensor, Tensor]]:
        """Each decoder layer's cross-attention keys and values (B, G, S, Dh), made once per source."""
        return [block.cross_attn.memory_kv(memory) for block in self.blocks]

    def decode(
        self,
        tgt: Tensor,
        memory_kv: list[tuple[Tensor, Tensor]],
        memory_mask: Tensor | None = None,
        *,
        tgt_mask: Tensor | None = None,
        cache: KVCache | None = None,
        last_only: bool = False,
    ) -> Tensor:
        """tgt (B, T) → logits (B, T, V) (or (B, 1, V) with `last_only`).

        memory_mask: additive (B, 1, 1, S) source mask from `source_mask`; tgt_mask (B, T): True at
        real target tokens (without a cache). With `cache`, tgt continues the cached target prefix.
        """
        T = tgt.shape[1]
        past = 0 if cache is None else cache.length
        if tgt_mask is not None and cache is not None:
            raise ValueError("a target padding mask is for teacher forcing; cached decoding has no padding")
        x = self.pos_emb.embed(self.tok_emb(tgt), past)  # (B, T, D)
        if self.training and self.dropout > 0.0:
            x = F.dropout(x, self.dropout, training=True)
        inputs = attention_inputs(self.pos_emb, start=past, n_query=T, causal=True, padding_mask=tgt_mask,
                                  device=x.device, dtype=x.dtype)
        for i, block in enumerate(self.blocks):
            x = block(x, inputs, cache_layer=None if cache is None else cache.layer(i),
                      memory_kv=memory_kv[i], memory_mask=memory_mask)
        if cache is not None:
            cache.advance(T)
        if last_only and T > 1:
            x = x[:, -1:]  # (B, 1, D)
        return self.lm_head(self.norm_f(x))

    def source_mask(self, src_mask: Tensor | None, dtype: torch.dtype) -> Tensor | None:
        """(B, S) bool, True at real source tokens → the additive (B, 1, 1, S) cross-attention mask."""
        if src_mask is None:
            return None
        return additive_mask(src_mask[:, None, None, :], None, dtype=dtype, device=src_mask.device)

    def forward(
        self,
        src: Tensor,
        tgt: Tensor,
        src_mask: Tensor | None = None,
        tgt_mask: Tensor | None = None,
        targets: Tensor | None = None,
    ) -> tuple[Tensor, Tensor | None]:
        """Teacher forcing: src (B, S), tgt (B, T) (the target shifted right) → (logits (B, T, V),
        mean cross-entropy against targets (B, T) with -1 ignored, or None)."""
        # Mixtures of experts (model.n_experts) add their load-balancing loss in training (seqlab.nn.moe).
        balance = self.training and targets is not None and self.config.n_experts > 0 \
            and self.config.router_aux_loss > 0
        with recorded_router_logits(self, enabled=balance) as router_logits:
            memory = self.encode(src, src_mask)  # (B, S, D)
            logits = self.decode(tgt, self.memory_kv(memory), self.source_mask(src_mask, memory.dtype),
                                 tgt_mask=tgt_mask)
        loss = None
        if targets is not None:
            loss = F.cross_entropy(logits.view(-1, logits.size(-1)), targets.reshape(-1), ignore_index=-1)
            if router_logits:
                loss = loss + self.config.router_aux_loss * load_balancing_loss(router_logits,
                                                                                self.config.experts_per_token)
        return logits, loss

    def stepper_for(self, src: Tensor, src_mask: Tensor | None = None) -> Seq2SeqStepper:
        """A stepper that decodes targets for these sources (the encoder runs here, once)."""
        memory = self.encode(src, src_mask)
        return Seq2SeqStepper(self, self.memory_kv(memory), self.source_mask(src_mask, memory.dtype))


class Seq2SeqStepper:
    """The stepper protocol over an encoder–decoder with a fixed, already encoded batch of sources.

    The cross-attention keys/values are computed once (in `EncoderDecoder.stepper_for`); the state is
    the decoder's self-attention KV cache, whose batch rows beam search selects with `reorder`.
    """

    def __init__(self, model: EncoderDecoder, memory_kv: list[tuple[Tensor, Tensor]],
                 memory_mask: Tensor | None) -> None:
        self.model = model
        self.block_size = model.block_size
        self.memory_kv = memory_kv
        self.memory_mask = memory_mask
        self.batch_size = memory_kv[0][0].shape[0]

    def new_state(self, batch_size: int, device: torch.device | str | None = None) -> KVCache:
        if batch_size != self.batch_size:
            raise ValueError(f"this stepper decodes {self.batch_size} sources, not {batch_size}")
        c = self.model.config
        return KVCache.empty(c.n_layer, batch_size, c.kv_heads, c.block_size, c.head_dim, device=device,
                             dtype=self.memory_kv[0][0].dtype)

    def step(self, tokens: Tensor, state: KVCache | None) -> tuple[Tensor, KVCache | None]:
        """tokens (B, T) → (next-token logits (B, V), state); with state None, tokens are the whole target."""
        logits = self.model.decode(tokens, self.memory_kv, self.memory_mask, cache=state, last_only=True)
        return logits[:, -1], state

    def teacher_forced(self, tgt: Tensor, tgt_mask: Tensor | None = None) -> Tensor:
        """Logits (B, T, V) of whole targets tgt (B, T) for these sources, as `EncoderDecoder.forward`
        gives them, without encoding the sources again."""
        return self.model.decode(tgt, self.memory_kv, self.memory_mask, tgt_mask=tgt_mask)

    def reorder(self, state: KVCache | None, index: Tensor) -> KVCache | None:
        """The state with batch row i taken from row index[i] (index (B,) long), for beam search.

        The encoded sources stay as they are, so rows may only move between rows of the same source:
        beam search builds the stepper on sources repeated once per beam and reorders within each group.
        """
        if index.shape != (self.batch_size,):
            raise ValueError(f"this stepper decodes {self.batch_size} sources; index must be ({self.batch_size},), "
                             f"got {tuple(index.shape)}")
        return None if state is None else state.reorder(index)
