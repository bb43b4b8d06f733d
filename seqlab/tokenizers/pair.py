"""A tokenizer per side of a translation pair: the source's and the target's, saved as one file.

A seq2seq run over two languages may give each side its own vocabulary (`tokenizer.shared = false`):
German words never need English ids, and a character task's target alphabet can be tiny. A
`PairTokenizer` holds both tokenizers. As a `Tokenizer` it behaves as the **target** side, the side a
model generates and a sampler decodes (`encode`, `decode`, `vocab_size`, `token_strings`), and
`source` encodes what the encoder reads:

    pair = PairTokenizer(train_tokenizer("word", english), train_tokenizer("word", german))
    src_ids = pair.source.encode("a dog runs .")     # the encoder's ids
    tgt_ids = pair.encode("ein hund rennt .")         # the decoder's ids
    pair.save(run_dir / "tokenizer.json")             # {"kind": "pair", "source": {...}, "target": {...}}

A shared vocabulary needs no pair: the one tokenizer serves both sides (`source_side` returns it).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from seqlab.errors import TokenizerError
from seqlab.tokenizers.base import IdsLike, Tokenizer


class PairTokenizer(Tokenizer):
    """The source side's and the target side's tokenizers; the Tokenizer interface is the target's."""

    kind = "pair"

    def __init__(self, source: Tokenizer, target: Tokenizer) -> None:
        if isinstance(source, PairTokenizer) or isinstance(target, PairTokenizer):
            raise TokenizerError("a pair tokenizer holds two plain tokenizers, not pairs")
        self.source = source
        self.target = target

    @property
    def vocab_size(self) -> int:
        return self.target.vocab_size

    @property
    def byte_fallback_offset(self) -> int | None:
        return self.target.byte_fallback_offset

    def encode_array(self, text: str) -> np.ndarray:
        return self.target.encode_array(text)

    def encode(self, text: str) -> list[int]:
        return self.target.encode(text)

    def decode_bytes(self, ids: IdsLike) -> bytes:
        return self.target.decode_bytes(ids)

    def decode(self, ids: IdsLike) -> str:
        return self.target.decode(ids)

    def token_strings(self) -> list[str]:
        return self.target.token_strings()

    def to_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, "source": self.source.to_dict(), "target": self.target.to_dict()}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> PairTokenizer:
        from seqlab.tokenizers import tokenizer_from_dict  # the registry of kinds imports this module

        if not isinstance(d.get("source"), dict) or not isinstance(d.get("target"), dict):
            raise TokenizerError("a pair tokenizer description needs 'source' and 'target' objects")
        return cls(tokenizer_from_dict(d["source"]), tokenizer_from_dict(d["target"]))


def source_side(tokenizer: Tokenizer) -> Tokenizer:
    """The tokenizer of a seq2seq run's sources: a pair's `source`, or the shared tokenizer itself."""
    return tokenizer.source if isinstance(tokenizer, PairTokenizer) else tokenizer


def source_vocab_size(tokenizer: Tokenizer) -> int | None:
    """A pair's source vocabulary size, or None for one tokenizer (a shared vocabulary): what
    `build_model(..., source_vocab_size=...)` takes."""
    return tokenizer.source.vocab_size if isinstance(tokenizer, PairTokenizer) else None


__all__ = ["PairTokenizer", "source_side", "source_vocab_size"]
