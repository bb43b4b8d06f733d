"""Corpora from files, folders and globs; the errors a user can cause; the train/val split."""

from __future__ import annotations

import dataclasses
import hashlib
import logging
import pathlib
from pathlib import Path

import pytest

from seqlab.data import Corpus, load_corpus, split_text
from seqlab.errors import DataError


def _write(path: Path, data: str | bytes) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(data, str):
        data = data.encode("utf-8")
    path.write_bytes(data)
    return path


def test_file_is_kept_exactly_as_stored_but_without_bom(tmp_path: Path):
    path = _write(tmp_path / "poem.txt", b"\xef\xbb\xbfline one\r\nline two\rthree")
    corpus = load_corpus(str(path))
    assert corpus.text == "line one\r\nline two\rthree"
    assert corpus.name == "poem.txt" and corpus.sources == (str(path),)


def test_sha256_is_of_the_utf8_text_and_corpus_is_frozen(tmp_path: Path):
    corpus = load_corpus(str(_write(tmp_path / "a.txt", "héllo wörld\n")))
    assert corpus.sha256 == hashlib.sha256("héllo wörld\n".encode()).hexdigest()
    with pytest.raises(dataclasses.FrozenInstanceError):
        corpus.text = "other"  # type: ignore[misc]
    assert corpus == Corpus(corpus.name, corpus.text, corpus.sources)


def test_folder_is_sorted_recursive_without_hidden_or_binary(tmp_path: Path, caplog):
    root = tmp_path / "corpus"
    _write(root / "b.txt", "bee\n")
    _write(root / "a" / "z.txt", "zed")  # no final newline: one is added before the next file
    _write(root / "c.txt", "sea\n")
    _write(root / ".hidden.txt", "hidden\n")
    _write(root / ".git" / "config", "hidden\n")
    _write(root / "image.png", b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR")
    _write(root / "latin1.txt", "caf\xe9\n".encode("latin-1"))
    with caplog.at_level(logging.WARNING):
        corpus = load_corpus(str(root))
    assert corpus.text == "zed\nbee\nsea\n"
    assert corpus.sources == tuple(str(root / p) for p in ("a/z.txt", "b.txt", "c.txt"))
    assert corpus.name == "corpus"
    skipped = " ".join(r.getMessage() for r in caplog.records)
    assert "image.png" in skipped and "latin1.txt" in skipped


def test_folder_without_text_files_is_an_error(tmp_path: Path):
    _write(tmp_path / "bin" / "x.bin", b"\0\1\2")
    with pytest.raises(DataError, match="no text files"):
        load_corpus(str(tmp_path / "bin"))
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match="has no files"):
        load_corpus(str(tmp_path / "empty"))


def test_glob_matches_files_sorted(tmp_path: Path):
    _write(tmp_path / "d" / "b.txt", "two\n")
    _write(tmp_path / "d" / "a.txt", "one\n")
    _write(tmp_path / "d" / "c.md", "not matched\n")
    (tmp_path / "d" / "dir.txt").mkdir()
    corpus = load_corpus(str(tmp_path / "d" / "*.txt"))
    assert corpus.text == "one\ntwo\n"
    assert len(corpus.sources) == 2


def test_glob_without_match_is_an_error(tmp_path: Path):
    with pytest.raises(DataError, match="no file matches"):
        load_corpus(str(tmp_path / "*.nothing"))


@pytest.mark.parametrize("content", ["", "  \n\t\r\n"])
def test_empty_file_is_an_error(tmp_path: Path, content: str):
    path = _write(tmp_path / "empty.txt", content)
    with pytest.raises(DataError, match="is empty"):
        load_corpus(str(path))


@pytest.mark.parametrize("content", [b"text\0with a NUL", b"caf\xe9 latin-1"])
def test_binary_file_is_an_error(tmp_path: Path, content: bytes):
    path = _write(tmp_path / "data.bin", content)
    with pytest.raises(DataError, match="looks binary"):
        load_corpus(str(path))


def test_unreadable_file_is_an_error(tmp_path: Path, monkeypatch):
    # chmod cannot stop root from reading, so the refusal is simulated at the read.
    path = _write(tmp_path / "secret.txt", "text\n")
    real_open = pathlib.Path.open

    def refusing_open(self: Path, *args, **kwargs):
        if self == path:
            raise PermissionError(13, "Permission denied", str(self))
        return real_open(self, *args, **kwargs)
    monkeypatch.setattr(pathlib.Path, "open", refusing_open)
    with pytest.raises(DataError, match="cannot read .*Permission denied"):
        load_corpus(str(path))


def test_unknown_spec_lists_names_and_suggests():
    with pytest.raises(DataError) as info:
        load_corpus("no-such-corpus")
    message = str(info.value)
    assert message.startswith("unknown corpus 'no-such-corpus': not a registered name (shakespeare, names, ")
    assert message.endswith("), file, folder or glob")
    for name in ("python-stdlib", "brown", "repeated-random"):
        assert f" {name}," in message or f" {name})" in message
    with pytest.raises(DataError, match="did you mean 'shakespeare'"):
        load_corpus("shakespear")


def test_registered_name_wins_over_a_file_of_that_name(isolated: Path, monkeypatch):
    _write(Path.cwd() / "names", "the file in the current directory\n")
    monkeypatch.setenv("SEQLAB_DATA", str(isolated / "env"))
    _write(isolated / "env" / "names.txt", "the registered corpus\n")
    assert load_corpus("names").text == "the registered corpus\n"


@pytest.mark.parametrize("length", [2, 3, 10, 97, 1000])
@pytest.mark.parametrize("fraction", [0.01, 0.1, 0.5, 0.9])
def test_split_is_exact(length: int, fraction: float):
    text = "".join(chr(ord("a") + i % 26) for i in range(length))
    n_val = int(round(length * fraction))
    if n_val == 0 or n_val == length:
        with pytest.raises(DataError, match="empty"):
            split_text(text, fraction)
        return
    train, val = split_text(text, fraction)
    assert train + val == text
    assert len(val) == n_val


def test_split_error_names_the_empty_part():
    with pytest.raises(DataError, match="validation text empty"):
        split_text("abc", 0.1)
    with pytest.raises(DataError, match="training text empty"):
        split_text("ab", 0.9)
    with pytest.raises(DataError, match="between 0 and 1"):
        split_text("abc", 1.0)
