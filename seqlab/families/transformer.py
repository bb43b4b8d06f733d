"""The decoder-only Transformer (GPT) and the Transformer encoder–decoder (Vaswani et al. 2017)."""

from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor

from seqlab.config.schema import EncoderDecoderConfig, ModelConfig
from seqlab.data import LMBatches
from seqlab.families.base import Family, HiddenStates, Shorthand
from seqlab.families.common import score_windows
from seqlab.inspect.alignment import transformer_panels
from seqlab.inspect.neurons import hooked_units
from seqlab.models.encoder_decoder import EncoderDecoder
from seqlab.models.transformer import TransformerLM
from seqlab.nn.attention import attention_inputs


def _seq2seq_score(*_args, **_kwargs):  # scored on its pairs (seqlab.seq2seq), never on a token stream
    raise NotImplementedError


def transformer_states(model: TransformerLM, x: Tensor, mask: Tensor, both_ways: bool) -> Tensor:
    """x (B, T, E = D) → the final-norm states (B, T, D): the LM's forward without its output layer.
    `both_ways` drops the causal mask and masks the padding instead (an encoder over the same weights)."""
    T = x.shape[1]
    x = model.pos_emb.embed(x, 0)  # (B, T, D)
    if model.training and model.dropout > 0.0:
        x = F.dropout(x, model.dropout, training=True)
    inputs = attention_inputs(model.pos_emb, start=0, n_query=T, causal=not both_ways,
                              padding_mask=mask if both_ways else None, device=x.device, dtype=x.dtype)
    for block in model.blocks:
        x = block(x, inputs)
    return model.norm_f(x)


TRANSFORMER = Family(
    name="transformer",
    summary="decoder-only Transformer (GPT; Radford et al. 2018) with every LLM variant axis",
    settings=ModelConfig,
    build=lambda settings, vocab, _source: TransformerLM(settings, vocab),
    batches=lambda config, data: LMBatches(data, config.train.batch_size, config.model.block_size),
    score=score_windows,
    units=hooked_units,
    traced=("attention", "neurons", "residual", "router"),
    line_limit=lambda settings: settings.block_size,  # learned positions end there
    exports_hf=True,
    shorthand=(Shorthand("gpt", "shakespeare-char", "d_model"),
               Shorthand("transformer", "shakespeare-char", "d_model")),
    hidden=HiddenStates(read=transformer_states, embed_width=lambda settings: settings.d_model,
                        width=lambda settings: settings.d_model, attends_both_ways=True),
)

ENCODER_DECODER = Family(
    name="encoder_decoder",
    summary="Transformer encoder-decoder (Vaswani et al. 2017) with cross-attention",
    settings=EncoderDecoderConfig,
    build=lambda settings, vocab, source: EncoderDecoder(settings, *((vocab, None) if source is None
                                                                     else (source, vocab))),
    reads_pairs=True,
    score=_seq2seq_score,
    units=hooked_units,
    traced=("attention", "neurons", "residual", "router"),
    alignment=transformer_panels,
)
