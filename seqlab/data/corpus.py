"""A corpus: the text a model is trained and evaluated on, resolved from a name or a path.

`load_corpus(spec)` resolves `spec`, in this order, as
1. a registered name (`shakespeare`, `names`; see `seqlab.data.registry`),
2. `python-stdlib`, the running Python's standard-library sources (`python-stdlib-small`: about 1 MB of them),
3. an existing file (read as UTF-8, exactly as stored: newlines are not normalised),
4. an existing folder (every regular, non-hidden file under it, sorted; binary files skipped),
5. a glob pattern (sorted matching files, same rules as a folder).

A corpus read from files is never held whole on the training path: `load_corpus` checks each file
in one streaming pass (readable, UTF-8, its length in characters), and `Corpus.chunks` reads the
text again in pieces of at most `CHUNK_CHARS` characters, so a corpus larger than memory can be
tokenized. `Corpus.text` reads it whole, once, for the users of small texts (the Shannon
experiment, evaluation).

`split_text` and `split_corpus` cut a text into training and validation text: the validation text
is the last `val_fraction` of the characters, so the split is the same on every machine.
"""

from __future__ import annotations

import codecs
import difflib
import functools
import glob
import hashlib
import logging
import os
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from seqlab.data import brown, registry, repeats, stdlib
from seqlab.errors import DataError

logger = logging.getLogger(__name__)

CHUNK_CHARS = 1 << 22  # characters per piece when a corpus is read in pieces (4-16 MB of str)
_READ_BYTES = 1 << 20  # bytes per read from a file
_SNIFF_BYTES = 8192  # a NUL byte in the first 8 KB marks a binary file (as git and grep do)


class _LooksBinary(DataError):
    """A file that is not UTF-8 text: fatal alone, skipped with a warning inside a folder."""


@dataclass(frozen=True)
class TextFile:
    """A file of a corpus, checked by `load_corpus`: its size, and its length in characters
    (with the newline added after it when a folder's file does not end with one)."""

    path: Path
    size: int  # bytes, to notice a file that changes between two readings
    n_chars: int
    adds_newline: bool
    blank: bool  # only whitespace

    def blocks(self) -> Iterator[str]:
        """The file's text in decoded blocks, as `load_corpus` counted it."""
        n_chars = 0
        for block in _decoded_blocks(self.path, expected_size=self.size):
            n_chars += len(block)
            yield block
        if self.adds_newline:
            n_chars += 1
            yield "\n"
        if n_chars != self.n_chars:  # same size, other text: the counts disagree
            raise DataError(f"{self.path} changed after it was loaded: run again on a file that stays put")


@dataclass(frozen=True, eq=False)
class Corpus:
    """A named text and the files it was read from.

    `content` is the text itself, or the checked files that `chunks` reads in pieces each time it
    is called. Two corpora are equal when their names, sources and texts are.
    """

    name: str
    content: str | tuple[TextFile, ...] = field(repr=False)
    sources: tuple[str, ...]

    @property
    def n_chars(self) -> int:
        """The length of the text in characters, known without reading it."""
        if isinstance(self.content, str):
            return len(self.content)
        return sum(file.n_chars for file in self.content)

    def chunks(self, chunk_chars: int | None = None, *, start: int = 0,
               stop: int | None = None) -> Iterator[str]:
        """The characters [start, stop) of the text, in order, in pieces of at most `chunk_chars`
        (default `CHUNK_CHARS`). Files wholly before `start` are skipped without being read."""
        size = chunk_chars or CHUNK_CHARS
        stop = self.n_chars if stop is None else stop
        if isinstance(self.content, str):
            yield from _window([self.content], start, stop, size)
            return
        offset = 0  # of the current file's first character in the text
        for file in self.content:
            if offset >= stop:
                return
            if offset + file.n_chars > start:
                yield from _window(file.blocks(), start - offset, stop - offset, size)
            offset += file.n_chars

    @functools.cached_property
    def text(self) -> str:
        """The whole text, read once on first use (training never asks for it)."""
        if isinstance(self.content, str):
            return self.content
        return "".join(self.chunks())

    @functools.cached_property
    def sha256(self) -> str:
        """The sha256 hex digest of the UTF-8 text, computed once, in pieces."""
        return text_sha256(self.chunks())

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Corpus):
            return NotImplemented
        return ((self.name, self.sources, self.n_chars, self.sha256)
                == (other.name, other.sources, other.n_chars, other.sha256))

    def __hash__(self) -> int:
        return hash((self.name, self.sources, self.sha256))


@dataclass(frozen=True, eq=False)  # compared by identity: comparing texts would read them
class TextSpan:
    """The characters [start, stop) of a corpus, read in pieces: its training or validation text."""

    corpus: Corpus
    start: int
    stop: int

    @classmethod
    def of_text(cls, text: str) -> TextSpan:
        """All of `text`, held in memory."""
        return cls(Corpus("text", text, ()), 0, len(text))

    def __len__(self) -> int:
        return self.stop - self.start

    def chunks(self, chunk_chars: int | None = None) -> Iterator[str]:
        """The span's text in pieces of at most `chunk_chars` (default `CHUNK_CHARS`) characters."""
        return self.corpus.chunks(chunk_chars, start=self.start, stop=self.stop)

    def head(self, n_chars: int) -> str:
        """The first `n_chars` characters of the span (all of it if shorter), as one string."""
        return "".join(self.corpus.chunks(start=self.start, stop=min(self.stop, self.start + n_chars)))

    @functools.cached_property
    def sha256(self) -> str:
        """The sha256 hex digest of the span's UTF-8 text: that of the same text held in a str."""
        return text_sha256(self.chunks())


def text_sha256(pieces: Iterable[str]) -> str:
    """The sha256 hex digest of the UTF-8 encoding of the concatenated `pieces`.

    UTF-8 encodes each character on its own, so this equals the digest of the whole text encoded
    at once, however it is cut.
    """
    digest = hashlib.sha256()
    for piece in pieces:
        digest.update(piece.encode("utf-8"))
    return digest.hexdigest()


def load_corpus(spec: str) -> Corpus:
    """The corpus named or located by `spec`: a registered name, `python-stdlib`, a file, a folder
    or a glob pattern.

    >>> load_corpus("shakespeare").text[:14]
    'First Citizen:'

    Raises DataError when `spec` resolves to nothing, to no text, or to unreadable or binary files.
    """
    entry = registry.registered(spec)
    if entry is not None:
        path = registry.locate(entry)
        return _checked(Corpus(entry.name, (_scan(path, folder=False),), (str(path),)))
    if spec in (stdlib.NAME, stdlib.SMALL_NAME):
        text, sources = stdlib.stdlib_text(max_chars=stdlib.SMALL_CHARS if spec == stdlib.SMALL_NAME else None)
        return _checked(Corpus(spec, text, sources))
    if spec == repeats.NAME:  # generated in code (induction heads; seqlab.data.repeats)
        return _checked(Corpus(repeats.NAME, repeats.repeated_text(), ()))
    if spec == brown.NAME:  # the tagged Brown files as plain text (seqlab.data.brown)
        text, sources = brown.brown_text()
        return _checked(Corpus(brown.NAME, text, sources))
    path = Path(spec).expanduser()
    if path.is_file():
        return _checked(Corpus(path.name, (_scan(path, folder=False),), (str(path),)))
    if path.is_dir():
        return _from_files(path.name or spec, _folder_files(path), f"folder {spec}")
    if any(c in spec for c in "*?["):
        matches = sorted(Path(p) for p in glob.glob(str(path), recursive=True))
        files = [p for p in matches if p.is_file()]
        if not files:
            raise DataError(f"no file matches the pattern {spec!r}: check the pattern and folder")
        return _from_files(spec, files, f"pattern {spec}")
    raise DataError(_unknown_message(spec))


def split_point(n_chars: int, val_fraction: float) -> int:
    """Where a text of `n_chars` characters is cut: validation is the last `val_fraction` of them.

    Raises DataError if either part would be empty.
    """
    if not 0.0 < val_fraction < 1.0:
        raise DataError(f"val_fraction = {val_fraction!r} must be strictly between 0 and 1")
    cut = n_chars - round(n_chars * val_fraction)
    if cut <= 0 or cut >= n_chars:
        part = "training" if cut <= 0 else "validation"
        raise DataError(
            f"splitting {n_chars} characters with val_fraction = {val_fraction} leaves the "
            f"{part} text empty: use more text or a val_fraction further from 0 and 1"
        )
    return cut


def split_text(text: str, val_fraction: float) -> tuple[str, str]:
    """Split `text` into `(train, val)`: `val` is the last `val_fraction` of the characters.

    >>> split_text("abcdefghij", 0.2)
    ('abcdefgh', 'ij')

    Raises DataError if either part would be empty.
    """
    cut = split_point(len(text), val_fraction)
    return text[:cut], text[cut:]


def split_corpus(corpus: Corpus, val_fraction: float) -> tuple[TextSpan, TextSpan]:
    """`split_text` for a corpus read in pieces: the (train, val) spans, cut at the same character."""
    cut = split_point(corpus.n_chars, val_fraction)
    return TextSpan(corpus, 0, cut), TextSpan(corpus, cut, corpus.n_chars)


def read_text_file(path: Path) -> str:
    """The UTF-8 text of `path` (a leading BOM removed); DataError if unreadable or binary."""
    return "".join(_decoded_blocks(path))


def _decoded_blocks(path: Path, expected_size: int | None = None) -> Iterator[str]:
    """The UTF-8 text of `path` (a leading BOM removed), in blocks decoded as they are read.

    A character whose bytes straddle two reads is decoded whole by the incremental decoder.
    Raises DataError if the file cannot be read or no longer has `expected_size` bytes, and
    `_LooksBinary` if it has a NUL byte in its first 8 KB or is not UTF-8 (naming the byte offset).
    """
    decoder = codecs.getincrementaldecoder("utf-8")()
    offset = 0  # in the file, of the block being decoded
    try:
        with path.open("rb") as handle:
            if expected_size is not None and os.fstat(handle.fileno()).st_size != expected_size:
                raise DataError(f"{path} changed after it was loaded: run again on a file that stays put")
            while True:
                block = handle.read(_READ_BYTES)
                if offset == 0:
                    if b"\0" in block[:_SNIFF_BYTES]:
                        raise _LooksBinary(f"{path} looks binary (it has NUL bytes): give a UTF-8 text file")
                    if block.startswith(codecs.BOM_UTF8):
                        block, offset = block[len(codecs.BOM_UTF8):], len(codecs.BOM_UTF8)
                text = _decode(decoder, block, path, offset)
                offset += len(block)
                if text:
                    yield text
                if not block:
                    break
    except OSError as exc:
        reason = exc.strerror or type(exc).__name__
        raise DataError(f"cannot read {path}: {reason}: check that it exists and is readable") from exc


def _decode(decoder: codecs.IncrementalDecoder, block: bytes, path: Path, offset: int) -> str:
    """`block` (at `offset` in `path`; empty at the end of the file) decoded by `decoder`."""
    pending = len(decoder.getstate()[0])  # bytes of a character begun in the previous block
    try:
        return decoder.decode(block, final=not block)
    except UnicodeDecodeError as exc:
        raise _LooksBinary(
            f"{path} looks binary or is not UTF-8 (bad byte at offset {offset - pending + exc.start}): "
            "give a UTF-8 text file"
        ) from exc


def _window(blocks: Iterable[str], start: int, stop: int, size: int) -> Iterator[str]:
    """The characters [start, stop) of the concatenated `blocks`, in pieces of at most `size`."""
    position = 0  # of the current block's first character
    for block in blocks:
        low, high = max(start - position, 0), min(stop - position, len(block))
        for i in range(low, high, size):
            yield block[i:min(i + size, high)]
        position += len(block)
        if position >= stop:
            return


def _scan(path: Path, *, folder: bool) -> TextFile:
    """`path` checked in one streaming pass: readable, UTF-8, and how many characters it has.

    Inside a folder (`folder`), a newline is added after a file that does not end with one, so
    files never run together.
    """
    n_chars, blank, last = 0, True, ""
    for block in _decoded_blocks(path):
        n_chars += len(block)
        blank = blank and block.isspace()
        last = block[-1]
    adds_newline = folder and n_chars > 0 and last != "\n"
    return TextFile(path, path.stat().st_size, n_chars + adds_newline, adds_newline, blank)


def _folder_files(folder: Path) -> list[Path]:
    """Every regular, non-hidden file under `folder`, recursively, sorted by relative path."""
    files = [
        p for p in folder.rglob("*")
        if p.is_file() and not any(part.startswith(".") for part in p.relative_to(folder).parts)
    ]
    return sorted(files, key=lambda p: p.relative_to(folder).as_posix())


def _from_files(name: str, files: list[Path], what: str) -> Corpus:
    """A corpus of the text files among `files`, concatenated; binary files skipped with a warning."""
    checked: list[TextFile] = []
    for path in files:
        try:
            checked.append(_scan(path, folder=True))
        except _LooksBinary:
            logger.warning("skipping %s: it looks binary or is not UTF-8", path)
    if not files:
        raise DataError(f"{what} has no files: give a folder or pattern with UTF-8 text files")
    if not checked:
        raise DataError(f"{what} has no text files (all {len(files)} look binary): give UTF-8 text")
    logger.info("corpus %r: %d text files", name, len(checked))
    return _checked(Corpus(name, tuple(checked), tuple(str(file.path) for file in checked)))


def _checked(corpus: Corpus) -> Corpus:
    """`corpus`, after checking it has some text that is not whitespace."""
    content = corpus.content
    blank = not content.strip() if isinstance(content, str) else all(file.blank for file in content)
    if blank:
        where = corpus.sources[0] if len(corpus.sources) == 1 else corpus.name
        raise DataError(f"corpus {corpus.name!r} is empty ({where}): give a corpus with some text")
    logger.info("corpus %r: %d characters", corpus.name, corpus.n_chars)
    return corpus


def _unknown_message(spec: str) -> str:
    names = [entry.name for entry in registry.REGISTRY] + [stdlib.NAME, stdlib.SMALL_NAME, brown.NAME, repeats.NAME]
    message = (f"unknown corpus {spec!r}: not a registered name ({', '.join(names)}), "
               "file, folder or glob")
    close = difflib.get_close_matches(spec, names, n=1)
    return message + (f"; did you mean {close[0]!r}?" if close else "")
