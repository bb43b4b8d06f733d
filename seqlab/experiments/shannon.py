"""Shannon's series of approximations to English, made from a corpus.

Shannon (1948), "A Mathematical Theory of Communication", §3, builds ever closer approximations
to English and shows a sample of each:

    1. zero-order approximation         symbols independent and equiprobable
    2. first-order approximation        symbols independent, with the letter frequencies
    3. second-order approximation       digram structure (each letter depends on the one before)
    4. third-order approximation        trigram structure
    5. first-order word approximation   words independent, with their frequencies
    6. second-order word approximation  word transition probabilities

`run_shannon` makes each one from the training part of a text (`split_text`: validation is the
last `val_fraction` of the characters) and reports two things per row:

* a **sample**, drawn as Shannon drew his, from the corpus statistics themselves: maximum-likelihood
  n-grams (`NGramLM(smoothing="mle")`). The sampler only ever conditions on contexts of its own
  training stream: it starts from a context that occurs in training (at the start of a line) and
  the stream is cut where its final context would have no continuation, so every context reached
  has one. Every n-gram of a char sample therefore occurs in the training text.
* **bits per char** on the validation text, from a smoothed model of the same order so that it is
  finite: log2(V) for order 0; interpolated modified Kneser–Ney (`NGramLM`) otherwise.

Symbols. The alphabet is every character of the whole text (as nanoGPT's shakespeare_char builds
it, and as Shannon fixed his 27 symbols in advance), so the validation text never has an unknown
character and order 0 costs exactly log2(V) bits per char. Words: see `word_tokens`, which splits
text into words and punctuation marks, each carrying the whitespace before it (as GPT-2's
pre-tokenizer does), so that the tokens concatenate back to the text exactly and a sample of
independent words still reads as separate words.

Word models, scoring. The vocabulary is the training tokens seen at least `MIN_WORD_COUNT` times
(at most `word_vocab` of them, most frequent first); the others become `<unk>`, so `<unk>` has real
training counts. A validation token outside the vocabulary costs -log2 p(<unk> | context) plus the
bits to spell it out, character by character and then an end mark, with a char unigram model
(`SPELLING_ORDER`) fitted to the training word types. Bits per char = all those bits / the number
of validation characters. This is an honest code length: the model's probabilities over strings sum
to at most 1 (the speller also spells in-vocabulary words, and non-canonical token sequences get
mass too), so the figure errs on the pessimistic side, never the optimistic one.

Word models, sampling: MLE over every training token, `<unk>` never used, so a sample consists
of training tokens only.
"""

from __future__ import annotations

import logging
import math
import re
import textwrap
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from seqlab.data import split_text
from seqlab.errors import DataError, SeqlabError
from seqlab.models import NGramLM
from seqlab.tokenizers import Tokenizer, train_tokenizer

log = logging.getLogger(__name__)

# A word (\w+) or one punctuation mark, with the whitespace before it; `\s+` only ever matches
# whitespace at the very end of a text. The matches cover the text, so "".join(tokens) == text.
# (Whitespace after the word reads worse: "lord" then "sir " would print as "lordsir ".)
WORD_PATTERN = re.compile(r"\s*(?:\w+|[^\w\s])|\s+")
MIN_WORD_COUNT = 2  # training tokens seen once are <unk>, so <unk> is learnt from real hapaxes
SPELLING_ORDER = 1  # unknown words are spelled with letter frequencies (Shannon's first order)

CHAR_ROWS = (
    (0, "zero-order approximation", "symbols independent and equiprobable"),
    (1, "first-order approximation", "symbols independent, with the letter frequencies"),
    (2, "second-order approximation", "digram structure"),
    (3, "third-order approximation", "trigram structure"),
)
WORD_ROWS = (
    (1, "first-order word approximation", "words independent, with their frequencies"),
    (2, "second-order word approximation", "word transition probabilities"),
)
DESCRIPTIONS = {name: what for _, name, what in CHAR_ROWS + WORD_ROWS}


@dataclass(frozen=True)
class Approximation:
    """One row of Shannon's series: a sample and its cost on the validation text."""

    name: str  # as Shannon names it, e.g. "second-order word approximation"
    unit: Literal["char", "word"]
    order: int  # n of the n-gram; 0 = uniform
    sample: str
    bits_per_char: float  # on the validation text, smoothed model of the same order


def word_tokens(text: str) -> list[str]:
    """Words and punctuation marks, each with the whitespace before it; case is kept.

    >>> word_tokens("To be, or not.\\n")
    ['To', ' be', ',', ' or', ' not', '.', '\\n']
    """
    return WORD_PATTERN.findall(text)


def run_shannon(text: str, *, val_fraction: float = 0.1, length: int = 300, seed: int = 0,
                word_vocab: int = 16_384) -> list[Approximation]:
    """Shannon's six approximations made from `text`, in his order (see the module docstring).

    `length` characters per char sample (word samples: whole tokens until at least `length`
    characters); row i samples with `numpy.random.default_rng([seed, i])`, so rows are
    independent and each is reproducible. `word_vocab` caps the scoring vocabulary of the word
    models (the samples use every training token).
    """
    if length < 1 or seed < 0 or word_vocab < 1:
        raise SeqlabError(f"length = {length}, seed = {seed}, word_vocab = {word_vocab}: "
                          "length and word_vocab must be >= 1 and seed >= 0")
    train, val = split_text(text, val_fraction)
    chars = train_tokenizer("char", text)
    rngs = [np.random.default_rng([seed, i]) for i in range(len(CHAR_ROWS) + len(WORD_ROWS))]
    train_ids, val_ids = chars.encode_array(train), chars.encode_array(val)
    unit_chars = np.ones(chars.vocab_size, np.int64)
    line_starts = np.array([False] + [c == "\n" for c in train[:-1]])  # (T,)
    rows = []
    for (order, name, _), rng in zip(CHAR_ROWS, rngs):
        started = time.perf_counter()
        if order == 0:
            sample = chars.decode(rng.integers(chars.vocab_size, size=length))
            bpc = math.log2(chars.vocab_size)
        else:
            ids = sample_mle(train_ids, order, chars.vocab_size, token_chars=unit_chars,
                             starts=line_starts, length=length, rng=rng)
            sample = chars.decode(ids)
            bpc = NGramLM(order, chars.vocab_size).fit(train_ids).bits_per_char(val_ids, len(val))
        rows.append(Approximation(name, "char", order, sample, bpc))
        log.info("%s: %.4f bits/char in %.2f s", name, bpc, time.perf_counter() - started)
    train_words, val_words = word_tokens(train), word_tokens(val)
    for (order, name, _), rng in zip(WORD_ROWS, rngs[len(CHAR_ROWS):]):
        started = time.perf_counter()
        sample = _word_sample(train_words, order, length=length, rng=rng)
        bpc = _word_bits(train_words, val_words, order, word_vocab=word_vocab, chars=chars) / len(val)
        rows.append(Approximation(name, "word", order, sample, bpc))
        log.info("%s: %.4f bits/char in %.2f s", name, bpc, time.perf_counter() - started)
    return rows


# ---- sampling -------------------------------------------------------------------------------------

def sample_mle(ids: np.ndarray, order: int, vocab_size: int, *, token_chars: np.ndarray,
               starts: np.ndarray, length: int, rng: np.random.Generator) -> np.ndarray:
    """Tokens drawn from the MLE order-`order` model of `ids` until they spell >= `length` chars.

    `ids` (T,) is the training stream; `token_chars` (V,) each token's length in characters;
    `starts` (T,) marks positions where a sample may begin (a line's start): the sample's context
    is the order - 1 tokens before the first such position, so it reads like a new line.
    """
    context_len = order - 1
    end = _cut_dead_end(ids, context_len)
    stream = ids[:end]
    model = NGramLM(order, vocab_size, smoothing="mle").fit(stream)
    # position i has a full context in the stream and a token to follow it: context_len <= i < end
    candidates = np.flatnonzero(starts[context_len:end]) + context_len
    start = int(candidates[0]) if len(candidates) else context_len
    history = [int(t) for t in stream[start - context_len:start]]
    out: list[int] = []
    n_chars = 0
    while n_chars < length:
        probs = model.distribution(history[len(history) - context_len:] if context_len else [])
        token = int(rng.choice(len(probs), p=probs / probs.sum()))
        history.append(token)
        out.append(token)
        n_chars += int(token_chars[token])
    return np.array(out, np.int64)


def _cut_dead_end(ids: np.ndarray, context_len: int) -> int:
    """The longest prefix ids[:end] whose final context also occurs earlier, followed by a token.

    An MLE model of ids[:end] then has a continuation for every context it can reach: each one is
    followed by something in the stream, and the only context with no successor (the stream's
    last) has one from its earlier occurrence.
    """
    if context_len == 0:
        return len(ids)
    for end in range(len(ids), context_len, -1):
        earlier = sliding_window_view(ids[:end - 1], context_len)  # (end - context_len, context_len)
        if (earlier == ids[end - context_len:end]).all(axis=1).any():
            return end
    raise DataError(f"the training text has no repeated {context_len}-token context, so an "
                    f"order-{context_len + 1} MLE model cannot keep going: use a longer text")


def _word_sample(train_words: list[str], order: int, *, length: int,
                 rng: np.random.Generator) -> str:
    types = list(dict.fromkeys(train_words))
    index = {t: i for i, t in enumerate(types)}
    ids = np.array([index[t] for t in train_words], np.int64)
    token_chars = np.array([len(t) for t in types], np.int64)
    line_starts = np.array([t.startswith("\n") for t in train_words])  # (T,)
    sample = sample_mle(ids, order, len(types), token_chars=token_chars, starts=line_starts,
                        length=length, rng=rng)
    return "".join(types[i] for i in sample)


# ---- scoring --------------------------------------------------------------------------------------

def _word_bits(train_words: list[str], val_words: list[str], order: int, *, word_vocab: int,
               chars: Tokenizer) -> float:
    """-log2 P(validation tokens) under the KN word model with <unk> spelled out (module docstring)."""
    counts = Counter(train_words)
    vocab = [t for t, c in counts.most_common(word_vocab) if c >= MIN_WORD_COUNT]
    index = {t: i for i, t in enumerate(vocab)}
    unk = len(vocab)
    model = NGramLM(order, len(vocab) + 1).fit(np.array([index.get(t, unk) for t in train_words]))
    val_ids = np.array([index.get(t, unk) for t in val_words], np.int64)
    log_p = float(model.log_probs(val_ids).sum())
    unknown = [t for t in val_words if t not in index]
    if unknown:
        speller = NGramLM(SPELLING_ORDER, chars.vocab_size, boundary=True)
        speller.fit([chars.encode_array(t) for t in counts])  # the training word types
        log_p += float(speller.log_probs([chars.encode_array(t) for t in unknown]).sum())
    return -log_p / math.log(2)


# ---- reports --------------------------------------------------------------------------------------

def render_table(rows: Sequence[Approximation], *, width: int = 88) -> str:
    """Plain text, as Shannon lists them: a numbered heading with bits per char, then the sample
    indented and wrapped, its line breaks kept."""
    lines = ["Shannon's series of approximations (bits per char on the validation text)", ""]
    for i, row in enumerate(rows, start=1):
        what = DESCRIPTIONS.get(row.name, f"{row.unit} order {row.order}")
        lines.append(f"{i}. {row.name.capitalize()} ({what}): {row.bits_per_char:.3f} bits/char")
        for line in row.sample.strip().split("\n"):
            lines.extend(textwrap.wrap(line, width, initial_indent="    ",
                                       subsequent_indent="    ") or ["    "])
        lines.append("")
    return "\n".join(lines)


def to_markdown(rows: Sequence[Approximation]) -> str:
    """A Markdown table of the figures, then each sample in a fenced block."""
    lines = ["| # | approximation | unit | order | bits/char |", "|---|---|---|---:|---:|"]
    lines += [f"| {i} | {r.name} | {r.unit} | {r.order} | {r.bits_per_char:.3f} |"
              for i, r in enumerate(rows, start=1)]
    for i, r in enumerate(rows, start=1):
        lines += ["", f"**{i}. {r.name}**", "", "```text", r.sample.replace("```", "'''"), "```"]
    return "\n".join(lines) + "\n"
