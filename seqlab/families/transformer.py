"""The decoder-only Transformer (GPT) and the Transformer encoder–decoder (Vaswani et al. 2017)."""

from __future__ import annotations

from seqlab.config.schema import EncoderDecoderConfig, ModelConfig
from seqlab.data import LMBatches
from seqlab.families.base import Family, Shorthand
from seqlab.families.common import score_windows
from seqlab.inspect.alignment import transformer_panels
from seqlab.inspect.neurons import hooked_units
from seqlab.models.encoder_decoder import EncoderDecoder
from seqlab.models.transformer import TransformerLM


def _seq2seq_score(*_args, **_kwargs):  # scored on its pairs (seqlab.seq2seq), never on a token stream
    raise NotImplementedError


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
