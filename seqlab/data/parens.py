"""The coloured parentheses task: is a sequence of brackets of five colours balanced?

Tokens 0..9 are brackets; opener `i` in 0..4 is closed by `9 - i` (0 with 9, 1 with 8, ..., 4 with 5).
A sequence is balanced when every closer closes the most recent unclosed opener, of its own colour,
and nothing stays open: the Dyck language over five bracket types.

    balanced     0 1 8 9 4 5        unbalanced (misnest)   0 1 9 8 4 5

Balanced sequences are uniform random Dyck words (cycle lemma) with a uniform random colour per pair.
Unbalanced ones are made hard: each is a permutation of a balanced sequence, so every opener appears
exactly as often as its closer and counting cannot tell them apart. Three corruptions, `CORRUPTIONS`:

| kind | what | example |
|---|---|---|
| misnest | swap two adjacent closers of different colours | `0 1 8 9` → `0 1 9 8` |
| swap | swap two closers of different colours anywhere | `0 9 1 2 7 8` → `0 8 1 2 7 9` |
| rotate | rotate a segment | `0 9 1 8` → `9 1 8 0` |

A misnest always passes the counting check (`passes_counting`: counts match and no prefix closes more
brackets of a colour than it opened); many swaps and rotations do too.

A batch is `((idx (B, T), mask (B, T)), labels (B,))`: B sequences · T the longest one, padded with
token 0 where the mask is False (True = real token); label 1 = balanced, 0 = unbalanced.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import Tensor

from seqlab.data.batches import Batches
from seqlab.errors import DataError
from seqlab.seeds import generator_seed

N_COLOURS = 5
VOCAB_SIZE = 2 * N_COLOURS  # tokens 0..9, and 0 doubles as padding (the mask marks it)
CORRUPTIONS = ("misnest", "swap", "rotate")

Labelled = tuple[list[list[int]], list[int]]  # (sequences, labels)


def closer(opener: int) -> int:
    """The token that closes `opener`: `closer(0) == 9`, `closer(4) == 5`."""
    return VOCAB_SIZE - 1 - opener


def colour(token: int) -> int:
    """The bracket pair a token belongs to, 0..4: `colour(1) == colour(8) == 1`."""
    return token if token < N_COLOURS else closer(token)


def _check_tokens(tokens: Sequence[int]) -> None:
    bad = [t for t in tokens if not 0 <= t < VOCAB_SIZE]
    if bad:
        raise DataError(f"bracket tokens are 0..{VOCAB_SIZE - 1}, got {bad[0]}")


def is_balanced(tokens: Sequence[int]) -> bool:
    """True when every closer closes the most recent open bracket and that bracket is of its colour,
    and nothing stays open.

    >>> is_balanced([0, 1, 8, 9]), is_balanced([0, 1, 9, 8]), is_balanced([0, 9, 0])
    (True, False, False)
    """
    _check_tokens(tokens)
    stack: list[int] = []
    for t in tokens:
        if t < N_COLOURS:
            stack.append(t)
        elif not stack or closer(stack.pop()) != t:
            return False
    return not stack


def passes_counting(tokens: Sequence[int]) -> bool:
    """The counting baseline: True when, for every colour on its own, no prefix has more closers than
    openers and the totals are equal. Balanced implies passing; the converse fails across colours.

    >>> passes_counting([0, 1, 9, 8]), passes_counting([9, 0])
    (True, False)
    """
    _check_tokens(tokens)
    depth = [0] * N_COLOURS
    for t in tokens:
        depth[colour(t)] += 1 if t < N_COLOURS else -1
        if depth[colour(t)] < 0:
            return False
    return not any(depth)


def _dyck_shape(n_pairs: int, rng: random.Random) -> list[bool]:
    """A uniform random Dyck word of `n_pairs` pairs as True = open, False = close.

    Cycle lemma: of the 2n+1 rotations of a shuffle of n opens and n+1 closes, exactly one keeps every
    proper prefix non-negative, and it starts right after the first lowest point of the walk. Each Dyck
    word comes from the same number of shuffles, so dropping that rotation's final close is uniform.
    """
    steps = [True] * n_pairs + [False] * (n_pairs + 1)
    rng.shuffle(steps)
    height, lowest, start = 0, 0, 0
    for i, up in enumerate(steps):
        height += 1 if up else -1
        if height < lowest:  # strict: the first time the walk reaches its minimum
            lowest, start = height, i + 1
    return (steps[start:] + steps[:start])[:-1]


def random_balanced(length: int, rng: random.Random) -> list[int]:
    """A balanced sequence of even `length`: a uniform random nesting, a uniform random colour per pair.

    >>> is_balanced(random_balanced(12, random.Random(0)))
    True
    """
    if length < 0 or length % 2:
        raise DataError(f"a balanced sequence needs an even length >= 0, got {length}")
    tokens: list[int] = []
    stack: list[int] = []
    for opens in _dyck_shape(length // 2, rng):
        if opens:
            stack.append(rng.randrange(N_COLOURS))
            tokens.append(stack[-1])
        else:
            tokens.append(closer(stack.pop()))
    return tokens


def corrupt(tokens: Sequence[int], kind: str, rng: random.Random) -> list[int] | None:
    """A permutation of `tokens` by the corruption `kind`, or None when the kind cannot apply (a misnest
    needs two adjacent closers of different colours, a swap two closers of different colours).

    Misnest and swap always unbalance a balanced sequence: at the first changed position a closer meets
    an open bracket of another colour. A rotation may not (`0 9 1 8` rotated by two is balanced), so
    callers check with `is_balanced`.

    >>> corrupt([0, 1, 8, 9], "misnest", random.Random(0))
    [0, 1, 9, 8]
    """
    out = list(tokens)
    if kind == "misnest":
        spots = [i for i in range(len(out) - 1)
                 if out[i] >= N_COLOURS and out[i + 1] >= N_COLOURS and out[i] != out[i + 1]]
        if not spots:
            return None
        i = rng.choice(spots)
        out[i], out[i + 1] = out[i + 1], out[i]
        return out
    if kind == "swap":
        closers = [i for i, t in enumerate(out) if t >= N_COLOURS]
        pairs = [(i, j) for i in closers for j in closers if i < j and out[i] != out[j]]
        if not pairs:
            return None
        i, j = rng.choice(pairs)
        out[i], out[j] = out[j], out[i]
        return out
    if kind == "rotate":
        if len(out) < 2:
            return None
        i = rng.randrange(len(out) - 1)
        j = rng.randrange(i + 2, len(out) + 1)  # the segment out[i:j] has at least two tokens
        k = rng.randrange(1, j - i)
        out[i:j] = out[i + k:j] + out[i:i + k]
        return out
    raise DataError(f"unknown corruption {kind!r}; choose one of {', '.join(CORRUPTIONS)}")


def random_unbalanced(length: int, rng: random.Random, kinds: Sequence[str] = CORRUPTIONS) -> list[int]:
    """An unbalanced sequence of even `length` with each opener as frequent as its closer: a corrupted
    random balanced sequence (a corruption drawn from `kinds` per try).

    >>> s = random_unbalanced(12, random.Random(0))
    >>> is_balanced(s), sorted(s.count(i) for i in range(5)) == sorted(s.count(9 - i) for i in range(5))
    (False, True)
    """
    if length < 2 or length % 2:
        raise DataError(f"an unbalanced sequence needs an even length >= 2, got {length}")
    base = random_balanced(length, rng)
    for _ in range(100):
        out = corrupt(base, rng.choice(kinds), rng)
        if out is not None and not is_balanced(out):
            return out
    # Bounded for safety: misnest and swap always succeed where they apply and a rotation usually
    # does; should every try fail, moving the first opener to the end leaves the sequence open at its
    # end (never balanced) and is still a permutation.
    return base[1:] + base[:1]


def make_parens_dataset(n: int, *, min_len: int, max_len: int, seed: int) -> Labelled:
    """`n` seeded sequences, half balanced (label 1) and half unbalanced (label 0), in random order,
    with lengths drawn uniformly from the even numbers in [min_len, max_len] for both labels alike.

    >>> sequences, labels = make_parens_dataset(4, min_len=2, max_len=6, seed=0)
    >>> [int(is_balanced(s)) for s in sequences] == labels, sum(labels)
    (True, 2)
    """
    if n < 0 or n % 2:
        raise DataError(f"the dataset is half balanced, half not: n must be even, got {n}")
    lengths = [k for k in range(max(min_len, 2), max_len + 1) if k % 2 == 0]
    if not lengths:
        raise DataError(f"no even length >= 2 in [{min_len}, {max_len}]")
    rng = random.Random(generator_seed(seed))
    examples = [(random_balanced(rng.choice(lengths), rng), 1) for _ in range(n // 2)]
    examples += [(random_unbalanced(rng.choice(lengths), rng), 0) for _ in range(n // 2)]
    rng.shuffle(examples)
    return [s for s, _ in examples], [label for _, label in examples]


def collate_parens(sequences: Sequence[Sequence[int]], labels: Sequence[int]) -> tuple[Tensor, Tensor, Tensor]:
    """The sequences as (idx (B, T) long, mask (B, T) bool, labels (B,) long), T the longest length;
    padding is token 0 with mask False.

    >>> idx, mask, y = collate_parens([[0, 9], [1, 0, 9, 8]], [1, 1])
    >>> idx.tolist(), mask.sum(1).tolist()
    ([[0, 9, 0, 0], [1, 0, 9, 8]], [2, 4])
    """
    B, T = len(sequences), max((len(s) for s in sequences), default=0)
    idx = torch.zeros(B, T, dtype=torch.long)
    mask = torch.zeros(B, T, dtype=torch.bool)
    for row, s in enumerate(sequences):
        idx[row, :len(s)] = torch.tensor(s, dtype=torch.long)
        mask[row, :len(s)] = True
    return idx, mask, torch.tensor(list(labels), dtype=torch.long)


@dataclass
class ParensBatches(Batches):
    """Random batches of labelled sequences: a batch source for `Trainer`, which calls
    `model(idx, mask, labels)`. Training batches have `batch_size` sequences; the trainer's estimates
    draw `eval_batch_size` (default: the same), so that training one sequence at a time still gets
    its accuracy curve from many."""

    train: Labelled
    val: Labelled
    batch_size: int
    eval_batch_size: int = 0  # 0: batch_size

    @property
    def tokens_per_char(self) -> dict[str, float]:
        return {"train": 1.0, "val": 1.0}  # one token per bracket

    def sample(self, split: str, generator: torch.Generator, size: int = 0) -> tuple[tuple[Tensor, Tensor], Tensor]:
        """`size` sequences (default `batch_size`) drawn with replacement from `split`."""
        sequences, labels = self.train if split == "train" else self.val
        indices = torch.randint(len(sequences), (size or self.batch_size,), generator=generator).tolist()
        idx, mask, y = collate_parens([sequences[i] for i in indices], [labels[i] for i in indices])
        return (idx, mask), y

    def sample_eval(self, split: str, generator: torch.Generator) -> tuple[tuple[Tensor, Tensor], Tensor]:
        return self.sample(split, generator, self.eval_batch_size)
