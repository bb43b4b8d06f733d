"""Errors a user can cause. The CLI prints them as one line on stderr and exits non-zero.

Anything else that escapes is a bug and shows its traceback.
"""


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
