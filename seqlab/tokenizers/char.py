"""Character-level tokenizer: one id per Unicode code point of the training text.

This is the vocabulary of Karpathy's char-rnn and of nanoGPT's ``data/shakespeare_char/prepare.py``:
the sorted set of the characters in the training text, ids in that order
(``chars = sorted(set(text)); stoi = {ch: i for i, ch in enumerate(chars)}``). On Tiny Shakespeare
that gives 65 characters, with ``"\\n"`` id 0 and ``" "`` id 1.

    >>> tok = CharTokenizer.train("hello")
    >>> tok.token_strings(), tok.encode("hole")
    (['e', 'h', 'l', 'o'], [1, 3, 2, 0])

A character outside the vocabulary is an error that names it, unless the tokenizer was built with
one of two fallbacks:

- ``byte_fallback=True`` (``seqlab.tokenizers.fallback``, what a config gets by default): 256 byte
  ids follow the characters (``vocab_size == len(chars) + 256``) and an unseen character is encoded
  as the ids of its UTF-8 bytes, so ``decode(encode(text)) == text`` for every text;
- ``unknown_token=True``: one extra id, the last (``vocab_size == len(chars) + 1``), stands for
  every unseen character and decodes to U+FFFD, the Unicode replacement character.

    >>> tok = CharTokenizer.train("hello", byte_fallback=True)
    >>> tok.encode("hé"), tok.decode(tok.encode("hé"))
    ([1, 199, 173], 'hé')

The characters keep their ids either way: id ``i`` is ``chars[i]`` with or without a fallback.
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
from seqlab.tokenizers.fallback import (
    N_BYTES,
    byte_token_strings,
    check_one_fallback,
    read_byte_fallback,
    utf8_ids,
)

REPLACEMENT_CHARACTER = "\ufffd"
MAX_CODE_POINT = 0x10FFFF


class CharTokenizer(Tokenizer):
    """Id ``i`` is ``chars[i]``; with ``unknown_token``, id ``len(chars)`` is any other char; with
    ``byte_fallback``, ids ``len(chars) + b`` are the UTF-8 bytes ``b`` of any other char."""

    kind = "char"

    def __init__(self, chars: Sequence[str], *, unknown_token: bool = False, byte_fallback: bool = False) -> None:
        self._chars = tuple(_check_chars(chars))
        check_one_fallback(unknown_token, byte_fallback)
        self._unknown_token = bool(unknown_token)
        self._byte_fallback = bool(byte_fallback)
        codes = np.array([ord(c) for c in self._chars], dtype=np.int64)
        # Code point -> id, -1 where the character is not in the vocabulary. At most 0x110000
        # entries; for text vocabularies it is small (Tiny Shakespeare: 123 entries).
        self._lookup = np.full(int(codes.max()) + 1, -1, dtype=np.int64)
        self._lookup[codes] = np.arange(len(codes))
        # Id -> code point, for decoding by a single gather; the unknown id decodes to U+FFFD.
        self._code_of_id = np.append(codes, ord(REPLACEMENT_CHARACTER)).astype("<u4")

    @classmethod
    def train(cls, text: str | Iterable[str], *, unknown_token: bool = False,
              byte_fallback: bool = False) -> CharTokenizer:
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
        return cls([chr(code) for code in np.flatnonzero(seen)], unknown_token=unknown_token,
                   byte_fallback=byte_fallback)

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
    def byte_fallback(self) -> bool:
        """Whether unseen characters are encoded as their UTF-8 bytes instead of failing."""
        return self._byte_fallback

    @property
    def byte_fallback_offset(self) -> int | None:
        return len(self._chars) if self._byte_fallback else None

    @property
    def vocab_size(self) -> int:
        return len(self._chars) + int(self._unknown_token) + N_BYTES * self._byte_fallback

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
        if not unseen.any():
            return ids
        if self._byte_fallback:
            return self._spell_unseen(text, ids, np.flatnonzero(unseen))
        if not self._unknown_token:
            raise self._unseen_error(text, int(np.argmax(unseen)))
        ids[unseen] = len(self._chars)
        return ids

    def _spell_unseen(self, text: str, ids: np.ndarray, unseen: np.ndarray) -> np.ndarray:
        """``ids`` with each unseen character (at the positions ``unseen``) replaced by its bytes."""
        # One code point per character (no surrogates reach here), so positions in ids are positions in text.
        pieces, start = [], 0
        for position in unseen.tolist():
            pieces += [ids[start:position], utf8_ids(text[position], len(self._chars))]
            start = position + 1
        pieces.append(ids[start:])
        return np.concatenate(pieces)

    def decode(self, ids: IdsLike) -> str:
        arr = self._id_array(ids)
        if self._byte_fallback and (arr >= len(self._chars)).any():
            return self._decode_with_bytes(arr).decode("utf-8", errors="replace")
        return self._code_of_id[arr].tobytes().decode("utf-32-le")

    def decode_bytes(self, ids: IdsLike) -> bytes:
        arr = self._id_array(ids)
        if self._byte_fallback and (arr >= len(self._chars)).any():
            return self._decode_with_bytes(arr)
        return self._code_of_id[arr].tobytes().decode("utf-32-le").encode("utf-8")

    def _decode_with_bytes(self, arr: np.ndarray) -> bytes:
        """The bytes of ids that include byte ids: each run of character ids by the one gather, each
        byte id as its byte."""
        n_chars, out = len(self._chars), bytearray()
        is_byte = arr >= n_chars
        edges = np.flatnonzero(np.diff(is_byte.astype(np.int8))) + 1  # where a run of one sort ends
        for run in np.split(arr, edges):
            if run[0] >= n_chars:
                out += (run - n_chars).astype(np.uint8).tobytes()
            else:
                out += self._code_of_id[run].tobytes().decode("utf-32-le").encode("utf-8")
        return bytes(out)

    def token_strings(self) -> list[str]:
        strings = [printable(c) for c in self._chars]
        return (strings + (["<unk>"] if self._unknown_token else [])
                + (byte_token_strings() if self._byte_fallback else []))

    def to_dict(self) -> dict[str, Any]:
        # Written only when on: a description without it (every file from before) reads as false,
        # and a tokenizer without byte fallback keeps its description and fingerprint.
        fallback = {"byte_fallback": True} if self._byte_fallback else {}
        return {"kind": self.kind, "chars": list(self._chars), "unknown_token": self._unknown_token, **fallback}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> CharTokenizer:
        chars = require_field(d, "chars", list)
        unknown_token = require_field(d, "unknown_token", bool)
        return cls(chars, unknown_token=unknown_token, byte_fallback=read_byte_fallback(d))

    def _unseen_error(self, text: str, position: int) -> TokenizerError:
        ch = text[position]
        return TokenizerError(
            f"character {ch!r} (U+{ord(ch):04X}) at position {position} is not in the char "
            f"vocabulary ({len(self._chars)} characters); train the tokenizer on text that "
            "contains it, or set tokenizer.byte_fallback = true (its UTF-8 bytes) or "
            "tokenizer.unknown_token = true (<unk>)")


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
