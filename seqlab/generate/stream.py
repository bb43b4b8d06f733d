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
    """Accumulates token ids; `push` returns the newly printable text.

    Only the text not yet returned is kept (at most the `len(stop) - 1` characters held back, and
    the last push's), so a stream of any length holds a bounded amount: a match of the stop string
    that starts in text already returned would have been complete, and found, when it was returned.
    """

    def __init__(self, tokenizer: Tokenizer, *, stop: str = "") -> None:
        self.tokenizer = tokenizer
        self.stop = stop
        self.stopped = False
        self._decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
        self._pending = ""  # decoded and not yet returned (up to the stop string once stopped)

    def push(self, ids: Iterable[int]) -> str:
        """Add tokens; returns the text that is now safe to show (may be empty)."""
        if self.stopped:
            return ""
        self._pending += self._decoder.decode(self.tokenizer.decode_bytes([int(i) for i in ids]))
        if self.stop:
            found = self._pending.find(self.stop)
            if found >= 0:
                self._pending = self._pending[: found + len(self.stop)]
                self.stopped = True
                return self._take(len(self._pending))
            return self._take(len(self._pending) - (len(self.stop) - 1))
        return self._take(len(self._pending))

    def flush(self) -> str:
        """The text held back so far (call once generation has ended)."""
        if not self.stopped:
            self._pending += self._decoder.decode(b"", final=True)
        return self._take(len(self._pending))

    def _take(self, end: int) -> str:
        piece, self._pending = self._pending[:max(end, 0)], self._pending[max(end, 0):]
        return piece
