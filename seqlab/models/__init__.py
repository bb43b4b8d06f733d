"""Whole models composed from `seqlab.nn` layers, and the builders that choose them from a config."""

from seqlab.models.encoder import SequenceClassifier, TransformerEncoder
from seqlab.models.encoder_decoder import EncoderDecoder, Seq2SeqStepper
from seqlab.models.functional_decode import FunctionalStepper
from seqlab.models.hmm import HMM
from seqlab.models.ngram import NGramLM
from seqlab.models.rnn import RNNLM
from seqlab.models.transformer import TransformerLM

__all__ = [
    "HMM", "EncoderDecoder", "FunctionalStepper", "NGramLM", "RNNLM", "Seq2SeqStepper", "SequenceClassifier",
    "TransformerEncoder", "TransformerLM",
]
