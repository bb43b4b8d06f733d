"""WordPiece (Schuster & Nakajima 2012; BERT, Devlin et al. 2019), byte-level and exact.

WordPiece cuts each word greedily, longest match first, into pieces of its vocabulary: the first
piece as it is, every later one from the "continuation" half of the vocabulary (BERT writes it
``##ing``). The vocabulary is learned by the Hugging Face ``tokenizers`` library
(``WordPieceTrainer``, which grows it by merges as BPE does) and encoding is its ``models.WordPiece``.

Unlike BERT's, this WordPiece is exact for every text (see ``byte_level``): it works on GPT-2's byte
symbols with spaces kept on the following word, and its vocabulary holds every byte symbol both as
a first and as a continuation piece, so the greedy cut never fails and ``[UNK]`` never appears.
Two details make that hold:

- the continuation prefix is ``‥`` (U+2025), outside the byte symbols, not ``##``: a text with
  ``##`` in it would otherwise give a first piece and a continuation piece the same string, and
  the same id;
- words are cut into spans of at most ``MAX_WORD_SYMBOLS`` byte symbols before the greedy match
  (``models.WordPiece`` turns a longer word into ``[UNK]``, and its match is quadratic in the word).

Training is deterministic: the continuation byte pieces are numbered before training (see ``train``).

    >>> tok = WordPieceTokenizer.train("low lower lowest " * 50, vocab_size=530)
    >>> tok.decode(tok.encode("Hi, class हैलो क्लास 同学们好")) == "Hi, class हैलो क्लास 同学们好"
    True
"""

from __future__ import annotations

import logging

from tokenizers import Regex
from tokenizers import Tokenizer as HFTokenizer
from tokenizers import models, pre_tokenizers, trainers

from seqlab.errors import TokenizerError
from seqlab.tokenizers.base import encode_text
from seqlab.tokenizers.bpe import MAX_VOCAB_SIZE, TRAIN_PIECE_CHARS, training_pieces
from seqlab.tokenizers.byte_level import N_BYTES, ByteLevelSubwords, byte_alphabet

log = logging.getLogger(__name__)

CONTINUATION = "\u2025"  # "‥": not one of the 256 byte symbols (see the module docstring)
MAX_WORD_SYMBOLS = 100  # BERT's max_input_chars_per_word
MIN_VOCAB_SIZE = 2 * N_BYTES + 1  # every byte symbol as a first and as a continuation piece, and a merge


class WordPieceTokenizer(ByteLevelSubwords):
    """Byte-level WordPiece; ids are those of the wrapped ``tokenizers.Tokenizer``."""

    kind = "wordpiece"
    model_type = "WordPiece"
    continuation = CONTINUATION

    @classmethod
    def train(cls, text: str, *, vocab_size: int = 1024) -> WordPieceTokenizer:
        """The 512 byte pieces and ``vocab_size - 512`` learned ones (fewer, with a warning, when
        the text has no more to learn)."""
        if not MIN_VOCAB_SIZE <= vocab_size <= MAX_VOCAB_SIZE:
            raise TokenizerError(f"wordpiece vocab_size {vocab_size} is outside {MIN_VOCAB_SIZE}.."
                                 f"{MAX_VOCAB_SIZE:,} (each of the 256 bytes as a first and as a "
                                 "continuation piece, plus learned pieces); set tokenizer.vocab_size")
        encode_text(text, "utf-8")  # rejects lone surrogates with their position
        hf = _untrained(_model({"[UNK]": 0}))
        # The continuation byte pieces are given to the trainer first (as its "special tokens"): it
        # otherwise numbers them in the order of a hash map, which breaks ties between equally
        # frequent merges differently from one process to the next. Their N_BYTES ids are asked for
        # on top of vocab_size; the byte pieces are completed and ordered below.
        trainer = trainers.WordPieceTrainer(
            vocab_size=vocab_size + N_BYTES, show_progress=False,
            special_tokens=[CONTINUATION + c for c in byte_alphabet()],
            initial_alphabet=byte_alphabet(), continuing_subword_prefix=CONTINUATION)
        hf.train_from_iterator(training_pieces(text, TRAIN_PIECE_CHARS), trainer)
        learned = sorted(hf.get_vocab(with_added_tokens=False).items(), key=lambda item: item[1])
        base = [*byte_alphabet(), *(CONTINUATION + c for c in byte_alphabet())]
        known = set(base)
        extra = [token for token, _ in learned if token not in known][:vocab_size - len(base)]
        if len(base) + len(extra) < vocab_size:
            log.warning("wordpiece learned %d pieces, not the %d asked for: the training text (%d chars) "
                        "has no more to learn; vocab_size is %d", len(extra), vocab_size - len(base),
                        len(text), len(base) + len(extra))
        vocab = {token: i for i, token in enumerate([*base, *extra])}
        return cls(_untrained(_model(vocab)))


def _model(vocab: dict[str, int]) -> models.WordPiece:
    # "[UNK]" is never produced (every byte symbol is a piece); the library needs the name.
    return models.WordPiece(vocab, unk_token="[UNK]", continuing_subword_prefix=CONTINUATION,
                            max_input_chars_per_word=MAX_WORD_SYMBOLS)


def _untrained(model: models.WordPiece) -> HFTokenizer:
    hf = HFTokenizer(model)
    hf.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True),
        # Spans of at most MAX_WORD_SYMBOLS: byte symbols hold no whitespace, so "." takes each one.
        pre_tokenizers.Split(Regex(f".{{1,{MAX_WORD_SYMBOLS}}}"), behavior="isolated"),
    ])
    return hf
