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

Deviation from ``Tokenizer``'s contract (``decode(encode(text)) == text``): spacing is not kept.
``decode`` puts one space between two word tokens and none beside TAB or newline, so the round trip
is exact only for text already written that way — single spaces between tokens, none at line ends,
punctuation spaced off — such as Multi30k's tokenized lines; and a word outside the vocabulary comes
back as ``<unk>``.
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
    """Id ``i`` is ``(<unk>, TAB, newline, *words)[i]``; any word not in ``words`` encodes to 0."""

    kind = "word"

    def __init__(self, words: Sequence[str]) -> None:
        self._tokens = (*SPECIALS, *_check_words(words))
        self._id = {token: i for i, token in enumerate(self._tokens)}

    @classmethod
    def train(cls, text: str, *, vocab_size: int | None = None, min_freq: int = 1) -> WordTokenizer:
        """The words of ``text`` seen at least ``min_freq`` times, most frequent first (ties by first
        occurrence), at most ``vocab_size - 3`` of them when ``vocab_size`` is given."""
        if vocab_size is not None and vocab_size < len(SPECIALS) + 1:
            raise TokenizerError(f"a word tokenizer needs vocab_size of at least {len(SPECIALS) + 1} "
                                 f"(its {len(SPECIALS)} special tokens and one word), got {vocab_size}")
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
            words = words[:vocab_size - len(SPECIALS)]
        return cls(words)

    @property
    def words(self) -> tuple[str, ...]:
        """The vocabulary's words, in id order from id 3 (without the special tokens)."""
        return self._tokens[len(SPECIALS):]

    @property
    def unknown_id(self) -> int:
        """The id that every word outside the vocabulary encodes to."""
        return 0

    @property
    def vocab_size(self) -> int:
        return len(self._tokens)

    def encode_array(self, text: str) -> np.ndarray:
        encode_text(text, "utf-8")
        ids = [self._id.get(token, 0) for token in token_pattern().findall(text)]
        return np.array(ids, dtype=np.int64)

    def safe_cut(self, text: str, limit: int) -> int:
        # No token_pattern() match holds whitespace beside another character (TAB and newline are tokens of
        # their own, other whitespace only separates), and the pattern has no lookaround: a cut just
        # before a space, TAB or newline leaves every match on both sides as it was.
        return max(0, *(text.rfind(space, 1, limit + 1) for space in " \t\n"))

    def decode(self, ids: IdsLike) -> str:
        pieces: list[str] = []
        previous = "\n"
        for i in self._id_array(ids).tolist():
            token = self._tokens[i]
            if previous not in _BREAKS and token not in _BREAKS:
                pieces.append(" ")
            pieces.append(token)
            previous = token
        return "".join(pieces)

    def decode_bytes(self, ids: IdsLike) -> bytes:
        return self.decode(ids).encode("utf-8")

    def token_strings(self) -> list[str]:
        return [UNKNOWN, *(printable(t) for t in self._tokens[1:])]

    def to_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, "words": list(self.words)}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> WordTokenizer:
        return cls(require_field(d, "words", list))


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
