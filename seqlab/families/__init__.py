"""The family registry: one declaration per model family, the only place that knows what a family is.

    from seqlab import families
    entry = families.get(config.model.family)   # a `Family` (see seqlab.families.base)
    model = entry.build_model(config.model, vocab_size)

Every family of the ladder is declared here, in the order of the ladder. Adding a family means its
model module, its entry (one `Family`, listed in `FAMILIES`), its presets and its tests.
"""

from __future__ import annotations

from seqlab.config.families import register_settings
from seqlab.errors import ConfigError, SeqlabError
from seqlab.families.base import Family, HiddenStates, Shorthand
from seqlab.families.classical import HMM_FAMILY, NGRAM
from seqlab.families.mamba import MAMBA
from seqlab.families.mlp import MLP
from seqlab.families.recurrent import GATED, GRU, LSTM, RNN, RNN_SEQ2SEQ
from seqlab.families.transformer import ENCODER_DECODER, TRANSFORMER
from seqlab.families.wavenet import WAVENET
from seqlab.families.word_vectors import GLOVE, WORD2VEC

FAMILIES: dict[str, Family] = {f.name: f for f in (
    NGRAM, HMM_FAMILY, MLP, WAVENET, RNN, GATED, GRU, LSTM, MAMBA, TRANSFORMER, ENCODER_DECODER, RNN_SEQ2SEQ,
    WORD2VEC, GLOVE,
)}

for _family in FAMILIES.values():
    register_settings(_family.name, _family.settings)


def get(name: str) -> Family:
    """The declaration of family `name`."""
    try:
        return FAMILIES[name]
    except KeyError:
        raise ConfigError(f"model.family = {name!r} is not allowed: expected one of {', '.join(FAMILIES)}") from None


def build_model(settings, vocab_size: int, *, source_vocab_size: int | None = None):
    """A freshly initialised model of the family `settings.family` names. The seq2seq families read
    sources of `source_vocab_size` ids and write targets of `vocab_size`; with source_vocab_size None
    both sides share one vocabulary (and embedding)."""
    return get(settings.family).build_model(settings, vocab_size, source_vocab_size)


def check_data(config) -> None:
    """The `[data]` keys that belong to the other kind of family: pairs (data.task, data.pairs) for
    the seq2seq families only, lines (data.sequences = "lines") for the language models only."""
    family = get(config.model.family)
    data = config.data
    if not family.reads_pairs and (data.task or data.pairs):
        key = "data.task" if data.task else "data.pairs"
        pairs = ", ".join(f.name for f in FAMILIES.values() if f.reads_pairs)
        raise ConfigError(f"{key} gives (source, target) pairs, which the seq2seq families ({pairs}) read; "
                          f"model.family = {family.name!r} reads data.corpus")
    if family.reads_pairs and data.sequences != "stream":
        raise ConfigError(f"data.sequences = {data.sequences!r} is for language models; model.family = "
                          f"{family.name!r} reads (source, target) pairs")


def require_language_model(family_name: str, what: str) -> None:
    """Refuse `what` (a verb) for a family that is not a language model, in one line."""
    family = get(family_name)
    if not family.language_model:
        raise SeqlabError(f"a {family.name} run holds word vectors, not a language model: {what} does not apply "
                          f"to it (query its vectors with seqlab embed RUN)")


def shorthands() -> dict[str, tuple[Family, Shorthand]]:
    """Every `seqlab compare --models` name, with its family and shorthand entry."""
    return {s.name: (f, s) for f in FAMILIES.values() for s in f.shorthand}


__all__ = ["FAMILIES", "Family", "HiddenStates", "Shorthand", "build_model", "check_data", "get", "require_language_model", "shorthands"]
