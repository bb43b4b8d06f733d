"""The token cache: hits without re-encoding, atomic writes, recovery from damage, dtypes."""

from __future__ import annotations

import contextlib
import logging
import os
from pathlib import Path

import numpy as np
import pytest

from seqlab.data import cache as cache_module
from seqlab.data import encode_cached, prepare_tokens, token_dtype
from seqlab.errors import DataError

TEXT = "to be, or not to be: that is the question.\n" * 20


def _entries(folder: Path) -> list[str]:
    return sorted(p.suffix for p in folder.iterdir())


def test_second_call_reads_the_cache_without_encoding(tmp_path: Path, char_tokenizer):
    tok = char_tokenizer(TEXT)
    first = encode_cached(TEXT, tok, cache_dir=tmp_path / "c")
    assert tok.calls == 1
    second = encode_cached(TEXT, tok, cache_dir=tmp_path / "c")
    assert tok.calls == 1
    np.testing.assert_array_equal(first, tok.encode_array(TEXT))
    np.testing.assert_array_equal(second, first)
    assert isinstance(second, np.memmap) and not second.flags.writeable
    assert _entries(tmp_path / "c") == [".json", ".npy"]


def test_key_depends_on_text_and_tokenizer(tmp_path: Path, char_tokenizer):
    tok, folder = char_tokenizer(TEXT), tmp_path / "tokens"
    encode_cached(TEXT, tok, cache_dir=folder)
    encode_cached(TEXT[:-1], tok, cache_dir=folder)
    other = char_tokenizer(TEXT + "!")  # another vocabulary: another fingerprint
    encode_cached(TEXT, other, cache_dir=folder)
    assert tok.calls == 2 and other.calls == 1
    assert len(_entries(folder)) == 6


@pytest.mark.parametrize(("vocab_size", "dtype"), [(65, np.uint16), (65536, np.uint16),
                                                   (65537, np.uint32), (200_000, np.uint32)])
def test_dtype_follows_vocab_size(tmp_path: Path, char_tokenizer, vocab_size: int, dtype):
    assert token_dtype(vocab_size) == dtype
    tok = char_tokenizer("abc", vocab_size=vocab_size, offset=vocab_size - 3)
    ids = encode_cached("abcab", tok, cache_dir=tmp_path)
    assert ids.dtype == dtype
    assert ids.tolist() == [vocab_size - 3, vocab_size - 2, vocab_size - 1, vocab_size - 3,
                            vocab_size - 2]


def test_env_and_default_locations(isolated: Path, monkeypatch, char_tokenizer):
    tok = char_tokenizer(TEXT)
    encode_cached(TEXT, tok)
    assert _entries(isolated / "home" / ".cache" / "seqlab" / "tokens") == [".json", ".npy"]
    monkeypatch.setenv("SEQLAB_CACHE", str(isolated / "env-cache"))
    encode_cached(TEXT, tok)
    assert _entries(isolated / "env-cache") == [".json", ".npy"]


@pytest.mark.parametrize("damage", ["truncate", "garbage", "other-array", "bad-sidecar"])
def test_damaged_entry_is_rebuilt_with_a_warning(tmp_path: Path, char_tokenizer, caplog,
                                                  damage: str):
    tok = char_tokenizer(TEXT)
    folder = tmp_path / "tokens"
    expected = np.array(encode_cached(TEXT, tok, cache_dir=folder))
    data = next(folder.glob("*.npy"))
    meta = data.with_suffix(".json")
    if damage == "truncate":
        data.write_bytes(data.read_bytes()[:-7])
    elif damage == "garbage":
        data.write_bytes(b"not an npy file at all")
    elif damage == "other-array":
        np.save(data, expected[:-1], allow_pickle=False)
    else:
        meta.write_text("{", encoding="utf-8")
    with caplog.at_level(logging.WARNING):
        rebuilt = encode_cached(TEXT, tok, cache_dir=folder)
    assert tok.calls == 2
    np.testing.assert_array_equal(rebuilt, expected)
    assert any("damaged" in r.getMessage() for r in caplog.records)
    encode_cached(TEXT, tok, cache_dir=folder)
    assert tok.calls == 2  # the rebuilt entry is whole


def test_an_entry_without_its_sidecar_is_unfinished_not_damaged(tmp_path: Path, char_tokenizer, caplog):
    """Another process (a rank under torchrun) may be between writing the ids and the sidecar that
    marks them finished: a reader misses and writes the entry again, and never deletes it."""
    tok = char_tokenizer(TEXT)
    folder = tmp_path / "tokens"
    expected = np.array(encode_cached(TEXT, tok, cache_dir=folder))
    data = next(folder.glob("*.npy"))
    data.with_suffix(".json").unlink()
    before = os.stat(data)
    unlinked = []
    real_unlink = Path.unlink
    with caplog.at_level(logging.WARNING), pytest.MonkeyPatch.context() as patch:
        patch.setattr(Path, "unlink", lambda self, *a, **k: (unlinked.append(self), real_unlink(self, *a, **k)))
        rebuilt = encode_cached(TEXT, tok, cache_dir=folder)
    assert data not in unlinked and before.st_size == os.stat(data).st_size
    assert tok.calls == 2 and not any("damaged" in r.getMessage() for r in caplog.records)
    np.testing.assert_array_equal(rebuilt, expected)
    encode_cached(TEXT, tok, cache_dir=folder)
    assert tok.calls == 2  # whole again


def test_failed_write_leaves_no_entry(tmp_path: Path, char_tokenizer, monkeypatch, caplog):
    real_atomic_open = cache_module.atomic_open

    class FillingDisk:
        """A file that takes the .npy header, then runs out of space in the middle of the ids."""

        def __init__(self, handle) -> None:
            self.handle, self.writes = handle, 0

        def write(self, data) -> int:
            self.writes += 1
            if self.writes > 1:
                self.handle.write(bytes(data)[:3])
                raise OSError(28, "No space left on device")
            return self.handle.write(data)

        def __getattr__(self, name: str):
            return getattr(self.handle, name)

    @contextlib.contextmanager
    def filling_open(path, mode: str = "wb"):
        with real_atomic_open(path, mode) as handle:
            yield FillingDisk(handle)
    monkeypatch.setattr(cache_module, "atomic_open", filling_open)
    tok, folder = char_tokenizer(TEXT), tmp_path / "tokens"
    with caplog.at_level(logging.WARNING):
        ids = encode_cached(TEXT, tok, cache_dir=folder)
    np.testing.assert_array_equal(ids, tok.encode_array(TEXT))
    assert list(folder.iterdir()) == []
    assert "not writable" in caplog.text


def test_unwritable_cache_returns_memory_array(tmp_path: Path, char_tokenizer, caplog):
    blocker = tmp_path / "a-file"
    blocker.write_text("a file where the cache folder should be", encoding="utf-8")
    tok = char_tokenizer(TEXT)
    with caplog.at_level(logging.WARNING):
        ids = encode_cached(TEXT, tok, cache_dir=blocker / "tokens")
    np.testing.assert_array_equal(ids, tok.encode_array(TEXT))
    assert ids.dtype == np.uint16 and not ids.flags.writeable
    assert "not writable" in caplog.text


def test_prepare_tokens_splits_then_encodes(tmp_path: Path, char_tokenizer):
    tok = char_tokenizer(TEXT)
    data = prepare_tokens(TEXT, tok, 0.1, cache_dir=tmp_path)
    assert data.val_chars == round(len(TEXT) * 0.1)
    assert data.train_chars + data.val_chars == len(TEXT)
    joined = np.concatenate([data.train, data.val])
    np.testing.assert_array_equal(joined, tok.encode_array(TEXT))


def test_prepare_tokens_needs_two_validation_tokens(tmp_path: Path, char_tokenizer):
    tok = char_tokenizer("abcdefghijklmnopqrst")
    with pytest.raises(DataError, match="validation text .* has 1 token"):
        prepare_tokens("abcdefghijklmnopqrst", tok, 0.05, cache_dir=tmp_path)
