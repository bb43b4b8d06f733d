"""Word-level tokenizer: one id per word or punctuation mark of a fixed vocabulary.

The vocabulary of the classic neural translation systems (Sutskever et al. 2014; Luong et al. 2015):
the most frequent words of the training text, everything else one unknown token. Text is split into
tokens by ``token_pattern()``: runs of Unicode word characters and combining marks (so ``männer``,
``été`` and ``हैलो``, whose vowel signs are marks, are one word), kept
together across inner hyphens and apostrophes (``t-shirt``, ``don't``, as Multi30k's tokenizer leaves
them); HTML entities (``&quot;``, and ``&apos;s``); each other visible character on its own; and TAB and newline as
tokens of their own (the seq2seq decoder's BOS and EOS). All other whitespace only separates tokens.

    >>> tok = WordTokenizer.train("a dog .\\ta dog runs .\\n")
    >>> tok.token_strings()
    ['<unk>', '<U+0009>', '<U+000A>', 'a', 'dog', '.', 'runs']
    >>> tok.encode("a cat runs ."), tok.decode(tok.encode("a cat runs ."))
    ([3, 0, 6, 5], 'a <unk> runs .')

Ids 0, 1, 2 are always ``<unk>``, TAB and newline; the words follow by falling frequency, ties in
order of first occurrence in the training text.

``decode`` puts one space between two word tokens and none beside TAB or newline. Without byte
fallback that is the deviation from ``Tokenizer``'s contract (``decode(encode(text)) == text``):
spacing is not kept, so the round trip is exact only for text already written that way — single
spaces between tokens, none at line ends, punctuation spaced off — such as Multi30k's tokenized
lines; and a word outside the vocabulary comes back as ``<unk>``.

With ``byte_fallback`` (``seqlab.tokenizers.fallback``; what a config gets by default) the round
trip is exact for every text. 256 byte ids follow the words, and what ``decode`` would not give back
is spelled in UTF-8 bytes: an unknown word, and any whitespace between two tokens other than the
single space ``decode`` puts there (two spaces, a space before a newline, none between a word and a
comma: then the comma is spelled). Byte tokens stand for exactly their bytes: ``decode`` puts no space
beside them. Text spaced the way ``decode`` spaces it gets the same ids as without byte fallback, and
``<unk>`` is never produced.

    >>> tok = WordTokenizer.train("a dog runs .\\n", byte_fallback=True)
    >>> [tok.token_strings()[i] for i in tok.encode("a cat  runs.")]
    ['a', '<0x20>', '<0x63>', '<0x61>', '<0x74>', '<0x20>', '<0x20>', 'runs', '<0x2E>']
"""

from __future__ import annotations

import functools
import re
import sys
import unicodedata
from collections import Counter
from collections.abc import Sequence
from typing import Any

import numpy as np

from seqlab.errors import TokenizerError
from seqlab.tokenizers.base import (
    IdsLike,
    Tokenizer,
    encode_text,
    printable,
    require_field,
)
from seqlab.tokenizers.fallback import N_BYTES, byte_token_strings, read_byte_fallback

# An HTML entity is one token: Moses-tokenized corpora (Multi30k) write quotes as &quot; and &apos;,
# and the clitic 's as &apos;s, which stays one word.
TOKEN_TEMPLATE = r"\t|\n|(?:&apos;)?[\w{marks}]+(?:[-'\u2019][\w{marks}]+)*|&\w+;|[^\w\s{marks}]"
UNKNOWN = "<unk>"


@functools.cache
def token_pattern() -> re.Pattern:
    """The token regex. Python's ``\\w`` takes letters and digits but no combining mark (Unicode
    categories Mn, Mc, Me: Devanagari's vowel signs, a decomposed accent), so the marks are added to
    the word characters here, found once from ``unicodedata`` (about 0.3 s, on first use)."""
    marks, start = [], None
    for code in range(sys.maxunicode + 2):
        is_mark = code <= sys.maxunicode and unicodedata.category(chr(code)) in ("Mn", "Mc", "Me")
        if is_mark and start is None:
            start = code
        elif not is_mark and start is not None:
            marks.append(re.escape(chr(start)) + ("" if code - 1 == start else "-" + re.escape(chr(code - 1))))
            start = None
    return re.compile(TOKEN_TEMPLATE.format(marks="".join(marks)))
SPECIALS = (UNKNOWN, "\t", "\n")  # ids 0, 1, 2
_BREAKS = frozenset("\t\n")  # decode puts no space next to these


class WordTokenizer(Tokenizer):
    """Id ``i`` is ``(<unk>, TAB, newline, *words)[i]``; any word not in ``words`` encodes to 0, or
    with ``byte_fallback`` to its UTF-8 bytes, ids ``3 + len(words) + b``."""

    kind = "word"

    def __init__(self, words: Sequence[str], *, byte_fallback: bool = False) -> None:
        self._tokens = (*SPECIALS, *_check_words(words))
        self._id = {token: i for i, token in enumerate(self._tokens)}
        self._byte_fallback = bool(byte_fallback)
        self._token_bytes = [token.encode("utf-8") for token in self._tokens]
        self._is_word = [token not in _BREAKS for token in self._tokens]  # decode spaces these apart

    @classmethod
    def train(cls, text: str, *, vocab_size: int | None = None, min_freq: int = 1,
              byte_fallback: bool = False) -> WordTokenizer:
        """The words of ``text`` seen at least ``min_freq`` times, most frequent first (ties by first
        occurrence), as many as fit in ``vocab_size`` when it is given (the 3 special tokens, and the 256
        byte tokens with ``byte_fallback``, count in it)."""
        fixed = len(SPECIALS) + N_BYTES * byte_fallback
        if vocab_size is not None and vocab_size < fixed + 1:
            what = f"its {len(SPECIALS)} special tokens" + (f", {N_BYTES} byte tokens" if byte_fallback else "")
            raise TokenizerError(f"a word tokenizer needs vocab_size of at least {fixed + 1} "
                                 f"({what} and one word), got {vocab_size}")
        if min_freq < 1:
            raise TokenizerError(f"min_freq must be at least 1, got {min_freq}")
        encode_text(text, "utf-8")  # rejects lone surrogates with their position
        # Counter keeps first-insertion order and most_common() sorts stably: ties stay in first-occurrence order.
        counts = Counter(token for token in token_pattern().findall(text) if token not in _BREAKS)
        words = [word for word, count in counts.most_common() if count >= min_freq]
        if not words:
            raise TokenizerError(f"no word of the training text occurs {min_freq} or more times; "
                                 "train the word tokenizer on more text or lower min_freq")
        if vocab_size is not None:
            words = words[:vocab_size - fixed]
        return cls(words, byte_fallback=byte_fallback)

    @property
    def words(self) -> tuple[str, ...]:
        """The vocabulary's words, in id order from id 3 (without the special tokens)."""
        return self._tokens[len(SPECIALS):]

    @property
    def unknown_id(self) -> int:
        """The id that every word outside the vocabulary encodes to."""
        return 0

    @property
    def byte_fallback(self) -> bool:
        """Whether what ``decode`` would not give back (unknown words, other spacing) is spelled in bytes."""
        return self._byte_fallback

    @property
    def byte_fallback_offset(self) -> int | None:
        return len(self._tokens) if self._byte_fallback else None

    @property
    def vocab_size(self) -> int:
        return len(self._tokens) + N_BYTES * self._byte_fallback

    def encode_array(self, text: str) -> np.ndarray:
        encode_text(text, "utf-8")
        if self._byte_fallback:
            return np.array(self._encode_exact(text), dtype=np.int64)
        ids = [self._id.get(token, 0) for token in token_pattern().findall(text)]
        return np.array(ids, dtype=np.int64)

    def _encode_exact(self, text: str) -> list[int]:
        """The ids of ``text`` with byte fallback: a token's id where ``decode`` gives it back with the
        whitespace before it, else bytes for that whitespace and (unknown words) the token."""
        ids: list[int] = []
        offset = len(self._tokens)
        after_word = False  # the last token was a word token: decode puts a space before the next word
        end = 0
        for match in token_pattern().finditer(text):
            gap, token = text[end:match.start()], match.group()
            end = match.end()
            i = self._id.get(token)
            if i is not None and after_word and not gap and token not in _BREAKS:
                i = None  # decode would space two words apart: spell the second, so it stays joined
            is_word = i is not None and token not in _BREAKS
            if gap != (" " if after_word and is_word else ""):  # not the spacing decode gives
                ids.extend(b + offset for b in gap.encode("utf-8"))
            if i is None:
                ids.extend(b + offset for b in token.encode("utf-8"))
            else:
                ids.append(i)
            after_word = is_word
        ids.extend(b + offset for b in text[end:].encode("utf-8"))  # trailing whitespace
        return ids

    def safe_cut(self, text: str, limit: int) -> int:
        # No token_pattern() match holds whitespace beside another character (TAB and newline are tokens of
        # their own, other whitespace only separates), and the pattern has no lookaround: a cut just
        # before a space, TAB or newline leaves every match on both sides as it was. With byte fallback
        # the spacing is encoded too, and only TAB and newline start afresh (decode puts no space
        # beside them), so a cut goes just before one of them.
        spaces = "\t\n" if self._byte_fallback else " \t\n"
        return max(0, *(text.rfind(space, 1, limit + 1) for space in spaces))

    def decode_bytes(self, ids: IdsLike) -> bytes:
        out = bytearray()
        offset = len(self._tokens)
        after_word = False
        for i in self._id_array(ids).tolist():
            if i >= offset:  # a byte token: exactly its byte
                out.append(i - offset)
                after_word = False
                continue
            is_word = self._is_word[i]
            if after_word and is_word:
                out += b" "
            out += self._token_bytes[i]
            after_word = is_word
        return bytes(out)

    def token_strings(self) -> list[str]:
        return [UNKNOWN, *(printable(t) for t in self._tokens[1:]),
                *(byte_token_strings() if self._byte_fallback else [])]

    def to_dict(self) -> dict[str, Any]:
        # Written only when on: a description without it (every file from before) reads as false.
        fallback = {"byte_fallback": True} if self._byte_fallback else {}
        return {"kind": self.kind, "words": list(self.words), **fallback}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> WordTokenizer:
        return cls(require_field(d, "words", list), byte_fallback=read_byte_fallback(d))


def _check_words(words: Sequence[str]) -> list[str]:
    """``words`` as a list, checked to be distinct single tokens of ``token_pattern()`` other than TAB and newline."""
    words = list(words)
    if not words:
        raise TokenizerError("a word tokenizer needs at least one word; train it on non-empty text")
    for i, word in enumerate(words):
        if not isinstance(word, str) or word in _BREAKS or not token_pattern().fullmatch(word):
            raise TokenizerError(f"word vocabulary entry {i} is {word!r}, not a single word or "
                                 "punctuation mark; save the tokenizer again with seqlab")
    if len(set(words)) != len(words):
        dup = next(w for i, w in enumerate(words) if w in words[:i])
        raise TokenizerError(f"word vocabulary lists {dup!r} more than once; give each word once")
    return words
