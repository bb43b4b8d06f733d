"""Any Hugging Face ``tokenizer.json``, as shipped with pretrained models, behind seqlab's interface.

The ``hf`` kind wraps a ``tokenizers.Tokenizer`` read from a ``tokenizer.json`` (GPT-2's byte-level
BPE, LLaMA's SentencePiece-style BPE, WordPiece, ...). It is what ``seqlab import-hf`` stores in a
run, so an imported model samples and evaluates with the tokenizer it was trained with.

    >>> tok = HFTokenizer.from_file("gpt2/tokenizer.json")  # doctest: +SKIP
    >>> tok.decode(tok.encode("Hello world"))  # doctest: +SKIP
    'Hello world'

Exactness depends on the tokenizer: seqlab's own kinds guarantee ``decode(encode(text)) == text``,
this one only as far as the wrapped tokenizer does (a normalizer, an unknown token or a stripped
prefix space lose information). ``encode`` never adds special tokens (BOS/EOS): seqlab's data and
prompts are plain text. ``decode`` is Hugging Face's ``decode`` (special tokens kept). For
``decode_bytes`` (streaming), a byte-level tokenizer (GPT-2's ``ByteLevel`` decoder) maps each token
back to its exact bytes, so a character split across tokens streams correctly; any other tokenizer
returns the UTF-8 of ``decode``, which on one token at a time may differ from decoding the whole
sequence (e.g. SentencePiece's leading-space stripping).

``vocab_size`` may be larger than the tokenizer's own (a model's embedding is often padded, e.g. to a
multiple of 64): the extra ids decode to nothing.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import numpy as np
from tokenizers import Tokenizer as _Wrapped

from seqlab.errors import TokenizerError
from seqlab.tokenizers.base import (
    IdsLike,
    Tokenizer,
    encode_text,
    printable,
    require_field,
)
from seqlab.tokenizers.bpe import bytes_to_unicode


class HFTokenizer(Tokenizer):
    """A Hugging Face ``tokenizers.Tokenizer`` (from a ``tokenizer.json``) as a seqlab tokenizer."""

    kind = "hf"

    def __init__(self, hf_tokenizer: _Wrapped, *, vocab_size: int | None = None) -> None:
        hf_tokenizer.no_truncation()  # ids must cover the whole text, unpadded
        hf_tokenizer.no_padding()
        self._hf = hf_tokenizer
        self._hf_dict = json.loads(hf_tokenizer.to_str())
        vocab = hf_tokenizer.get_vocab(with_added_tokens=True)
        own = max(vocab.values()) + 1 if vocab else 0
        if vocab_size is not None and vocab_size < own:
            raise TokenizerError(f"hf tokenizer has {own} ids, more than vocab_size {vocab_size}; "
                                 "use a model whose vocabulary covers the tokenizer")
        self._vocab_size = own if vocab_size is None else vocab_size
        self._bytes_of_id = _byte_level_table(hf_tokenizer, self._hf_dict, self._vocab_size)

    @classmethod
    def from_file(cls, path: str | os.PathLike[str], *, vocab_size: int | None = None) -> HFTokenizer:
        """Read a Hugging Face ``tokenizer.json``; every problem names the file."""
        path = Path(path)
        try:
            text = path.read_text(encoding="utf-8")
        except FileNotFoundError:
            raise TokenizerError(f"tokenizer file {path} does not exist") from None
        except (OSError, UnicodeDecodeError) as err:
            raise TokenizerError(f"cannot read tokenizer file {path} ({err})") from None
        try:
            return cls(_parse(text), vocab_size=vocab_size)
        except TokenizerError as err:
            raise TokenizerError(f"tokenizer file {path}: {err}") from None

    @property
    def vocab_size(self) -> int:
        return self._vocab_size

    @property
    def hf_tokenizer(self) -> _Wrapped:
        """The wrapped ``tokenizers.Tokenizer`` (for interop; do not change its settings)."""
        return self._hf

    def hf_json(self) -> dict[str, Any]:
        """The ``tokenizer.json`` content (truncation and padding off)."""
        return self._hf_dict

    def encode(self, text: str) -> list[int]:
        encode_text(text, "utf-8")  # rejects lone surrogates with their position
        return self._hf.encode(text, add_special_tokens=False).ids

    def encode_array(self, text: str) -> np.ndarray:
        return np.array(self.encode(text), dtype=np.int64)

    def decode(self, ids: IdsLike) -> str:
        return self._hf.decode(self._id_array(ids).tolist(), skip_special_tokens=False)

    def decode_bytes(self, ids: IdsLike) -> bytes:
        arr = self._id_array(ids)
        if self._bytes_of_id is not None:
            table = self._bytes_of_id
            return b"".join([table[i] for i in arr.tolist()])
        return self._hf.decode(arr.tolist(), skip_special_tokens=False).encode("utf-8")

    def token_strings(self) -> list[str]:
        if self._bytes_of_id is not None:
            return [printable(b.decode("utf-8", errors="replace")) for b in self._bytes_of_id]
        return [printable(self._hf.id_to_token(i) or "") for i in range(self._vocab_size)]

    def to_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, "vocab_size": self._vocab_size, "hf_tokenizer": self._hf_dict}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> HFTokenizer:
        hf_dict = require_field(d, "hf_tokenizer", dict)
        vocab_size = require_field(d, "vocab_size", int)
        return cls(_parse(json.dumps(hf_dict, ensure_ascii=False)), vocab_size=vocab_size)


def _parse(text: str) -> _Wrapped:
    try:
        return _Wrapped.from_str(text)
    except Exception as err:  # noqa: BLE001 (tokenizers raises plain Exception for bad JSON content)
        first_line = str(err).splitlines()[0] if str(err) else type(err).__name__
        raise TokenizerError(f"not a tokenizer.json the tokenizers library can read ({first_line})") from None


def _byte_level_table(hf: _Wrapped, hf_dict: dict[str, Any], vocab_size: int) -> list[bytes] | None:
    """Id → its exact bytes when the tokenizer is byte-level (GPT-2's ``ByteLevel`` decoder and
    every token made of byte symbols; added tokens stand for their text), else None."""
    if (hf_dict.get("decoder") or {}).get("type") != "ByteLevel":
        return None
    byte_of_char = {c: b for b, c in bytes_to_unicode().items()}
    added = {t.content for t in hf.get_added_tokens_decoder().values()}
    table = [b""] * vocab_size  # ids without a token (embedding padding) stand for nothing
    for token, i in hf.get_vocab(with_added_tokens=True).items():
        if token in added:
            table[i] = token.encode("utf-8")
        elif all(c in byte_of_char for c in token):
            table[i] = bytes(byte_of_char[c] for c in token)
        else:
            return None
    return table
