"""Character-level tokenizer: one id per Unicode code point of the training text.

This is the vocabulary of Karpathy's char-rnn and of nanoGPT's ``data/shakespeare_char/prepare.py``:
the sorted set of the characters in the training text, ids in that order
(``chars = sorted(set(text)); stoi = {ch: i for i, ch in enumerate(chars)}``). On Tiny Shakespeare
that gives 65 characters, with ``"\\n"`` id 0 and ``" "`` id 1.

    >>> tok = CharTokenizer.train("hello")
    >>> tok.token_strings(), tok.encode("hole")
    (['e', 'h', 'l', 'o'], [1, 3, 2, 0])

A character outside the vocabulary is an error that names it, unless the tokenizer was built with
``unknown_token=True``: then one extra id, the last (``vocab_size == len(chars) + 1``), stands for
every unseen character and decodes to U+FFFD, the Unicode replacement character.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
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

REPLACEMENT_CHARACTER = "\ufffd"
MAX_CODE_POINT = 0x10FFFF


class CharTokenizer(Tokenizer):
    """Id ``i`` is ``chars[i]``; with ``unknown_token``, id ``len(chars)`` is any other char."""

    kind = "char"

    def __init__(self, chars: Sequence[str], *, unknown_token: bool = False) -> None:
        self._chars = tuple(_check_chars(chars))
        self._unknown_token = bool(unknown_token)
        codes = np.array([ord(c) for c in self._chars], dtype=np.int64)
        # Code point -> id, -1 where the character is not in the vocabulary. At most 0x110000
        # entries; for text vocabularies it is small (Tiny Shakespeare: 123 entries).
        self._lookup = np.full(int(codes.max()) + 1, -1, dtype=np.int64)
        self._lookup[codes] = np.arange(len(codes))
        # Id -> code point, for decoding by a single gather; the unknown id decodes to U+FFFD.
        self._code_of_id = np.append(codes, ord(REPLACEMENT_CHARACTER)).astype("<u4")

    @classmethod
    def train(cls, text: str | Iterable[str], *, unknown_token: bool = False) -> CharTokenizer:
        """The sorted set of the characters of ``text``, as nanoGPT's shakespeare_char builds it.

        ``text`` may also be given in pieces (a corpus read in chunks): the vocabulary is the union
        of their characters, the same as that of their concatenation.
        """
        pieces = [text] if isinstance(text, str) else text
        seen = np.zeros(MAX_CODE_POINT + 1, dtype=bool)  # code point -> occurs in the text
        for piece in pieces:
            _mark_chars(seen, piece)
        if not seen.any():
            raise TokenizerError("cannot train a char tokenizer on empty text; "
                                 "give it a corpus with at least one character")
        return cls([chr(code) for code in np.flatnonzero(seen)], unknown_token=unknown_token)

    def safe_cut(self, text: str, limit: int) -> int:
        # One id per character: a cut anywhere keeps the ids.
        return min(limit, len(text))

    @property
    def chars(self) -> tuple[str, ...]:
        """The vocabulary, in id order (without the unknown token)."""
        return self._chars

    @property
    def unknown_token(self) -> bool:
        """Whether unseen characters map to the extra id ``len(chars)`` instead of failing."""
        return self._unknown_token

    @property
    def unknown_id(self) -> int | None:
        """The id that stands for any unseen character, or None without ``unknown_token``."""
        return len(self._chars) if self._unknown_token else None

    @property
    def vocab_size(self) -> int:
        return len(self._chars) + int(self._unknown_token)

    def encode_array(self, text: str) -> np.ndarray:
        codes = np.frombuffer(encode_text(text, "utf-32-le"), dtype="<u4")
        if codes.size == 0:
            return np.zeros(0, dtype=np.int64)
        if int(codes.max()) < len(self._lookup):
            ids = self._lookup[codes]
        else:
            ids = np.full(codes.shape, -1, dtype=np.int64)
            inside = codes < len(self._lookup)
            ids[inside] = self._lookup[codes[inside]]
        unseen = ids < 0
        if unseen.any():
            if not self._unknown_token:
                raise self._unseen_error(text, int(np.argmax(unseen)))
            ids[unseen] = len(self._chars)
        return ids

    def decode(self, ids: IdsLike) -> str:
        codes = self._code_of_id[self._id_array(ids)]
        return codes.tobytes().decode("utf-32-le")

    def decode_bytes(self, ids: IdsLike) -> bytes:
        return self.decode(ids).encode("utf-8")

    def token_strings(self) -> list[str]:
        strings = [printable(c) for c in self._chars]
        return strings + (["<unk>"] if self._unknown_token else [])

    def to_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, "chars": list(self._chars),
                "unknown_token": self._unknown_token}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> CharTokenizer:
        chars = require_field(d, "chars", list)
        unknown_token = require_field(d, "unknown_token", bool)
        return cls(chars, unknown_token=unknown_token)

    def _unseen_error(self, text: str, position: int) -> TokenizerError:
        ch = text[position]
        return TokenizerError(
            f"character {ch!r} (U+{ord(ch):04X}) at position {position} is not in the char "
            f"vocabulary ({len(self._chars)} characters); train the tokenizer on text that "
            "contains it or set tokenizer.unknown_token = true")


def _mark_chars(seen: np.ndarray, text: str) -> None:
    """Set ``seen[ord(c)]`` for every character ``c`` of ``text``, vectorised.

    The ASCII characters already seen are first deleted from the UTF-8 bytes (an ASCII byte is
    never part of a longer character, and ``bytes.translate`` runs at memory speed), so a corpus
    read in many pieces costs one fast pass over each instead of a gather per character.
    """
    utf8 = encode_text(text, "utf-8")  # rejects lone surrogates with their position
    known_ascii = np.flatnonzero(seen[:128]).astype(np.uint8).tobytes()
    rest = utf8.translate(None, known_ascii).decode("utf-8")
    seen[np.frombuffer(rest.encode("utf-32-le"), dtype="<u4")] = True


def _check_chars(chars: Sequence[str]) -> list[str]:
    """``chars`` as a list, checked to be distinct single code points that UTF-8 can encode."""
    chars = list(chars)
    if not chars:
        raise TokenizerError("a char tokenizer needs at least one character; "
                             "train it on non-empty text")
    for i, c in enumerate(chars):
        if not isinstance(c, str) or len(c) != 1:
            raise TokenizerError(f"char vocabulary entry {i} is {c!r}, not a single character; "
                                 "give one code point per entry")
        if 0xD800 <= ord(c) <= 0xDFFF:
            raise TokenizerError(f"char vocabulary entry {i} is a lone surrogate "
                                 f"(U+{ord(c):04X}), not valid Unicode; remove it")
    if len(set(chars)) != len(chars):
        dup = next(c for i, c in enumerate(chars) if c in chars[:i])
        raise TokenizerError(f"char vocabulary lists {dup!r} more than once; "
                             "give each character once")
    return chars
