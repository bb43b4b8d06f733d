"""decode(encode(text)) == text for every tokenizer kind, on seeded random Unicode, the nasty strings
and the lecture's "Hi, class हैलो क्लास 同学们好"; and the two byte-level subword kinds (wordpiece,
unigram) against plain-Python references of their algorithms, saved and loaded, cut safely, and held
to their vocab_size.

Where a kind's contract is narrower the test says so: char round-trips every text over the
characters it was trained on (an unseen one is a one-line error, or <unk> when asked for); word
keeps only the words it knows and its own spacing (see ``seqlab.tokenizers.word``).
"""

from __future__ import annotations

import json
import math
import random

import numpy as np
import pytest

from seqlab.config import TokenizerConfig
from seqlab.errors import ConfigError, TokenizerError
from seqlab.tokenizers import (
    HFTokenizer,
    UnigramTokenizer,
    WordPieceTokenizer,
    load_tokenizer,
    train_tokenizer,
)
from seqlab.tokenizers.bpe import bytes_to_unicode

LECTURE = "Hi, class हैलो क्लास 同学们好"
EXACT_KINDS = ["byte", "bpe", "wordpiece", "unigram", "hf"]


@pytest.fixture(scope="module")
def trained(mixed_corpus: str) -> dict:
    """One tokenizer of each exact kind, trained on the mixed corpus (hf: the bpe's tokenizer.json)."""
    toks = {kind: train_tokenizer(kind, mixed_corpus, vocab_size=600) for kind in ("byte", "bpe", "wordpiece",
                                                                                      "unigram")}
    toks["hf"] = HFTokenizer(toks["bpe"].hf_tokenizer)
    return toks


def _check(tok, text: str, what: str) -> None:
    ids = tok.encode(text)
    assert all(0 <= i < tok.vocab_size for i in ids), what
    assert tok.decode(ids) == text, what
    assert tok.decode_bytes(ids) == text.encode("utf-8"), what
    assert tok.encode_array(text).tolist() == ids, what


@pytest.mark.parametrize("kind", EXACT_KINDS)
@pytest.mark.parametrize("seed", range(8))
def test_exact_kinds_round_trip_random_unicode(trained, random_text, kind: str, seed: int) -> None:
    _check(trained[kind], random_text(seed, 1500) + LECTURE, f"{kind}, seed {seed}")


@pytest.mark.parametrize("kind", EXACT_KINDS)
def test_exact_kinds_round_trip_the_nasty_strings(trained, all_nasty: str, kind: str) -> None:
    tricky = " ##a [UNK] <0x41> <unk> \u2025x \u2581 ▁▁" + "x" * 350 + " " + "同" * 120  # prefixes, long words
    _check(trained[kind], all_nasty + tricky, kind)


@pytest.mark.parametrize("seed", range(8))
def test_char_round_trips_any_text_over_its_characters(random_text, seed: int) -> None:
    text = random_text(seed, 1500) + LECTURE
    tok = train_tokenizer("char", text)
    _check(tok, text, f"seed {seed}")
    _check(tok, "".join(random.Random(seed).sample(text, 200)), f"seed {seed}, shuffled")
    unseen = next(chr(c) for c in range(0x4E00, 0x9FFF) if chr(c) not in text)
    with pytest.raises(TokenizerError, match="not in the char vocabulary"):
        tok.encode(LECTURE + unseen)


def test_char_lecture_example() -> None:
    tok = train_tokenizer("char", LECTURE)
    assert tok.vocab_size == len(set(LECTURE))
    _check(tok, LECTURE, "lecture")


def test_word_round_trips_text_spaced_as_it_decodes() -> None:
    text = "Hi , class 同学们好 élève\nthe king and the queen .\n"
    tok = train_tokenizer("word", text)
    assert tok.decode(tok.encode(text)) == text
    # Its documented limit: other spacing and unknown words do not come back.
    assert tok.decode(tok.encode("Hi,  class")) == "Hi , class"
    assert tok.decode(tok.encode("Hi, students")) == "Hi , <unk>"


def test_word_keeps_the_lectures_hindi_words_whole() -> None:
    text = "Hi , class हैलो क्लास 同学们好"
    tok = train_tokenizer("word", text)
    assert tok.decode(tok.encode(text)) == text
    assert [tok.token_strings()[i] for i in tok.encode(text)][3:5] == ["हैलो", "क्लास"]  # vowel signs and virama kept
    decomposed = "e\u0301le\u0300ve"  # élève with combining accents: one word
    assert len(train_tokenizer("word", decomposed).encode(decomposed)) == 1


@pytest.mark.parametrize("kind", ["wordpiece", "unigram"])
def test_vocab_size_is_respected_and_saved(mixed_corpus: str, tmp_path, kind: str) -> None:
    for size in (520, 700):
        tok = train_tokenizer(kind, mixed_corpus, vocab_size=size)
        assert tok.vocab_size == size
    path = tmp_path / "tokenizer.json"
    tok.save(path)
    loaded = load_tokenizer(path)
    assert type(loaded) is type(tok) and loaded == tok and loaded.fingerprint() == tok.fingerprint()
    assert loaded.encode(mixed_corpus[:3000]) == tok.encode(mixed_corpus[:3000])


@pytest.mark.parametrize("kind", ["wordpiece", "unigram"])
def test_safe_cuts_and_parallel_encoding_keep_the_ids(trained, random_text, shakespeare: str, kind: str) -> None:
    tok = trained[kind]
    text = shakespeare[:140_000]  # above the parallel threshold (2 x 65,536 characters): encoded in pieces
    whole = tok.encode(text)
    np.testing.assert_array_equal(tok.encode_array(text), whole)
    cut = tok.safe_cut(text, 70_000)
    assert 0 < cut <= 70_000
    assert tok.encode(text[:cut]) + tok.encode(text[cut:]) == whole


def test_lossy_or_foreign_settings_are_refused(trained) -> None:
    d = json.loads(json.dumps(trained["wordpiece"].to_dict()))
    d["hf_tokenizer"]["normalizer"] = {"type": "Lowercase"}
    with pytest.raises(TokenizerError, match="has a normalizer"):
        WordPieceTokenizer.from_dict(d)
    d = json.loads(json.dumps(trained["unigram"].to_dict()))
    d["hf_tokenizer"]["model"]["vocab"] = [p for p in d["hf_tokenizer"]["model"]["vocab"] if p[0] != "Ġ"]
    with pytest.raises(TokenizerError, match="lacks some of the 256 byte symbols"):
        UnigramTokenizer.from_dict(d)
    with pytest.raises(TokenizerError, match="is not exact byte-level Unigram"):
        UnigramTokenizer.from_dict(trained["wordpiece"].to_dict())


def test_config_and_trainer_bounds_are_one_line_errors() -> None:
    with pytest.raises(ConfigError, match="at least 513 for a wordpiece"):
        TokenizerConfig(kind="wordpiece", vocab_size=512)
    assert TokenizerConfig(kind="unigram", vocab_size=257).vocab_size == 257
    with pytest.raises(TokenizerError, match="wordpiece vocab_size 300"):
        WordPieceTokenizer.train("abc", vocab_size=300)


# ---- the algorithms, against plain-Python references ----------------------------------------------


def _byte_words(text: str) -> list[str]:
    """The byte-symbol words of the pre-tokenizer, from the library itself (the split is GPT-2's)."""
    from tokenizers import pre_tokenizers
    return [w for w, _ in pre_tokenizers.ByteLevel(add_prefix_space=False).pre_tokenize_str(text)]


def test_wordpiece_is_greedy_longest_match_first(trained, shakespeare: str) -> None:
    tok = trained["wordpiece"]
    vocab = tok.hf_tokenizer.get_vocab()
    prefix = "\u2025"
    text = shakespeare[:4000] + LECTURE

    def greedy(word: str) -> list[int]:
        ids, start = [], 0
        while start < len(word):
            end = len(word)
            while (word[start:end] if start == 0 else prefix + word[start:end]) not in vocab:
                end -= 1
            ids.append(vocab[word[start:end] if start == 0 else prefix + word[start:end]])
            start = end
        return ids

    expected = [i for word in _byte_words(text) for i in greedy(word)]
    assert tok.encode(text) == expected


def test_unigram_is_the_most_probable_segmentation(trained, shakespeare: str) -> None:
    tok = trained["unigram"]
    pieces = tok.to_dict()["hf_tokenizer"]["model"]["vocab"]
    score = {p: s for p, s in pieces}
    ids = {p: i for i, (p, _) in enumerate(pieces)}
    longest = max(len(p) for p in score)

    def best_log_prob(word: str) -> float:  # Viterbi over the word's positions
        best = [0.0] + [-math.inf] * len(word)
        for end in range(1, len(word) + 1):
            for start in range(max(0, end - longest), end):
                piece = word[start:end]
                if piece in score:
                    best[end] = max(best[end], best[start] + score[piece])
        return best[-1]

    inverse = {i: p for p, i in ids.items()}
    for word in _byte_words(shakespeare[:3000] + LECTURE):
        got = [inverse[i] for i in tok.encode(_decode_symbols(word))]
        assert "".join(got) == word
        assert sum(score[p] for p in got) == pytest.approx(best_log_prob(word), abs=1e-6), word


def _decode_symbols(word: str) -> str:
    byte_of = {c: b for b, c in bytes_to_unicode().items()}
    return bytes(byte_of[c] for c in word).decode("utf-8")


@pytest.mark.parametrize("kind", ["bpe", "wordpiece", "unigram"])
def test_training_is_deterministic(shakespeare: str, kind: str) -> None:
    # The library's hash maps are seeded afresh for each training: equal vocabularies every time.
    text = shakespeare[:60_000]
    first = train_tokenizer(kind, text, vocab_size=700).to_dict()
    assert all(train_tokenizer(kind, text, vocab_size=700).to_dict() == first for _ in range(3))
