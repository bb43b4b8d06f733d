"""Shannon's approximations: the series gets cheaper with order, order 0 costs log2(V), MLE samples
stay inside the training statistics, samples are reproducible, and the reports name every row."""

from __future__ import annotations

import math
from itertools import pairwise

import numpy as np
import pytest

from seqlab.data import load_corpus, split_text
from seqlab.errors import DataError, SeqlabError
from seqlab.experiments.shannon import (
    render_table,
    run_shannon,
    to_markdown,
    word_tokens,
)

SEED = 1234
WORDS = ["the", "and", "of", "to", "a", "in", "that", "king", "lord", "thou", "shall", "love",
         "death", "night", "sweet", "crown", "blood", "heaven", "speak", "gentle", "noble"]


def _generated_text(seed: int, n_chars: int = 30_000) -> str:
    """Zipf-distributed words in capitalised lines with punctuation: letter, digram and trigram
    structure, as in English."""
    rng = np.random.default_rng(seed)
    weights = 1.0 / np.arange(1, len(WORDS) + 1)
    lines, size = [], 0
    while size < n_chars:
        words = list(rng.choice(WORDS, size=rng.integers(3, 9), p=weights / weights.sum()))
        line = " ".join(words).capitalize() + rng.choice([".", ",", "!", "?"])
        lines.append(line)
        size += len(line) + 1
    return "\n".join(lines) + "\n"


@pytest.fixture(scope="module")
def generated() -> tuple[str, list]:
    text = _generated_text(SEED)
    return text, run_shannon(text, length=200, seed=SEED)


@pytest.fixture(scope="module")
def shakespeare() -> tuple[str, list]:
    try:
        text = load_corpus("shakespeare").text[:50_000]
    except DataError:
        pytest.skip("tiny Shakespeare is not available")
    return text, run_shannon(text, length=200, seed=SEED)


def _check_char_orders(rows: list) -> None:
    bpc = [r.bits_per_char for r in rows[:4]]
    assert [r.order for r in rows[:4]] == [0, 1, 2, 3]
    assert all(a > b for a, b in pairwise(bpc)), f"seed {SEED}: {bpc}"


def test_bits_per_char_fall_with_order_generated(generated) -> None:
    _check_char_orders(generated[1])


def test_bits_per_char_fall_with_order_shakespeare(shakespeare) -> None:
    _check_char_orders(shakespeare[1])


def test_zero_order_costs_log2_of_the_alphabet(generated) -> None:
    text, rows = generated
    assert rows[0].bits_per_char == pytest.approx(math.log2(len(set(text))), rel=1e-12)
    assert set(rows[0].sample) <= set(text)


def test_rows_in_shannons_order(generated) -> None:
    rows = generated[1]
    assert [(r.unit, r.order) for r in rows] == [("char", 0), ("char", 1), ("char", 2),
                                                 ("char", 3), ("word", 1), ("word", 2)]
    assert all(math.isfinite(r.bits_per_char) and r.bits_per_char > 0 for r in rows)


@pytest.mark.parametrize("case", ["generated", "shakespeare"])
def test_char_samples_use_only_training_ngrams(case, request) -> None:
    text, rows = request.getfixturevalue(case)
    train, _ = split_text(text, 0.1)
    for row in rows[:4]:
        assert len(row.sample) == 200
        assert set(row.sample) <= set(text)
        n = max(row.order, 1)
        missing = {row.sample[i:i + n] for i in range(len(row.sample) - n + 1)} - {
            train[i:i + n] for i in range(len(train) - n + 1)}
        if row.order >= 1:  # MLE never leaves the training n-grams (order 0 is uniform)
            assert not missing, f"seed {SEED}, order {row.order}: {sorted(missing)[:5]}"


def _segments_into(sample: str, vocab: set[str]) -> bool:
    """Whether `sample` is a concatenation of strings from `vocab` (word-break dynamic program)."""
    longest = max(map(len, vocab))
    ok = [True] + [False] * len(sample)
    for end in range(1, len(sample) + 1):
        ok[end] = any(ok[s] and sample[s:end] in vocab for s in range(max(0, end - longest), end))
    return ok[-1]


@pytest.mark.parametrize("case", ["generated", "shakespeare"])
def test_word_samples_are_training_words(case, request) -> None:
    text, rows = request.getfixturevalue(case)
    train, _ = split_text(text, 0.1)
    vocab = set(word_tokens(train))
    for row in rows[4:]:
        assert len(row.sample) >= 200
        assert _segments_into(row.sample, vocab), f"seed {SEED}: {row.sample[:80]!r}"
    bigrams = set(zip(word_tokens(train), word_tokens(train)[1:]))
    sample = word_tokens(rows[5].sample)  # the word bigram sample keeps training transitions
    assert sum(pair in bigrams for pair in pairwise(sample)) >= 0.9 * (len(sample) - 1)


def test_samples_reproducible_and_seeded() -> None:
    text = _generated_text(SEED, 8_000)
    a = run_shannon(text, length=120, seed=3)
    b = run_shannon(text, length=120, seed=3)
    c = run_shannon(text, length=120, seed=4)
    assert a == b
    assert all(x.sample != y.sample for x, y in zip(a, c))
    assert [x.bits_per_char for x in a] == [y.bits_per_char for y in c]  # scoring has no randomness


def test_word_tokens_cover_the_text_exactly() -> None:
    text = "  To be, or not to be--that is\n\nthe question:\tWhether 'tis nobler  "
    tokens = word_tokens(text)
    assert "".join(tokens) == text
    assert tokens[:3] == ["  To", " be", ","]


def test_reports_name_every_row(generated) -> None:
    rows = generated[1]
    table, markdown = render_table(rows), to_markdown(rows)
    for row in rows:
        assert row.name.capitalize() in table and row.name in markdown
        assert f"{row.bits_per_char:.3f}" in table and f"{row.bits_per_char:.3f}" in markdown
    assert markdown.count("```") == 2 * len(rows)


@pytest.mark.parametrize("kwargs", [{"length": 0}, {"seed": -1}, {"word_vocab": 0},
                                   {"val_fraction": 1.5}])
def test_bad_arguments_are_user_errors(kwargs) -> None:
    with pytest.raises(SeqlabError):
        run_shannon(_generated_text(SEED, 2_000), **kwargs)


def test_text_without_repeats_is_a_data_error() -> None:
    with pytest.raises(DataError, match="longer text"):
        run_shannon("abcdefghijklmnopqrstuvwxyz" * 1 + "ABCDEFGHIJ", val_fraction=0.2)
