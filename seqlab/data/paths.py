"""Where seqlab looks for corpora and keeps its caches.

Data files from outside are never committed: a registered corpus is looked for, in this order, in
`$SEQLAB_DATA`, in `<cache home>/seqlab` (where downloads go), in `shared/data` beside the checkout,
and in `../shared/data` from the current directory. `<cache home>` is `$XDG_CACHE_HOME` when set,
else `~/.cache`. Token caches live in `$SEQLAB_CACHE` or `<cache home>/seqlab/tokens`.
"""

from __future__ import annotations

import os
from pathlib import Path

import seqlab

# The checkout is the folder that holds the `seqlab` package; `shared/` sits beside it.
CHECKOUT_DATA_DIR = Path(seqlab.__file__).resolve().parents[2] / "shared" / "data"


def cache_home() -> Path:
    """The user's cache folder: `$XDG_CACHE_HOME` if set, else `~/.cache`."""
    xdg = os.environ.get("XDG_CACHE_HOME", "")
    return Path(xdg).expanduser() if xdg else Path.home() / ".cache"


def download_dir() -> Path:
    """The folder that downloaded corpora are saved to (and found in later)."""
    return cache_home() / "seqlab"


def data_search_dirs() -> list[tuple[str, Path]]:
    """The folders a registered corpus is looked for in, first match wins, each with a label."""
    dirs: list[tuple[str, Path]] = []
    env = os.environ.get("SEQLAB_DATA", "")
    if env:
        dirs.append(("$SEQLAB_DATA", Path(env).expanduser()))
    dirs.append(("cache", download_dir()))
    dirs.append(("checkout", CHECKOUT_DATA_DIR))
    dirs.append(("current directory", Path.cwd().parent / "shared" / "data"))
    unique: dict[Path, tuple[str, Path]] = {}
    for label, path in dirs:
        unique.setdefault(path.resolve(), (label, path))  # the checkout is often ../ of the cwd
    return list(unique.values())


def token_cache_dir() -> Path:
    """The folder token caches go to: `$SEQLAB_CACHE` if set, else `<cache home>/seqlab/tokens`."""
    env = os.environ.get("SEQLAB_CACHE", "")
    return Path(env).expanduser() if env else cache_home() / "seqlab" / "tokens"
