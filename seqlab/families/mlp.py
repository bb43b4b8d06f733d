"""Bengio et al. 2003's fixed-window neural language model: the K last tokens' embeddings,
concatenated, through hidden layers to the next token's logits."""

from __future__ import annotations

from seqlab.data import LMBatches
from seqlab.families.base import Family, Shorthand
from seqlab.families.common import score_sliding
from seqlab.inspect.neurons import hooked_units
from seqlab.models.mlp import MLPConfig, MLPLM

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
)
