"""Fixtures for the data tests: an isolated environment (no real home, cache, shared folder or
network) and stand-in tokenizers with the three members the token cache uses."""

from __future__ import annotations

import hashlib
import urllib.error
from pathlib import Path

import numpy as np
import pytest

from seqlab.data import paths


class CharTokenizer:
    """A stand-in tokenizer: one id per distinct character of `alphabet`, counting its encodes."""

    def __init__(self, alphabet: str, vocab_size: int | None = None, offset: int = 0) -> None:
        self.alphabet = sorted(set(alphabet))
        self.offset = offset  # added to every id: lets a test use ids near the top of a dtype
        self.vocab_size = vocab_size or len(self.alphabet) + offset
        self.calls = 0

    def encode_array(self, text: str) -> np.ndarray:
        self.calls += 1
        index = {c: i + self.offset for i, c in enumerate(self.alphabet)}
        return np.array([index[c] for c in text], dtype=np.int64)

    def fingerprint(self) -> str:
        spec = f"{''.join(self.alphabet)}|{self.vocab_size}|{self.offset}"
        return hashlib.sha256(spec.encode("utf-8")).hexdigest()


@pytest.fixture
def char_tokenizer():
    """A factory for `CharTokenizer`s."""
    return CharTokenizer


def _no_network(*args, **kwargs):
    raise urllib.error.URLError("network disabled in tests")


@pytest.fixture(autouse=True)
def isolated(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Point every place seqlab reads or writes into `tmp_path`, and cut the network."""
    home = tmp_path / "home"
    cwd = tmp_path / "work" / "checkout"
    for folder in (home, cwd):
        folder.mkdir(parents=True)
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.delenv("XDG_CACHE_HOME", raising=False)
    monkeypatch.delenv("SEQLAB_DATA", raising=False)
    monkeypatch.delenv("SEQLAB_CACHE", raising=False)
    monkeypatch.setattr(paths, "CHECKOUT_DATA_DIR", tmp_path / "checkout-shared" / "data")
    monkeypatch.chdir(cwd)
    monkeypatch.setattr("urllib.request.urlopen", _no_network)
    return tmp_path
