"""A corpus: the text a model is trained and evaluated on, resolved from a name or a path.

`load_corpus(spec)` resolves `spec`, in this order, as
1. a registered name (`shakespeare`, `names`; see `seqlab.data.registry`),
2. `python-stdlib`, the running Python's standard-library sources,
3. an existing file (read as UTF-8, exactly as stored: newlines are not normalised),
4. an existing folder (every regular, non-hidden file under it, sorted; binary files skipped),
5. a glob pattern (sorted matching files, same rules as a folder).

`split_text` cuts it into training and validation text: the validation text is the last
`val_fraction` of the characters, so the split is the same on every machine.
"""

from __future__ import annotations

import difflib
import functools
import glob
import hashlib
import logging
from dataclasses import dataclass
from pathlib import Path

from seqlab.data import registry, stdlib
from seqlab.errors import DataError

logger = logging.getLogger(__name__)

_SNIFF_BYTES = 8192  # a NUL byte in the first 8 KB marks a binary file (as git and grep do)


class _LooksBinary(DataError):
    """A file that is not UTF-8 text: fatal alone, skipped with a warning inside a folder."""


@dataclass(frozen=True)
class Corpus:
    """A named text and the files it was read from."""

    name: str
    text: str
    sources: tuple[str, ...]

    @functools.cached_property
    def sha256(self) -> str:
        """The sha256 hex digest of the UTF-8 text, computed once."""
        return hashlib.sha256(self.text.encode("utf-8")).hexdigest()


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
        return _checked(Corpus(entry.name, read_text_file(path), (str(path),)))
    if spec == stdlib.NAME:
        text, sources = stdlib.stdlib_text()
        return _checked(Corpus(stdlib.NAME, text, sources))
    path = Path(spec).expanduser()
    if path.is_file():
        return _checked(Corpus(path.name, read_text_file(path), (str(path),)))
    if path.is_dir():
        return _from_files(path.name or spec, _folder_files(path), f"folder {spec}")
    if any(c in spec for c in "*?["):
        matches = sorted(Path(p) for p in glob.glob(str(path), recursive=True))
        files = [p for p in matches if p.is_file()]
        if not files:
            raise DataError(f"no file matches the pattern {spec!r}: check the pattern and folder")
        return _from_files(spec, files, f"pattern {spec}")
    raise DataError(_unknown_message(spec))


def split_text(text: str, val_fraction: float) -> tuple[str, str]:
    """Split `text` into `(train, val)`: `val` is the last `val_fraction` of the characters.

    >>> split_text("abcdefghij", 0.2)
    ('abcdefgh', 'ij')

    Raises DataError if either part would be empty.
    """
    if not 0.0 < val_fraction < 1.0:
        raise DataError(f"val_fraction = {val_fraction!r} must be strictly between 0 and 1")
    cut = len(text) - int(round(len(text) * val_fraction))
    if cut <= 0 or cut >= len(text):
        part = "training" if cut <= 0 else "validation"
        raise DataError(
            f"splitting {len(text)} characters with val_fraction = {val_fraction} leaves the "
            f"{part} text empty: use more text or a val_fraction further from 0 and 1"
        )
    return text[:cut], text[cut:]


def read_text_file(path: Path) -> str:
    """The UTF-8 text of `path` (a leading BOM removed); DataError if unreadable or binary."""
    try:
        data = path.read_bytes()
    except OSError as exc:
        reason = exc.strerror or type(exc).__name__
        message = f"cannot read {path}: {reason}: check that it exists and is readable"
        raise DataError(message) from exc
    if b"\0" in data[:_SNIFF_BYTES]:
        raise _LooksBinary(f"{path} looks binary (it has NUL bytes): give a UTF-8 text file")
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise _LooksBinary(
            f"{path} looks binary or is not UTF-8 (bad byte at offset {exc.start}): "
            "give a UTF-8 text file"
        ) from exc


def _folder_files(folder: Path) -> list[Path]:
    """Every regular, non-hidden file under `folder`, recursively, sorted by relative path."""
    files = [
        p for p in folder.rglob("*")
        if p.is_file() and not any(part.startswith(".") for part in p.relative_to(folder).parts)
    ]
    return sorted(files, key=lambda p: p.relative_to(folder).as_posix())


def _from_files(name: str, files: list[Path], what: str) -> Corpus:
    """A corpus of the text files among `files`, concatenated; binary files skipped with a warning.

    A newline is added after a file that does not end with one, so files never run together.
    """
    parts: list[str] = []
    sources: list[str] = []
    for path in files:
        try:
            text = read_text_file(path)
        except _LooksBinary:
            logger.warning("skipping %s: it looks binary or is not UTF-8", path)
            continue
        parts.append(text if text.endswith("\n") or not text else text + "\n")
        sources.append(str(path))
    if not files:
        raise DataError(f"{what} has no files: give a folder or pattern with UTF-8 text files")
    if not sources:
        raise DataError(f"{what} has no text files (all {len(files)} look binary): give UTF-8 text")
    logger.info("corpus %r: %d text files", name, len(sources))
    return _checked(Corpus(name, "".join(parts), tuple(sources)))


def _checked(corpus: Corpus) -> Corpus:
    """`corpus`, after checking it has some text that is not whitespace."""
    if not corpus.text.strip():
        where = corpus.sources[0] if len(corpus.sources) == 1 else corpus.name
        raise DataError(f"corpus {corpus.name!r} is empty ({where}): give a corpus with some text")
    logger.info("corpus %r: %d characters", corpus.name, len(corpus.text))
    return corpus


def _unknown_message(spec: str) -> str:
    names = [entry.name for entry in registry.REGISTRY] + [stdlib.NAME]
    message = (f"unknown corpus {spec!r}: not a registered name ({', '.join(names)}), "
               "file, folder or glob")
    close = difflib.get_close_matches(spec, names, n=1)
    return message + (f"; did you mean {close[0]!r}?" if close else "")
