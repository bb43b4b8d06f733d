"""Byte fallback: 256 byte tokens after a vocabulary, for whatever the vocabulary cannot spell.

SentencePiece's ``byte_fallback`` (used by LLaMA's tokenizer): the vocabulary gets one token per byte
value, shown ``<0x00>`` … ``<0xFF>``, and a piece of text that no vocabulary entry covers (for the
char kind an unseen character, for the word kind an unknown word or spacing it would not restore) is
encoded as the ids of its UTF-8 bytes. Decoding writes those bytes back, so the round trip is exact
for every text UTF-8 can encode (a lone surrogate cannot be, and is a one-line error).

The byte tokens are ids, never text: encoding looks for them in no string, so a text holding the
characters ``<0x41>`` is not read as the byte token of ``A``. Here they come after the kind's own
ids (``offset + b`` is byte ``b``), which keeps those ids as they are without byte fallback.

    >>> utf8_ids("é", offset=10).tolist()
    [205, 179]
"""

from __future__ import annotations

from typing import Any

import numpy as np

from seqlab.errors import TokenizerError
from seqlab.tokenizers.base import encode_text
from seqlab.tokenizers.byte import N_BYTES


def byte_token_strings() -> list[str]:
    """The display strings of the 256 byte tokens, ``<0x00>`` … ``<0xFF>`` (SentencePiece's)."""
    return [f"<0x{b:02X}>" for b in range(N_BYTES)]


def utf8_ids(text: str, offset: int) -> np.ndarray:
    """The byte-token ids of ``text``'s UTF-8 encoding: ``offset + b`` for each byte ``b``, as int64."""
    return np.frombuffer(encode_text(text, "utf-8"), dtype=np.uint8).astype(np.int64) + offset


def read_byte_fallback(d: dict[str, Any]) -> bool:
    """The ``byte_fallback`` field of a tokenizer description; a file written before it existed
    has none and means false."""
    value = d.get("byte_fallback", False)
    if not isinstance(value, bool):
        raise TokenizerError(f"{d.get('kind', '?')} tokenizer field 'byte_fallback' has type "
                             f"{type(value).__name__}; save the tokenizer again with seqlab")
    return value


def check_one_fallback(unknown_token: bool, byte_fallback: bool) -> None:
    """Refuse both ways of encoding an unseen character at once."""
    if unknown_token and byte_fallback:
        raise TokenizerError("unknown_token and byte_fallback both say what an unseen character becomes "
                             "(<unk>, or its UTF-8 bytes); choose one")
