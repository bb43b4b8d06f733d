"""Byte-level byte-pair encoding (BPE), trained with the Hugging Face ``tokenizers`` library.

BPE (Sennrich et al. 2016, after Gage 1994) starts from a base alphabet and repeatedly merges the
most frequent adjacent pair of symbols into a new symbol. Byte-level BPE (GPT-2, Radford et al.
2019) starts from the 256 bytes of UTF-8, so every text can be encoded and nothing is unknown; the
text is first split by GPT-2's regex into words, numbers, punctuation runs and whitespace runs, and
merges never cross those pieces. This follows minbpe's ``RegexTokenizer`` and GPT-2's
``encoder.py``; training and encoding are done by ``tokenizers`` (``models.BPE`` with
``pre_tokenizers.ByteLevel``), whose JSON is stored whole in ``to_dict()["hf_tokenizer"]``.

    >>> tok = BPETokenizer.train("low lower lowest " * 50, vocab_size=260)
    >>> tok.decode(tok.encode(" lowest")) == " lowest"
    True

Exactness: no normalizer, no prefix space, no special tokens by default, and decoding maps every
token back to its bytes through the inverse of GPT-2's byte-to-unicode table (``decode_bytes``), so
``decode(encode(text)) == text`` for every Unicode text.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Iterator, Sequence
from functools import cache
from typing import Any, ClassVar

import numpy as np
from tokenizers import Tokenizer as HFTokenizer
from tokenizers import decoders, models, pre_tokenizers, trainers

from seqlab.errors import TokenizerError
from seqlab.tokenizers.base import (
    IdsLike,
    Tokenizer,
    encode_text,
    printable,
    require_field,
)

log = logging.getLogger(__name__)

N_BYTES = 256
# The largest vocab_size `train` takes. The tokenizers library reserves room for the whole vocabulary
# before it learns a merge (a vocab_size of 10^9 aborts the process), and real BPE vocabularies stay
# far below this (GPT-2 50,257; the largest of today's models about 256,000). The config checks the
# same bound (seqlab.config.schema.BPE_MAX_VOCAB_SIZE).
MAX_VOCAB_SIZE = 1_000_000
# Texts longer than this are cut into pieces of about this many characters and batch-encoded in
# parallel threads; the cuts fall where GPT-2's regex always splits, so the ids are the same.
PARALLEL_CHUNK_CHARS = 1 << 16
# BPE learns from the text in pieces of at most this many characters (`training_pieces`): the
# tokenizers library holds each piece it is given whole while splitting it into words (about 100
# bytes a character), so a corpus on one line given whole needed ~100 times its size at once.
TRAIN_PIECE_CHARS = 1 << 16
# Where a text can be cut without changing the words GPT-2's regex splits it into: before a newline
# that follows a printable ASCII non-space character (see `split_for_parallel`), or before a space
# between two non-space characters (no pattern takes a space after its first character, and a space
# before a non-space character starts the next word, as in " ?\p{L}+"). Python's \s takes every
# character the regex's \s does (and a few more), so \S here is never whitespace there.
_TRAIN_CUT = re.compile(r"(?<=[!-~])\n|(?<=\S) (?=\S)")


@cache
def bytes_to_unicode() -> dict[int, str]:
    """GPT-2's byte -> printable character table (``encoder.py``), which ByteLevel uses."""
    visible = [*range(ord("!"), ord("~") + 1), *range(ord("¡"), ord("¬") + 1),
               *range(ord("®"), ord("ÿ") + 1)]
    table = {b: chr(b) for b in visible}
    extra = 0
    for b in range(N_BYTES):
        if b not in table:  # control bytes, space, etc. move to U+0100 onwards
            table[b] = chr(N_BYTES + extra)
            extra += 1
    return table


def split_for_parallel(text: str, chunk_chars: int = PARALLEL_CHUNK_CHARS) -> list[str]:
    """Cut ``text`` into pieces of at least ``chunk_chars`` characters whose encodings concatenate
    to the encoding of the whole.

    A cut goes just before a ``"\\n"`` that follows a printable ASCII non-space character: GPT-2's
    regex ends every piece at such a character (only whitespace patterns take a ``"\\n"``, and
    they cannot take that character), so the pieces on both sides are matched as in the whole
    text. (A cut after a newline would not do: ``"  \\n"`` at the end of a string is one piece,
    but ``"  "`` and ``"\\n"`` before a letter.)
    """
    chunks: list[str] = []
    start = 0
    while len(text) - start > chunk_chars:
        cut = text.find("\n", start + chunk_chars)
        while cut != -1 and not _cuts_before(text, cut):
            cut = text.find("\n", cut + 1)
        if cut == -1:
            break
        chunks.append(text[start:cut])
        start = cut
    chunks.append(text[start:])
    return chunks


def training_pieces(text: str, limit: int = TRAIN_PIECE_CHARS) -> Iterator[str]:
    """``text`` in pieces of at most ``limit`` characters that split into the words of the whole
    text under GPT-2's regex, so that BPE learns the same merges from the pieces as from the text.

    Each piece ends at the first place in the second half of its ``limit`` where GPT-2's regex
    always splits (see ``_TRAIN_CUT``). Only a stretch of ``limit // 2`` characters with no space
    between two non-space characters and no line break (a long run of text written without spaces,
    or of one symbol) is cut at ``limit``, which splits one word of it in two.

    >>> list(training_pieces("to be or not to be", limit=8))
    ['to be', ' or not', ' to be']
    """
    start = 0
    while len(text) - start > limit:
        found = _TRAIN_CUT.search(text, start + max(1, limit // 2), start + limit + 1)  # + 1: the lookahead
        cut = found.start() if found else start + limit
        yield text[start:cut]
        start = cut
    yield text[start:]


def _cuts_before(text: str, i: int) -> bool:
    """Whether the newline ``text[i]`` may start a piece (see ``split_for_parallel``)."""
    return i > 0 and "!" <= text[i - 1] <= "~"


class HFBytesTokenizer(Tokenizer):
    """A wrapped ``tokenizers.Tokenizer`` whose ids map to bytes through a table: encoded by the
    library (in parallel over newline cuts for long texts), decoded through the table. Subclasses
    refuse a tokenizer.json under which the round trip would not be exact (`_refuse_inexact`) and
    read the id -> bytes table (`_read_tables`)."""

    kind: ClassVar[str]

    def __init__(self, hf_tokenizer: HFTokenizer) -> None:
        hf_tokenizer.no_truncation()  # ids must cover the whole text, unpadded
        hf_tokenizer.no_padding()
        self._hf_dict = json.loads(hf_tokenizer.to_str())
        self._refuse_inexact(self._hf_dict)
        self._hf = hf_tokenizer
        self._bytes_of_id = self._read_tables(hf_tokenizer)
        self._has_added_tokens = bool(self._hf_dict["added_tokens"])

    @classmethod
    def _refuse_inexact(cls, hf_dict: dict[str, Any]) -> None:
        raise NotImplementedError

    def _read_tables(self, hf: HFTokenizer) -> list[bytes]:
        raise NotImplementedError

    @property
    def vocab_size(self) -> int:
        return len(self._bytes_of_id)

    @property
    def hf_tokenizer(self) -> HFTokenizer:
        """The wrapped ``tokenizers.Tokenizer`` (for interop; do not change its settings)."""
        return self._hf

    def encode(self, text: str) -> list[int]:
        encode_text(text, "utf-8")  # rejects lone surrogates with their position
        return self._hf.encode(text, add_special_tokens=False).ids

    def encode_array(self, text: str) -> np.ndarray:
        if self._has_added_tokens or len(text) <= 2 * PARALLEL_CHUNK_CHARS:
            return np.array(self.encode(text), dtype=np.int64)
        encode_text(text, "utf-8")
        encodings = self._hf.encode_batch_fast(split_for_parallel(text), add_special_tokens=False)
        return np.concatenate([np.array(e.ids, dtype=np.int64) for e in encodings])

    def safe_cut(self, text: str, limit: int) -> int:
        # The cuts of split_for_parallel, the last one at or before limit. Added (special) tokens
        # are matched before the regex, across any cut: a tokenizer with some is encoded whole.
        if self._has_added_tokens:
            return 0
        cut = text.rfind("\n", 1, limit + 1)
        while cut > 0 and not _cuts_before(text, cut):
            cut = text.rfind("\n", 1, cut)
        return max(cut, 0)

    def decode_bytes(self, ids: IdsLike) -> bytes:
        table = self._bytes_of_id
        return b"".join([table[i] for i in self._id_array(ids).tolist()])

    def to_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, "hf_tokenizer": self._hf_dict}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> HFBytesTokenizer:
        hf_dict = require_field(d, "hf_tokenizer", dict)
        try:
            hf = HFTokenizer.from_str(json.dumps(hf_dict, ensure_ascii=False))
        except Exception as err:  # tokenizers raises plain Exception for bad JSON content
            first_line = str(err).splitlines()[0] if str(err) else type(err).__name__
            raise TokenizerError(f"{cls.kind} tokenizer description cannot be read by the tokenizers "
                                 f"library ({first_line}); save the tokenizer again") from None
        return cls(hf)


class BPETokenizer(HFBytesTokenizer):
    """Byte-level BPE; ids and merges are those of the wrapped ``tokenizers.Tokenizer``."""

    kind = "bpe"

    @classmethod
    def _refuse_inexact(cls, hf_dict: dict[str, Any]) -> None:
        _check_exact(hf_dict)

    def _read_tables(self, hf: HFTokenizer) -> list[bytes]:
        return _bytes_table(hf)

    @classmethod
    def train(cls, text: str, *, vocab_size: int = 512,
              special_tokens: Sequence[str] = ()) -> BPETokenizer:
        """Learn ``vocab_size - 256 - len(special_tokens)`` merges from ``text`` (fewer, with a
        warning, if the text runs out of pairs)."""
        if vocab_size < N_BYTES + len(special_tokens):
            raise TokenizerError(f"bpe vocab_size {vocab_size} is below the {N_BYTES} byte symbols"
                                 f"{' plus special tokens' if special_tokens else ''}; "
                                 "set tokenizer.vocab_size to at least 257")
        if vocab_size > MAX_VOCAB_SIZE:
            raise TokenizerError(f"bpe vocab_size {vocab_size} is above the largest seqlab trains, "
                                 f"{MAX_VOCAB_SIZE:,}; set tokenizer.vocab_size to at most {MAX_VOCAB_SIZE}")
        hf = HFTokenizer(models.BPE())
        hf.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)
        hf.decoder = decoders.ByteLevel()
        trainer = trainers.BpeTrainer(
            vocab_size=vocab_size, special_tokens=list(special_tokens), show_progress=False,
            initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
        hf.train_from_iterator(_checked(text, training_pieces(text, TRAIN_PIECE_CHARS)), trainer)
        got = hf.get_vocab_size(with_added_tokens=True)
        if got < vocab_size:
            log.warning("bpe learned %d merges, not the %d asked for: the training text (%d chars) "
                        "has no more pairs to merge; vocab_size is %d", got - N_BYTES -
                        len(special_tokens), vocab_size - N_BYTES - len(special_tokens),
                        len(text), got)
        return cls(hf)

    def token_strings(self) -> list[str]:
        # A piece may be part of a character (shown as U+FFFD) or a control (shown as <U+000A>).
        return [printable(b.decode("utf-8", errors="replace")) for b in self._bytes_of_id]


def _checked(text: str, pieces: Iterator[str]) -> Iterator[str]:
    """The pieces of ``text``, each checked to be encodable (the whole text is encoded again only
    to name the first lone surrogate's position in it)."""
    for piece in pieces:
        try:
            encode_text(piece, "utf-8")
        except TokenizerError:
            encode_text(text, "utf-8")  # raises with the position in the whole text
            raise
        yield piece


def _check_exact(hf_dict: dict[str, Any]) -> None:
    """Refuse settings under which ``decode(encode(text)) == text`` would not hold."""
    model, pre = hf_dict.get("model") or {}, hf_dict.get("pre_tokenizer") or {}
    problems = []
    if model.get("type") != "BPE":
        problems.append(f"model type {model.get('type')!r} is not BPE")
    if pre.get("type") != "ByteLevel" or pre.get("add_prefix_space"):
        problems.append("pre_tokenizer is not ByteLevel without a prefix space")
    if hf_dict.get("normalizer") is not None:
        problems.append("it has a normalizer")
    if model.get("dropout") is not None:
        problems.append("BPE dropout is set")
    vocab = model.get("vocab") or {}
    if any(c not in vocab for c in bytes_to_unicode().values()):
        problems.append("its vocabulary lacks some of the 256 byte symbols")
    if problems:
        raise TokenizerError(f"bpe tokenizer is not exact byte-level BPE: {'; '.join(problems)}; "
                             "train it with seqlab (tokenizer.kind = \"bpe\")")


def _bytes_table(hf: HFTokenizer) -> list[bytes]:
    """Id -> the bytes it stands for: byte symbols mapped back through GPT-2's table; added
    (special) tokens stand for their literal text."""
    byte_of_char = {c: b for b, c in bytes_to_unicode().items()}
    added = {t.content for t in hf.get_added_tokens_decoder().values()}
    vocab = hf.get_vocab(with_added_tokens=True)
    table: list[bytes] = [b""] * (max(vocab.values()) + 1)
    for token, i in vocab.items():
        if token in added:
            table[i] = token.encode("utf-8")
        elif all(c in byte_of_char for c in token):
            table[i] = bytes(byte_of_char[c] for c in token)
        else:
            raise TokenizerError(f"bpe token {token!r} (id {i}) is not made of byte-level symbols; "
                                 "train the tokenizer with seqlab (tokenizer.kind = \"bpe\")")
    return table
