"""Bengio et al. 2003's fixed-window neural language model: the K last tokens' embeddings,
concatenated, through hidden layers to the next token's logits."""

from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor

from seqlab.data import LMBatches
from seqlab.families.base import Family, HiddenStates, Shorthand
from seqlab.families.common import score_sliding
from seqlab.inspect.neurons import hooked_units
from seqlab.models.mlp import MLPConfig, MLPLM

def mlp_states(model: MLPLM, x: Tensor, mask: Tensor, both_ways: bool) -> Tensor:
    """x (B, T, E) → the last hidden layer (B, T, H) over each position's window of K vectors, zero
    vectors before the start (as the LM's zero padding)."""
    K = model.context
    padded = F.pad(x, (0, 0, K - 1, 0))  # (B, T + K − 1, E)
    windows = padded.unfold(1, K, 1).transpose(-1, -2)  # (B, T, K, E): window t is padded[t : t + K]
    return model.hidden(windows.flatten(-2))  # (B, T, K·E) → (B, T, H)


MLP = Family(
    name="mlp",
    summary="fixed-window neural language model (Bengio et al. 2003): K embeddings, hidden layers, softmax",
    settings=MLPConfig,
    build=lambda settings, vocab, _source: MLPLM(settings, vocab),
    batches=lambda config, data: LMBatches(data, config.train.batch_size, config.model.block_size),
    score=score_sliding,
    line_padding=lambda settings: settings.context - 1,  # makemore's '.'-padded context of K tokens
    units=hooked_units,
    traced=("neurons",),
    context_option=False,
    shorthand=(Shorthand("mlp", "shakespeare-char-mlp", "d_hidden"),),
    hidden=HiddenStates(read=mlp_states, embed_width=lambda settings: settings.d_embed,
                        width=lambda settings: settings.d_hidden),
)
