"""Reading, overriding, checking and writing configurations.

A configuration comes from a TOML file or a preset shipped in `seqlab/presets/` (chosen by name),
then dotted overrides from the command line (`--model.n_layer=6`). Every key is checked against the
schema: an unknown key or a value of the wrong type is a `ConfigError` that names the key, what is
allowed, and the closest known key when there is one.
"""

from __future__ import annotations

import difflib
import json
import math
import tomllib
import types
import typing
from dataclasses import fields, replace
from importlib import resources
from pathlib import Path
from typing import Any, Literal, Mapping, Sequence

from seqlab.config.families import model_settings
from seqlab.config.presets import PRESET_SECTION, read_preset_info
from seqlab.config.schema import OPTIONAL_SECTIONS, SECTIONS, Config, ModelConfig
from seqlab.errors import ConfigError


def preset_names() -> list[str]:
    """Names of the presets shipped in the package, sorted."""
    folder = resources.files("seqlab.presets")
    return sorted(p.name[:-5] for p in folder.iterdir() if p.name.endswith(".toml"))


def _suggest(word: str, choices: Sequence[str]) -> str:
    close = difflib.get_close_matches(word, list(choices), n=1)
    return f" (did you mean {close[0]!r}?)" if close else ""


def read_toml_source(spec: str | Path) -> tuple[dict[str, Any], str]:
    """The raw TOML table of a config file or preset name, and a label saying where it came from."""
    path = Path(spec)
    if path.suffix == ".toml" or path.is_file():
        if not path.is_file():
            raise ConfigError(f"config file not found: {path}")
        text = path.read_text(encoding="utf-8")
        label = str(path)
    else:
        names = preset_names()
        if str(spec) not in names:
            raise ConfigError(f"unknown preset or config file {str(spec)!r}{_suggest(str(spec), names)}; "
                              f"presets: {', '.join(names)}")
        text = resources.files("seqlab.presets").joinpath(f"{spec}.toml").read_text(encoding="utf-8")
        label = f"preset {spec}"
    try:
        return tomllib.loads(text), label
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{label}: not valid TOML: {exc}") from None


def _describe(annotation: Any) -> str:
    if typing.get_origin(annotation) is Literal:
        return "one of " + ", ".join(str(a) for a in typing.get_args(annotation))
    if typing.get_origin(annotation) is tuple:
        return "a list of strings"
    names = {bool: "true or false", int: "an integer", float: "a number", str: "a string"}
    return names.get(annotation, str(annotation))


def _check_value(key: str, value: Any, annotation: Any) -> Any:
    """The value converted to the annotated type, or a ConfigError naming the key."""
    origin = typing.get_origin(annotation)
    if origin is Literal:
        allowed = typing.get_args(annotation)
        if value not in allowed:
            hint = _suggest(str(value), [str(a) for a in allowed])
            raise ConfigError(f"{key} = {value!r} is not allowed: expected {_describe(annotation)}{hint}")
        return value
    if origin in (typing.Union, types.UnionType):
        errors = []
        for option in typing.get_args(annotation):
            if option is type(None):
                if value is None:
                    return None
                continue
            try:
                return _check_value(key, value, option)
            except ConfigError as exc:
                errors.append(exc)
        if len(errors) == 1:
            raise errors[0]
        described = " or ".join(_describe(a) for a in typing.get_args(annotation) if a is not type(None))
        raise ConfigError(f"{key} = {value!r} is not allowed: expected {described}")
    if origin is tuple:  # tuple[str, ...]: a TOML array of strings
        if not isinstance(value, (list, tuple)) or not all(isinstance(v, str) for v in value):
            raise ConfigError(f"{key} = {value!r} is not allowed: expected {_describe(annotation)}")
        return tuple(value)
    ok = {
        bool: isinstance(value, bool),
        int: isinstance(value, int) and not isinstance(value, bool),
        float: isinstance(value, (int, float)) and not isinstance(value, bool),
        str: isinstance(value, str),
    }.get(annotation)
    if ok is None:
        raise TypeError(f"schema annotation {annotation!r} of {key} is not supported")
    if not ok:
        raise ConfigError(f"{key} = {value!r} is not allowed: expected {_describe(annotation)}")
    if annotation is float:
        return _finite(key, value)
    return value


def _finite(key: str, value: int | float) -> float:
    """`value` as a float; TOML's inf and nan (and integers past float's range) are errors."""
    try:
        number = float(value)
    except OverflowError:
        number = math.inf
    if not math.isfinite(number):
        raise ConfigError(f"{key} = {value!r} is not allowed: expected a finite number")
    return number


def build_config(table: Mapping[str, Any], label: str = "config", *, drop_foreign: bool = False) -> Config:
    """A checked Config from a nested table such as `tomllib` returns.

    `[model]` is read by the settings class of its `family` (default "transformer"), so a key of
    another family is an error that names that family. `drop_foreign` drops such keys instead: a run
    directory written before settings were per family lists every family's keys. A `[preset]` table
    (`seqlab.config.presets`) is checked and left out.
    """
    sections = {}
    for name, value in table.items():
        if name == PRESET_SECTION:  # what a preset says about itself: checked, configures nothing
            read_preset_info(value, label)
            continue
        if name not in SECTIONS:
            raise ConfigError(f"{label}: unknown section [{name}]{_suggest(name, list(SECTIONS))}; "
                              f"sections: {', '.join(SECTIONS)}")
        if not isinstance(value, Mapping):
            raise ConfigError(f"{label}: [{name}] must be a table of keys")
    for name in SECTIONS:
        given = dict(table.get(name, {}))
        cls = _model_class(given, label) if name == "model" else SECTIONS[name]
        if name == "model" and drop_foreign:
            # A file with foreign keys lists every family's: a key its family gained later (its
            # `later_keys`) holds another family's value there, and is dropped too.
            own = typing.get_type_hints(cls)
            later = getattr(cls, "later_keys", ()) if any(key not in own for key in given) else ()
            given = {key: value for key, value in given.items() if key in own and key not in later}
        sections[name] = _build_section(name, cls, given, label)
    return Config(**sections)


def _model_class(given: Mapping[str, Any], label: str) -> type:
    """The settings class that `given["family"]` names (the Transformer's when absent)."""
    family = given.get("family", ModelConfig.family)
    classes = model_settings()
    if family not in classes:
        raise ConfigError(f"{label}: model.family = {family!r} is not allowed: expected one of "
                          f"{', '.join(classes)}{_suggest(str(family), list(classes))}")
    return classes[family]


def _build_section(name: str, cls: type, given: Mapping[str, Any], label: str) -> Any:
    hints = typing.get_type_hints(cls)
    known = [f.name for f in fields(cls)]
    values = {}
    for key, value in given.items():
        if key not in hints:
            raise ConfigError(f"{label}: {_unknown_key(name, key, given.get('family', ModelConfig.family), known)}")
        values[key] = _check_value(f"{name}.{key}", value, hints[key])
    return cls(**values)


def _unknown_key(section: str, key: str, family: str, known: Sequence[str]) -> str:
    """Why `section.key` is not allowed: misspelt, or a setting of other model families."""
    owners = [f for f, c in model_settings().items() if key in {x.name for x in fields(c)}] if section == "model" else []
    if owners:
        return (f"model.{key} is a setting of model.family = {' / '.join(owners)}, not of {family!r}; "
                f"[model] of {family} has: {', '.join(known)}")
    return f"unknown key {section}.{key}{_suggest(key, known)}; [{section}] has: {', '.join(known)}"


def parse_overrides(overrides: Sequence[str]) -> dict[str, dict[str, Any]]:
    """`["model.n_layer=6", "--data.corpus=x.txt"]` as `{"model": {"n_layer": 6}, "data": {...}}`.

    A value is read as a TOML value when it is one (numbers, booleans, quoted strings) and as a plain
    string otherwise, so `--data.corpus=input.txt` needs no quotes.
    """
    table: dict[str, dict[str, Any]] = {}
    for raw in overrides:
        item = raw[2:] if raw.startswith("--") else raw
        key, sep, text = item.partition("=")
        section, dot, name = key.partition(".")
        if not sep or not dot or not name or "." in name:
            raise ConfigError(f"override {raw!r} is not of the form --section.key=value")
        try:
            value = tomllib.loads(f"v = {text}")["v"]
        except tomllib.TOMLDecodeError:
            value = text
        table.setdefault(section, {})[name] = value
    return table


def merge(base: Mapping[str, Any], extra: Mapping[str, Mapping[str, Any]]) -> dict[str, Any]:
    """`base` with the keys of `extra` laid over it, one section at a time."""
    merged = {name: dict(value) if isinstance(value, Mapping) else value for name, value in base.items()}
    for section, values in extra.items():
        current = merged.setdefault(section, {})
        if not isinstance(current, dict):
            raise ConfigError(f"[{section}] must be a table of keys")
        current.update(values)
    return merged


def load_config(spec: str | Path | None = None, overrides: Sequence[str] = ()) -> Config:
    """A checked Config from a TOML file or preset name (None: the defaults), then the overrides."""
    table, label = read_toml_source(spec) if spec is not None else ({}, "defaults")
    return build_config(merge(table, parse_overrides(overrides)), label)


def override(config: Config, overrides: Sequence[str]) -> Config:
    """`config` with dotted overrides applied and checked again."""
    return build_config(merge(config_to_dict(config), parse_overrides(overrides)), "overrides")


def config_to_dict(config: Config) -> dict[str, dict[str, Any]]:
    """Every section's keys and values; `[model]` holds its family's settings only."""
    return {name: {f.name: getattr(getattr(config, name), f.name) for f in fields(getattr(config, name))}
            for name in SECTIONS}


def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, str):
        # A TOML basic string accepts JSON's escapes for everything json.dumps writes.
        return json.dumps(value, ensure_ascii=False)
    if isinstance(value, tuple):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    raise TypeError(f"cannot write {value!r} as TOML")


def config_to_toml(config: Config) -> str:
    """The fully resolved config as TOML text that `load_config` reads back to an equal Config."""
    lines = []
    for section, values in config_to_dict(config).items():
        if section in OPTIONAL_SECTIONS and getattr(config, section) == SECTIONS[section]():
            continue
        lines.append(f"[{section}]")
        lines += [f"{key} = {_toml_value(v)}" for key, v in values.items() if v is not None]
        lines.append("")
    return "\n".join(lines)


def with_section(config: Config, section: str, **changes: Any) -> Config:
    """A copy of `config` with some keys of one section changed (and checked again)."""
    return replace(config, **{section: replace(getattr(config, section), **changes)})
