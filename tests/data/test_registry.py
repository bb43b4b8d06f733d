"""The corpus registry: where a registered corpus is looked for, and the checked download."""

from __future__ import annotations

import dataclasses
import hashlib
import io
import re
import urllib.error
from pathlib import Path

import pytest

from seqlab.data import load_corpus, paths, registry
from seqlab.errors import DataError

SHARED_SHAKESPEARE = Path("/work/shared/data/tinyshakespeare.txt")


def _put(folder: Path, text: str, name: str = "tinyshakespeare.txt") -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / name).write_text(text, encoding="utf-8")
    return folder / name


def test_registry_rows_are_well_formed():
    names = [entry.name for entry in registry.REGISTRY]
    assert len(names) == len(set(names))
    assert {"shakespeare", "names"} <= set(names)
    for entry in registry.REGISTRY:
        assert re.fullmatch(r"[0-9a-f]{64}", entry.sha256)
        assert entry.url.startswith("https://")


def test_search_order_env_then_cache_then_checkout_then_cwd(isolated: Path, monkeypatch):
    env_dir, cwd_dir = isolated / "env", isolated / "work" / "shared" / "data"
    monkeypatch.setenv("SEQLAB_DATA", str(env_dir))
    copies = [
        _put(env_dir, "from env\n"),
        _put(isolated / "home" / ".cache" / "seqlab", "from cache\n"),
        _put(paths.CHECKOUT_DATA_DIR, "from checkout\n"),
        _put(cwd_dir, "from cwd\n"),
    ]
    for copy in copies:
        corpus = load_corpus("shakespeare")
        assert corpus.text == copy.read_text(encoding="utf-8")
        assert corpus.sources == (str(copy),)
        assert corpus.name == "shakespeare"
        copy.unlink()


def test_xdg_cache_home_replaces_home_cache(isolated: Path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(isolated / "xdg"))
    _put(isolated / "home" / ".cache" / "seqlab", "ignored\n")
    _put(isolated / "xdg" / "seqlab", "xdg copy\n")
    assert load_corpus("shakespeare").text == "xdg copy\n"


def test_local_copy_is_trusted_without_checksum(isolated: Path, monkeypatch):
    monkeypatch.setenv("SEQLAB_DATA", str(isolated / "env"))
    _put(isolated / "env", "alice\nbob\n", name="names.txt")
    assert load_corpus("names").text == "alice\nbob\n"


class _Response(io.BytesIO):
    """A stand-in for the response of `urlopen`: a readable context manager."""


def _fake_opener(payload: bytes, calls: list[str], fail_after: int | None = None):
    def urlopen(url: str, timeout: float):
        calls.append(url)
        assert timeout > 0
        if fail_after is None:
            return _Response(payload)
        response = _Response(payload)
        read = response.read

        def broken_read(n: int = -1) -> bytes:
            if response.tell() >= fail_after:
                raise TimeoutError("timed out")
            return read(min(n, fail_after))
        response.read = broken_read
        return response
    return urlopen


def _register(monkeypatch, payload: bytes) -> registry.RegisteredCorpus:
    entry = dataclasses.replace(registry.registered("shakespeare"),
                                sha256=hashlib.sha256(payload).hexdigest())
    monkeypatch.setattr(registry, "REGISTRY", (entry,))
    return entry


def test_download_is_checked_saved_and_reused(isolated: Path, monkeypatch):
    payload = b"First Citizen:\nBefore we proceed any further, hear me speak.\n"
    entry = _register(monkeypatch, payload)
    calls: list[str] = []
    monkeypatch.setattr("urllib.request.urlopen", _fake_opener(payload, calls))
    corpus = load_corpus("shakespeare")
    saved = isolated / "home" / ".cache" / "seqlab" / "tinyshakespeare.txt"
    assert corpus.text == payload.decode() and corpus.sources == (str(saved),)
    assert calls == [entry.url]
    assert sorted(p.name for p in saved.parent.iterdir()) == ["tinyshakespeare.txt"]
    assert load_corpus("shakespeare").text == payload.decode()
    assert calls == [entry.url]  # the second load found the saved copy


def test_download_checksum_mismatch_deletes_the_file(isolated: Path, monkeypatch):
    _register(monkeypatch, b"the real text\n")
    monkeypatch.setattr("urllib.request.urlopen", _fake_opener(b"tampered text\n", []))
    with pytest.raises(DataError, match="sha256") as info:
        load_corpus("shakespeare")
    assert "\n" not in str(info.value)
    folder = isolated / "home" / ".cache" / "seqlab"
    assert list(folder.iterdir()) == []


def test_interrupted_download_leaves_nothing(isolated: Path, monkeypatch):
    payload = b"x" * 5000
    _register(monkeypatch, payload)
    monkeypatch.setattr("urllib.request.urlopen", _fake_opener(payload, [], fail_after=1000))
    with pytest.raises(DataError, match="timed out"):
        load_corpus("shakespeare")
    assert list((isolated / "home" / ".cache" / "seqlab").iterdir()) == []


def test_no_network_names_every_place_looked(isolated: Path, monkeypatch):
    monkeypatch.setenv("SEQLAB_DATA", str(isolated / "env"))
    with pytest.raises(DataError) as info:
        load_corpus("shakespeare")
    message = str(info.value)
    assert "\n" not in message
    assert "tinyshakespeare.txt not found" in message and "network disabled" in message
    for folder in (isolated / "env", isolated / "home" / ".cache" / "seqlab",
                   paths.CHECKOUT_DATA_DIR, isolated / "work" / "shared" / "data"):
        assert str(folder) in message
    assert "put tinyshakespeare.txt in one of those folders" in message


def test_no_network_suggests_seqlab_data_when_unset():
    with pytest.raises(DataError, match="set SEQLAB_DATA"):
        load_corpus("names")


def test_http_error_is_reported(monkeypatch):
    def not_found(url: str, timeout: float):
        raise urllib.error.HTTPError(url, 404, "Not Found", None, None)
    monkeypatch.setattr("urllib.request.urlopen", not_found)
    with pytest.raises(DataError, match="HTTP Error 404"):
        load_corpus("names")


@pytest.mark.skipif(not SHARED_SHAKESPEARE.is_file(), reason="no shared tinyshakespeare.txt")
def test_finds_the_shared_shakespeare(monkeypatch):
    monkeypatch.setattr(paths, "CHECKOUT_DATA_DIR", SHARED_SHAKESPEARE.parent)
    corpus = load_corpus("shakespeare")
    assert corpus.text.startswith("First Citizen:")
    assert corpus.sha256 == registry.registered("shakespeare").sha256
