"""The token cache: token ids of a text, encoded once and memory-mapped from disk afterwards.

A cache entry is a `.npy` file of token ids (uint16 when the vocabulary fits, else uint32) and a
JSON sidecar with the token count, keyed by sha256(text), the tokenizer's fingerprint and the dtype.
Both are written to a temporary name, fsynced and renamed into place, so a kill at any moment leaves
either a whole entry or none. An entry that does not load, or disagrees with its sidecar, is rebuilt
with a warning. `prepare_tokens` turns a text or a corpus into the training and validation token
arrays.

Nothing here holds a whole text or its ids in memory: a text is hashed and encoded in pieces of at
most `CHUNK_CHARS` characters (cut where the tokenizer's `safe_cut` allows, so the ids are those of
the whole text), and the ids are written piece by piece into the `.npy` file. A corpus larger than
memory therefore trains from its memory-mapped ids.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, Protocol

import numpy as np

from seqlab.data import corpus as corpus_module
from seqlab.data.corpus import Corpus, TextSpan, split_corpus
from seqlab.data.paths import token_cache_dir
from seqlab.errors import DataError
from seqlab.files import atomic_open, atomic_write_text

logger = logging.getLogger(__name__)

_FORMAT = 1  # bump when the layout of an entry changes: old entries then miss and are rebuilt


class Encoder(Protocol):
    """What the cache needs of a tokenizer.

    It may also have `safe_cut(text, limit) -> int` (see `seqlab.tokenizers.Tokenizer.safe_cut`):
    an encoder without it is given each text whole.
    """

    vocab_size: int

    def encode_array(self, text: str) -> np.ndarray: ...

    def fingerprint(self) -> str: ...


@dataclass(frozen=True)
class TokenData:
    """The token ids of the training and validation text, and how many characters each came from.

    The character counts turn a loss per token into bits per character.
    """

    train: np.ndarray
    val: np.ndarray
    train_chars: int
    val_chars: int


def token_dtype(vocab_size: int) -> np.dtype:
    """The smallest unsigned dtype that holds every id below `vocab_size`: uint16 or uint32."""
    return np.dtype(np.uint16) if vocab_size <= 1 << 16 else np.dtype(np.uint32)


def prepare_tokens(text: str | Corpus, tokenizer: Encoder, val_fraction: float, *,
                   cache_dir: Path | None = None, chunk_chars: int | None = None) -> TokenData:
    """Split `text` (a string, or a corpus read in pieces) as `split_text` does and encode both
    parts through the cache, in pieces of at most `chunk_chars` characters (default `CHUNK_CHARS`).

    Raises DataError if the validation part has fewer than 2 tokens (one input, one target).
    """
    corpus = text if isinstance(text, Corpus) else Corpus("text", text, ())
    train_text, val_text = split_corpus(corpus, val_fraction)
    train = encode_cached(train_text, tokenizer, cache_dir=cache_dir, chunk_chars=chunk_chars)
    val = encode_cached(val_text, tokenizer, cache_dir=cache_dir, chunk_chars=chunk_chars)
    if len(val) < 2:
        raise DataError(
            f"the validation text ({len(val_text)} characters) has {len(val)} token(s), at least 2 "
            f"are needed: use more text or a larger data.val_fraction than {val_fraction}"
        )
    return TokenData(train=train, val=val, train_chars=len(train_text), val_chars=len(val_text))


def encode_cached(text: str | TextSpan, tokenizer: Encoder, *, cache_dir: Path | None = None,
                  chunk_chars: int | None = None) -> np.ndarray:
    """The token ids of `text` (a string, or a span of a corpus), read-only, memory-mapped from the
    cache; on a miss the text is encoded in pieces (see `encode_pieces`) straight into the cache.

    `cache_dir` defaults to `$SEQLAB_CACHE` or `<cache home>/seqlab/tokens`. If the folder cannot be
    written, the ids are returned as an in-memory (read-only) array with a warning.
    """
    span = text if isinstance(text, TextSpan) else TextSpan.of_text(text)
    dtype = token_dtype(tokenizer.vocab_size)
    folder = token_cache_dir() if cache_dir is None else Path(cache_dir)
    key = _key(span.sha256, tokenizer.fingerprint(), dtype)
    data, meta = folder / f"{key}.npy", folder / f"{key}.json"
    cached = _load(data, meta, dtype)
    if cached is not None:
        logger.debug("token cache hit: %s", data)
        return cached

    def ids() -> Iterator[np.ndarray]:
        for piece in encode_pieces(tokenizer, span.chunks(chunk_chars), chunk_chars):
            yield _as_dtype(piece, dtype, tokenizer.vocab_size)
    try:
        count = _write(ids(), dtype, data, meta)
    except OSError as exc:
        logger.warning("token cache %s is not writable (%s): keeping the tokens in memory",
                       folder, exc.strerror or exc)
        in_memory = np.concatenate([np.zeros(0, dtype), *ids()])
        in_memory.setflags(write=False)
        return in_memory
    logger.info("token cache: wrote %d tokens to %s", count, data)
    return np.load(data, mmap_mode="r", allow_pickle=False)


def encode_pieces(tokenizer: Encoder, pieces: Iterable[str],
                  chunk_chars: int | None = None) -> Iterator[np.ndarray]:
    """The ids of the concatenated `pieces`, as consecutive arrays: the text is encoded in parts of
    at most `chunk_chars` characters (default `CHUNK_CHARS`), each cut where `tokenizer.safe_cut`
    says the ids do not change, so the arrays concatenate to the ids of the whole text.

    Where the tokenizer knows no cut in a part's first `chunk_chars` characters (BPE on a text
    with no line breaks), the part runs on to the last cut it has; a tokenizer without
    `safe_cut` gets the whole text at once.
    """
    size = chunk_chars or corpus_module.CHUNK_CHARS
    safe_cut = getattr(tokenizer, "safe_cut", None)
    pending = ""
    for piece in pieces:
        pending += piece
        while len(pending) > size and safe_cut is not None:
            cut = safe_cut(pending, size) or safe_cut(pending, len(pending))
            if cut == 0:
                break  # no cut yet: wait for more text
            yield tokenizer.encode_array(pending[:cut])
            pending = pending[cut:]
    if pending:
        yield tokenizer.encode_array(pending)


def _key(text_sha: str, fingerprint: str, dtype: np.dtype) -> str:
    """The entry's name: a function of the text's sha256 (`text_sha256`), the tokenizer and dtype."""
    return hashlib.sha256(f"{_FORMAT}:{text_sha}:{fingerprint}:{dtype.str}".encode()).hexdigest()


def _as_dtype(ids: np.ndarray, dtype: np.dtype, vocab_size: int) -> np.ndarray:
    """`ids` as a 1-D array of `dtype`, checked to fit it (a cast must not wrap)."""
    ids = np.asarray(ids).reshape(-1)
    if ids.size and (ids.min() < 0 or ids.max() > np.iinfo(dtype).max):
        raise ValueError(f"token ids span [{ids.min()}, {ids.max()}]: outside {dtype} although "
                         f"vocab_size = {vocab_size}")
    return ids.astype(dtype)


def _load(data: Path, meta: Path, dtype: np.dtype) -> np.ndarray | None:
    """The cached ids, or None on a miss; a damaged entry is reported, removed and missed."""
    if not meta.exists():
        # No sidecar: a miss, and not damage. The entry is unfinished: another process (a rank under
        # torchrun) may be writing it right now, so it is left alone and written again in place.
        return None
    try:
        count = json.loads(meta.read_text(encoding="utf-8"))["tokens"]
        ids = np.load(data, mmap_mode="r", allow_pickle=False)
        if ids.dtype != dtype or ids.ndim != 1 or len(ids) != count:
            raise ValueError(f"{ids.dtype}[{ids.shape}] does not match {dtype}[{count}]")
    except (OSError, ValueError, KeyError, TypeError, EOFError) as exc:
        logger.warning("token cache entry %s is damaged (%s): rebuilding it", data, exc)
        for path in (data, meta):
            with contextlib.suppress(OSError):  # a read-only cache: the rewrite will say so
                path.unlink(missing_ok=True)
        return None
    return ids


def _write(ids: Iterable[np.ndarray], dtype: np.dtype, data: Path, meta: Path) -> int:
    """Write the arrays `ids` one after another as one `.npy` array, then the sidecar, each
    atomically (the sidecar marks a finished entry); returns the number of ids."""
    data.parent.mkdir(parents=True, exist_ok=True)
    with atomic_open(data) as handle:
        header_bytes = _write_npy_header(handle, dtype, 0)  # a placeholder: the count comes last
        count = 0
        for part in ids:
            handle.write(part.tobytes())
            count += len(part)
        handle.seek(0)
        if _write_npy_header(handle, dtype, count) != header_bytes:
            raise ValueError(f"the .npy header of {count} ids is not {header_bytes} bytes long like "
                             "its placeholder: this numpy does not pad headers to a fixed length")
    sidecar = json.dumps({"format": _FORMAT, "tokens": count, "dtype": dtype.str})
    atomic_write_text(meta, sidecar)
    return count


def _write_npy_header(handle: BinaryIO, dtype: np.dtype, count: int) -> int:
    """Write the `.npy` header of a 1-D array of `count` ids; returns its length in bytes. numpy
    (>= 1.24) pads the shape to 21 digits so that a header can be rewritten in place."""
    start = handle.tell()
    header = {"descr": np.lib.format.dtype_to_descr(dtype), "fortran_order": False, "shape": (count,)}
    np.lib.format.write_array_header_1_0(handle, header)
    return handle.tell() - start
