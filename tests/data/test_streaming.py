"""Corpora read in pieces: the same text, split, tokenizer, ids and cache keys as the whole text,
with no piece larger than the chunk bound and `Corpus.text` never read on the training path."""

from __future__ import annotations

import hashlib
import logging
import os
import random
from pathlib import Path

import numpy as np
import pytest

from seqlab import api
from seqlab.config import load_config
from seqlab.data import corpus as corpus_module
from seqlab.data import (
    encode_cached,
    encode_pieces,
    load_corpus,
    prepare_tokens,
    split_corpus,
    split_text,
)
from seqlab.data.corpus import Corpus
from seqlab.errors import DataError
from seqlab.tokenizers import CharTokenizer, Tokenizer, train_tokenizer

SEED = 20261122
# Pieces that meet every tokenizer's splitting rules at a cut: runs of spaces before a newline
# (GPT-2's "\s+(?!\S)"), contractions, hyphens and HTML entities (word), CRLF, Unicode spaces,
# and characters of 2, 3 and 4 UTF-8 bytes (which straddle reads).
PIECES = ["the", "cat", "Ünïcödé", "中文", "🎉", "it's", "t-shirt", "&apos;s", "&quot;", "42", "3.14",
          "!", "...", " ", "  ", "   ", "\n", "\n", "  \n", "x\n", ".\n", "\n\n", "\t", "\r\n", "\u3000",
          "\u00a0", "\x85", "\x1c"]


def _random_text(rng: random.Random, n_pieces: int) -> str:
    return "".join(rng.choice(PIECES) for _ in range(n_pieces))


def _write(path: Path, data: str | bytes) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data.encode("utf-8") if isinstance(data, str) else data)
    return path


@pytest.fixture
def small_reads(monkeypatch: pytest.MonkeyPatch) -> None:
    """Read files 7 bytes at a time, so that multi-byte characters straddle reads."""
    monkeypatch.setattr(corpus_module, "_READ_BYTES", 7)


def _folder(root: Path, rng: random.Random) -> str:
    """A folder corpus under `root` (BOM, no final newline, CRLF, multi-byte text); its expected text."""
    texts = {"a.txt": "\ufeff" + _random_text(rng, 300), "b/c.txt": _random_text(rng, 200) + "no newline",
             "d.txt": "é" * 50 + "\r\n", "e.txt": _random_text(rng, 400) + "\n"}
    for name, text in texts.items():
        _write(root / name, text)
    _write(root / "z.bin", b"binary\0data")
    expected = [text.removeprefix("\ufeff") for _, text in sorted(texts.items())]
    return "".join(text if text.endswith("\n") else text + "\n" for text in expected)


@pytest.mark.parametrize("chunk_chars", [1, 5, 64, 10_000])
def test_chunks_are_the_text_in_bounded_pieces(tmp_path: Path, small_reads, chunk_chars: int):
    rng = random.Random(SEED + chunk_chars)
    expected = _folder(tmp_path / "corpus", rng)
    corpus = load_corpus(str(tmp_path / "corpus"))
    assert corpus.n_chars == len(expected)
    pieces = list(corpus.chunks(chunk_chars))
    assert "".join(pieces) == expected and max(map(len, pieces)) <= chunk_chars
    assert corpus.sha256 == hashlib.sha256(expected.encode("utf-8")).hexdigest()
    for _ in range(20):
        start = rng.randrange(len(expected))
        stop = rng.randrange(start, len(expected) + 1)
        assert "".join(corpus.chunks(chunk_chars, start=start, stop=stop)) == expected[start:stop]
    assert corpus.text == expected  # read whole on demand
    assert corpus == Corpus(corpus.name, expected, corpus.sources)


@pytest.mark.parametrize("bad_at", [0, 6, 7, 1000])
def test_bad_utf8_names_its_byte_offset_across_reads(tmp_path: Path, small_reads, bad_at: int):
    data = ("é" * 600).encode("utf-8")
    data = data[:bad_at] + b"\xff" + data[bad_at:]
    path = _write(tmp_path / "bad.txt", data)
    with pytest.raises(UnicodeDecodeError) as whole:
        data.decode("utf-8")
    with pytest.raises(DataError, match=rf"looks binary or is not UTF-8 \(bad byte at offset "
                                        rf"{whole.value.start}\)") as info:
        load_corpus(str(path))
    assert "\n" not in str(info.value)


def test_truncated_character_at_the_end_is_not_utf8(tmp_path: Path, small_reads, caplog):
    _write(tmp_path / "d" / "cut.txt", b"ok ok ok \xc3")  # the first byte of "é", then the end
    _write(tmp_path / "d" / "good.txt", "good\n")
    with caplog.at_level(logging.WARNING):
        corpus = load_corpus(str(tmp_path / "d"))
    assert corpus.text == "good\n" and "cut.txt" in caplog.text
    with pytest.raises(DataError, match="offset 9"):
        load_corpus(str(tmp_path / "d" / "cut.txt"))


def test_a_file_that_changes_after_loading_is_an_error(tmp_path: Path):
    path = _write(tmp_path / "a.txt", "abc\n" * 100)
    corpus = load_corpus(str(path))
    path.write_text("abd\n" * 101, encoding="utf-8")
    with pytest.raises(DataError, match="changed after it was loaded"):
        "".join(corpus.chunks())


def _trained(kind: str, text: str, byte_fallback: bool = False) -> Tokenizer:
    return train_tokenizer(kind, text, vocab_size=300, byte_fallback=byte_fallback)


@pytest.mark.parametrize("kind", ["char", "byte", "bpe", "word"])
def test_encoding_in_pieces_equals_encoding_whole(kind: str):
    rng = random.Random(SEED)
    tokenizer = _trained(kind, _random_text(rng, 3000) + "".join(PIECES))
    for trial in range(10):
        text = _random_text(rng, rng.randrange(1, 600))
        whole = tokenizer.encode_array(text)
        for limit in (1, 2, 5, rng.randrange(1, len(text) + 2)):
            cut = tokenizer.safe_cut(text, limit)
            assert 0 <= cut <= limit, (trial, limit)
            if cut:
                halves = [tokenizer.encode_array(text[:cut]), tokenizer.encode_array(text[cut:])]
                np.testing.assert_array_equal(np.concatenate(halves), whole, err_msg=f"{trial} {cut}")
        for chunk_chars in (1, 3, 16, 100):
            reads = [text[i:i + 7] for i in range(0, len(text), 7)]
            parts = list(encode_pieces(tokenizer, reads, chunk_chars))
            np.testing.assert_array_equal(np.concatenate([np.zeros(0, np.int64), *parts]), whole,
                                          err_msg=f"trial {trial}, chunk_chars {chunk_chars}")


def test_streamed_preparation_equals_the_in_memory_one(tmp_path: Path, small_reads):
    rng = random.Random(SEED)
    text = "\ufeff" + _random_text(rng, 4000)
    corpus = load_corpus(str(_write(tmp_path / "corpus.txt", text)))
    text = text.removeprefix("\ufeff")
    tokenizer = _trained("bpe", text)
    in_memory = prepare_tokens(text, tokenizer, 0.1, cache_dir=tmp_path / "memory")
    streamed = prepare_tokens(corpus, tokenizer, 0.1, cache_dir=tmp_path / "streamed", chunk_chars=50)
    for part in ("train", "val"):
        np.testing.assert_array_equal(getattr(streamed, part), getattr(in_memory, part))
    assert (streamed.train_chars, streamed.val_chars) == (in_memory.train_chars, in_memory.val_chars)
    # One entry name for the same text either way, and the name of the entries written before.
    names = sorted(p.name for p in (tmp_path / "memory").iterdir())
    assert names == sorted(p.name for p in (tmp_path / "streamed").iterdir())
    train_text, val_text = split_text(text, 0.1)
    for part in (train_text, val_text):
        text_sha = hashlib.sha256(part.encode("utf-8")).hexdigest()
        key = hashlib.sha256(f"1:{text_sha}:{tokenizer.fingerprint()}:<u2".encode()).hexdigest()
        assert f"{key}.npy" in names and f"{key}.json" in names


@pytest.mark.parametrize("kind", ["char", "byte", "bpe", "word"])
def test_fitting_in_pieces_equals_fitting_the_text(tmp_path: Path, kind: str):
    text = _random_text(random.Random(SEED), 3000)
    corpus = load_corpus(str(_write(tmp_path / "corpus.txt", text)))
    config = load_config(None, [f"tokenizer.kind={kind}", "tokenizer.vocab_size=300"])
    before = _trained(kind, text if kind == "char" else split_text(text, 0.1)[0], config.tokenizer.byte_fallback)
    assert api.fit_tokenizer(config, corpus) == before == api.fit_tokenizer(config, text)


def test_fitting_is_capped(tmp_path: Path, monkeypatch, caplog):
    text = _random_text(random.Random(SEED), 3000)
    corpus = load_corpus(str(_write(tmp_path / "corpus.txt", text)))
    monkeypatch.setattr(api, "TOKENIZER_FIT_CHARS", 500)
    config = load_config(None, ["tokenizer.kind=word", "tokenizer.vocab_size=300"])
    with caplog.at_level(logging.INFO, logger="seqlab.api"):
        tokenizer = api.fit_tokenizer(config, corpus)
    assert tokenizer == _trained("word", text[:500], byte_fallback=True)  # a new config's
    assert "first 500 of the" in caplog.text


def test_unwritable_cache_still_encodes_in_pieces(tmp_path: Path):
    blocker = _write(tmp_path / "a-file", "where the cache folder should be")
    tokenizer = CharTokenizer.train("abc\n")
    ids = encode_cached("abc\n" * 100, tokenizer, cache_dir=blocker / "tokens", chunk_chars=7)
    np.testing.assert_array_equal(ids, tokenizer.encode_array("abc\n" * 100))
    assert ids.dtype == np.uint16 and not ids.flags.writeable


@pytest.mark.parametrize("kind", ["char", "bpe"])
def test_training_path_reads_in_bounded_pieces_and_never_whole(tmp_path: Path, monkeypatch, kind: str):
    rng = random.Random(SEED)
    lines = [" ".join(rng.choice(["to", "be", "or", "not", "été", "中", "—"]) for _ in range(12)) + ".\n"
             for _ in range(20_000)]  # about 1 MB in 2 files
    folder = tmp_path / "big"
    _write(folder / "a.txt", "".join(lines[:9_000]))
    _write(folder / "b.txt", "".join(lines[9_000:]))
    chunk_chars = 4096
    monkeypatch.setattr(corpus_module, "CHUNK_CHARS", chunk_chars)
    monkeypatch.setattr(api, "TOKENIZER_FIT_CHARS", 50_000)  # BPE learns from a prefix: fast

    def never(self):
        raise AssertionError("Corpus.text was read on the training path")
    monkeypatch.setattr(Corpus, "text", property(never))
    tokenizer_class = type(_trained(kind, "ab\n"))
    encode_lengths: list[int] = []
    real_encode = tokenizer_class.encode_array

    def spy(self, text: str) -> np.ndarray:
        encode_lengths.append(len(text))
        return real_encode(self, text)
    monkeypatch.setattr(tokenizer_class, "encode_array", spy)
    overrides = [f"data.corpus={folder}", f"tokenizer.kind={kind}", "tokenizer.vocab_size=300"]

    tokenizer, data = api._lm_data(load_config(None, overrides), None)

    assert len(encode_lengths) > 100 and max(encode_lengths) <= chunk_chars
    train_text, val_text = split_text("".join(lines), 0.1)
    np.testing.assert_array_equal(data.train, real_encode(tokenizer, train_text))
    np.testing.assert_array_equal(data.val, real_encode(tokenizer, val_text))
    assert isinstance(data.train, np.memmap)
    assert (data.train_chars, data.val_chars) == (len(train_text), len(val_text))


def test_split_corpus_cuts_where_split_text_does():
    for length in (2, 10, 97, 1000):
        text = "".join(chr(0x61 + i % 26) for i in range(length))
        train, val = split_corpus(Corpus("t", text, ()), 0.3)
        assert ("".join(train.chunks(3)), "".join(val.chunks(3))) == split_text(text, 0.3)
        assert len(train) + len(val) == length


def test_cache_entry_is_a_plain_npy_file(tmp_path: Path):
    tokenizer = CharTokenizer.train("ab")
    encode_cached("ab" * 5000, tokenizer, cache_dir=tmp_path, chunk_chars=333)
    (entry,) = tmp_path.glob("*.npy")
    with open(entry, "rb") as handle:
        loaded = np.load(handle, allow_pickle=False)
        assert handle.tell() == os.path.getsize(entry)  # no bytes after the ids
    np.testing.assert_array_equal(loaded, np.tile([0, 1], 5000))
    assert not list(tmp_path.glob(".*.tmp"))
