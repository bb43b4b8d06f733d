"""Reading a Hugging Face `config.json`: typed values and one-line errors naming the key.

A converter reads each field it maps with `require` or `get`, and states what it does not support
with `expect` (a setting seqlab has no equivalent for must have the value seqlab's model computes).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from seqlab.errors import CheckpointError, ConfigError

_MISSING = object()


class HFConfig:
    """A config.json's content, read through checks; `source` names the file in messages."""

    def __init__(self, values: Mapping[str, Any], source: str) -> None:
        self.values = dict(values)
        self.source = source

    def require(self, key: str, kind: type | tuple[type, ...]) -> Any:
        """The value of `key`, which must be present and of `kind` (ints are accepted as floats)."""
        value = self.values.get(key, _MISSING)
        if value is _MISSING:
            raise CheckpointError(f"{self.source} has no {key!r}; is it a complete save_pretrained config?")
        return self._checked(key, value, kind)

    def get(self, key: str, kind: type | tuple[type, ...], default: Any) -> Any:
        """The value of `key` when present and not null, else `default`."""
        value = self.values.get(key)
        return default if value is None else self._checked(key, value, kind)

    def expect(self, key: str, allowed: tuple[Any, ...], default: Any, why: str) -> Any:
        """The value of `key` (or `default`), which must be one of `allowed`; `why` says what seqlab
        supports instead."""
        value = self.values.get(key, default)
        if value not in allowed:
            raise ConfigError(f"{self.source}: {key} = {json_repr(value)} is not supported ({why})")
        return value

    def _checked(self, key: str, value: Any, kind: type | tuple[type, ...]) -> Any:
        kinds = kind if isinstance(kind, tuple) else (kind,)
        if float in kinds and isinstance(value, int) and not isinstance(value, bool):
            return float(value)
        if isinstance(value, bool) and bool not in kinds or not isinstance(value, kinds):
            names = " or ".join(k.__name__ for k in kinds)
            raise CheckpointError(f"{self.source}: {key} = {json_repr(value)} should be {names}")
        return value


def json_repr(value: Any) -> str:
    """A value as config.json writes it (null, true, "text")."""
    return json.dumps(value)


def require_axes(config: Any, needs: Mapping[str, tuple], target: str) -> None:
    """Raise a ConfigError naming the first `model.<axis>` of `config` (a ModelConfig) whose value is
    not among those `needs[axis]` allows for exporting as `target` (e.g. "Hugging Face's LLaMA")."""
    for axis, allowed in needs.items():
        value = getattr(config, axis)
        if value not in allowed:
            raise ConfigError(f"model.{axis} = {value!r} cannot be exported: {target} needs "
                              f"{' or '.join(repr(a) for a in allowed)}")
