"""Contracts every tokenizer kind keeps: exact round trip, fast path == slow path, save/load,
fingerprint, streaming bytes, and one-line errors."""

from __future__ import annotations

import codecs
import json

import numpy as np
import pytest
import torch

from seqlab.errors import TokenizerError
from seqlab.tokenizers import (
    BPETokenizer,
    ByteTokenizer,
    CharTokenizer,
    Tokenizer,
    load_tokenizer,
    tokenizer_from_dict,
    train_tokenizer,
)

KINDS = ["char", "byte", "bpe"]


@pytest.fixture(scope="module")
def bpe(mixed_corpus: str) -> BPETokenizer:
    return BPETokenizer.train(mixed_corpus, vocab_size=400)


@pytest.fixture
def make(bpe: BPETokenizer):
    """A tokenizer of a kind that can encode ``text``: char is trained on it, bpe is not (so
    the text has unseen byte sequences), byte needs nothing."""
    def _make(kind: str, text: str) -> Tokenizer:
        if kind == "char":
            return CharTokenizer.train(text + "x")
        return bpe if kind == "bpe" else ByteTokenizer()
    return _make


@pytest.mark.parametrize("kind", KINDS)
def test_round_trip_nasty(make, kind: str, nasty_text: str) -> None:
    text = nasty_text
    tok = make(kind, text)
    ids = tok.encode(text)
    assert all(0 <= i < tok.vocab_size for i in ids)
    assert tok.decode(ids) == text
    assert tok.decode_bytes(ids) == text.encode("utf-8")
    np.testing.assert_array_equal(tok.encode_array(text), np.array(ids, dtype=np.int64))


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("seed", range(6))
def test_round_trip_random_unicode(make, random_text, kind: str, seed: int) -> None:
    text = random_text(seed, 3000)
    tok = make(kind, text)
    ids = tok.encode(text)
    assert tok.decode(ids) == text, f"seed {seed}"
    arr = tok.encode_array(text)
    assert arr.dtype == np.int64 and arr.ndim == 1
    assert arr.tolist() == ids, f"seed {seed}"


@pytest.mark.parametrize("kind", KINDS)
def test_streaming_bytes_reassemble_text(make, all_nasty, random_text, kind: str) -> None:
    # The sampler's contract: one token at a time through an incremental UTF-8 decoder.
    text = all_nasty + random_text(7, 500)
    tok = make(kind, text)
    decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
    out = "".join(decoder.decode(tok.decode_bytes([i])) for i in tok.encode(text))
    assert out + decoder.decode(b"", final=True) == text


@pytest.mark.parametrize("kind", KINDS)
def test_decode_accepts_lists_arrays_tensors_iterators(make, kind: str) -> None:
    text = "Hello, wörld! 🎉\n"
    tok = make(kind, text)
    ids = tok.encode(text)
    assert tok.decode(np.array(ids, dtype=np.int32)) == text
    assert tok.decode(torch.tensor(ids)) == text
    assert tok.decode(iter(ids)) == text
    assert tok.decode([]) == "" and tok.decode_bytes(np.zeros(0, np.int64)) == b""


@pytest.mark.parametrize("kind", KINDS)
def test_decode_rejects_bad_ids(make, kind: str) -> None:
    tok = make(kind, "abc")
    with pytest.raises(TokenizerError, match=rf"token id {tok.vocab_size} at position 1 .*range"):
        tok.decode([0, tok.vocab_size])
    with pytest.raises(TokenizerError, match="out of range"):
        tok.decode([-1])
    with pytest.raises(TokenizerError, match="integers"):
        tok.decode(np.array([0.5]))
    with pytest.raises(TokenizerError, match="1-D"):
        tok.decode(np.zeros((2, 2), dtype=np.int64))


@pytest.mark.parametrize("kind", KINDS)
def test_save_load_round_trip(make, all_nasty, tmp_path, kind: str) -> None:
    text = all_nasty
    tok = make(kind, text)
    path = tmp_path / "sub" / "tokenizer.json"
    tok.save(path)
    loaded = load_tokenizer(path)
    assert type(loaded) is type(tok)
    assert loaded.to_dict() == tok.to_dict() == json.loads(path.read_text(encoding="utf-8"))
    assert loaded.fingerprint() == tok.fingerprint()
    assert loaded.encode(text) == tok.encode(text)
    assert loaded.vocab_size == tok.vocab_size
    assert [p.name for p in path.parent.iterdir()] == ["tokenizer.json"]  # no temp file left


@pytest.mark.parametrize("kind", KINDS)
def test_from_dict_round_trip(make, kind: str) -> None:
    tok = make(kind, "some text ✓")
    d = json.loads(json.dumps(tok.to_dict()))
    assert d["kind"] == kind == tok.kind
    assert tokenizer_from_dict(d) == tok


def test_fingerprints_differ_between_vocabularies(mixed_corpus: str) -> None:
    tokenizers = [CharTokenizer.train("ab"), CharTokenizer.train("abc"),
                  CharTokenizer.train("ab", unknown_token=True), ByteTokenizer(),
                  BPETokenizer.train(mixed_corpus, vocab_size=300),
                  BPETokenizer.train(mixed_corpus, vocab_size=301)]
    fingerprints = [t.fingerprint() for t in tokenizers]
    assert len(set(fingerprints)) == len(fingerprints)
    assert all(len(f) == 64 and int(f, 16) >= 0 for f in fingerprints)


@pytest.mark.parametrize("kind", KINDS)
def test_token_strings_printable_one_per_id(make, all_nasty, kind: str) -> None:
    tok = make(kind, all_nasty)
    strings = tok.token_strings()
    assert len(strings) == tok.vocab_size
    assert all(s and s.isprintable() for s in strings)


@pytest.mark.parametrize("kind", KINDS)
def test_train_tokenizer_dispatches_on_kind(kind: str) -> None:
    tok = train_tokenizer(kind, "hello world\n" * 20, vocab_size=260)
    assert tok.kind == kind
    assert tok.decode(tok.encode("hello world")) == "hello world"


def test_unknown_kind_is_an_error() -> None:
    with pytest.raises(TokenizerError, match=r"unknown tokenizer kind 'sentencepiece'.*'char'"):
        train_tokenizer("sentencepiece", "text")
    with pytest.raises(TokenizerError, match=r"unknown tokenizer kind 'sentencepiece'.*'bpe'"):
        tokenizer_from_dict({"kind": "sentencepiece"})
    with pytest.raises(TokenizerError, match="no 'kind'"):
        tokenizer_from_dict({"chars": ["a"]})


@pytest.mark.parametrize("kind", KINDS)
def test_lone_surrogate_is_an_error(make, kind: str) -> None:
    tok = make(kind, "ab")
    with pytest.raises(TokenizerError, match=r"U\+D800\) at position 1 is a lone surrogate"):
        tok.encode("a\ud800b")


def test_load_errors_name_the_file(tmp_path) -> None:
    missing = tmp_path / "missing.json"
    with pytest.raises(TokenizerError, match=rf"{missing}.*does not exist"):
        load_tokenizer(missing)
    bad_json = tmp_path / "bad.json"
    bad_json.write_text('{"kind": "char", "chars": [', encoding="utf-8")
    with pytest.raises(TokenizerError, match=rf"{bad_json} is not valid JSON.*line 1"):
        load_tokenizer(bad_json)
    for content, words in [('["char"]', "must be a JSON object"),
                           ('{"kind": "bpe2"}', "unknown tokenizer kind 'bpe2'"),
                           ('{"kind": "char", "chars": "abc", "unknown_token": false}',
                            "'chars' has type str"),
                           ('{"kind": "char", "chars": ["a"]}', "no 'unknown_token' field"),
                           ('{"kind": "bpe"}', "no 'hf_tokenizer' field"),
                           ('{"kind": "bpe", "hf_tokenizer": {"model": 1}}', "tokenizers library")]:
        path = tmp_path / "wrong.json"
        path.write_text(content, encoding="utf-8")
        with pytest.raises(TokenizerError, match=words) as info:
            load_tokenizer(path)
        assert str(path) in str(info.value) and "\n" not in str(info.value)
