"""Which settings class reads a `[model]` table: the one its `family` names.

The classes are declared by the family registry (`seqlab.families`), one per family, beside each
family's model; this module is how the config layer, which sits below every model, finds them
without importing them: the registry fills `_SETTINGS` when it is imported, and `settings_class`
imports it on first use.
"""

from __future__ import annotations

import importlib

from seqlab.config.schema import ModelSettings

_SETTINGS: dict[str, type[ModelSettings]] = {}


def register_settings(family: str, settings: type[ModelSettings]) -> None:
    """Declare `settings` as the class of `[model]` tables with `family = "<family>"`."""
    _SETTINGS[family] = settings


def model_settings() -> dict[str, type[ModelSettings]]:
    """Every family's settings class, by family name, in the registry's order."""
    if not _SETTINGS:
        importlib.import_module("seqlab.families")  # declares every family (see the module docstring)
    return _SETTINGS


def settings_class(family: str) -> type[ModelSettings] | None:
    """The settings class of `family`, or None for a name no family has."""
    return model_settings().get(family)
