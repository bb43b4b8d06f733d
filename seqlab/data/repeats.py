"""The `repeated-random` corpus: random letter sequences, each written twice, for induction heads.

An induction head (Olsson et al. 2022, "In-context Learning and Induction Heads") attends from a
token to the token that followed the previous occurrence of that token, and copies it: [A][B] … [A]
→ [B]. Random text repeated once can only be predicted that way in its second half, so a small
attention-only Transformer trained on it forms such heads (`seqlab train induction`).

Each line is a sequence x of `MIN_LEN`..`MAX_LEN` letters drawn uniformly (with replacement) from
`ALPHABET`, then x again: `qHzbKe…qHzbKe…`. The text is generated in code from a fixed seed, the same on
every machine, and needs no file or network. `repeated_sequence` draws held-out sequences from other
seeds for scoring (`seqlab.inspect.induction`).
"""

from __future__ import annotations

import string

from seqlab.seeds import numpy_generator

NAME = "repeated-random"
ALPHABET = string.ascii_letters  # 52 symbols: a letter recurs by chance in a sequence of 16 about 1 time in 4
MIN_LEN, MAX_LEN = 8, 24  # letters in the first half of a line
N_LINES = 30_000
SEED = 20220308  # the corpus's own seed; held-out sequences use other seeds


def random_letters(length: int, seed: int) -> str:
    """`length` letters of `ALPHABET`, uniform and independent, from generator `seed`."""
    rng = numpy_generator(seed)
    return "".join(ALPHABET[i] for i in rng.integers(0, len(ALPHABET), size=length))


def distinct_letters(length: int, seed: int) -> str:
    """`length` different letters of `ALPHABET` in random order, from generator `seed`."""
    if not 1 <= length <= len(ALPHABET):
        raise ValueError(f"length must be from 1 to {len(ALPHABET)} for distinct letters, not {length}")
    rng = numpy_generator(seed)
    return "".join(ALPHABET[i] for i in rng.permutation(len(ALPHABET))[:length])


def repeated_sequence(length: int, seed: int, *, distinct: bool = False) -> str:
    """x + x for x of `length` random letters (seed `seed`): a held-out induction probe. With
    `distinct` no letter recurs within x, so in the second half the previous occurrence of each
    token is its copy in the first half (the setting of the induction score: Olsson et al. draw
    from a 50k-token vocabulary, where a token rarely recurs by chance)."""
    x = distinct_letters(length, seed) if distinct else random_letters(length, seed)
    return x + x


def repeated_text(n_lines: int = N_LINES, seed: int = SEED) -> str:
    """The corpus: `n_lines` lines, each x + x for a random x of MIN_LEN..MAX_LEN letters."""
    rng = numpy_generator(seed)
    lengths = rng.integers(MIN_LEN, MAX_LEN + 1, size=n_lines)
    letters = rng.integers(0, len(ALPHABET), size=int(lengths.sum()))
    lines, start = [], 0
    for n in lengths.tolist():
        x = "".join(ALPHABET[i] for i in letters[start:start + n])
        lines.append(x + x)
        start += n
    return "\n".join(lines) + "\n"


__all__ = ["ALPHABET", "NAME", "distinct_letters", "random_letters", "repeated_sequence", "repeated_text"]
