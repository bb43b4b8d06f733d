"""Byte fallback (``seqlab.tokenizers.fallback``): with it every kind round-trips any Unicode text
exactly, the lecture's example included; char and word spell in UTF-8 bytes what their vocabulary
cannot, keep their other ids, save and load the setting (files without it load as false), cut
safely, stream, and refuse to be combined with ``unknown_token`` in one line."""

from __future__ import annotations

import codecs
import json
import random

import numpy as np
import pytest

from seqlab.config import TokenizerConfig
from seqlab.errors import ConfigError, TokenizerError
from seqlab.tokenizers import CharTokenizer, WordTokenizer, load_tokenizer, tokenizer_from_dict, train_tokenizer
from tests.tokenizers.test_roundtrip import _check as check  # ids in range, exact text and bytes, array path

LECTURE = "Hi, class हैलो क्लास 同学们好"
TRAINING = "the king and the queen walked , the man and the woman ran .\n" * 20 + "a dog\tein hund\n"
KINDS = ["char", "word", "byte", "bpe", "wordpiece", "unigram"]
PIECES = {  # what random texts are made of, each kind of piece a tokenizer has to get right
    "known": ["the", "king", "queen", "and", ",", ".", "a", "dog"],
    "unknown": ["Hi", "class", "hund-ähnlich", "don't", "x1", "_", "&quot;", "&", "<unk>", "<0x41>", "##"],
    "multi-byte": ["é", "naïve", "हैलो", "क्लास", "同学们好", "한국어", "עברית", "𝔘𝔫𝔦"],
    "emoji": ["🎉", "👍🏽", "👨\u200d👩\u200d👧", "🏳️\u200d🌈", "\U0001f600"],
    "combining": ["e\u0301", "a\u0308\u0301\u0323", "\u0301", "n\u0303o"],
    "space": [" ", "  ", "   ", "\t", "\n", "\n\n", "\r\n", "\r", " \t ", "\u00a0", "\u3000", "\u2028", "\x0b",
              "\x0c"],
    "control": ["\x00", "\x1b", "\x7f", "\ufeff", "\u200b"],
}


def random_pieces(seed: int, n: int, sep: str = "") -> str:
    """Seeded text of ``n`` pieces drawn from every kind of ``PIECES``, joined by ``sep``."""
    rng = random.Random(seed)
    kinds = list(PIECES)
    return sep.join(rng.choice(PIECES[rng.choice(kinds)]) for _ in range(n))


@pytest.fixture(scope="module")
def trained() -> dict:
    """One tokenizer of each kind trained on English-only text, char and word with byte fallback."""
    return {kind: train_tokenizer(kind, TRAINING, vocab_size=600, byte_fallback=True) for kind in KINDS}


@pytest.mark.parametrize("kind", KINDS)
def test_every_kind_round_trips_the_lecture_example(trained, kind: str) -> None:
    check(trained[kind], LECTURE, kind)
    check(trained[kind], f"  {LECTURE}\n\n{LECTURE}\t ", kind)


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("seed", range(6))
def test_every_kind_round_trips_random_unicode(trained, random_text, kind: str, seed: int) -> None:
    check(trained[kind], random_pieces(seed, 400), f"{kind}, pieces, seed {seed}")
    check(trained[kind], random_pieces(seed, 400, sep=" "), f"{kind}, spaced pieces, seed {seed}")
    check(trained[kind], random_text(seed, 800), f"{kind}, code points, seed {seed}")


@pytest.mark.parametrize("kind", KINDS)
def test_every_kind_round_trips_the_nasty_strings(trained, kind: str, nasty_text: str) -> None:
    check(trained[kind], nasty_text, kind)  # the empty string among them


@pytest.mark.parametrize("kind", ["char", "word"])
def test_what_the_vocabulary_lacks_is_spelled_in_bytes(trained, kind: str) -> None:
    tok = trained[kind]
    offset = tok.byte_fallback_offset
    assert offset is not None and tok.vocab_size == offset + 256
    assert tok.token_strings()[offset:] == [f"<0x{b:02X}>" for b in range(256)]
    ids = tok.encode("同")
    assert ids == [offset + b for b in "同".encode("utf-8")]  # E5 90 8C
    assert tok.decode([offset + 0xE5, offset + 0x90]) == "\ufffd"  # a cut character decodes to U+FFFD
    assert tok.decode_bytes([offset + 0xE5, offset + 0x90]) == b"\xe5\x90"


def test_char_keeps_its_ids_and_spells_only_unseen_characters() -> None:
    plain, fallback = CharTokenizer.train(TRAINING), CharTokenizer.train(TRAINING, byte_fallback=True)
    assert fallback.chars == plain.chars and fallback.vocab_size == plain.vocab_size + 256
    assert fallback.encode(TRAINING) == plain.encode(TRAINING)
    ids = fallback.encode("the é")
    assert ids[:4] == plain.encode("the ") and ids[4:] == [len(plain.chars) + 0xC3, len(plain.chars) + 0xA9]


def test_word_keeps_its_ids_for_text_spaced_as_it_decodes() -> None:
    plain, fallback = WordTokenizer.train(TRAINING), WordTokenizer.train(TRAINING, byte_fallback=True)
    assert fallback.words == plain.words
    assert fallback.encode(TRAINING) == plain.encode(TRAINING)
    assert 0 not in fallback.encode("the cat")  # never <unk>


def test_word_spells_spacing_that_decode_would_change() -> None:
    tok = WordTokenizer.train("a dog runs .\n", byte_fallback=True)
    names = tok.token_strings()
    assert [names[i] for i in tok.encode("a cat  runs.")] == ["a", "<0x20>", "<0x63>", "<0x61>", "<0x74>", "<0x20>",
                                                               "<0x20>", "runs", "<0x2E>"]
    assert [names[i] for i in tok.encode("a dog \n")] == ["a", "dog", "<0x20>", "<U+000A>"]
    assert [names[i] for i in tok.encode(" a")] == ["<0x20>", "a"]


def test_word_vocab_size_counts_the_byte_tokens() -> None:
    text = "a a a a b b b c c d"
    tok = WordTokenizer.train(text, vocab_size=261, byte_fallback=True)
    assert tok.vocab_size == 261 and tok.words == ("a", "b")
    with pytest.raises(TokenizerError, match="vocab_size of at least 260 .*256 byte tokens") as info:
        WordTokenizer.train(text, vocab_size=259, byte_fallback=True)
    assert "\n" not in str(info.value)


@pytest.mark.parametrize("kind", ["char", "word"])
@pytest.mark.parametrize("seed", range(3))
def test_safe_cuts_keep_the_ids(trained, kind: str, seed: int) -> None:
    tok = trained[kind]
    # Random pieces, then words set apart as decode spaces them (a cut before a space would change those).
    for text in (random_pieces(seed, 3000), random_pieces(seed, 3000, sep=" "), TRAINING):
        whole = tok.encode(text)
        rng = random.Random(seed)
        for limit in rng.sample(range(1, len(text)), 40):
            cut = tok.safe_cut(text, limit)
            assert 0 <= cut <= limit
            if cut:
                assert tok.encode(text[:cut]) + tok.encode(text[cut:]) == whole, f"seed {seed}, cut {cut}"


@pytest.mark.parametrize("kind", ["char", "word"])
def test_streamed_bytes_reassemble_the_text(trained, kind: str) -> None:
    text = random_pieces(11, 500)
    tok = trained[kind]
    decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
    out = "".join(decoder.decode(tok.decode_bytes([i])) for i in tok.encode(text))
    assert out + decoder.decode(b"", final=True) == text


@pytest.mark.parametrize("kind", ["char", "word"])
def test_the_setting_is_saved_and_loaded(trained, tmp_path, kind: str) -> None:
    tok = trained[kind]
    path = tmp_path / "tokenizer.json"
    tok.save(path)
    assert json.loads(path.read_text(encoding="utf-8"))["byte_fallback"] is True
    loaded = load_tokenizer(path)
    assert loaded == tok and loaded.fingerprint() == tok.fingerprint() and loaded.byte_fallback_offset is not None
    assert loaded.encode(LECTURE) == tok.encode(LECTURE)


@pytest.mark.parametrize(("old", "kind"), [({"kind": "char", "chars": ["a", "b"], "unknown_token": False}, "char"),
                                           ({"kind": "word", "words": ["a", "b"]}, "word")])
def test_files_from_before_the_setting_load_without_it(old: dict, kind: str) -> None:
    tok = tokenizer_from_dict(old)
    assert tok.kind == kind and not tok.byte_fallback and tok.byte_fallback_offset is None
    assert tok.to_dict() == old  # written as before: same file, same fingerprint (the token cache's key)
    assert tokenizer_from_dict({**old, "byte_fallback": False}) == tok


def test_a_malformed_setting_is_a_one_line_error(tmp_path) -> None:
    path = tmp_path / "tokenizer.json"
    path.write_text('{"kind": "word", "words": ["a"], "byte_fallback": "yes"}', encoding="utf-8")
    with pytest.raises(TokenizerError, match="'byte_fallback' has type str") as info:
        load_tokenizer(path)
    assert str(path) in str(info.value) and "\n" not in str(info.value)


def test_unknown_token_and_byte_fallback_together_are_one_line_errors() -> None:
    with pytest.raises(TokenizerError, match="unknown_token and byte_fallback") as info:
        CharTokenizer.train("abc", unknown_token=True, byte_fallback=True)
    assert "\n" not in str(info.value)
    with pytest.raises(ConfigError, match="tokenizer.unknown_token .*byte_fallback = false to keep <unk>") as info:
        TokenizerConfig(kind="char", unknown_token=True)  # byte_fallback is true by default
    assert "\n" not in str(info.value)
    assert TokenizerConfig(kind="char", unknown_token=True, byte_fallback=False).unknown_token
    with pytest.raises(ConfigError, match="at least 260 for a word tokenizer with byte_fallback"):
        TokenizerConfig(kind="word", vocab_size=259)
    assert TokenizerConfig(kind="word", vocab_size=259, byte_fallback=False).vocab_size == 259


def test_a_lone_surrogate_is_a_one_line_error(trained) -> None:
    # Not Unicode text: UTF-8 cannot encode it, so there are no bytes to fall back to.
    for kind in ("char", "word"):
        with pytest.raises(TokenizerError, match=r"U\+DC80\) at position 2 is a lone surrogate") as info:
            trained[kind].encode("ab\udc80")
        assert "\n" not in str(info.value)


def test_random_texts_have_every_kind_of_piece() -> None:
    text = random_pieces(0, 400)
    assert all(any(piece in text for piece in pieces) for pieces in PIECES.values())
    assert np.mean([c.isspace() for c in text]) > 0.05
