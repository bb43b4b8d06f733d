"""The family registry is the only place that knows what a family is: outside it and the config, no
code branches on a family's name or on a family's model class (DESIGN.md, "families")."""

import ast
import dataclasses
from pathlib import Path

import pytest

import seqlab
from seqlab import families
from seqlab.config import config_to_toml, load_config, preset_names
from seqlab.config.load import build_config
from seqlab.errors import ConfigError

PACKAGE = Path(seqlab.__file__).parent
ALLOWED = ("families", "config")  # the registry and the settings
# Comparisons with a family's name that are about something else, with the reason.
NOT_FAMILIES = {
    ("models/seq2seq_rnn.py", "cell == 'lstm'"),  # Seq2SeqRNN's recurrent cell (gru | lstm), not a family
    ("serve/views.py", "'hmm' in parts"),  # the trellis view a request asks for, shown when traced
    ("serve/views.py", "'ngram' in parts"),  # the backoff view a request asks for, shown when traced
}
MODEL_CLASSES = {"TransformerLM", "RNNLM", "NGramLM", "HMM", "MLPLM", "WaveNetLM", "EncoderDecoder", "Seq2SeqRNN",
                 "MambaLM"}


def _is_family(node: ast.AST) -> bool:
    """`x.family` or a name `family`."""
    return (isinstance(node, ast.Attribute) and node.attr == "family") or (isinstance(node, ast.Name)
                                                                             and node.id == "family")


def _settings_classes(tree: ast.AST) -> set[ast.AST]:
    """The nodes inside classes deriving from ModelSettings: settings, which the config layer may check."""
    inside = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ClassDef) and any(ast.unparse(b).endswith("ModelSettings") for b in node.bases):
            inside |= set(ast.walk(node))
    return inside


def family_branches(tree: ast.AST) -> list[tuple[int, str]]:
    """Where `tree` tests a family's name or a model class: comparisons and matches on `.family`,
    string comparisons with a family's name, isinstance / type-is tests on a family's model class.
    A settings class's own checks are config, and are skipped."""
    names = set(families.FAMILIES)
    settings = _settings_classes(tree)
    found = []
    for node in ast.walk(tree):
        if node in settings:
            continue
        if isinstance(node, ast.Compare):
            sides = [node.left, *node.comparators]
            literal = any(isinstance(s, ast.Constant) and s.value in names for s in sides) or any(
                isinstance(s, (ast.Tuple, ast.List, ast.Set)) and any(isinstance(e, ast.Constant) and e.value in names
                                                                     for e in s.elts) for s in sides)
            classes = any(isinstance(s, ast.Name) and s.id in MODEL_CLASSES for s in sides)
            if any(_is_family(s) for s in sides) or literal or classes:
                found.append((node.lineno, ast.unparse(node)))
        elif isinstance(node, ast.Match) and _is_family(node.subject):
            found.append((node.lineno, f"match {ast.unparse(node.subject)}"))
        elif (isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == "isinstance"
              and any(isinstance(n, ast.Name) and n.id in MODEL_CLASSES for n in ast.walk(node.args[1]))):
            found.append((node.lineno, ast.unparse(node)))
    return found


def test_the_detector_finds_each_kind_of_branch():
    code = """
if config.model.family == "ngram": pass
if family in ("rnn", "gru"): pass
if name != "wavenet": pass
match settings.family:
    case "lstm": pass
if isinstance(model, (NGramLM, HMM)): pass
if type(model) is TransformerLM: pass
"""
    assert len(family_branches(ast.parse(code))) == 6


def test_no_code_outside_the_registry_and_the_config_branches_on_a_family():
    found = []
    for path in sorted(PACKAGE.rglob("*.py")):
        relative = path.relative_to(PACKAGE)
        if relative.parts[0] in ALLOWED:
            continue
        found += [f"{relative}:{line}: {text}" for line, text in family_branches(ast.parse(path.read_text("utf-8")))
                  if (str(relative), text) not in NOT_FAMILIES]
    assert found == []


def test_every_family_declares_its_settings_and_how_it_is_made():
    for name, family in families.FAMILIES.items():
        assert family.name == name and family.summary
        settings = family.settings(family=name)
        assert settings.family == name and dataclasses.is_dataclass(settings)
        assert (family.build is None) != (family.fit is None)  # trained or fitted, not both
        assert family.fit is None or (family.save is not None and family.load is not None)
        assert family.build is None or family.reads_pairs or family.batches is not None


def test_every_shorthand_starts_from_a_preset_of_its_family():
    for name, (family, shorthand) in families.shorthands().items():
        config = load_config(shorthand.preset, [f"model.family={family.name}"])
        assert shorthand.size in {f.name for f in dataclasses.fields(config.model)}, name


@pytest.mark.parametrize("name", preset_names())
def test_every_preset_loads_and_writes_only_its_familys_settings(name):
    config = load_config(name)
    keys = {f.name for f in dataclasses.fields(families.get(config.model.family).settings)}
    text = config_to_toml(config)
    model_lines = text.split("[model]\n")[1].split("\n\n")[0].splitlines()
    assert {line.split(" = ")[0] for line in model_lines} == keys


def test_a_run_written_with_every_familys_keys_still_loads():
    # Runs written before settings were per family list all 29 model keys with their defaults.
    old = {"model": {"family": "lstm", "n_layer": 2, "d_model": 64, "n_head": 4, "order": 5, "n_states": 64,
                     "cell": "gru", "nonlinearity": "tanh"}}
    config = build_config(old, "config.toml", drop_foreign=True)
    assert config.model.family == "lstm" and config.model.n_layer == 2
    with pytest.raises(ConfigError, match="model.n_head is a setting of model.family = transformer"):
        build_config(old, "config.toml")
    # d_embed became an LSTM setting later: there it is the MLP's, and the LSTM's embedding stays d_model wide.
    config = build_config({"model": {**old["model"], "d_embed": 10}}, "config.toml", drop_foreign=True)
    assert config.model.embed_width == 64
    fresh = build_config({"model": {"family": "lstm", "d_model": 64, "d_embed": 10, "tie_embeddings": False}},
                         "config.toml", drop_foreign=True)
    assert fresh.model.embed_width == 10


def test_an_unknown_family_lists_the_families():
    with pytest.raises(ConfigError, match="model.family = 'wavnet' is not allowed.*did you mean 'wavenet'"):
        load_config(None, ["model.family=wavnet"])


def test_data_keys_of_the_other_kind_of_family_are_errors(capsys):
    from seqlab.cli import main

    assert main(["train", "shakespeare-char", "--data.task=reverse"]) == 2
    assert "the seq2seq families (encoder_decoder, rnn_seq2seq) read" in capsys.readouterr().err
    assert main(["train", "vaswani", "--data.sequences=lines"]) == 2
    assert "data.sequences = 'lines' is for language models" in capsys.readouterr().err
