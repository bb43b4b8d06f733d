"""The token cache: token ids of a text, encoded once and memory-mapped from disk afterwards.

A cache entry is a `.npy` file of token ids (uint16 when the vocabulary fits, else uint32) and a
JSON sidecar with the token count, keyed by sha256(text), the tokenizer's fingerprint and the dtype.
Both are written to a temporary name, fsynced and renamed into place, so a kill at any moment leaves
either a whole entry or none. An entry that does not load, or disagrees with its sidecar, is rebuilt
with a warning. `prepare_tokens` turns a text into the training and validation token arrays.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import numpy as np

from seqlab.data.corpus import split_text
from seqlab.data.paths import token_cache_dir
from seqlab.errors import DataError
from seqlab.files import atomic_open, atomic_write_text

logger = logging.getLogger(__name__)

_FORMAT = 1  # bump when the layout of an entry changes: old entries then miss and are rebuilt


class Encoder(Protocol):
    """What the cache needs of a tokenizer."""

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


def prepare_tokens(text: str, tokenizer: Encoder, val_fraction: float, *,
                   cache_dir: Path | None = None) -> TokenData:
    """Split `text` with `split_text` and encode both parts through the cache.

    Raises DataError if the validation part has fewer than 2 tokens (one input, one target).
    """
    train_text, val_text = split_text(text, val_fraction)
    train = encode_cached(train_text, tokenizer, cache_dir=cache_dir)
    val = encode_cached(val_text, tokenizer, cache_dir=cache_dir)
    if len(val) < 2:
        raise DataError(
            f"the validation text ({len(val_text)} characters) has {len(val)} token(s), at least 2 "
            f"are needed: use more text or a larger data.val_fraction than {val_fraction}"
        )
    return TokenData(train=train, val=val, train_chars=len(train_text), val_chars=len(val_text))


def encode_cached(text: str, tokenizer: Encoder, *, cache_dir: Path | None = None) -> np.ndarray:
    """The token ids of `text`, read-only, memory-mapped from the cache (encoded on a miss).

    `cache_dir` defaults to `$SEQLAB_CACHE` or `<cache home>/seqlab/tokens`. If the folder cannot be
    written, the ids are returned as an in-memory (read-only) array with a warning.
    """
    dtype = token_dtype(tokenizer.vocab_size)
    folder = token_cache_dir() if cache_dir is None else Path(cache_dir)
    key = _key(text, tokenizer.fingerprint(), dtype)
    data, meta = folder / f"{key}.npy", folder / f"{key}.json"
    cached = _load(data, meta, dtype)
    if cached is not None:
        logger.debug("token cache hit: %s", data)
        return cached
    ids = _encode(text, tokenizer, dtype)
    try:
        _write(ids, data, meta)
    except OSError as exc:
        logger.warning("token cache %s is not writable (%s): keeping %d tokens in memory",
                       folder, exc.strerror or exc, len(ids))
        ids.setflags(write=False)
        return ids
    logger.info("token cache: wrote %d tokens to %s", len(ids), data)
    return np.load(data, mmap_mode="r", allow_pickle=False)


def _key(text: str, fingerprint: str, dtype: np.dtype) -> str:
    text_sha = hashlib.sha256(text.encode("utf-8")).hexdigest()
    return hashlib.sha256(f"{_FORMAT}:{text_sha}:{fingerprint}:{dtype.str}".encode()).hexdigest()


def _encode(text: str, tokenizer: Encoder, dtype: np.dtype) -> np.ndarray:
    """The ids of `text` as a 1-D array of `dtype`, checked to fit it (a cast must not wrap)."""
    ids = np.asarray(tokenizer.encode_array(text)).reshape(-1)
    if ids.size and (ids.min() < 0 or ids.max() > np.iinfo(dtype).max):
        raise ValueError(f"token ids span [{ids.min()}, {ids.max()}]: outside {dtype} although "
                         f"vocab_size = {tokenizer.vocab_size}")
    return ids.astype(dtype)


def _load(data: Path, meta: Path, dtype: np.dtype) -> np.ndarray | None:
    """The cached ids, or None on a miss; a damaged entry is reported, removed and missed."""
    if not data.exists() and not meta.exists():
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


def _write(ids: np.ndarray, data: Path, meta: Path) -> None:
    """Write the ids, then the sidecar, each atomically: the sidecar marks a finished entry."""
    data.parent.mkdir(parents=True, exist_ok=True)
    with atomic_open(data) as handle:
        np.save(handle, ids, allow_pickle=False)
    sidecar = json.dumps({"format": _FORMAT, "tokens": int(len(ids)), "dtype": ids.dtype.str})
    atomic_write_text(meta, sidecar)
