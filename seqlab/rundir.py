"""The life of a run directory: one writer at a time, and a replaced run kept until its successor holds.

A training (and `import-hf`) claims its run directory before any other work, and holds it to the end:

    with claim(run_dir) as run:             # the lock: a second writer is refused at once
        check_new(run_dir, overwrite=...)   # a run that starting afresh would lose, without --overwrite
        ...                                 # check everything: config, corpus, tokenizer, device, model
        run.start(fresh=True)               # from here on the directory changes: the old run moves aside
        ...                                 # write the run; run.commit() at its first checkpoint

**The lock** is `fcntl.flock(LOCK_EX | LOCK_NB)` on `RUN/.seqlab.lock`. flock rather than a PID file
or an O_EXCL marker because the kernel drops it when its process ends, however it ends (SIGKILL, a
crash), so no stale lock is ever left to clear by hand. The holder writes its PID into the file, so
a refusal names it; the file is removed on release, and a taker checks that the file it locked is
still the one at the path (else a releaser removed it in between, and it takes the new one). flock
is advisory, and on network filesystems only as good as their emulation of it (NFS maps it to
byte-range locks; some FUSE filesystems ignore it). Where `fcntl` is missing (Windows) runs are not
locked, with a warning. A claim that fails before `start` leaves the directory as it was, and
removes it (and the parents it made) when it made it.

**Starting afresh** (`start(fresh=True)`: a new run, `--overwrite`, a fitted family's refit):
whatever the directory held moves into `RUN/.replaced/`, a hidden folder of the same directory (so
the lock file, which stays in place, keeps guarding it, and `ls -a RUN` shows it). `commit()` (the
new run's first checkpoint, or a fitted family's saved model) deletes it; a failure before that
removes what the new run wrote and moves the old run back: a failed start leaves nothing behind.
Each move is a journal of renames, so a process killed at any moment leaves a state that the next
claim puts right:

    RUN/.replacing/           killed while moving the old run aside: it is moved back
    RUN/.replaced/            the new run never reached a checkpoint: it is removed, the old run put back
    RUN/.replaced.deleting/   the new run had its checkpoint: the old run is deleted

**Continuing** (`start(fresh=False)`: `--resume`) only holds the lock: the run's checkpoints
protect themselves.
"""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import time
from pathlib import Path
from typing import TYPE_CHECKING, Iterator

from seqlab.errors import SeqlabError
from seqlab.training.callbacks import Callback

if TYPE_CHECKING:
    from seqlab.training.trainer import Trainer

try:
    import fcntl
except ImportError:  # Windows
    fcntl = None

log = logging.getLogger(__name__)

LOCK_NAME = ".seqlab.lock"
MOVING_NAME = ".replacing"  # the old run on its way aside
ASIDE_NAME = ".replaced"  # the run a fresh start replaces, until the new run's first checkpoint
DOOMED_NAME = ".replaced.deleting"  # ... and after it, while it is deleted
OWN_NAMES = frozenset({LOCK_NAME, MOVING_NAME, ASIDE_NAME, DOOMED_NAME})
PID_TRIES = 25  # reads of a held lock file, 20 ms apart, for the PID its holder is about to write


# ---- the lock -------------------------------------------------------------------------------------


class RunLock:
    """An exclusive lock on a run directory (see the module docstring); `acquire` raises a
    SeqlabError naming the holder's PID when another process has it."""

    def __init__(self, run_dir: Path) -> None:
        self.run_dir = Path(run_dir)
        self.path = self.run_dir / LOCK_NAME
        self._fd: int | None = None

    def acquire(self) -> None:
        """Take the lock, creating the run directory if needed."""
        if self.run_dir.exists() and not self.run_dir.is_dir():
            raise SeqlabError(f"--out {self.run_dir} is a file, not a folder")
        self.run_dir.mkdir(parents=True, exist_ok=True)
        if fcntl is None:
            log.warning("this platform has no fcntl: %s is not locked against other processes", self.run_dir)
            return
        while True:
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o666)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                os.close(fd)
                raise SeqlabError(f"{self.run_dir} is in use by {holder(self.path)}: wait for it to finish "
                                  f"(or stop it), or choose another --out") from None
            if _same_file(fd, self.path):
                break
            os.close(fd)  # the file was removed (released) before we locked it: take the one there now
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode())
        self._fd = fd

    def release(self) -> None:
        """Give the lock up and remove its file (while still holding it: see `acquire`)."""
        if self._fd is None:
            return
        with contextlib.suppress(FileNotFoundError):
            self.path.unlink()
        os.close(self._fd)  # closing the last descriptor drops the flock
        self._fd = None


def _same_file(fd: int, path: Path) -> bool:
    try:
        return os.path.samestat(os.fstat(fd), os.stat(path))
    except FileNotFoundError:
        return False


def holder(lock_path: Path) -> str:
    """Who holds a lock, as its file says: "process 1234", or "another process" when it does not
    say (yet: a holder writes its PID just after it takes the lock)."""
    for _ in range(PID_TRIES):
        try:
            pid = lock_path.read_text(encoding="ascii").strip()
        except (OSError, UnicodeDecodeError):
            pid = ""
        if pid.isdigit():
            return f"process {pid}"
        time.sleep(0.02)
    return "another process"


# ---- what a fresh start may replace -----------------------------------------------------------------


def check_new(run_dir: Path, *, overwrite: bool, hint: str = "--resume to continue it, ") -> None:
    """Refuse to start a new run in `run_dir` unless that loses nothing the user did not ask to lose:
    `run_dir` is missing, empty, or holds a run and `overwrite` is given. Changes nothing."""
    run_dir = Path(run_dir)
    if not run_dir.exists():
        return
    if not run_dir.is_dir():
        raise SeqlabError(f"--out {run_dir} is a file, not a folder")
    if (run_dir / "config.toml").exists():
        if not overwrite:
            raise SeqlabError(f"{run_dir} already holds a run: add {hint}--overwrite to replace it, or choose "
                              f"another --out")
    elif _entries(run_dir):
        raise SeqlabError(f"{run_dir} is a folder with other files in it, not a seqlab run; choose another --out")


def _entries(run_dir: Path) -> list[Path]:
    """What the run directory holds, less the lifecycle's own files."""
    return [entry for entry in run_dir.iterdir() if entry.name not in OWN_NAMES]


# ---- moving a run aside and back: renames, journalled by the folder names ---------------------------


def _move_back(run_dir: Path, folder: Path) -> None:
    """Move everything in `folder` back into `run_dir`, and remove `folder`."""
    for entry in folder.iterdir():
        entry.rename(run_dir / entry.name)
    folder.rmdir()


def _move_aside(run_dir: Path) -> None:
    """Move the run directory's content into ASIDE_NAME: into MOVING_NAME first, renamed when every
    entry is in, so that a kill halfway leaves a state `_recover` tells apart."""
    entries = _entries(run_dir)
    if not entries:
        return
    moving = run_dir / MOVING_NAME
    moving.mkdir()
    try:
        for entry in entries:
            entry.rename(moving / entry.name)
    except BaseException:
        _move_back(run_dir, moving)
        raise
    moving.rename(run_dir / ASIDE_NAME)
    log.info("the run in %s is kept in %s until the new run's first checkpoint", run_dir, run_dir / ASIDE_NAME)


def _put_back(run_dir: Path) -> None:
    """Undo a fresh start: remove what the new run wrote and move the old run back."""
    for entry in _entries(run_dir):
        if entry.is_dir() and not entry.is_symlink():
            shutil.rmtree(entry)
        else:
            entry.unlink(missing_ok=True)
    aside = run_dir / ASIDE_NAME
    if aside.is_dir():
        _move_back(run_dir, aside)


def _recover(run_dir: Path) -> None:
    """Finish the replacement a killed process left half done (the caller holds the lock)."""
    moving, aside, doomed = run_dir / MOVING_NAME, run_dir / ASIDE_NAME, run_dir / DOOMED_NAME
    if moving.is_dir():  # killed while moving the old run aside: nothing new was written yet
        _move_back(run_dir, moving)
    if doomed.is_dir():  # the new run had its checkpoint: the old one was on its way out
        shutil.rmtree(doomed)
    if aside.is_dir():
        log.warning("%s: a new run stopped before its first checkpoint; the run it was replacing is put back",
                    run_dir)
        _put_back(run_dir)


# ---- the claim ------------------------------------------------------------------------------------


class RunClaim:
    """A run directory held for one process's work (see the module docstring); made by `claim`."""

    def __init__(self, run_dir: Path, *, held: bool = True) -> None:
        self.run_dir = Path(run_dir)
        self.held = held
        self.committed = True  # nothing to put back until a fresh start
        self._lock = RunLock(self.run_dir)
        self._made: list[Path] = []  # folders the claim created, deepest first

    def open(self) -> None:
        """Take the lock and put right what a killed process left half done."""
        if not self.held:
            return
        self._made = _missing_folders(self.run_dir)
        try:
            self._lock.acquire()
            _recover(self.run_dir)
        except BaseException:
            self.close(failed=True)
            raise

    def start(self, *, fresh: bool) -> None:
        """Everything is checked: the work begins. `fresh` moves what the directory holds aside (the
        new run replaces it at `commit`); else the run there is continued in place."""
        if self.held and fresh:
            _move_aside(self.run_dir)
            self.committed = False

    def commit(self) -> None:
        """The new run holds (it has a checkpoint): delete the run it replaced."""
        if self.committed:
            return
        aside = self.run_dir / ASIDE_NAME
        if aside.is_dir():
            doomed = self.run_dir / DOOMED_NAME
            aside.rename(doomed)  # the commit point: from here on, recovery deletes instead of putting back
            shutil.rmtree(doomed)
            log.info("the run %s held before is deleted", self.run_dir)
        self.committed = True

    def close(self, *, failed: bool) -> None:
        """Release the directory: commit when the work ended well; when it failed before its commit,
        remove what it wrote, put the old run back, and remove the folders the claim made."""
        if not self.held:
            return
        try:
            if not failed:
                self.commit()
            elif not self.committed:
                _put_back(self.run_dir)
                self.committed = True
        finally:
            self._lock.release()
        if failed:
            for folder in self._made:
                with contextlib.suppress(OSError):
                    folder.rmdir()  # only when empty: a run that reached its checkpoint stays

    def callback(self) -> Callback:
        """A Trainer callback that commits at the run's first checkpoint."""
        return _CommitAtCheckpoint(self)


class _CommitAtCheckpoint(Callback):
    def __init__(self, claim: RunClaim) -> None:
        self.claim = claim

    def on_checkpoint(self, trainer: Trainer) -> None:
        self.claim.commit()


def _missing_folders(path: Path) -> list[Path]:
    """`path` and those of its parents that do not exist yet, deepest first."""
    missing = []
    while not path.exists() and path != path.parent:
        missing.append(path)
        path = path.parent
    return missing


@contextlib.contextmanager
def claim(run_dir: Path, *, held: bool = True) -> Iterator[RunClaim]:
    """Hold `run_dir` for the block (see the module docstring): locked at once, changed from
    `start` on, committed when the block ends well, put back when it fails before its commit.
    `held` False (a torchrun rank other than 0, which writes nothing) claims nothing."""
    run = RunClaim(run_dir, held=held)
    run.open()
    try:
        yield run
    except BaseException:
        run.close(failed=True)
        raise
    run.close(failed=False)
