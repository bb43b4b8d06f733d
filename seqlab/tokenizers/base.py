"""The tokenizer interface: text to integer ids and back, exactly.

A tokenizer maps a string to a sequence of ids in ``range(vocab_size)`` and back, so that
``decode(encode(text)) == text`` for every text it can encode. Every kind also gives

- ``encode_array``: the same ids as a 1-D int64 numpy array, fast enough for multi-megabyte corpora;
- ``decode_bytes``: the UTF-8 bytes of the decoded text, for streaming output (a byte-level token
  can end in the middle of a character, so a sampler feeds these to an incremental UTF-8 decoder);
- ``to_dict`` / ``save``: a JSON description that rebuilds the tokenizer (no pickle);
- ``fingerprint``: the sha256 of that description, used as a cache key for tokenized corpora.

The interface follows minbpe's ``Tokenizer`` (train / encode / decode / save / load), with the
vocabulary stored as JSON data rather than as a model file.
"""

from __future__ import annotations

import hashlib
import json
import os
from abc import ABC, abstractmethod
from collections.abc import Iterable
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from seqlab.errors import TokenizerError
from seqlab.files import atomic_open

IdsLike = Iterable[int] | np.ndarray  # also torch tensors (anything with .tolist())


class Tokenizer(ABC):
    """Maps text to ids in ``range(vocab_size)`` and back."""

    kind: ClassVar[str]

    @property
    @abstractmethod
    def vocab_size(self) -> int:
        """The number of ids; every id this tokenizer produces is below it."""

    @abstractmethod
    def encode_array(self, text: str) -> np.ndarray:
        """The ids of ``text`` as a 1-D int64 array (the fast path for whole corpora)."""

    @abstractmethod
    def decode_bytes(self, ids: IdsLike) -> bytes:
        """The UTF-8 bytes that ``ids`` stand for; may end in the middle of a character."""

    @abstractmethod
    def token_strings(self) -> list[str]:
        """A printable string per id, for inspection."""

    @abstractmethod
    def to_dict(self) -> dict[str, Any]:
        """A JSON-serialisable description, with ``"kind"``, that rebuilds this tokenizer."""

    @classmethod
    @abstractmethod
    def from_dict(cls, d: dict[str, Any]) -> Tokenizer:
        """Rebuild from ``to_dict()``; a malformed dict raises TokenizerError."""

    @property
    def byte_fallback_offset(self) -> int | None:
        """The id of byte 0x00 when this tokenizer spells what its vocabulary lacks in UTF-8 bytes
        (``seqlab.tokenizers.fallback``: ids ``offset`` … ``offset + 255`` are the bytes 0x00 …
        0xFF); None for a kind without byte fallback, or one built without it."""
        return None

    def safe_cut(self, text: str, limit: int) -> int:
        """The last place ``i`` with ``0 < i <= limit`` where ``text`` (and whatever follows it)
        can be cut without changing its ids: ``encode(text[:i]) + encode(rest) == encode(text +
        rest)`` for the rest ``text[i:] + ...``; 0 if there is none.

        The token cache encodes a corpus in pieces cut here. This default knows no cut, so the text
        is encoded whole; each kind whose splitting rule allows it says where.
        """
        del text, limit
        return 0

    def encode(self, text: str) -> list[int]:
        """The ids of ``text`` as a list of ints."""
        return self.encode_array(text).tolist()

    def decode(self, ids: IdsLike) -> str:
        """The text that ``ids`` stand for; an incomplete UTF-8 sequence decodes to U+FFFD."""
        return self.decode_bytes(ids).decode("utf-8", errors="replace")

    def save(self, path: str | os.PathLike[str]) -> None:
        """Write ``to_dict()`` as JSON; a crash mid-write leaves any previous file whole."""
        write_json_atomic(Path(path), self.to_dict())

    def fingerprint(self) -> str:
        """The sha256 hex digest of the canonical JSON of ``to_dict()``."""
        canonical = json.dumps(self.to_dict(), sort_keys=True, ensure_ascii=False)
        return hashlib.sha256(canonical.encode("utf-8")).hexdigest()

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Tokenizer) and self.to_dict() == other.to_dict()

    def __hash__(self) -> int:
        return hash(self.fingerprint())

    def __repr__(self) -> str:
        return f"{type(self).__name__}(vocab_size={self.vocab_size})"

    def _id_array(self, ids: IdsLike) -> np.ndarray:
        """``ids`` as a 1-D int64 array, every id checked to be in ``range(vocab_size)``."""
        arr = as_id_array(ids)
        bad = (arr < 0) | (arr >= self.vocab_size)
        if bad.any():
            pos = int(np.argmax(bad))
            raise TokenizerError(
                f"token id {int(arr[pos])} at position {pos} is out of range for this {self.kind} "
                f"tokenizer (vocab_size {self.vocab_size}); decode ids made by the same tokenizer")
        return arr


def as_id_array(ids: IdsLike) -> np.ndarray:
    """Any 1-D sequence of ints (list, numpy array, torch tensor on any device) as int64."""
    if isinstance(ids, np.ndarray):
        arr = ids
    elif hasattr(ids, "tolist"):
        arr = np.asarray(ids.tolist())  # torch tensors, also on CUDA or MPS
    else:
        arr = np.asarray(list(ids))
    if arr.ndim > 1:
        raise TokenizerError(f"decode takes a 1-D sequence of ids, got shape {tuple(arr.shape)}; "
                             "decode each row separately")
    arr = arr.reshape(-1)
    if arr.size == 0:
        return np.zeros(0, dtype=np.int64)
    if not np.issubdtype(arr.dtype, np.integer):
        raise TokenizerError(f"token ids must be integers, got dtype {arr.dtype}; "
                             "pass the ids as ints (e.g. tensor.long())")
    return arr.astype(np.int64, copy=False)


def printable(s: str) -> str:
    """``s`` with every non-printable character (newline, tab, controls, ...) as ``<U+XXXX>``."""
    return "".join(c if c.isprintable() else f"<U+{ord(c):04X}>" for c in s)


def encode_text(text: str, codec: str) -> bytes:
    """``text.encode(codec)``, turning a lone surrogate into a TokenizerError with its position."""
    try:
        return text.encode(codec)
    except UnicodeEncodeError as err:
        raise TokenizerError(
            f"character {text[err.start]!r} (U+{ord(text[err.start]):04X}) at position {err.start} "
            "is a lone surrogate, not valid Unicode text; read the input with errors='replace' "
            "instead of 'surrogateescape'") from None


def write_json_atomic(path: Path, obj: Any) -> None:
    """Write ``obj`` as one line of UTF-8 JSON, atomically."""
    with atomic_open(path, "w") as f:
        json.dump(obj, f, ensure_ascii=False)
        f.write("\n")


def require_field(d: dict[str, Any], key: str, expected: type | tuple[type, ...]) -> Any:
    """``d[key]``, checked to exist and have type ``expected``; else a TokenizerError."""
    kind = d.get("kind", "?")
    if key not in d:
        raise TokenizerError(f"{kind} tokenizer description has no {key!r} field; "
                             "save the tokenizer again with seqlab")
    value = d[key]
    if not isinstance(value, expected) or (expected is int and isinstance(value, bool)):
        raise TokenizerError(f"{kind} tokenizer field {key!r} has type {type(value).__name__}; "
                             "save the tokenizer again with seqlab")
    return value
