"""ByteTokenizer: ids are the UTF-8 bytes, partial characters, token strings."""

from __future__ import annotations

import doctest

import pytest

import seqlab.tokenizers.byte as byte_module
from seqlab.tokenizers import ByteTokenizer, train_tokenizer


def test_docstring_example() -> None:
    assert doctest.testmod(byte_module).failed == 0


@pytest.mark.parametrize("seed", range(3))
def test_ids_are_the_utf8_bytes(random_text, seed: int) -> None:
    text = random_text(seed, 1000)
    tok = ByteTokenizer()
    assert tok.encode(text) == list(text.encode("utf-8")), f"seed {seed}"


def test_vocabulary_is_fixed() -> None:
    tok = train_tokenizer("byte", "anything at all", vocab_size=1000)
    assert tok.vocab_size == 256
    assert tok == ByteTokenizer() and tok.fingerprint() == ByteTokenizer().fingerprint()
    assert tok.to_dict() == {"kind": "byte"}


def test_partial_character_decodes_to_replacement_but_bytes_stay_raw() -> None:
    tok = ByteTokenizer()
    ids = tok.encode("é🎉")  # 2 + 4 bytes
    assert tok.decode(ids[:4]) == "é\ufffd"
    assert tok.decode_bytes(ids[:4]) == "é🎉".encode()[:4]
    assert tok.decode(ids) == "é🎉"


def test_token_strings() -> None:
    strings = ByteTokenizer().token_strings()
    assert strings[ord("A")] == "A" and strings[ord(" ")] == " "
    assert strings[0x0A] == "<0x0A>" and strings[0x00] == "<0x00>" and strings[0xFF] == "<0xFF>"
    assert len(set(strings)) == 256
