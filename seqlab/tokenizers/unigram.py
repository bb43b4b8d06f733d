"""Unigram language-model tokenization (Kudo 2018; SentencePiece's default), byte-level and exact.

A Unigram tokenizer gives each piece of its vocabulary a log-probability and cuts a word into the
pieces whose probabilities multiply to the most (Viterbi). Training starts from a large set of
candidate pieces and, by EM, drops those whose loss hurts the corpus likelihood least, until
``vocab_size`` are left. Both are done by the Hugging Face ``tokenizers`` library
(``UnigramTrainer``, ``models.Unigram``).

Unlike SentencePiece's, this Unigram is exact for every text (see ``byte_level``): it works on GPT-2's
byte symbols with spaces kept on the following word (the role of SentencePiece's ``▁``), and the 256
byte symbols are always pieces, so no character is unknown.

    >>> tok = UnigramTokenizer.train("low lower lowest " * 50, vocab_size=300)
    >>> tok.decode(tok.encode("Hi, class हैलो क्लास 同学们好")) == "Hi, class हैलो क्लास 同学们好"
    True
"""

from __future__ import annotations

import json
import logging

from tokenizers import Tokenizer as HFTokenizer
from tokenizers import models, pre_tokenizers, trainers

from seqlab.errors import TokenizerError
from seqlab.tokenizers.base import encode_text
from seqlab.tokenizers.bpe import MAX_VOCAB_SIZE, TRAIN_PIECE_CHARS, bytes_to_unicode, training_pieces
from seqlab.tokenizers.byte_level import N_BYTES, ByteLevelSubwords, byte_alphabet

log = logging.getLogger(__name__)


class UnigramTokenizer(ByteLevelSubwords):
    """Byte-level Unigram; ids and scores are those of the wrapped ``tokenizers.Tokenizer``."""

    kind = "unigram"
    model_type = "Unigram"

    @classmethod
    def train(cls, text: str, *, vocab_size: int = 1024) -> UnigramTokenizer:
        """``vocab_size`` pieces, the 256 byte symbols among them (fewer, with a warning, when the
        text has no more to learn)."""
        if not N_BYTES < vocab_size <= MAX_VOCAB_SIZE:
            raise TokenizerError(f"unigram vocab_size {vocab_size} is outside {N_BYTES + 1}.."
                                 f"{MAX_VOCAB_SIZE:,} (the 256 byte symbols plus learned pieces); "
                                 "set tokenizer.vocab_size")
        encode_text(text, "utf-8")  # rejects lone surrogates with their position
        hf = _untrained(models.Unigram())
        trainer = trainers.UnigramTrainer(vocab_size=vocab_size, show_progress=False, special_tokens=[],
                                          initial_alphabet=byte_alphabet())
        hf.train_from_iterator(training_pieces(text, TRAIN_PIECE_CHARS), trainer)
        pieces = _canonical(_pieces(hf), text, vocab_size)
        if len(pieces) < vocab_size:
            log.warning("unigram learned %d pieces, not the %d asked for: the training text (%d chars) "
                        "has no more to learn", len(pieces), vocab_size, len(text))
        return cls(_untrained(models.Unigram(pieces, None, False)))


def _pieces(hf: HFTokenizer) -> list[tuple[str, float]]:
    """The trained (piece, log-probability) list, in id order, the scores rounded to 10 decimals:
    the library's JSON reader does not read every float back exactly, but a short decimal it does,
    so a saved tokenizer loads equal to itself (same fingerprint)."""
    return [(token, round(float(score), 10)) for token, score in json.loads(hf.to_str())["model"]["vocab"]]


def _canonical(pieces: list[tuple[str, float]], text: str, vocab_size: int) -> list[tuple[str, float]]:
    """The trained pieces in an order and with scores that do not change from one training to the next.

    Three things the trainer does vary with the order of its hash maps: the last digits of the EM
    scores (sums in a different order), the order of pieces of equal score, and which score each
    character gets among those it appends after pruning (every character of the text must stay a
    piece; they come last, 1e-4 apart, in hash order). Here the scores are rounded to 8 decimals,
    the appended characters share one score (1e-4 below the lowest kept piece), the byte symbols the
    text never uses one more (10 below that: they never compete, nothing else covers their byte),
    and the pieces are ordered by falling score, then by string.
    """
    table = bytes_to_unicode()
    used = {table[b] for b in set(text.encode("utf-8"))}
    tail = len(pieces)  # pieces[tail:]: the characters appended after pruning, 1e-4 apart
    while tail > 1 and len(pieces[tail - 1][0]) == 1 and abs(pieces[tail - 2][1] - pieces[tail - 1][1] - 1e-4) < 1e-7:
        tail -= 1
    if tail < len(pieces) and tail > 0 and len(pieces[tail - 1][0]) == 1 and \
            pieces[tail - 1][1] < min((score for _, score in pieces[:tail - 1]), default=0.0):
        tail -= 1  # the first appended character: below every kept piece
    lowest = min((score for _, score in pieces[:tail]), default=0.0)
    learned = [(token, round(score, 8)) for token, score in pieces[:tail] if len(token) > 1 or token in used]
    learned += [(token, round(lowest - 1e-4, 8)) for token, _ in pieces[tail:] if token in used]
    have = {token for token, _ in learned}
    unused = [c for c in byte_alphabet() if c not in have]
    learned = sorted(learned, key=lambda item: (-item[1], item[0]))[:vocab_size - len(unused)]
    return learned + [(c, round(lowest - 10.0, 8)) for c in unused]


def _untrained(model: models.Unigram) -> HFTokenizer:
    hf = HFTokenizer(model)
    hf.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)
    return hf
