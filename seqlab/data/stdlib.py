"""The `python-stdlib` corpus: the running Python's standard-library sources, a code corpus every
machine already has (in the spirit of the Linux-source corpus of the char-rnn demo).

Every `*.py` file under `sysconfig.get_paths()["stdlib"]`, sorted by relative path, without test
suites (folders named `test*` or `idle_test`, files named `test_*.py`), third-party packages
(`site-packages`, `dist-packages`), caches and hidden folders. Files that are not valid UTF-8 are
skipped. Each file is preceded by a separator line `# ---- relative/path.py ----`. The result is the
same on every call for a given Python installation and never needs a network.

`python-stdlib-small` is its first `SMALL_CHARS` characters in whole files (as many as fit, in the
same order): about the size of Tiny Shakespeare, for `seqlab demo` on a machine that has neither
Tiny Shakespeare nor a network.
"""

from __future__ import annotations

import logging
import os
import sysconfig
from pathlib import Path

logger = logging.getLogger(__name__)

NAME = "python-stdlib"
SMALL_NAME = "python-stdlib-small"
SMALL_CHARS = 1_115_394  # Tiny Shakespeare's length: the demo's run time stays what it is on Shakespeare
_SKIPPED_DIRS = frozenset({"site-packages", "dist-packages", "__pycache__", "idle_test"})


def stdlib_root() -> Path:
    """The folder of the running Python's standard library."""
    return Path(sysconfig.get_paths()["stdlib"])


def stdlib_files(root: Path) -> list[Path]:
    """Every source file of the standard library under `root`, tests excluded, sorted (relative)."""
    found: list[Path] = []
    for folder, subdirs, files in os.walk(root):
        subdirs[:] = [d for d in subdirs if not _skipped_dir(d)]  # prune in place: never descend
        base = Path(folder).relative_to(root)
        found.extend(base / f for f in files if f.endswith(".py") and not f.startswith("test_"))
    return sorted(found, key=lambda p: p.as_posix())


def stdlib_text(root: Path | None = None, max_chars: int | None = None) -> tuple[str, tuple[str, ...]]:
    """The concatenated sources under `root` (default: this Python's) and the files used.

    Returns `(text, sources)`, `sources` being the absolute paths of the files in the text.
    `max_chars`: stop before the first file that would make the text longer (whole files only).
    """
    root = stdlib_root() if root is None else root
    parts: list[str] = []
    sources: list[str] = []
    length = 0
    for rel in stdlib_files(root):
        path = root / rel
        try:
            text = path.read_bytes().decode("utf-8-sig")
        except (OSError, UnicodeDecodeError) as exc:
            logger.debug("python-stdlib: skipping %s (%s)", path, exc)
            continue
        piece = f"# ---- {rel.as_posix()} ----\n" + (text if text.endswith("\n") or not text else text + "\n")
        if max_chars is not None and length + len(piece) > max_chars:
            break
        parts.append(piece)
        length += len(piece)
        sources.append(str(path))
    logger.info("python-stdlib: %d files from %s", len(sources), root)
    return "".join(parts), tuple(sources)


def _skipped_dir(name: str) -> bool:
    return name in _SKIPPED_DIRS or name.startswith(("test", "."))
