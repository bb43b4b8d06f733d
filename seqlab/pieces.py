"""How a tokenizer cuts text: the pieces of one text, and the fertility of every kind on a corpus.

``seqlab tokenize RUN|KIND TEXT`` shows the pieces of ``TEXT`` under a run's tokenizer or under a
tokenizer of ``KIND`` trained on a small corpus (Tiny Shakespeare by default), with the ids and the
bytes per token; ``--fertility`` measures, for each kind, the tokens per word and the bytes per
token on held-out text — the trade-off between sequence length and vocabulary size that the
lectures show with "Hi, class हैलो क्लास 同学们好".

A piece that is not a whole UTF-8 character on its own (byte-level tokenizers cut inside a
character) is shown as its bytes, ``<0xE0><0xA4>``; whitespace other than a space and control
characters as ``<U+000A>``. A byte token of byte fallback (char and word: what the vocabulary
cannot spell) is always shown as its byte, ``<0x20>`` for a spelled space, so that it is told apart
from the vocabulary's own pieces.

A KIND is trained with the settings a new config gets (``tokenizer.byte_fallback = true`` for char
and word); ``byte_fallback=False`` trains the vocabulary alone (char: an unseen character is ``<unk>``).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from seqlab.config import TokenizerConfig
from seqlab.data import load_corpus
from seqlab.errors import SeqlabError
from seqlab.tokenizers import Tokenizer, train_tokenizer
from seqlab.tokenizers.base import printable

TRAINED_KINDS = ("char", "byte", "bpe", "wordpiece", "unigram", "word")
DEFAULT_CORPUS = "shakespeare"
DEFAULT_VOCAB_SIZE = 1024
BYTE_FALLBACK = TokenizerConfig.byte_fallback  # a new config's: char and word spell what they lack in bytes
FIT_CHARS = 1_000_000  # the head of the corpus a tokenizer learns from
SAMPLE_CHARS = 100_000  # the held-out text fertility is measured on
# Background colours of the pieces in a terminal (256-colour palette: pastel, black text on them).
COLOURS = (153, 187, 224, 194, 223, 189)


def tokenizer_for(target: str, *, corpus: str = DEFAULT_CORPUS, vocab_size: int = DEFAULT_VOCAB_SIZE,
                  byte_fallback: bool = BYTE_FALLBACK) -> tuple[Tokenizer, str]:
    """The tokenizer of the run ``target``, or one of kind ``target`` trained on the head of
    ``corpus``; with a line describing it."""
    if target in TRAINED_KINDS:  # settings checked as [tokenizer] checks them, before any corpus is read
        TokenizerConfig(kind=target, vocab_size=vocab_size, byte_fallback=byte_fallback)  # type: ignore[arg-type]
    if target == "byte":
        return train_tokenizer("byte", ""), "byte tokenizer (the 256 bytes of UTF-8, nothing learned)"
    if target in TRAINED_KINDS:
        text = _head(corpus, FIT_CHARS)
        tokenizer = _train(target, text, vocab_size, byte_fallback)
        fallback = " with byte fallback" if tokenizer.byte_fallback_offset is not None else ""
        return tokenizer, f"{target} tokenizer{fallback} trained on {len(text):,} characters of {corpus}"
    if Path(target).is_dir():
        from seqlab.runs import read_tokenizer
        tokenizer = read_tokenizer(Path(target))
        return tokenizer, f"the {tokenizer.kind} tokenizer of {target}"
    raise SeqlabError(f"{target!r} is neither a run directory nor a tokenizer kind; give a run or one of "
                      f"{', '.join(TRAINED_KINDS)}")


@dataclass(frozen=True)
class Cut:
    """The pieces of a text: ``pieces[i]`` is what ``ids[i]`` stands for, shown as text."""

    text: str
    ids: list[int]
    pieces: list[str]
    exact: bool  # decode(encode(text)) == text

    @property
    def n_bytes(self) -> int:
        return len(self.text.encode("utf-8"))

    @property
    def bytes_per_token(self) -> float:
        return self.n_bytes / len(self.ids) if self.ids else 0.0


def _train(kind: str, text: str, vocab_size: int, byte_fallback: bool) -> Tokenizer:
    """A tokenizer of ``kind`` fitted to ``text``; char without byte fallback maps a character the
    text lacks to <unk> (shown as U+FFFD), not to an error."""
    return train_tokenizer(kind, text, vocab_size=vocab_size, byte_fallback=byte_fallback,
                           unknown_token=kind == "char" and not byte_fallback)


def cut(tokenizer: Tokenizer, text: str) -> Cut:
    """``text`` cut by ``tokenizer``."""
    ids = tokenizer.encode(text)
    continues = getattr(tokenizer, "continues", None)  # WordPiece marks its continuation pieces
    offset = tokenizer.byte_fallback_offset
    pieces = [f"<0x{i - offset:02X}>" if offset is not None and i >= offset else
              ("##" if continues and continues[i] else "") + piece_text(tokenizer.decode_bytes([i])) for i in ids]
    return Cut(text, ids, pieces, tokenizer.decode(ids) == text)


def piece_text(piece: bytes) -> str:
    """A token's bytes as readable text (see the module docstring)."""
    try:
        return printable(piece.decode("utf-8"))
    except UnicodeDecodeError:
        return "".join(f"<0x{b:02X}>" for b in piece)


def render(result: Cut, *, colour: bool) -> str:
    """The pieces on one line: on alternating background colours, or separated by ``|``."""
    if not colour:
        return "|".join(result.pieces)
    return "".join(f"\x1b[48;5;{COLOURS[i % len(COLOURS)]}m\x1b[38;5;16m{p}\x1b[0m"
                   for i, p in enumerate(result.pieces))


@dataclass(frozen=True)
class Fertility:
    """One kind's measures on held-out text."""

    kind: str
    vocab_size: int
    tokens: int
    words: int
    n_bytes: int
    exact: bool

    @property
    def tokens_per_word(self) -> float:
        return self.tokens / self.words if self.words else 0.0

    @property
    def bytes_per_token(self) -> float:
        return self.n_bytes / self.tokens if self.tokens else 0.0


def fertility(corpus: str = DEFAULT_CORPUS, *, kinds: tuple[str, ...] = TRAINED_KINDS,
              vocab_size: int = DEFAULT_VOCAB_SIZE, byte_fallback: bool = BYTE_FALLBACK
              ) -> tuple[list[Fertility], str]:
    """Each kind trained on the first 90% of ``corpus`` (at most ``FIT_CHARS``) and measured on the
    first ``SAMPLE_CHARS`` of the rest; words are whitespace-separated. With a line on the setup."""
    for kind in kinds:
        TokenizerConfig(kind=kind, vocab_size=vocab_size, byte_fallback=byte_fallback)  # type: ignore[arg-type]
    data = load_corpus(corpus)
    split = int(data.n_chars * 0.9)
    train = "".join(data.chunks(start=max(0, split - FIT_CHARS), stop=split))
    sample = "".join(data.chunks(start=split, stop=min(data.n_chars, split + SAMPLE_CHARS)))
    if not sample.split():
        raise SeqlabError(f"corpus {corpus} is too short to hold out text for measuring fertility")
    rows = []
    for kind in kinds:
        # char without byte fallback: unseen characters of the held-out text map to <unk> (the table's
        # "exact" says so).
        tokenizer = _train(kind, train, vocab_size, byte_fallback)
        ids = tokenizer.encode(sample)
        rows.append(Fertility(kind, tokenizer.vocab_size, len(ids), len(sample.split()),
                              len(sample.encode("utf-8")), tokenizer.decode(ids) == sample))
    setup = (f"{corpus}: trained on {len(train):,} characters, measured on the next {len(sample):,} "
             f"({len(sample.split()):,} words); vocab_size {vocab_size} where the kind learns one; "
             f"char and word {'with' if byte_fallback else 'without'} byte fallback")
    return rows, setup


def _head(corpus: str, n_chars: int) -> str:
    data = load_corpus(corpus)
    return "".join(data.chunks(stop=min(n_chars, data.n_chars)))
