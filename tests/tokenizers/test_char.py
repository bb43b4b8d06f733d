"""CharTokenizer: nanoGPT's shakespeare_char vocabulary, unseen characters, the unknown id."""

from __future__ import annotations

import doctest

import numpy as np
import pytest

import seqlab.tokenizers.char as char_module
from seqlab.errors import TokenizerError
from seqlab.tokenizers import CharTokenizer, load_tokenizer


def test_docstring_example() -> None:
    assert doctest.testmod(char_module).failed == 0


def test_shakespeare_matches_nanogpt_prepare(shakespeare: str) -> None:
    # The reference: nanoGPT data/shakespeare_char/prepare.py.
    chars = sorted(list(set(shakespeare)))
    stoi = {ch: i for i, ch in enumerate(chars)}
    tok = CharTokenizer.train(shakespeare)
    assert tok.vocab_size == len(chars) == 65
    assert tok.encode("\n") == [0] and tok.encode(" ") == [1]
    ids = tok.encode_array(shakespeare)
    np.testing.assert_array_equal(ids, np.array([stoi[c] for c in shakespeare]))
    assert tok.decode(ids) == shakespeare


def test_ids_follow_the_given_order() -> None:
    tok = CharTokenizer(["z", "a", "\n"])
    assert tok.encode("a\nz") == [1, 2, 0]
    assert tok.chars == ("z", "a", "\n") and tok.unknown_id is None


def test_unseen_character_error_names_it_and_its_position() -> None:
    tok = CharTokenizer.train("To be, or not to be")
    text = "To be, or no\u00e9"
    with pytest.raises(TokenizerError) as info:
        tok.encode(text)
    message = str(info.value)
    assert "character 'é' (U+00E9) at position 12" in message
    assert f"({tok.vocab_size} characters)" in message
    assert "unknown_token = true" in message and "\n" not in message


def test_unseen_astral_character_beyond_the_lookup_table() -> None:
    tok = CharTokenizer.train("abc")
    with pytest.raises(TokenizerError, match=r"'😀' \(U\+1F600\) at position 1"):
        tok.encode_array("a😀")


def test_unknown_token_takes_the_last_id_and_decodes_to_replacement_char() -> None:
    tok = CharTokenizer.train("hello", unknown_token=True)
    assert tok.vocab_size == 5 and tok.unknown_id == 4
    ids = tok.encode("hé😀llo!")
    assert ids == [1, 4, 4, 2, 2, 3, 4]
    assert tok.decode(ids) == "h\ufffd\ufffdllo\ufffd"
    assert tok.token_strings()[-1] == "<unk>"
    assert tok.decode(tok.encode("hello")) == "hello"


def test_unknown_token_survives_save_and_load(tmp_path) -> None:
    tok = CharTokenizer.train("abc", unknown_token=True)
    tok.save(tmp_path / "tok.json")
    loaded = load_tokenizer(tmp_path / "tok.json")
    assert isinstance(loaded, CharTokenizer) and loaded.unknown_token
    assert loaded.encode("abz") == [0, 1, 3]


def test_empty_training_text_is_an_error() -> None:
    with pytest.raises(TokenizerError, match="empty text"):
        CharTokenizer.train("")


@pytest.mark.parametrize("chars, words", [
    ([], "at least one character"),
    (["a", "bc"], r"entry 1 is 'bc', not a single character"),
    (["a", 5], "entry 1 is 5"),
    (["a", "b", "a"], "lists 'a' more than once"),
    (["\ud800"], "lone surrogate"),
])
def test_bad_vocabulary_is_an_error(chars: list, words: str) -> None:
    with pytest.raises(TokenizerError, match=words):
        CharTokenizer(chars)


def test_token_strings_show_controls_as_code_points() -> None:
    tok = CharTokenizer.train("a\n\t ")
    assert tok.token_strings() == ["<U+0009>", "<U+000A>", " ", "a"]
