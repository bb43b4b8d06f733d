"""The tables every experiment prints and saves: aligned plain text, Markdown, and the report files.

Text columns (the first `left` ones) are left-aligned, numbers right-aligned.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Sequence
from pathlib import Path

from seqlab.files import atomic_write_text


def text_table(headers: Sequence[str], rows: Sequence[Sequence[str]], *, left: int | Collection[int] = 1
               ) -> list[str]:
    """Aligned plain-text lines: the header, a rule of dashes, then the rows. Left-aligned: the
    first `left` columns, or the columns whose indices `left` holds.

    >>> print("\\n".join(text_table(["name", "n"], [["a", "10"], ["bc", "2"]])))
    name   n
    ----  --
    a     10
    bc     2
    """
    table = [list(headers), *map(list, rows)]
    widths = [max(len(row[i]) for row in table) for i in range(len(headers))]
    texts = set(range(left)) if isinstance(left, int) else set(left)
    lines = []
    for n, row in enumerate(table):
        lines.append("  ".join(cell.ljust(w) if i in texts else cell.rjust(w)
                               for i, (cell, w) in enumerate(zip(row, widths))).rstrip())
        if n == 0:
            lines.append("  ".join("-" * w for w in widths))
    return lines


def markdown_table(headers: Sequence[str], rows: Sequence[Sequence[str]], *, left: int | Collection[int] = 1
                   ) -> list[str]:
    """Markdown table lines, numeric columns right-aligned (`left` as in `text_table`)."""
    texts = set(range(left)) if isinstance(left, int) else set(left)
    align = "|" + "".join("---|" if i in texts else "---:|" for i in range(len(headers)))
    return ["| " + " | ".join(headers) + " |", align, *("| " + " | ".join(row) + " |" for row in rows)]


def write_reports(out: str | Path, names: Sequence[str], markdown: str, csv_text: str,
                  draw: Callable[[Path], None]) -> list[Path]:
    """Write `names` = (Markdown, CSV, PNG) into `out` (the PNG by `draw(path)`); returns their paths."""
    paths = [Path(out) / name for name in names]
    atomic_write_text(paths[0], markdown)
    atomic_write_text(paths[1], csv_text)
    draw(paths[2])
    return paths
