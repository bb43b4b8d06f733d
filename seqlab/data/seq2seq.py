"""Sequence-to-sequence data: (source, target) string pairs, generated tasks, padded batches.

Generated tasks are made in code from a seed, so no data file is needed:

| task | source | target |
|---|---|---|
| copy | `hbjad` | `hbjad` |
| reverse | `hbjad` | `dajbh` |
| sort | `hbjad` | `abdhj` |
| addition | `417+38` | `455` |
| dates | `the 3rd of march, 1999` | `1999-03-03` |

Strings are over the letters a..j (digits for addition), of `min_len` .. `max_len` characters
(addition: operands of 1 .. max_len // 2 digits). Dates are drawn from 1950-01-01 .. 2049-12-31 and
written in one of the formats of `seqlab.data.dates` (two-digit years mean 1950 .. 2049); they ignore
`min_len` and `max_len`. Validation pairs never repeat a training source.

Tokens: one character vocabulary for both sides, with TAB as the decoder's start token (BOS) and
newline as its end token (EOS), so a pair is the line `source<TAB>target` of a TSV file:

    decoder input   BOS t1 t2 ... tn          source  s1 s2 ... sm     (padded; mask False at padding)
    decoder target  t1  t2 ... tn EOS         (padded with -1, which the loss ignores)

Dimensions: B batch · S source length · T target length (+1 for BOS/EOS).
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import Tensor

from seqlab.data.batches import Batches
from seqlab.data.dates import random_date_pair
from seqlab.errors import DataError

BOS = "\t"
EOS = "\n"
TASKS = ("copy", "reverse", "sort", "addition", "dates")
LETTERS = "abcdefghij"

Pair = tuple[str, str]


def _task_pair(task: str, rng: random.Random, min_len: int, max_len: int) -> Pair:
    if task == "addition":
        digits = max(1, max_len // 2)
        a, b = (rng.randrange(10 ** rng.randint(1, digits)) for _ in range(2))
        return f"{a}+{b}", str(a + b)
    if task == "dates":
        return random_date_pair(rng)
    source = "".join(rng.choice(LETTERS) for _ in range(rng.randint(min_len, max_len)))
    if task == "copy":
        return source, source
    if task == "reverse":
        return source, source[::-1]
    if task == "sort":
        return source, "".join(sorted(source))
    raise DataError(f"unknown task {task!r}; choose one of {', '.join(TASKS)}")


def generate_task(task: str, n_examples: int, *, seed: int, min_len: int = 1, max_len: int = 12,
                  val_fraction: float = 0.1) -> tuple[list[Pair], list[Pair]]:
    """`n_examples` seeded (source, target) pairs of `task`, split into train and validation pairs;
    no validation source appears in training.

    >>> train, val = generate_task("reverse", 10, seed=0, max_len=4)
    >>> all(t == s[::-1] for s, t in train + val)
    True
    """
    if task not in TASKS:
        raise DataError(f"unknown task {task!r}; choose one of {', '.join(TASKS)}")
    if not 1 <= min_len <= max_len:
        raise DataError(f"task lengths need 1 <= min_len <= max_len, got {min_len} and {max_len}")
    rng = random.Random(seed)
    n_val = max(1, round(n_examples * val_fraction))
    train = [_task_pair(task, rng, min_len, max_len) for _ in range(n_examples - n_val)]
    seen = {source for source, _ in train}
    val: list[Pair] = []
    for _ in range(100 * n_val):  # enough draws unless the task has almost no unseen sources left
        if len(val) == n_val:
            break
        pair = _task_pair(task, rng, min_len, max_len)
        if pair[0] not in seen:
            seen.add(pair[0])
            val.append(pair)
    if not val:
        raise DataError(f"task {task!r} with lengths {min_len}..{max_len} has no sources left for validation; "
                        f"use longer strings or fewer examples")
    return train, val


def pairs_text(pairs: Sequence[Pair]) -> str:
    """The pairs as TSV lines: what a tokenizer is fitted to (it then knows BOS and EOS)."""
    return "".join(f"{source}{BOS}{target}{EOS}" for source, target in pairs)


@dataclass
class EncodedPairs:
    """Token ids of each pair's source and target (without BOS/EOS), and the ids of BOS and EOS."""

    sources: list[list[int]]
    targets: list[list[int]]
    bos: int
    eos: int

    def __len__(self) -> int:
        return len(self.sources)


def encode_pairs(pairs: Sequence[Pair], encode, *, block_size: int, encode_source=None) -> EncodedPairs:
    """Encode the pairs with `encode` (str → ids), the sources with `encode_source` when given (a
    tokenizer per side); a side longer than `block_size` (with BOS/EOS) is an error."""
    bos, eos = encode(BOS), encode(EOS)
    if len(bos) != 1 or len(eos) != 1:
        raise DataError("the tokenizer must encode TAB and newline as one token each (the decoder's BOS and EOS)")
    encode_source = encode_source or encode
    sources, targets = [encode_source(s) for s, _ in pairs], [encode(t) for _, t in pairs]
    longest = max(max(len(s) for s in sources), max(len(t) for t in targets) + 1)
    if longest > block_size:
        raise DataError(f"a pair needs {longest} positions but model.block_size is {block_size}; "
                        f"raise model.block_size or shorten the task")
    return EncodedPairs(sources, targets, bos[0], eos[0])


def collate(encoded: EncodedPairs, indices: Sequence[int]) -> tuple[tuple[Tensor, Tensor, Tensor, Tensor], Tensor]:
    """The pairs at `indices` as ((src (B, S), tgt_in (B, T), src_mask (B, S), tgt_mask (B, T)), tgt_out (B, T))."""
    sources = [encoded.sources[i] for i in indices]
    targets = [encoded.targets[i] for i in indices]
    B, S, T = len(indices), max(map(len, sources)), max(map(len, targets)) + 1
    src = torch.zeros(B, S, dtype=torch.long)
    src_mask = torch.zeros(B, S, dtype=torch.bool)
    tgt_in = torch.zeros(B, T, dtype=torch.long)
    tgt_mask = torch.zeros(B, T, dtype=torch.bool)
    tgt_out = torch.full((B, T), -1, dtype=torch.long)  # -1: ignored by the loss
    for row, (s, t) in enumerate(zip(sources, targets)):
        src[row, :len(s)] = torch.tensor(s)
        src_mask[row, :len(s)] = True
        tgt_in[row, :len(t) + 1] = torch.tensor([encoded.bos, *t])
        tgt_mask[row, :len(t) + 1] = True
        tgt_out[row, :len(t) + 1] = torch.tensor([*t, encoded.eos])
    return (src, tgt_in, src_mask, tgt_mask), tgt_out


@dataclass
class Seq2SeqBatches(Batches):
    """Random batches of pairs: the batch source of encoder–decoder training (see `Trainer`).

    With `group_by_length`, a batch is `batch_size` consecutive pairs of the split sorted by length
    (target, then source), starting at a random place: pairs of like lengths travel together, so a
    batch pads little (natural sentences vary from 4 to 40 words, and a random batch pads every
    sequence to its longest). Every pair is still drawn about equally often, apart from the
    batch_size − 1 shortest and longest ones.
    """

    train: EncodedPairs
    val: EncodedPairs
    batch_size: int
    group_by_length: bool = False

    def __post_init__(self) -> None:
        def by_length(pairs: EncodedPairs) -> list[int]:
            return sorted(range(len(pairs)), key=lambda i: (len(pairs.targets[i]), len(pairs.sources[i])))
        self._by_length = ({"train": by_length(self.train), "val": by_length(self.val)} if self.group_by_length
                           else {})

    @property
    def tokens_per_char(self) -> dict[str, float]:
        # Pairs are not a text with a character count: the bits reported per "char" are bits per token
        # (the same thing for the char tokenizer the task presets use).
        return {"train": 1.0, "val": 1.0}

    def sample(self, split: str, generator: torch.Generator) -> tuple[tuple[Tensor, ...], Tensor]:
        pairs = self.train if split == "train" else self.val
        if self.group_by_length and len(pairs) > self.batch_size:
            start = int(torch.randint(len(pairs) - self.batch_size + 1, (1,), generator=generator))
            order = self._by_length["train" if split == "train" else "val"]
            return collate(pairs, order[start:start + self.batch_size])
        indices = torch.randint(len(pairs), (self.batch_size,), generator=generator).tolist()
        return collate(pairs, indices)
