"""Errors a user can cause. The CLI prints them as one line on stderr and exits non-zero.

Anything else that escapes is a bug and shows its traceback.
"""

import signal


class SeqlabError(Exception):
    """A user's mistake or a bad input: the message is one line that says what to do."""


class ConfigError(SeqlabError):
    """An unknown key, a bad value, or an unknown preset."""


class DataError(SeqlabError):
    """A corpus that cannot be found, read, or used (empty, binary, too short)."""


class TokenizerError(SeqlabError):
    """Text the tokenizer cannot encode, or a tokenizer file that cannot be read."""


class CheckpointError(SeqlabError):
    """A run directory or checkpoint that is missing, damaged or incompatible."""


class TrainingInterrupted(SeqlabError):
    """A training run that SIGINT (Ctrl-C) or SIGTERM stopped before `max_steps`, after it saved a
    checkpoint at `step`: not finished, but resumable (`seqlab train --out RUN --resume`).

    `seqlab.train` raises it so that a caller can tell an interrupted run from a finished one; the
    CLI prints its message and exits with the shell's status for the signal, 128 + `signum` (130
    for SIGINT, 143 for SIGTERM).
    """

    def __init__(self, signum: int, step: int, run_dir: object) -> None:
        self.signum, self.step, self.run_dir = signum, step, run_dir
        super().__init__(f"interrupted by {signal.Signals(signum).name} at step {step}, checkpoint saved; "
                         f"continue with: seqlab train --out {run_dir} --resume")

    def __reduce__(self):  # pickles with its own arguments, not the message
        return type(self), (self.signum, self.step, self.run_dir)

    @property
    def exit_status(self) -> int:
        return 128 + self.signum
