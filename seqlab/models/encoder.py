"""The Transformer encoder (Vaswani et al. 2017; BERT, Devlin et al. 2019) and a sequence classifier.

    idx → tok_emb → pos_emb.embed → dropout → L × Block (bidirectional) → norm_f → states (B, T, D)

The same `Block` as the decoder-only model, with attention that sees the whole sequence (no causal
mask) and a padding mask so that padded positions are never attended to: the states at real
positions do not depend on how much padding follows them (tests check it). Position schemes come
from the same builder, with T5's bidirectional buckets for "relative".

`SequenceClassifier` puts a many-to-one head on any encoder that returns (B, T, D) states: mean over
the real positions, the first position (BERT's [CLS]), or the last real position (an RNN's final
state, `seqlab.models.recurrent_encoder`), then a linear layer to the classes.

Dimensions: B batch · T time · D model width · C classes · V vocab.
"""

from __future__ import annotations

from typing import Literal

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from seqlab.config.schema import ModelConfig
from seqlab.models.parts import (
    build_block,
    build_final_norm,
    build_positions,
    deepnorm_constants,
    init_deepnorm,
    init_weights,
)
from seqlab.nn.attention import attention_inputs


class TransformerEncoder(nn.Module):
    """A bidirectional Transformer stack over token ids, returning one state per position.

    `n_layer` layers of `config`, unless given (an encoder–decoder passes `config.encoder_layers`
    and role "encoder", which picks DeepNorm's encoder constants).

    >>> enc = TransformerEncoder(ModelConfig(n_layer=1, n_head=2, d_model=8, block_size=6), vocab_size=5)
    >>> enc(torch.zeros(2, 4, dtype=torch.long), padding_mask=torch.tensor([[1, 1, 1, 0]] * 2).bool()).shape
    torch.Size([2, 4, 8])
    """

    def __init__(self, config: ModelConfig, vocab_size: int, *, n_layer: int | None = None,
                 role: Literal["decoder_only", "encoder"] = "decoder_only") -> None:
        super().__init__()
        self.config = config
        self.vocab_size = vocab_size
        self.n_layer = n_layer or config.n_layer
        self.role = role  # DeepNorm's constants for a stand-alone encoder are the decoder-only ones
        self.tok_emb = nn.Embedding(vocab_size, config.d_model)
        self.pos_emb = build_positions(config, causal=False)
        self.dropout = config.dropout
        self.blocks = nn.ModuleList(build_block(config, role=role) for _ in range(self.n_layer))
        self.norm_f = build_final_norm(config)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        init_weights(self, self.config, n_residual_layers=self.n_layer)
        if self.config.norm_position == "deepnorm":
            init_deepnorm(self.blocks, deepnorm_constants(self.role, self.config)[1])

    @property
    def d_model(self) -> int:
        return self.config.d_model

    def forward(self, idx: Tensor, padding_mask: Tensor | None = None) -> Tensor:
        """idx (B, T) → states (B, T, D). padding_mask (B, T): True at real tokens, False at padding."""
        T = idx.shape[1]
        x = self.pos_emb.embed(self.tok_emb(idx), 0)  # (B, T, D)
        if self.training and self.dropout > 0.0:
            x = F.dropout(x, self.dropout, training=True)
        inputs = attention_inputs(self.pos_emb, start=0, n_query=T, causal=False, padding_mask=padding_mask,
                                  device=x.device, dtype=x.dtype)
        for block in self.blocks:
            x = block(x, inputs)
        return self.norm_f(x)


Pooling = Literal["mean", "first", "last"]


def pool(states: Tensor, padding_mask: Tensor | None, how: Pooling) -> Tensor:
    """states (B, T, D) → (B, D): the mean over real positions, the first position, or the last real one."""
    if how == "first":
        return states[:, 0]
    if how == "last":
        if padding_mask is None:
            return states[:, -1]
        positions = torch.arange(states.shape[1], device=states.device)  # (T,)
        # The highest real position, wherever the padding sits (0 for a row with none real).
        last = (positions * padding_mask).amax(dim=1)  # (B,)
        return states[torch.arange(states.shape[0], device=states.device), last]
    if padding_mask is None:
        return states.mean(dim=1)
    weights = padding_mask.to(states.dtype).unsqueeze(-1)  # (B, T, 1)
    return (states * weights).sum(dim=1) / weights.sum(dim=1).clamp(min=1.0)


class SequenceClassifier(nn.Module):
    """A many-to-one classifier: encoder states → pooled (B, D) → linear → class logits (B, C).

    Parameters: `encoder.*` and `head` (D → C).
    """

    def __init__(self, encoder: nn.Module, n_classes: int, *, pooling: Pooling = "mean") -> None:
        super().__init__()
        if n_classes < 2:
            raise ValueError(f"a classifier needs at least 2 classes, got {n_classes}")
        if pooling not in ("mean", "first", "last"):
            raise ValueError(f"pooling must be 'mean', 'first' or 'last', got {pooling!r}")
        self.encoder = encoder
        self.pooling = pooling
        self.head = nn.Linear(encoder.d_model, n_classes)
        nn.init.normal_(self.head.weight, std=0.02)
        nn.init.zeros_(self.head.bias)

    def forward(self, idx: Tensor, padding_mask: Tensor | None = None,
                targets: Tensor | None = None) -> tuple[Tensor, Tensor | None]:
        """idx (B, T), padding_mask (B, T) → (logits (B, C), mean cross-entropy against targets (B,) or None)."""
        states = self.encoder(idx, padding_mask)  # (B, T, D)
        logits = self.head(pool(states, padding_mask, self.pooling))  # (B, C)
        loss = None if targets is None else F.cross_entropy(logits, targets)
        return logits, loss

    @torch.no_grad()
    def predict(self, idx: Tensor, padding_mask: Tensor | None = None) -> Tensor:
        """The most likely class of each sequence (B,)."""
        return self(idx, padding_mask)[0].argmax(dim=-1)
