import itertools
import random
from collections import Counter

import pytest
import torch

from seqlab.data.parens import (CORRUPTIONS, ParensBatches, collate_parens, corrupt, is_balanced,
                                make_parens_dataset, passes_counting, random_balanced, random_unbalanced)
from seqlab.errors import DataError


def reduces_to_empty(tokens) -> bool:
    """An independent oracle: cancel adjacent `i, 9 - i` (i < 5) until none is left."""
    tokens = list(tokens)
    changed = True
    while changed:
        changed = False
        for i in range(len(tokens) - 1):
            if tokens[i] < 5 and tokens[i + 1] == 9 - tokens[i]:
                del tokens[i:i + 2]
                changed = True
                break
    return not tokens


def counts_matched(tokens) -> bool:
    counts = Counter(tokens)
    return all(counts[i] == counts[9 - i] for i in range(5))


@pytest.mark.parametrize("tokens, balanced", [
    ([], True),
    ([0, 9], True),
    ([0, 1, 8, 9], True),
    ([4, 5, 0, 2, 7, 9, 3, 6], True),
    ([0, 8], False),            # wrong colour
    ([0, 1, 9, 8], False),      # wrong nesting order: counts match, every prefix count is fine
    ([0, 1, 8], False),         # unclosed
    ([0, 9, 9], False),         # extra closer
    ([9, 0], False),            # closer before its opener
])
def test_is_balanced_on_hand_made_cases(tokens, balanced):
    assert is_balanced(tokens) is balanced


def test_counting_baseline_on_hand_made_cases():
    assert passes_counting([0, 1, 9, 8]) and passes_counting([0, 1, 8, 9]) and passes_counting([])
    assert not passes_counting([9, 0]) and not passes_counting([0, 0, 9]) and not passes_counting([0, 8])


def test_is_balanced_agrees_with_cancellation_on_every_short_sequence():
    n_balanced = 0
    for length in range(7):
        for tokens in itertools.product([0, 1, 8, 9], repeat=length):
            assert is_balanced(tokens) == reduces_to_empty(tokens), tokens
            if length == 6:
                n_balanced += is_balanced(tokens)
    assert n_balanced == 5 * 2 ** 3  # Catalan(3) nestings times 2 colours per pair


def test_tokens_outside_the_vocabulary_are_data_errors():
    with pytest.raises(DataError, match="0..9"):
        is_balanced([0, 10])
    with pytest.raises(DataError, match="unknown corruption"):
        corrupt([0, 9], "shuffle", random.Random(0))


@pytest.mark.parametrize("seed", [0, 1])
def test_balanced_sequences_are_balanced_with_uniform_nesting(seed):
    rng = random.Random(seed)
    for length in range(0, 31, 2):
        tokens = random_balanced(length, rng)
        assert len(tokens) == length and is_balanced(tokens), f"seed {seed}: {tokens}"
    shapes = Counter(tuple(t < 5 for t in random_balanced(8, rng)) for _ in range(7000))
    assert len(shapes) == 14, f"seed {seed}"  # Catalan(4) Dyck words of length 8
    assert all(400 < c < 600 for c in shapes.values()), f"seed {seed}: {shapes}"  # 500 ± ~4.5 sd
    colours = Counter(t for _ in range(1000) for t in random_balanced(10, rng) if t < 5)
    assert all(800 < c < 1200 for c in colours.values()) and len(colours) == 5, f"seed {seed}: {colours}"


@pytest.mark.parametrize("kind", CORRUPTIONS)
def test_corruptions_permute_and_misnest_and_swap_always_unbalance(kind):
    rng = random.Random(3)
    applied = 0
    for _ in range(500):
        base = random_balanced(rng.choice(range(2, 21, 2)), rng)
        out = corrupt(base, kind, rng)
        if out is None:
            continue
        applied += 1
        assert sorted(out) == sorted(base), (kind, base, out)
        if kind != "rotate":
            assert not is_balanced(out), (kind, base, out)
        if kind == "misnest":  # the hardest kind: invisible to per-colour counting
            assert passes_counting(out), (base, out)
    assert applied > 250


def test_corruptions_that_cannot_apply_say_so():
    rng = random.Random(0)
    assert corrupt([0, 9, 1, 8], "misnest", rng) is None  # no two adjacent closers
    assert corrupt([0, 0, 9, 9], "swap", rng) is None  # one colour only
    assert corrupt([0, 9, 1, 8], "swap", rng) == [0, 8, 1, 9]


@pytest.mark.parametrize("seed", [0, 1])
def test_unbalanced_sequences_are_unbalanced_with_matched_counts(seed):
    rng = random.Random(seed)
    for _ in range(500):
        length = rng.choice(range(2, 31, 2))
        tokens = random_unbalanced(length, rng)
        assert len(tokens) == length and not is_balanced(tokens), f"seed {seed}: {tokens}"
        assert counts_matched(tokens), f"seed {seed}: {tokens}"


def test_dataset_is_half_and_half_labelled_right_with_even_lengths_in_range():
    seed = 7
    sequences, labels = make_parens_dataset(2000, min_len=3, max_len=24, seed=seed)
    assert len(sequences) == len(labels) == 2000 and sum(labels) == 1000
    assert labels != sorted(labels, reverse=True) and labels != sorted(labels)  # shuffled, not in blocks
    for tokens, label in zip(sequences, labels):
        assert label == int(is_balanced(tokens)), f"seed {seed}: {tokens}"
        assert counts_matched(tokens), f"seed {seed}: {tokens}"
    for label in (0, 1):  # both labels draw from every even length, so length cannot tell them apart
        lengths = {len(s) for s, y in zip(sequences, labels) if y == label}
        assert lengths == set(range(4, 25, 2)), f"seed {seed}, label {label}: {sorted(lengths)}"


def test_dataset_is_seeded():
    a = make_parens_dataset(200, min_len=2, max_len=16, seed=1)
    assert a == make_parens_dataset(200, min_len=2, max_len=16, seed=1)
    assert a != make_parens_dataset(200, min_len=2, max_len=16, seed=2)


def test_unbalanced_sequences_are_hard_for_the_counting_baseline():
    seed = 11
    sequences, labels = make_parens_dataset(2000, min_len=2, max_len=40, seed=seed)
    assert all(passes_counting(s) for s, y in zip(sequences, labels) if y == 1)  # counting never rejects
    fooled = [passes_counting(s) for s, y in zip(sequences, labels) if y == 0]
    assert sum(fooled) / len(fooled) >= 0.3, f"seed {seed}: only {sum(fooled)} of {len(fooled)} pass counting"


def test_bad_dataset_arguments_are_data_errors():
    with pytest.raises(DataError, match="even"):
        make_parens_dataset(3, min_len=2, max_len=8, seed=0)
    with pytest.raises(DataError, match="no even length"):
        make_parens_dataset(4, min_len=5, max_len=5, seed=0)
    with pytest.raises(DataError, match="even length"):
        random_balanced(3, random.Random(0))


def test_collate_pads_with_zero_and_masks_the_padding():
    sequences, labels = [[0, 9], [1, 0, 9, 8, 2, 7], [9, 0, 3, 6]], [1, 1, 0]
    idx, mask, y = collate_parens(sequences, labels)
    assert idx.shape == mask.shape == (3, 6) and idx.dtype == torch.long and mask.dtype == torch.bool
    assert mask.sum(1).tolist() == [2, 6, 4]
    assert idx[mask].tolist() == [t for s in sequences for t in s]  # real tokens, row by row, in order
    assert (idx[~mask] == 0).all()
    assert y.tolist() == labels and y.dtype == torch.long


def test_batches_are_seeded_labelled_and_drawn_from_their_split():
    train = make_parens_dataset(100, min_len=2, max_len=12, seed=0)
    val = make_parens_dataset(100, min_len=14, max_len=20, seed=1)
    batches = ParensBatches(train, val, batch_size=16)
    assert batches.tokens_per_char == {"train": 1.0, "val": 1.0}
    (idx, mask), y = batches.sample("train", torch.Generator().manual_seed(0))
    (idx2, mask2), y2 = batches.sample("train", torch.Generator().manual_seed(0))
    assert idx.shape == mask.shape and idx.shape[0] == y.shape[0] == 16
    assert torch.equal(idx, idx2) and torch.equal(mask, mask2) and torch.equal(y, y2)
    for row, label in zip(range(16), y.tolist()):
        assert label == int(is_balanced(idx[row][mask[row]].tolist()))
    (idx, mask), _ = batches.sample("val", torch.Generator().manual_seed(0))
    assert mask.sum(1).min() >= 14  # validation sequences are the long ones


def test_estimates_draw_their_own_batch_size():
    data = make_parens_dataset(100, min_len=2, max_len=12, seed=0)
    online = ParensBatches(data, data, batch_size=1, eval_batch_size=50)
    assert online.sample("train", torch.Generator().manual_seed(0))[1].shape == (1,)
    (idx, mask), y = online.sample_eval("val", torch.Generator().manual_seed(0))
    assert idx.shape[0] == mask.shape[0] == y.shape[0] == 50
    assert ParensBatches(data, data, batch_size=8).sample_eval("val", torch.Generator())[1].shape == (8,)
