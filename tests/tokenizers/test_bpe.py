"""BPETokenizer: agreement with the tokenizers library, the parallel fast path, settings that
would break exactness, Tiny Shakespeare."""

from __future__ import annotations

import doctest
import logging

import numpy as np
import pytest
from tokenizers import pre_tokenizers

import seqlab.tokenizers.bpe as bpe_module
from seqlab.errors import TokenizerError
from seqlab.tokenizers import BPETokenizer, ByteTokenizer, tokenizer_from_dict
from seqlab.tokenizers.bpe import bytes_to_unicode, split_for_parallel

# Whitespace in every arrangement around newlines: where the regex's "\s+(?!\S)" cuts differs.
WHITESPACE_MAZE = "".join(
    f"{a}{ws}\n{ws2}{b}" for a in ["x", ".", "é", " ", "\t", "7", "'"]
    for ws in ["", " ", "  ", "\t", "\r"] for ws2 in ["", " ", "\n", "\n\n "]
    for b in ["y", " z", "\n"])


@pytest.fixture(scope="module")
def bpe(mixed_corpus: str) -> BPETokenizer:
    return BPETokenizer.train(mixed_corpus + WHITESPACE_MAZE, vocab_size=450)


def test_docstring_example() -> None:
    assert doctest.testmod(bpe_module).failed == 0


def test_byte_table_matches_the_byte_level_alphabet() -> None:
    table = bytes_to_unicode()
    assert sorted(table) == list(range(256))
    assert set(table.values()) == set(pre_tokenizers.ByteLevel.alphabet())
    assert table[ord(" ")] == "Ġ" and table[ord("\n")] == "Ċ"  # GPT-2's well-known pair


def test_decode_agrees_with_the_tokenizers_library(bpe: BPETokenizer, all_nasty: str,
                                                    random_text) -> None:
    for text in [all_nasty, WHITESPACE_MAZE, random_text(11, 2000)]:
        ids = bpe.encode(text)
        assert bpe.hf_tokenizer.decode(ids) == bpe.decode(ids) == text


def test_each_merge_adds_one_multi_byte_piece(bpe: BPETokenizer) -> None:
    pieces = [bpe.decode_bytes([i]) for i in range(bpe.vocab_size)]
    assert sum(len(p) > 1 for p in pieces) == bpe.vocab_size - 256
    assert b" the" in pieces  # the commonest English word with its space is learned early


@pytest.mark.parametrize("chunk_chars", [1, 2, 5, 17, 100])
def test_split_for_parallel_gives_the_one_shot_ids(bpe: BPETokenizer, all_nasty: str,
                                                   chunk_chars: int) -> None:
    text = WHITESPACE_MAZE + all_nasty + WHITESPACE_MAZE
    chunks = split_for_parallel(text, chunk_chars)
    assert "".join(chunks) == text and len(chunks) > 5
    assert all(c.startswith("\n") for c in chunks[1:])
    ids = [i for chunk in chunks for i in bpe.encode(chunk)]
    assert ids == bpe.encode(text)


def test_parallel_encode_array_equals_encode(bpe: BPETokenizer, monkeypatch,
                                             all_nasty: str, random_text) -> None:
    monkeypatch.setattr(bpe_module, "PARALLEL_CHUNK_CHARS", 64)
    text = (WHITESPACE_MAZE + all_nasty + random_text(3, 3000)) * 2
    assert len(split_for_parallel(text, 64)) > 20
    np.testing.assert_array_equal(bpe.encode_array(text), np.array(bpe.encode(text)))


def test_shakespeare(shakespeare: str) -> None:
    tok = BPETokenizer.train(shakespeare[:200_000], vocab_size=512)
    assert tok.vocab_size == 512
    text = shakespeare[-100_000:]  # held-out part
    ids = tok.encode_array(text)
    assert ids.tolist() == tok.encode(text)
    assert tok.decode(ids) == text
    assert len(ids) < len(ByteTokenizer().encode(text)) / 1.5  # merges compress English


def test_training_is_deterministic(mixed_corpus: str) -> None:
    a = BPETokenizer.train(mixed_corpus, vocab_size=300)
    b = BPETokenizer.train(mixed_corpus, vocab_size=300)
    assert a.fingerprint() == b.fingerprint()


def test_too_few_pairs_trains_what_it_can_with_a_warning(caplog) -> None:
    with caplog.at_level(logging.WARNING, logger="seqlab.tokenizers.bpe"):
        tok = BPETokenizer.train("abab", vocab_size=1000)
    assert 256 < tok.vocab_size < 1000
    assert "not the 744 asked for" in caplog.text
    assert tok.decode(tok.encode("abba 🎉")) == "abba 🎉"
    assert BPETokenizer.train("", vocab_size=300).vocab_size == 256


def test_vocab_size_below_the_byte_alphabet_is_an_error() -> None:
    with pytest.raises(TokenizerError, match="vocab_size 200 is below the 256 byte symbols"):
        BPETokenizer.train("text", vocab_size=200)


def test_special_tokens_are_single_ids_and_round_trip() -> None:
    tok = BPETokenizer.train("hello world " * 20, vocab_size=270, special_tokens=["<|endoftext|>"])
    text = "hello<|endoftext|> world\n"
    ids = tok.encode(text)
    assert tok.hf_tokenizer.token_to_id("<|endoftext|>") in ids
    assert tok.decode(ids) == text and tok.encode_array(text).tolist() == ids


@pytest.mark.parametrize("edit, words", [
    (lambda h: h.update(normalizer={"type": "NFKC"}), "normalizer"),
    (lambda h: h["pre_tokenizer"].update(add_prefix_space=True), "prefix space"),
    (lambda h: h["model"].update(dropout=0.1), "dropout"),
    # Byte 0xF5 never occurs in UTF-8, so no merge refers to it.
    (lambda h: h["model"]["vocab"].pop(bytes_to_unicode()[0xF5]), "256 byte symbols"),
])
def test_settings_that_break_exactness_are_refused(bpe: BPETokenizer, edit, words: str) -> None:
    d = bpe.to_dict()
    d["hf_tokenizer"] = {k: (dict(v) if isinstance(v, dict) else v)
                         for k, v in d["hf_tokenizer"].items()}
    d["hf_tokenizer"]["model"]["vocab"] = dict(d["hf_tokenizer"]["model"]["vocab"])
    edit(d["hf_tokenizer"])
    with pytest.raises(TokenizerError, match=words):
        tokenizer_from_dict(d)
    assert bpe.decode(bpe.encode(" still fine")) == " still fine"  # the original is untouched
