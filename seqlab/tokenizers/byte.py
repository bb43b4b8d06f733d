"""Byte-level tokenizer: one id per byte of the text's UTF-8 encoding (256 ids, nothing to learn).

The vocabulary of byte-level models such as ByT5 (Xue et al. 2022, without its 3 special ids) and
the starting alphabet of byte-level BPE (GPT-2; minbpe's ``BasicTokenizer`` before any merge):
id ``b`` is the byte ``b``, so ``encode(text) == list(text.encode("utf-8"))``.

    >>> ByteTokenizer().encode("hé")
    [104, 195, 169]

Any Unicode text can be encoded. A slice of ids may end inside a multi-byte character:
``decode`` then shows U+FFFD for the incomplete tail, and ``decode_bytes`` gives the raw bytes for
an incremental UTF-8 decoder.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from seqlab.tokenizers.base import IdsLike, Tokenizer, encode_text

N_BYTES = 256


class ByteTokenizer(Tokenizer):
    """Id ``b`` is the byte ``b`` of the UTF-8 encoding."""

    kind = "byte"

    @classmethod
    def train(cls, text: str = "") -> ByteTokenizer:
        """Nothing to learn: every text is covered by the 256 bytes."""
        del text
        return cls()

    @property
    def vocab_size(self) -> int:
        return N_BYTES

    def encode_array(self, text: str) -> np.ndarray:
        return np.frombuffer(encode_text(text, "utf-8"), dtype=np.uint8).astype(np.int64)

    def safe_cut(self, text: str, limit: int) -> int:
        # Each character's bytes are its own: a cut anywhere between characters keeps the ids.
        return min(limit, len(text))

    def decode_bytes(self, ids: IdsLike) -> bytes:
        return self._id_array(ids).astype(np.uint8).tobytes()

    def token_strings(self) -> list[str]:
        # Printable ASCII as itself; control bytes and the bytes of multi-byte characters
        # (which are not characters on their own) in the <0x0A> style of SentencePiece.
        return [chr(b) if 0x20 <= b < 0x7F else f"<0x{b:02X}>" for b in range(N_BYTES)]

    def to_dict(self) -> dict[str, Any]:
        return {"kind": self.kind}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> ByteTokenizer:
        del d  # nothing to read: the vocabulary is fixed
        return cls()
