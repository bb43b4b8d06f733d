"""Lines as sequences: makemore's split, the framing of a line, makemore's (context, target) pairs for
a fixed-window model, every line evaluated once, batches decided by the generator alone."""

import math
import random
import string

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from seqlab.data import Batches, BatchSource
from seqlab.data.lines import (
    LineBatches,
    LineData,
    boundary_id,
    frame_lines,
    iter_line_batches,
    line_nats,
    prepare_lines,
    split_lines,
)
from seqlab.errors import DataError
from seqlab.tokenizers.char import CharTokenizer


def synthetic_words(n: int, seed: int) -> list[str]:
    """n name-like lowercase words of 2 to 9 letters."""
    rng = random.Random(seed)
    return ["".join(rng.choice(string.ascii_lowercase) for _ in range(rng.randint(2, 9))) for _ in range(n)]


def makemore_split(words: list[str]) -> tuple[list[str], list[str], list[str]]:
    """makemore part 2's split, through the module-level random API (its global state restored)."""
    saved = random.getstate()
    try:
        words = list(words)
        random.seed(42)
        random.shuffle(words)
    finally:
        random.setstate(saved)
    n1, n2 = int(0.8 * len(words)), int(0.9 * len(words))
    return words[:n1], words[n1:n2], words[n2:]


def makemore_pairs(words: list[str], stoi: dict[str, int], block_size: int) -> list[tuple[list[int], int]]:
    """makemore's build_dataset: (context, target) for each character of each word and its '.'."""
    pairs = []
    for w in words:
        context = [0] * block_size
        for ch in w + ".":
            ix = stoi[ch]
            pairs.append((context, ix))
            context = context[1:] + [ix]
    return pairs


def line_data(words: list[str]) -> tuple[LineData, CharTokenizer]:
    text = "\n".join(words) + "\n"
    tokenizer = CharTokenizer.train(text)
    return prepare_lines(text, tokenizer), tokenizer


@pytest.mark.parametrize("n", [1, 7, 10, 333, 1000])
def test_split_equals_makemores(n):
    words = synthetic_words(n, seed=n)
    assert split_lines(words) == makemore_split(words), f"n = {n}"


def test_split_drops_empty_lines_and_keeps_every_other_line_once():
    words = synthetic_words(50, seed=1)
    with_blanks = words[:10] + ["", ""] + words[10:] + [""]
    train, val, test = split_lines(with_blanks)
    assert (train, val, test) == makemore_split(words)
    assert sorted(train + val + test) == sorted(words)
    assert [len(s) for s in split_lines(words, seed=0, fractions=(0.5, 0.5, 0.0))] == [25, 25, 0]
    with pytest.raises(ValueError, match="fractions"):
        split_lines(words, fractions=(0.8, 0.3, 0.1))


def test_the_boundary_is_the_newline_token():
    data, tokenizer = line_data(["emma", "olivia", "ava"])
    assert tokenizer.decode([0]) == "\n" and data.boundary == 0  # makemore's '.' is 0
    with pytest.raises(DataError, match="newline"):
        boundary_id(CharTokenizer.train("abc"))


def test_framing_of_a_hand_example():
    b = 0
    lines = [np.array([5, 6, 7]), np.array([8])]
    x, y = frame_lines(lines, b, left_pad=2)
    assert x.dtype == y.dtype == torch.long
    assert x.tolist() == [[b, b, b, 5, 6, 7],
                          [b, b, b, 8, b, b]]
    assert y.tolist() == [[-1, -1, 5, 6, 7, b],
                          [-1, -1, 8, b, -1, -1]]
    x, y = frame_lines(lines, b, left_pad=0)
    assert x.tolist() == [[b, 5, 6, 7], [b, 8, b, b]]
    assert y.tolist() == [[5, 6, 7, b], [8, b, -1, -1]]


def test_line_data_counts_characters_with_the_closing_newline():
    words = synthetic_words(40, seed=2)
    data, _ = line_data(words)
    train, val, test = split_lines(words)
    for split, expected in zip(("train", "val", "test"), (train, val, test)):
        assert data.chars(split) == sum(len(w) + 1 for w in expected)
        assert data.predicted(split) == data.chars(split)  # one token per character
    batches = LineBatches(data, batch_size=4)
    assert batches.tokens_per_char == {"train": 1.0, "val": 1.0, "test": 1.0}
    assert isinstance(batches, Batches) and isinstance(batches, BatchSource)


@pytest.mark.parametrize("K", [1, 3, 5])
def test_scored_windows_equal_makemores_build_dataset(K):
    words = synthetic_words(60, seed=K)
    data, tokenizer = line_data(words)
    stoi = {tokenizer.decode([i]): i for i in range(tokenizer.vocab_size)}
    stoi["."] = stoi.pop("\n")
    for split, expected_words in zip(("train", "val"), split_lines(words)):
        pairs = []
        for x, y in iter_line_batches(data.lines(split), data.boundary, 8, left_pad=K - 1):
            for row_x, row_y in zip(x.tolist(), y.tolist()):
                for t, target in enumerate(row_y):
                    if target != -1:
                        assert t >= K - 1
                        pairs.append((row_x[t - K + 1:t + 1], target))
        assert pairs == makemore_pairs(expected_words, stoi, K), f"K = {K}, {split}"


def test_every_line_is_evaluated_once():
    words = synthetic_words(37, seed=3)
    data, _ = line_data(words)
    lines = data.lines("train")
    seen = []
    for x, y in iter_line_batches(lines, data.boundary, 5, left_pad=2):
        for row_y in y.tolist():
            seen.append([t for t in row_y if t != -1][:-1])  # the line, without its closing boundary
    assert seen == [ids.tolist() for ids in lines]

    calls = []

    def uniform(x):
        calls.append(x.shape)
        return torch.zeros(*x.shape, 27, dtype=torch.float64)

    total, count = line_nats(uniform, lines, data.boundary, left_pad=2, batch_size=5)
    assert count == sum(len(ids) + 1 for ids in lines) == data.predicted("train")
    assert math.isclose(total, count * math.log(27), rel_tol=1e-12)
    assert len(calls) == math.ceil(len(lines) / 5)


def test_line_nats_equals_a_per_line_sum():
    torch.manual_seed(4)
    words = synthetic_words(23, seed=4)
    data, tokenizer = line_data(words)
    table = torch.randn(tokenizer.vocab_size, tokenizer.vocab_size, dtype=torch.float64)

    def bigram(x):
        return table[x]  # (B, T, V): logits from the current token alone

    total, count = line_nats(bigram, data.lines("val"), data.boundary, left_pad=0, batch_size=4)
    expected = 0.0
    for ids in data.lines("val"):
        seq = [data.boundary, *ids.tolist(), data.boundary]
        for a, c in zip(seq[:-1], seq[1:]):
            expected -= table[a].log_softmax(-1)[c].item()
    assert count == data.predicted("val")
    assert math.isclose(total, expected, rel_tol=1e-12)


def test_batches_are_decided_by_the_generator_alone():
    data, _ = line_data(synthetic_words(100, seed=5))
    batches = LineBatches(data, batch_size=6, left_pad=2)
    g = torch.Generator().manual_seed(5)
    state = g.get_state()
    torch.manual_seed(123)  # the global RNG must not matter
    first = [batches.sample("train", g) for _ in range(3)]
    g.set_state(state)
    torch.manual_seed(456)
    again = [batches.sample("train", g) for _ in range(3)]
    for (x1, y1), (x2, y2) in zip(first, again):
        assert torch.equal(x1, x2) and torch.equal(y1, y2)
    x, y = first[0]
    assert x.shape == y.shape and x.shape[0] == 6 and x.dtype == torch.long
    eval_x, _ = batches.sample_eval("val", torch.Generator().manual_seed(5))
    assert eval_x.shape[0] == 6


def test_a_line_longer_than_the_models_limit_is_a_data_error():
    data, _ = line_data(["ab", "abcdefgh", "abc", "abcd", "abcde", "a", "bb", "cc", "dd", "ee"])
    LineBatches(data, batch_size=2, left_pad=2, max_len=11)  # 1 + 2 + 8 = 11 fits
    with pytest.raises(DataError, match="block_size"):
        LineBatches(data, batch_size=2, left_pad=2, max_len=10)


def test_a_split_without_lines_is_a_data_error():
    data, _ = line_data(["ab", "cd"])  # n = 2: int(1.6) = 1 train, int(1.8) − 1 = 0 val
    with pytest.raises(DataError, match="val split has no lines"):
        LineBatches(data, batch_size=2)


def test_logits_of_a_fixed_window_model_train_on_line_batches():
    from seqlab.models.mlp import MLPLM, MLPConfig

    torch.manual_seed(6)
    words = ["ab", "abab", "ababab", "ba", "baba"] * 20
    data, tokenizer = line_data(words)
    K = 3
    model = MLPLM(MLPConfig(context=K, d_embed=4, d_hidden=32), tokenizer.vocab_size)
    batches = LineBatches(data, batch_size=16, left_pad=K - 1)
    optimizer = torch.optim.AdamW(model.parameters(), lr=3e-2)
    g = torch.Generator().manual_seed(6)
    before, _ = line_nats(lambda x: model(x)[0], data.lines("val"), data.boundary, left_pad=K - 1)
    for _ in range(60):
        x, y = batches.sample("train", g)
        _, loss = model(x, y)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    after, count = line_nats(lambda x: model(x)[0], data.lines("val"), data.boundary, left_pad=K - 1)
    assert after < 0.7 * before, (before / count, after / count)  # ends stay uncertain: no 0 floor
    x, y = next(iter_line_batches(data.lines("val"), data.boundary, 4, K - 1))
    _, loss = model(x, y)
    keep = y != -1
    torch.testing.assert_close(loss, F.cross_entropy(model(x)[0][keep], y[keep]))
