"""Stopping a training run on a signal without losing a step.

SIGINT (Ctrl-C) and SIGTERM (what `timeout`, systemd, Docker, Kubernetes and Slurm send before they
kill) both ask the loop to finish the step it is in, write a checkpoint and stop. `seqlab.train`
then raises `TrainingInterrupted`, and the CLI exits with the status a shell gives a process killed
by that signal (128 + its number: 130 for SIGINT, 143 for SIGTERM), so `seqlab train ... && seqlab
eval ...` never goes on with a run cut short.

A second Ctrl-C aborts at once, without a checkpoint (the previous one stays whole: a checkpoint
becomes current only when it is complete). A second SIGTERM changes nothing: the first is being
honoured, and whoever sent it sends SIGKILL when tired of waiting.

Python lets only the main thread handle signals: elsewhere (a notebook's worker thread) the
handlers are not installed and the signals keep their usual effect.
"""

from __future__ import annotations

import logging
import signal
import threading

log = logging.getLogger(__name__)

STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)


def signal_name(signum: int) -> str:
    return signal.Signals(signum).name


class StopSignals:
    """While open, SIGINT and SIGTERM record themselves in `signum` (the first one) instead of
    stopping the process; on closing, the handlers before it are put back.

        with StopSignals() as stop:
            while not done and stop.signum is None:
                step()
    """

    def __init__(self) -> None:
        self.signum: int | None = None
        self._previous: dict[int, object] = {}

    def __enter__(self) -> StopSignals:
        if threading.current_thread() is threading.main_thread():
            for signum in STOP_SIGNALS:
                self._previous[signum] = signal.signal(signum, self._handle)
        return self

    def __exit__(self, *exc) -> None:
        for signum, handler in self._previous.items():
            # None: a handler installed from C, which Python cannot put back; the default is closest.
            signal.signal(signum, signal.SIG_DFL if handler is None else handler)
        self._previous.clear()

    def _handle(self, signum: int, frame) -> None:
        if self.signum is None:
            self.signum = signum
            again = " (Ctrl-C again to abort without it)" if signum == signal.SIGINT else ""
            log.warning("%s: saving a checkpoint at the end of this step, then stopping%s", signal_name(signum), again)
        elif signum == signal.SIGINT:
            raise KeyboardInterrupt
