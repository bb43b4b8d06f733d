"""What a preset says about itself: the `[preset]` table of a preset's TOML file.

    [preset]
    description = "nanoGPT's CPU character GPT: 4 layers of width 128, tiny Shakespeare"
    vocab_size = 65       # the tokenizer it fits on its data: what its parameter count is computed with
    seconds = 78          # wall time of `seqlab train NAME` on 2 CPU cores
    timing = "measured"   # or "estimated" (`seqlab presets` then shows it as "~...")

The table describes the file; it configures nothing. `seqlab.config.load` checks it (unknown keys
and wrong types are errors, as in every section) and leaves it out of the `Config`, so a preset
copied into a TOML file of one's own still loads. `seqlab presets` lists these fields beside what
the config itself says (family, parameters computed on the meta device, steps).
"""

from __future__ import annotations

import typing
from dataclasses import MISSING, dataclass, fields
from importlib import resources
from typing import Any, Literal, Mapping

from seqlab.errors import ConfigError

PRESET_SECTION = "preset"


@dataclass(frozen=True)
class PresetInfo:
    """A preset's `[preset]` table (see the module docstring)."""

    description: str  # one line
    vocab_size: int  # the vocabulary its tokenizer has on its data (the target side's for seq2seq)
    seconds: float  # wall time of `seqlab train NAME` on 2 CPU cores
    timing: Literal["measured", "estimated"]
    source_vocab_size: int = 0  # seq2seq with one tokenizer per side: the source side's (0: shared)

    def __post_init__(self) -> None:
        if not self.description.strip() or "\n" in self.description:
            raise ConfigError(f"preset.description = {self.description!r} is not allowed: expected one line of text")
        if self.vocab_size < 1 or self.source_vocab_size < 0:
            raise ConfigError(f"preset.vocab_size = {self.vocab_size!r} is not allowed: expected a positive integer")
        if not self.seconds > 0:
            raise ConfigError(f"preset.seconds = {self.seconds!r} is not allowed: expected a positive number")

    @property
    def time(self) -> str:
        """The time as shown: '78 s', '6.5 min', '38 min'; '~' first when estimated."""
        s = self.seconds
        text = f"{s:.0f} s" if s < 90 else f"{s / 60:.1f} min" if s < 600 else f"{s / 60:.0f} min"
        return ("~" if self.timing == "estimated" else "") + text


def read_preset_info(table: Any, label: str) -> PresetInfo:
    """The `PresetInfo` of a `[preset]` table, every key checked; a `ConfigError` names what is wrong."""
    if not isinstance(table, Mapping):
        raise ConfigError(f"{label}: [{PRESET_SECTION}] must be a table of keys")
    hints = typing.get_type_hints(PresetInfo)
    known = [f.name for f in fields(PresetInfo)]
    required = [f.name for f in fields(PresetInfo) if f.default is MISSING]
    for key, value in table.items():
        if key not in hints:
            raise ConfigError(f"{label}: unknown key {PRESET_SECTION}.{key}; [{PRESET_SECTION}] has: {', '.join(known)}")
        _check(f"{PRESET_SECTION}.{key}", value, hints[key], label)
    missing = [key for key in required if key not in table]
    if missing:
        raise ConfigError(f"{label}: [{PRESET_SECTION}] lacks {', '.join(missing)}")
    values = {key: float(v) if hints[key] is float else v for key, v in table.items()}
    try:
        return PresetInfo(**values)
    except ConfigError as exc:
        raise ConfigError(f"{label}: {exc}") from None


def _check(key: str, value: Any, annotation: Any, label: str) -> None:
    if typing.get_origin(annotation) is Literal:
        ok = value in typing.get_args(annotation)
        allowed = "one of " + ", ".join(typing.get_args(annotation))
    else:
        allowed = {str: "a string", int: "an integer", float: "a number"}[annotation]
        ok = isinstance(value, (int, float) if annotation is float else annotation) and not isinstance(value, bool)
    if not ok:
        raise ConfigError(f"{label}: {key} = {value!r} is not allowed: expected {allowed}")


def preset_info(name: str) -> PresetInfo | None:
    """The `[preset]` table of the shipped preset `name`, or None when it has none."""
    import tomllib

    text = resources.files("seqlab.presets").joinpath(f"{name}.toml").read_text(encoding="utf-8")
    table = tomllib.loads(text).get(PRESET_SECTION)
    return None if table is None else read_preset_info(table, f"preset {name}")


__all__ = ["PRESET_SECTION", "PresetInfo", "preset_info", "read_preset_info"]
