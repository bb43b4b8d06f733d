"""The `brown` corpus: the Brown Corpus (Francis & Kučera 1964/1979) as plain text, the
English text the word-vector presets learn from.

The 500 tagged files `ca01`–`cr09` (in the order of `cats.txt`) of the `brown/` folder of the data
folders (`seqlab.data.paths.data_search_dirs`; NLTK's `brown.zip`, see SOURCES.md) have one
sentence per non-blank line, as `word/tag` tokens. The text is each sentence on a line, its words
without their tags, lower-cased (the word-vector literature's convention: King and king are one
word), separated by single spaces: 57,340 lines, 1.16M words. About a second to read.
"""

from __future__ import annotations

import logging
from pathlib import Path

from seqlab.data.paths import data_search_dirs
from seqlab.errors import DataError

logger = logging.getLogger(__name__)

NAME = "brown"
FOLDER = "brown"


def brown_folder() -> Path:
    """The first data folder's `brown/` that holds `cats.txt`."""
    dirs = data_search_dirs()
    for _label, folder in dirs:
        if (folder / FOLDER / "cats.txt").is_file():
            return folder / FOLDER
    looked = ", ".join(f"{folder} ({label})" for label, folder in dirs)
    raise DataError(f"corpus {NAME!r}: no {FOLDER}/cats.txt in {looked}: put NLTK's brown corpus folder in one of "
                    "them or set SEQLAB_DATA to a folder with it")


def sentence_text(line: str) -> str:
    """A tagged line's words, untagged and lower-cased: 'The/at jury/nn ./.' -> 'the jury .'"""
    return " ".join(token.rsplit("/", 1)[0].lower() for token in line.split())


def brown_text(folder: Path | None = None) -> tuple[str, tuple[str, ...]]:
    """The plain text of the corpus in `folder` (default: found by `brown_folder`) and its files."""
    folder = brown_folder() if folder is None else folder
    names = [line.split()[0] for line in (folder / "cats.txt").read_text(encoding="utf-8").splitlines() if line.strip()]
    lines: list[str] = []
    for name in names:
        for line in (folder / name).read_text(encoding="utf-8").splitlines():
            if line.strip():
                lines.append(sentence_text(line))
    logger.info("brown: %d sentences from %d files in %s", len(lines), len(names), folder)
    return "\n".join(lines) + "\n", tuple(str(folder / name) for name in names)


__all__ = ["NAME", "brown_folder", "brown_text", "sentence_text"]
