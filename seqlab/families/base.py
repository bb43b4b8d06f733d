"""What seqlab needs to know about a model family, declared once per family (`Family`).

Code that serves every family (`seqlab.api`, the CLI, run directories, `compare`, `llm-table`,
`inspect`, interop) asks a family's declaration and never tests a family's name or model class.
A declaration is data and small functions:

- `settings`: the frozen dataclass that reads the family's `[model]` table;
- `build`: a freshly initialised model from the settings (families trained by gradient steps), or
  `fit`: a model fitted to the training tokens by counting or EM (then `save` and `load` say how it
  is stored in the run directory, since it has no weights file);
- `batches`: the Trainer's batch source for a stream of tokens (windows, or truncated BPTT);
- `score`: how a split is scored, a `Scoring` (windows of the context, a carried stream, one stream),
  and `score_lines` how a split of lines is (`data.sequences = "lines"`);
- `units`: what `inspect` can show of the model's inside, as named activations (T, U);
- `traced`: the probes `seqlab.inspect.trace` records for the family (attention, states, ...);
- `shorthand`: its names in `seqlab compare --models`, with the preset it starts from and the
  setting its size sets;
- `hidden`: how a task head (`seqlab.tasks`) reads the model: its per-token hidden states from
  input vectors (`HiddenStates`); None for a family without task heads.

Shared behaviour (scoring strategies, sizes) lives in `seqlab.families.common`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from torch import Tensor

from seqlab.config import Config
from seqlab.config.schema import ModelSettings
from seqlab.data import BatchSource, TokenData
from seqlab.families.common import score_framed_lines


@dataclass(frozen=True)
class Shorthand:
    """A `seqlab compare --models` name: FAMILY[-SIZE] starts from `preset`, sets `family` and
    sets `size` (a [model] key) to SIZE when given."""

    name: str
    preset: str
    size: str  # the [model] key a size sets: order, n_states, d_model, ...


@dataclass(frozen=True)
class HiddenStates:
    """The hidden-state contract a task head reads a family's model through.

    `read(model, x, mask, both_ways)`: input vectors x (B, T, E), as the model's token embedding
    `tok_emb` gives them (or a linear projection of real-valued features), and mask (B, T) (True on
    real positions, a prefix of each row) → hidden states (B, T, D). Causal unless `both_ways`, which
    only a family with `attends_both_ways` is given: its attention then sees the whole sequence, with
    the padding masked. A causal reading never looks right, so padding after a row changes nothing.
    `reverse(settings)`: for a family that is bidirectional by a second reader of the reversed
    sequence (a BiLSTM), that reader, a module x (B, T, E) → (B, T, D); None otherwise.
    `embed_width(settings)` is E, `width(settings)` is D.
    """

    read: Callable[[Any, Tensor, Tensor, bool], Tensor]
    embed_width: Callable[[Any], int]
    width: Callable[[Any], int]
    attends_both_ways: bool = False
    reverse: Callable[[Any], Any] | None = None

    @property
    def bidirectional(self) -> bool:
        """Whether the family can read right to left as well (task.bidirectional)."""
        return self.attends_both_ways or self.reverse is not None


# (model, token ids of a split as a 1-D array, device, context or None)
#   -> (summed nats, predicted tokens, the window used or None): see seqlab.families.common
Scoring = Callable[[Any, Any, Any, Any], tuple[float, int, Any]]


@dataclass(frozen=True)
class Family:
    """One model family's declaration (see the module docstring)."""

    name: str
    summary: str  # one line: what the model is, after whom
    settings: type[ModelSettings]
    score: Scoring
    build: Callable[[Any, int, int | None], Any] | None = None  # (settings, vocab, source vocab) -> model
    fit: Callable[[Config, TokenData, int], Any] | None = None  # (config, tokens, vocab) -> a counted or EM-fitted model
    save: Callable[[Any, Path], None] | None = None  # a fitted model into its run directory
    load: Callable[[Path], Any] | None = None  # ... and back
    batches: Callable[[Config, TokenData], BatchSource] | None = None  # stream-trained families
    reads_pairs: bool = False  # trained on (source, target) pairs: seq2seq
    # Lines as sequences (data.sequences = "lines"): boundary tokens put before each line so a
    # fixed-span model sees a whole context at every scored position, the longest row the model
    # places (None: any), and how a split's lines are scored: (model, lines, boundary, settings)
    # -> (summed nats, predicted tokens).
    line_padding: Callable[[Any], int] = lambda settings: 0
    line_limit: Callable[[Any], int | None] = lambda settings: None
    score_lines: Callable[[Any, list, int, Any], tuple[float, int]] = score_framed_lines
    size: Callable[[Any], int] | None = None  # stored numbers; None: the parameter count
    size_unit: str = "parameters"
    # A fitted family's size (in size_unit) from its settings and vocabulary alone, before fitting;
    # None when only fitting tells (an n-gram's counts). Built families: the meta model's parameters.
    planned_size: Callable[[Any, int], int] | None = None
    units: Callable[[Any, Tensor], dict[str, Tensor]] | None = None  # inspect: (model, ids (1, T)) -> (T, U) each
    # What `seqlab.inspect.trace` records inside the model: probe names of seqlab.inspect.PROBES
    # (attention, states, neurons, residual, router, trellis, backoff); the next-token distribution and
    # the surprisal are traced for every family. `seqlab inspect` shows the views these fill.
    traced: tuple[str, ...] = ()
    alignment: Callable[..., tuple[list[int], dict[str, Tensor]]] | None = None  # seq2seq attention maps
    context_option: bool = True  # `seqlab eval --context` applies (windowed scoring)
    exports_hf: bool = False  # `seqlab export-hf` writes it as a Hugging Face folder
    # A language model (next-token probabilities: sample, bits per character, inspect, compare);
    # False for the word-vector families (word2vec, GloVe), whose runs hold vectors to query.
    language_model: bool = True
    # What `seqlab eval` reports for a family that is not a language model: (model, tokenizer) -> dict.
    evaluation: Callable[[Any, Any], dict] | None = None
    shorthand: tuple[Shorthand, ...] = field(default_factory=tuple)
    hidden: HiddenStates | None = None  # task heads: see HiddenStates

    @property
    def trained(self) -> bool:
        """Trained by the Trainer (gradient steps), as opposed to fitted by counting or EM."""
        return self.fit is None

    def build_model(self, settings: ModelSettings, vocab_size: int, source_vocab_size: int | None = None) -> Any:
        if self.build is None:
            from seqlab.errors import ConfigError
            raise ConfigError(f"model.family = {self.name!r} is fitted to its data, not built: train it with "
                              f"seqlab train")
        return self.build(settings, vocab_size, source_vocab_size)


__all__ = ["Family", "HiddenStates", "Scoring", "Shorthand"]
