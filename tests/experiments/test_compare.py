"""seqlab compare end to end on a tiny corpus: every family through the same commands, one row each,
the figures equal to seqlab.evaluate's, and the reports written."""

import csv
import math

import pytest

import seqlab
from seqlab.cli import main
from seqlab.config import load_config

TEXT = "the cat sat on the mat. the dog sat on the log. " * 30


@pytest.fixture()
def corpus(tmp_path):
    path = tmp_path / "corpus.txt"
    path.write_text(TEXT, encoding="utf-8")
    return path


def test_compare_trains_each_family_and_reports(tmp_path, corpus, capsys):
    out = tmp_path / "cmp"
    args = ["compare", "shakespeare-char-ngram", "shakespeare-char-hmm", "shakespeare-char", "--out", str(out),
            f"--data.corpus={corpus}", "--model.n_states=3", "--model.em_iterations=2", "--train.max_steps=3",
            "--model.n_layer=1", "--model.d_model=16", "--model.n_head=2", "--model.block_size=16",
            "--train.eval_every=0", "--train.checkpoint_every=0", "--train.sample_tokens=0", "--no-progress",
            "--sample-tokens", "10", "--sample.prompt=the "]
    assert main(args) == 0
    printed = capsys.readouterr().out
    with open(out / "compare.csv", encoding="utf-8", newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert [r["family"] for r in rows] == ["ngram", "hmm", "transformer"]
    for row in rows:
        expected = seqlab.evaluate(out / row["config"])["bits_per_char"]
        assert float(row["val_bits_per_char"]) == pytest.approx(expected, rel=1e-5)
        assert int(row["size"]) > 0 and math.isfinite(float(row["train_seconds"]))
        assert f"{float(row['val_bits_per_char']):.4f}" in printed
    assert (out / "compare.png").read_bytes()[:4] == b"\x89PNG" and (out / "compare.md").stat().st_size > 0


def test_compare_refuses_seq2seq_configs_before_training(tmp_path, capsys):
    assert main(["compare", "shakespeare-char-ngram", "dates", "--out", str(tmp_path / "cmp")]) == 2
    assert "seq2seq" in capsys.readouterr().err
    assert not (tmp_path / "cmp").exists()  # nothing was trained


def test_the_ladder_in_shorthand_on_another_corpus(tmp_path, corpus):
    out = tmp_path / "ladder"
    args = ["compare", "--models", "ngram-3,hmm-4,gru-16,gpt-16", "--corpus", str(corpus), "--out", str(out),
            "--model.em_iterations=2", "--train.max_steps=3", "--model.n_layer=1", "--model.n_head=2",
            "--model.block_size=16", "--train.eval_every=0", "--train.checkpoint_every=0",
            "--train.sample_tokens=0", "--no-progress", "--sample-tokens", "5", "--sample.prompt=the "]
    assert main(args) == 0
    with open(out / "compare.csv", encoding="utf-8", newline="") as handle:
        rows = {r["config"]: r for r in csv.DictReader(handle)}
    assert list(rows) == ["ngram-3", "hmm-4", "gru-16", "gpt-16"]
    assert [r["family"] for r in rows.values()] == ["ngram", "hmm", "gru", "transformer"]
    # each size landed in its setting, and every run read the corpus given, not the presets' shakespeare
    saved = {name: load_config(out / name / "config.toml") for name in rows}
    assert saved["ngram-3"].model.order == 3 and saved["hmm-4"].model.n_states == 4
    assert saved["gru-16"].model.d_model == saved["gpt-16"].model.d_model == 16
    assert {c.data.corpus for c in saved.values()} == {str(corpus)}


@pytest.mark.parametrize("models, message", [
    ("ngram-5,cnn", "'cnn' is not a model name"),
    ("hmm-x", "'hmm-x' is not a model name"),
    ("lstm,lstm", "names a model twice"),
])
def test_bad_shorthand_fails_in_one_line_before_training(tmp_path, capsys, models, message):
    assert main(["compare", "--models", models, "--out", str(tmp_path / "cmp")]) == 2
    err = capsys.readouterr().err
    assert message in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "cmp").exists()


def test_compare_needs_something_to_compare(tmp_path, capsys):
    assert main(["compare", "--out", str(tmp_path / "cmp")]) == 2
    assert "at least one config" in capsys.readouterr().err


def test_a_mixture_of_experts_gets_an_active_parameter_column(tmp_path, corpus, capsys):
    """mixtral against its dense counterpart: total and active parameters side by side; the dense
    model's active parameters are all of them, the mixture's are k of E experts' plus the rest."""
    from seqlab.nn.moe import active_parameters

    out = tmp_path / "moe"
    args = ["compare", "mixtral", "mixtral-dense", "--out", str(out), f"--data.corpus={corpus}",
            "--train.max_steps=2", "--model.n_layer=1", "--model.d_model=16", "--model.n_head=2",
            "--model.n_kv_head=2", "--model.d_ff=24", "--model.block_size=16", "--train.eval_every=0",
            "--train.checkpoint_every=0", "--train.sample_tokens=0", "--train.compile=false",
            "--train.dtype=float32", "--no-progress", "--sample-tokens", "5", "--sample.prompt=the "]
    assert main(args) == 0
    assert "active parameters" in capsys.readouterr().out
    with open(out / "compare.csv", encoding="utf-8", newline="") as handle:
        rows = {r["config"]: r for r in csv.DictReader(handle)}
    moe, dense = rows["mixtral"], rows["mixtral-dense"]
    assert int(dense["active_parameters"]) == int(dense["size"])
    assert int(moe["active_parameters"]) < int(moe["size"])
    model, _ = seqlab.load(out / "mixtral")
    assert int(moe["active_parameters"]) == active_parameters(model)
