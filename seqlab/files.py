"""Atomic file writes: a reader sees the old file or the new one, never half of either.

Each write goes to a temporary file in the same folder, is flushed to disk, and is renamed over the
target (`os.replace` is atomic on POSIX and Windows). A kill at any moment leaves the previous
version whole, and a failed write removes its temporary file. Files get the user's umask, as
`open` would give them (not `tempfile.mkstemp`'s 0600, which would hide a run from its group).

    with atomic_open(path, "w") as handle:
        json.dump(obj, handle)
"""

from __future__ import annotations

import os
import secrets
import shutil
import stat
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Iterator


def _temporary_beside(path: Path) -> tuple[int, Path]:
    """A new file beside `path`, open for writing, created with mode 0666 less the umask."""
    path.parent.mkdir(parents=True, exist_ok=True)
    flags = os.O_RDWR | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0) | getattr(os, "O_CLOEXEC", 0)
    for _ in range(100):  # O_EXCL: a name another writer took is tried again under another name
        tmp = path.parent / f".{path.name}.{secrets.token_hex(4)}.tmp"
        try:
            return os.open(tmp, flags, 0o666), tmp
        except FileExistsError:
            continue
    raise FileExistsError(f"no free temporary name beside {path}")


def _commit(tmp: Path, path: Path) -> None:
    os.replace(tmp, path)
    _fsync_dir(path.parent)


@contextmanager
def atomic_open(path: str | Path, mode: str = "wb") -> Iterator[IO]:
    """An open file whose content replaces `path` when the block ends without an exception."""
    path = Path(path)
    fd, tmp = _temporary_beside(path)
    try:
        with os.fdopen(fd, mode, **({} if "b" in mode else {"encoding": "utf-8"})) as handle:
            yield handle
            handle.flush()
            os.fsync(handle.fileno())
        _commit(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


@contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """A temporary path for writers that want a file name (safetensors, matplotlib); it is renamed
    onto `path` when the block ends without an exception."""
    path = Path(path)
    fd, tmp = _temporary_beside(path)
    mode = stat.S_IMODE(os.fstat(fd).st_mode)  # 0666 less the umask
    os.close(fd)
    try:
        yield tmp
        os.chmod(tmp, mode)  # a writer that made the file anew (safetensors makes it 0600) leaves the umask's mode
        with open(tmp, "rb+") as handle:
            os.fsync(handle.fileno())
        _commit(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


@contextmanager
def atomic_folder(path: str | Path) -> Iterator[Path]:
    """A new, empty folder to fill; when the block ends without an exception it replaces `path`
    whole (nothing of an earlier `path` survives), else it is removed and `path` is left as it was.

    The folder is built beside `path` (hidden, `.NAME.partial-XXXX`); the swap is two renames, the
    old folder going to `.NAME.replaced-XXXX` and then deleted, so a kill between them leaves both
    hidden folders to find, never a half-written `path`."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tag = secrets.token_hex(4)
    staging, old = path.parent / f".{path.name}.partial-{tag}", path.parent / f".{path.name}.replaced-{tag}"
    staging.mkdir()
    try:
        yield staging
        if path.exists():
            path.rename(old)
            try:
                staging.rename(path)
            except BaseException:
                old.rename(path)
                raise
            shutil.rmtree(old)
        else:
            staging.rename(path)
        _fsync_dir(path.parent)
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def atomic_write_text(path: str | Path, text: str) -> None:
    with atomic_open(path, "w") as handle:
        handle.write(text)


def link_or_copy(source: Path, target: Path) -> None:
    """Put `source`'s content at `target` atomically, as a hard link when the filesystem allows."""
    with atomic_path(target) as tmp:
        tmp.unlink()
        try:
            os.link(source, tmp)
        except OSError:
            tmp.write_bytes(source.read_bytes())


def _fsync_dir(folder: Path) -> None:
    # Makes the rename itself durable; not every platform can open a folder.
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)
