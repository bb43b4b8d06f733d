"""The commands that show what exists: `presets` (a table, and `show NAME`), `train --dry-run`,
`runs`, `info`, `--version`, help with defaults, global flags anywhere, `--prompt-file -`,
`sample -i`, and `compare`'s table; all on a few KB of generated text."""

import argparse
import dataclasses
import io
import json
import re
import shutil

import pytest
import torch

import seqlab
from seqlab import families
from seqlab.cli import build_parser, main
from seqlab.config import load_config, preset_names
from seqlab.config.presets import preset_info
from seqlab.errors import ConfigError, SeqlabError
from seqlab.families import build_model
from seqlab.training.metrics import MetricsLog

TINY = """
[data]
corpus = "{corpus}"
val_fraction = 0.2

[tokenizer]
kind = "char"

[model]
{model}

[train]
batch_size = 4
max_steps = 12
lr = 3e-3
warmup_steps = 2
eval_every = 6
eval_steps = 2
sample_tokens = 0
device = "cpu"

[sample]
max_new_tokens = 12
"""


@pytest.fixture
def workspace(tmp_path, monkeypatch, word_corpus):
    monkeypatch.setenv("SEQLAB_CACHE", str(tmp_path / "cache"))
    monkeypatch.chdir(tmp_path)
    corpus = word_corpus(tmp_path / "corpus.txt")
    config = tmp_path / "tiny.toml"
    config.write_text(TINY.format(corpus=corpus, model=GPT))
    return tmp_path, config


GPT = "n_layer = 1\nn_head = 2\nd_model = 16\nblock_size = 16"


def fitted_config(tmp, model: str):
    """The tiny config with another family's [model] table."""
    path = tmp / "fitted.toml"
    path.write_text(TINY.format(corpus=tmp / "corpus.txt", model=model))
    return path


@pytest.fixture(scope="module")
def trained(tmp_path_factory, word_corpus):
    """A tiny GPT trained once for the tests that only read a run."""
    tmp = tmp_path_factory.mktemp("trained")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("SEQLAB_CACHE", str(tmp / "cache"))
        config = tmp / "tiny.toml"
        config.write_text(TINY.format(corpus=word_corpus(tmp / "corpus.txt"), model=GPT))
        run = tmp / "runs" / "tiny"
        assert main(["train", str(config), "--out", str(run), "--no-progress"]) == 0
    return run


def run_cli(capsys, *argv):
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


def one_line_error(code, err):
    assert code == 2
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("seqlab: error: "), err
    return lines[0]


# ---- presets ---------------------------------------------------------------------------------------


def _rows(out: str) -> dict[str, str]:
    """A printed table's rows by their first cell: the lines after the header and its rule, up to a blank."""
    lines = out.splitlines()
    body = lines[2:lines.index("", 2)] if "" in lines[2:] else lines[2:]
    return {line.split()[0]: line for line in body}


def test_presets_table_has_every_preset_with_family_size_steps_time_and_description(capsys):
    code, out, _ = run_cli(capsys, "presets")
    assert code == 0
    rows = _rows(out)
    assert set(preset_names()) <= set(rows)
    for name in preset_names():
        config, info = load_config(name), preset_info(name)
        assert info is not None, f"preset {name} has no [preset] table (description, vocab_size, seconds, timing)"
        family = families.get(config.model.family)
        line = rows[name]
        assert f" {family.name} " in line and info.description in line
        assert info.time in line and info.time.startswith("~") == (info.timing == "estimated")
        if family.trained:
            # the count on the meta device equals a real model's, built with the recorded vocabulary
            torch.manual_seed(0)
            source = info.source_vocab_size or None
            model = build_model(config.model, info.vocab_size, source_vocab_size=source)
            assert f" {sum(p.numel() for p in model.parameters()):,} " in line
            assert f" {config.train.max_steps:,} " in line
        else:
            assert " fitted " in line


@pytest.mark.parametrize("name", ["shakespeare-char", "names-mlp", "dates", "t5", "shakespeare-char-hmm", "induction"])
def test_a_presets_recorded_vocabulary_is_its_tokenizers_on_its_data(name):
    from seqlab import api, seq2seq
    from seqlab.data import load_corpus
    from seqlab.errors import DataError

    config, info = load_config(name), preset_info(name)
    try:
        if families.get(config.model.family).reads_pairs:
            train, val = seq2seq.task_pairs(config)
            tokenizer = seq2seq.fit_tokenizer(config, train + val)
        else:
            tokenizer = api.fit_tokenizer(config, load_corpus(config.data.corpus))
    except DataError as exc:
        pytest.skip(f"the data of {name} is not on this machine: {exc}")
    assert tokenizer.vocab_size == info.vocab_size


def test_an_hmm_presets_size_is_its_free_parameters(capsys):
    info = preset_info("shakespeare-char-hmm")
    K, M = load_config("shakespeare-char-hmm").model.n_states, info.vocab_size
    _, out, _ = run_cli(capsys, "presets")
    assert f"{(K - 1) + K * (K - 1) + K * (M - 1):,} (free parameters)" in _rows(out)["shakespeare-char-hmm"]


def test_presets_show_prints_the_resolved_config_that_loads_back(tmp_path, capsys):
    code, out, _ = run_cli(capsys, "presets", "show", "shakespeare-char")
    assert code == 0 and out.startswith("# preset shakespeare-char: ")
    assert "lr_decay_steps = 0" in out and "top_p = 1.0" in out  # defaults the preset file leaves out
    path = tmp_path / "shown.toml"
    path.write_text(out, encoding="utf-8")
    assert load_config(path) == load_config("shakespeare-char")
    assert "did you mean 'shakespeare-char'" in one_line_error(*run_cli(capsys, "presets", "show", "shakespear-char")[::2])
    assert "show NAME" in one_line_error(*run_cli(capsys, "presets", "show")[::2])


def test_a_preset_table_is_checked_and_configures_nothing(tmp_path):
    base = "[model]\nn_layer = 1\n"
    good = tmp_path / "good.toml"
    good.write_text('[preset]\ndescription = "mine"\nvocab_size = 5\nseconds = 1\ntiming = "measured"\n\n' + base)
    assert load_config(good) == load_config(None, ["model.n_layer=1"])
    for table, message in [('descriptio = "x"', "unknown key preset.descriptio"),
                           ('description = "x"\nvocab_size = 5\nseconds = 1\ntiming = "guessed"', "preset.timing"),
                           ('description = "x"', "lacks vocab_size, seconds, timing")]:
        bad = tmp_path / "bad.toml"
        bad.write_text(f"[preset]\n{table}\n\n{base}")
        with pytest.raises(ConfigError, match=message):
            load_config(bad)


# ---- train --dry-run -------------------------------------------------------------------------------


def test_dry_run_reports_config_parameters_memory_and_time_and_creates_nothing(workspace, capsys):
    tmp, config = workspace
    run = tmp / "runs" / "dry"
    code, out, err = run_cli(capsys, "train", config, "--out", run, "--dry-run", "--model.d_model=24")
    assert code == 0, err
    assert not run.exists() and not run.parent.exists()
    assert "d_model = 24" in out and "eval_steps = 2" in out  # the resolved config, overrides applied
    torch.manual_seed(0)
    vocab = seqlab.api.fit_tokenizer(load_config(config), (tmp / "corpus.txt").read_text()).vocab_size
    model = build_model(load_config(config, ["model.d_model=24"]).model, vocab)
    assert f"parameters: {sum(p.numel() for p in model.parameters()):,} (vocabulary {vocab})" in out
    assert re.search(r"memory \(estimate.*weights.*gradients.*AdamW moments.*activations", out)
    assert re.search(r"time \(estimate from \d+ eager steps timed here: [\d.]+ s/step\): ~", out)
    assert "was not created" in out


def test_dry_run_of_a_fitted_family_and_of_an_existing_run(workspace, trained, capsys):
    tmp, config = workspace
    code, out, err = run_cli(capsys, "train", fitted_config(tmp, 'family = "ngram"\norder = 3'), "--out",
                             tmp / "ngram", "--dry-run")
    assert code == 0, err
    assert "n-grams: counted from the data when fitted" in out and not (tmp / "ngram").exists()
    # an existing run is refused as training would refuse it, without touching it
    before = sorted(p.name for p in trained.iterdir())
    assert "already holds a run" in one_line_error(*run_cli(capsys, "train", config, "--out", trained,
                                                            "--dry-run")[::2])
    assert sorted(p.name for p in trained.iterdir()) == before


# ---- runs ------------------------------------------------------------------------------------------


def test_runs_lists_run_directories_and_skips_other_folders(workspace, trained, capsys):
    tmp, config = workspace
    shutil.copytree(trained, tmp / "runs" / "tiny")
    fitted = tmp / "runs" / "experiment" / "ngram"
    assert main(["train", str(fitted_config(tmp, 'family = "ngram"\norder = 3')), "--out", str(fitted)]) == 0
    (tmp / "runs" / "notes").mkdir()
    (tmp / "runs" / "notes" / "todo.txt").write_text("not a run")
    capsys.readouterr()
    for argv in (["runs"], ["runs", "runs"]):  # runs/ is the default
        code, out, _ = run_cli(capsys, *argv)
        assert code == 0
        rows = _rows(out)
        assert set(rows) == {"tiny", "experiment/ngram"}
        last = MetricsLog(trained / "metrics.csv").last("val")
        assert re.search(rf"transformer\s+12/12\s+{float(last['bits_per_char']):.4f}\s+estimate, 2 batches", rows["tiny"])
        assert re.search(r"ngram\s+fitted\s+[\d.]+\s+whole split", rows["experiment/ngram"])
        assert re.search(r"\d{4}-\d\d-\d\d \d\d:\d\d$", rows["tiny"])
    assert "nowhere does not exist" in one_line_error(*run_cli(capsys, "runs", "nowhere")[::2])
    assert "`seqlab runs runs` lists them" in one_line_error(*run_cli(capsys, "info", "runs")[::2])


# ---- info ------------------------------------------------------------------------------------------


def test_info_shows_the_familys_settings_only_and_labels_estimates(trained, capsys):
    code, out, _ = run_cli(capsys, "info", trained, "--json")
    info = json.loads(out)
    settings = families.get("transformer").settings
    assert list(info["model"]) == [f.name for f in dataclasses.fields(settings)]
    assert not {"cell", "attention", "order", "n_states"} & set(info["model"])
    assert info["val_measured_on"] == "estimate, 2 batches" and info["max_steps"] == 12
    _, text, _ = run_cli(capsys, "info", trained)
    assert re.search(r"val_loss \(estimate, 2 batches\)\s+\d\.\d{4}", text)
    assert "`seqlab eval RUN` scores the whole split" in text


def test_info_of_a_fitted_run_says_its_figure_is_the_whole_splits(workspace, capsys):
    tmp, config = workspace
    hmm = fitted_config(tmp, 'family = "hmm"\nn_states = 3\nem_iterations = 2')
    assert main(["train", str(hmm), "--out", str(tmp / "hmm")]) == 0
    capsys.readouterr()
    info = json.loads(run_cli(capsys, "info", tmp / "hmm", "--json")[1])
    assert info["val_measured_on"] == "whole split" and "max_steps" not in info and "step" not in info
    assert list(info["model"]) == [f.name for f in dataclasses.fields(families.get("hmm").settings)]


# ---- version, help, global flags ---------------------------------------------------------------


def test_version(capsys):
    for argv in (["--version"], ["train", "--version"]):
        with pytest.raises(SystemExit) as exit_:
            main(argv)
        assert exit_.value.code == 0 and capsys.readouterr().out.strip() == f"seqlab {seqlab.__version__}"


def _parsers(parser, name="seqlab"):
    yield name, parser
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for sub, child in action.choices.items():
                yield from _parsers(child, f"{name} {sub}")


def test_every_option_is_described_and_help_shows_defaults(capsys):
    for name, parser in _parsers(build_parser()):
        for action in parser._actions:
            if not isinstance(action, (argparse._HelpAction, argparse._SubParsersAction)):
                assert action.help, f"{name} {action.option_strings or action.dest} has no help"
    with pytest.raises(SystemExit):
        main(["experiment", "shannon", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert "(default: 300)" in text and "(default: shakespeare)" in text
    with pytest.raises(SystemExit):
        main(["eval", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert "(default: cpu)" in text and "(default: None)" not in text and "(default: False)" not in text


def test_global_flags_are_accepted_after_the_command(trained, capsys):
    code, out, err = run_cli(capsys, "sample", trained, "--max-new-tokens", "5", "-q", "--seed", "1")
    assert code == 0 and out.strip()
    assert "does not exist" in one_line_error(*run_cli(capsys, "info", trained.parent / "missing", "--quiet")[::2])
    with pytest.raises(SeqlabError):  # --debug after the command: the traceback, not one line
        main(["info", str(trained.parent / "missing"), "--debug"])


# ---- sampling from standard input ----------------------------------------------------------------


def test_prompt_file_dash_reads_standard_input(trained, capsys, monkeypatch):
    monkeypatch.setattr("sys.stdin", io.StringIO("To be"))
    code, from_stdin, _ = run_cli(capsys, "sample", trained, "--prompt-file", "-", "--temperature", "0")
    code2, given, _ = run_cli(capsys, "sample", trained, "--prompt", "To be", "--temperature", "0")
    assert code == code2 == 0 and from_stdin == given and given.startswith("To be")


def test_interactive_sampling_answers_each_line_until_an_empty_one(trained, capsys, monkeypatch):
    monkeypatch.setattr("sys.stdin", io.StringIO("To be\nthe\n\nnever read\n"))
    code, out, _ = run_cli(capsys, "sample", trained, "-i", "--temperature", "0", "--max-new-tokens", "8")
    assert code == 0
    expected = [run_cli(capsys, "sample", trained, "--prompt", p, "--temperature", "0", "--max-new-tokens", "8")[1]
                for p in ("To be", "the")]
    assert out == "".join(expected) and "never read" not in out
    monkeypatch.setattr("sys.stdin", io.StringIO("the"))  # the end of the input, without a newline
    code, out, _ = run_cli(capsys, "sample", trained, "-i", "--temperature", "0", "--max-new-tokens", "8")
    assert code == 0 and out == expected[1]
    assert "not allowed with" in one_line_error(*run_cli(capsys, "sample", trained, "-i", "--prompt", "x")[::2])


# ---- compare and the seq2seq hint -----------------------------------------------------------------


def test_compare_separates_parameters_from_counts_and_samples_after_one_prompt(workspace, capsys):
    tmp, config = workspace
    code, out, err = run_cli(capsys, "compare", "--models", "ngram-3,gpt-16", "--corpus", tmp / "corpus.txt",
                             "--out", tmp / "cmp", "--model.n_layer=1", "--model.n_head=2", "--model.block_size=16",
                             "--train.max_steps=3", "--train.sample_tokens=0", "--no-progress", "--sample-tokens", "6",
                             "--prompt", "The ")
    assert code == 0, err
    lines = out.splitlines()
    assert lines[0].startswith(f"corpus {tmp / 'corpus.txt'}: ") and out.count(str(tmp / "corpus.txt")) == 1
    header = lines[2].split()
    assert header[:4] == ["config", "family", "parameters", "n-grams"]
    rows = {line.split()[0]: line for line in lines[4:6]}
    assert re.match(r"ngram-3 +ngram +- +[\d,]+ ", rows["ngram-3"])
    assert re.match(r"gpt-16 +transformer +[\d,]+ +- ", rows["gpt-16"])
    for line in rows.values():  # the sample column is left-aligned and follows the same prompt
        assert line[lines[2].index("sample after 'The '"):].startswith("The ")
    assert err.count("corpus 'corpus.txt': ") == 1  # the corpus log line once, not at each train and eval


def test_a_seq2seq_runs_closing_hint_is_translate(workspace, capsys):
    tmp, _ = workspace
    tiny = ["--model.family=encoder_decoder", "--data.task=copy", "--data.task_examples=200", "--data.task_max_len=4",
            "--model.n_layer=1", "--model.n_head=2", "--model.d_model=16", "--model.block_size=8",
            "--train.max_steps=2", "--train.batch_size=8", "--train.sample_tokens=0", "--train.device=cpu"]
    code, out, err = run_cli(capsys, "train", "shakespeare-char", "--out", tmp / "s2s", "--no-progress", *tiny)
    assert code == 0, err
    assert f"next: seqlab translate {tmp / 's2s'} " in out and "seqlab sample" not in out
