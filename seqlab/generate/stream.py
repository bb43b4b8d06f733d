"""Turning generated token ids into text as they arrive.

Two things make this more than `decode` per token: a byte-level token can end in the middle of a
UTF-8 character (so bytes go through an incremental decoder), and a stop string can arrive split
across tokens (so the last `len(stop) - 1` characters are held back until they cannot start it).

    >>> stream = TextStream(tokenizer, stop="\\n\\n")
    >>> for token in tokens:
    ...     print(stream.push([token]), end="")
    ...     if stream.stopped:
    ...         break
    >>> print(stream.flush(), end="")
"""

from __future__ import annotations

import codecs
from typing import Iterable

from seqlab.tokenizers import Tokenizer


class TextStream:
    """Accumulates token ids; `push` returns the newly printable text; `text` is everything so far."""

    def __init__(self, tokenizer: Tokenizer, *, stop: str = "") -> None:
        self.tokenizer = tokenizer
        self.stop = stop
        self.stopped = False
        self._decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
        self._text = ""  # decoded so far (up to the stop string once stopped)
        self._emitted = 0  # how many characters of _text were returned already

    @property
    def text(self) -> str:
        return self._text

    def push(self, ids: Iterable[int]) -> str:
        """Add tokens; returns the text that is now safe to show (may be empty)."""
        if self.stopped:
            return ""
        self._text += self._decoder.decode(self.tokenizer.decode_bytes([int(i) for i in ids]))
        if self.stop:
            found = self._text.find(self.stop, max(0, self._emitted - len(self.stop)))
            if found >= 0:
                self._text = self._text[: found + len(self.stop)]
                self.stopped = True
                return self._take(len(self._text))
            return self._take(len(self._text) - (len(self.stop) - 1))
        return self._take(len(self._text))

    def flush(self) -> str:
        """The text held back so far (call once generation has ended)."""
        if not self.stopped:
            self._text += self._decoder.decode(b"", final=True)
        return self._take(len(self._text))

    def _take(self, end: int) -> str:
        end = max(end, self._emitted)
        piece = self._text[self._emitted:end]
        self._emitted = end
        return piece
