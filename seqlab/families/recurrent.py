"""The recurrent language models (char-rnn): Elman RNN, the gated RNN, GRU and LSTM, and the
recurrent encoder-decoder with attention (Bahdanau et al. 2015, Luong et al. 2015)."""

from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor, nn

from seqlab.data import TBPTTBatches
from seqlab.families.base import Family, HiddenStates, Shorthand
from seqlab.families.common import score_carried
from seqlab.families.transformer import _seq2seq_score
from seqlab.inspect.alignment import rnn_panels
from seqlab.inspect.neurons import hooked_units
from seqlab.models.rnn import RecurrentConfig, RNNLM, build_recurrent
from seqlab.models.seq2seq_rnn import Seq2SeqRNN, Seq2SeqRNNConfig

_SUMMARIES = {
    "rnn": "Elman recurrent network (Elman 1990)",
    "gated": "the gated RNN of the lectures (one update gate)",
    "gru": "gated recurrent unit (Cho et al. 2014)",
    "lstm": "long short-term memory (Hochreiter & Schmidhuber 1997)",
}


def recurrent_states(model: RNNLM, x: Tensor, mask: Tensor, both_ways: bool) -> Tensor:
    """x (B, T, E) → the top layer's states (B, T, H) from the zero state (dropout after it in
    training, as before the LM's output layer)."""
    states, _ = model.rnn(x)  # (B, T, H)
    return F.dropout(states, model.dropout, training=True) if model.training and model.dropout > 0 else states


class ReverseReader(nn.Module):
    """A second recurrent stack, of the same settings, that a bidirectional tagger runs over each
    reversed sequence (the right-to-left half of a BiLSTM); x (B, T, E) → (B, T, H)."""

    def __init__(self, settings: RecurrentConfig) -> None:
        super().__init__()
        self.rnn = build_recurrent(settings)

    def forward(self, x: Tensor) -> Tensor:
        return self.rnn(x)[0]


RECURRENT_STATES = HiddenStates(read=recurrent_states, embed_width=lambda settings: settings.embed_width,
                                width=lambda settings: settings.d_model, reverse=ReverseReader)


def _recurrent(name: str) -> Family:
    return Family(
        name=name,
        summary=f"{_SUMMARIES[name]}, trained with truncated backpropagation through time",
        settings=RecurrentConfig,
        build=lambda settings, vocab, _source: RNNLM(settings, vocab),
        # Consecutive windows of parallel streams, the hidden state carried between them.
        batches=lambda config, data: TBPTTBatches(data, config.train.batch_size, config.model.block_size,
                                                   shift=config.data.shift_streams),
        score=score_carried,
        units=hooked_units,
        traced=("states",),
        shorthand=(Shorthand(name, "shakespeare-char-lstm", "d_model"),),
        hidden=RECURRENT_STATES,
    )


RNN, GATED, GRU, LSTM = (_recurrent(name) for name in _SUMMARIES)


def _build_seq2seq(settings: Seq2SeqRNNConfig, vocab: int, source: int | None) -> Seq2SeqRNN:
    src, tgt = (vocab, None) if source is None else (source, vocab)
    return Seq2SeqRNN(src, tgt, cell=settings.cell, d_embed=settings.d_model, d_hidden=settings.d_model,
                      n_layer=settings.n_layer, bidirectional=settings.bidirectional,
                      attention=settings.attention, dropout=settings.dropout, block_size=settings.block_size)


RNN_SEQ2SEQ = Family(
    name="rnn_seq2seq",
    summary="recurrent encoder-decoder with additive or multiplicative attention (Bahdanau 2015, Luong 2015)",
    settings=Seq2SeqRNNConfig,
    build=_build_seq2seq,
    reads_pairs=True,
    score=_seq2seq_score,
    units=hooked_units,
    traced=("attention", "states"),
    alignment=rnn_panels,
)
