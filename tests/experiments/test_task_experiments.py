"""`seqlab experiment sentiment | tagging | mnist1d`: every recipe is a valid config, the tables set
our figures beside the published ones, and a quick version (a few steps) of each runs end to end on
the real data: pre-training, fine-tuning with LoRA, cross-validation folds, the HMM rows."""

from __future__ import annotations

import csv
import dataclasses
import io

import numpy as np
import pytest

from seqlab import plots
from seqlab.cli import main
from seqlab.config.load import build_config
from seqlab.data import paths
from seqlab.experiments import stacking, tasks
from seqlab.experiments.tasks import EXPERIMENTS, TaskResult
from seqlab.nbsvm import NBSVM
from seqlab.tasks.data import Labelled, TaskExamples

REAL_DIRS = [folder for _, folder in paths.data_search_dirs()]


@pytest.fixture
def needs(monkeypatch):
    """Point $SEQLAB_DATA at the real data folder that holds every one of `folders`, or skip."""
    def find(*folders: str) -> None:
        for root in REAL_DIRS:
            if all((root / f).is_dir() for f in folders):
                monkeypatch.setenv("SEQLAB_DATA", str(root))
                return
        pytest.skip(f"{', '.join(folders)} are not all in one of the data folders ({', '.join(map(str, REAL_DIRS))})")
    return find


@pytest.mark.parametrize("name", sorted(EXPERIMENTS))
def test_every_recipe_is_a_valid_config(name):
    experiment = EXPERIMENTS[name]
    columns = dict(experiment.columns)
    pretrains = {p.name for p in experiment.pretrains}
    for p in experiment.pretrains:
        assert build_config(p.config).task.kind == "lm"
    for recipe in experiment.recipes:
        assert recipe.column in columns
        assert recipe.row.count(",") == 0  # --rows is comma-separated
        if recipe.hmm:
            continue
        table = recipe.config
        if recipe.nbsvm == "alone":
            assert build_config(table).task.kind == "classify"
            continue
        if recipe.pretrain:
            assert recipe.pretrain in pretrains
            table = {**table, "train": {**table["train"], "init_from": "runs/base"}}
        config = build_config(table)
        assert config.task.kind in ("classify", "tag")


def results(folds=(0.8, 0.78, 0.82)):
    return [TaskResult("sentiment", "GRU", "MR", "accuracy", sum(folds) / len(folds), folds, 12.5, 600, 1000, "r/a"),
            TaskResult("sentiment", "BiGRU", "MR", "accuracy", 0.79, (0.79,), 20.0, 600, 2000, "r/b")]


def test_the_table_puts_ours_beside_the_published_figures(tmp_path):
    text = tasks.render_table("sentiment", results())
    assert "80.00 ± 2.00" in text and "79.00" in text  # the folds' mean and sd, in percent
    assert "NBSVM-bi (Wang & Manning 2012) *" in text and "79.40" in text and "81.50" in text
    assert "standard deviation over 3 folds" in text
    markdown = tasks.to_markdown("sentiment", results())
    assert markdown.count("\n|---") == 1 and "Wang & Manning 2012) \\* | 79.40" in markdown and "| GRU | 80.00 ± 2.00 | 12 |" in markdown
    rows = list(csv.DictReader(io.StringIO(tasks.to_csv(results()))))
    assert rows[0]["folds"] == "0.800000 0.780000 0.820000" and float(rows[1]["value"]) == 0.79
    assert tasks.from_csv(tasks.to_csv(results())) == [
        dataclasses.replace(r, folds=tuple(round(v, 6) for v in r.folds)) for r in results()]
    fig = tasks.figure("sentiment", results())
    assert plots.figure_problems(fig) == []
    paths_ = tasks.write_reports("sentiment", results(), tmp_path)
    assert [p.name for p in paths_] == ["sentiment.md", "sentiment.csv", "sentiment.png"]
    assert all(p.is_file() for p in paths_)


def one_line_error(capsys, code):
    err = capsys.readouterr().err
    assert code == 2 and "Traceback" not in err and len(err.strip().splitlines()) == 1, err
    return err


def test_bad_requests_are_one_line_errors(tmp_path, capsys):
    out = ["--out", str(tmp_path / "x")]
    assert "no row 'CNN'" in one_line_error(capsys, main(["experiment", "sentiment", "--rows", "CNN", *out]))
    assert "--folds 11" in one_line_error(capsys, main(["experiment", "sentiment", "--folds", "11", *out]))
    assert "no column 'MR'" in one_line_error(capsys, main(["experiment", "tagging", "--columns", "MR", *out]))
    assert "--steps 0" in one_line_error(capsys, main(["experiment", "mnist1d", "--steps", "0", *out]))
    assert not (tmp_path / "x").exists()


def test_quick_tagging_runs_the_hmm_on_every_set_and_a_crf_tagger(needs, tmp_path, capsys, one_thread, monkeypatch):
    needs("conll2000", "ud-english-ewt")
    monkeypatch.setenv("SEQLAB_CACHE", str(tmp_path / "cache"))
    out = tmp_path / "tagging"
    assert main(["experiment", "tagging", "--rows", "bigram HMM", "--out", str(out), "--no-progress"]) == 0
    text = capsys.readouterr().out
    assert "bigram HMM" in text and "94.30" in text
    rows = list(csv.DictReader(io.StringIO((out / "tagging.csv").read_text())))
    assert {r["column"] for r in rows} == set(dict(EXPERIMENTS["tagging"].columns))
    hmm = {r["column"]: float(r["value"]) for r in rows}
    # Counted, not trained: the HMM is already a real tagger (POS well above the majority tag's 14%).
    assert hmm["CoNLL-2000 POS"] > 0.9 and hmm["CoNLL-2000 chunks"] > 0.8 and hmm["UD EWT UPOS"] > 0.8
    assert main(["experiment", "tagging", "--steps", "3", "--rows", "BiLSTM-CRF", "--columns", "UD EWT UPOS",
                 "--out", str(out), "--no-progress"]) == 0
    assert "BiLSTM-CRF" in capsys.readouterr().out
    assert (out / "ud-ewt-upos-bilstm-crf" / "labels.json").is_file()


def test_quick_sentiment_pretrains_once_and_cross_validates_lora(needs, tmp_path, capsys, one_thread, monkeypatch):
    needs("sentence-polarity")
    monkeypatch.setenv("SEQLAB_CACHE", str(tmp_path / "cache"))
    # Pre-training reads a small English text here in place of Brown's 1.16M words (the path is the same).
    text = tmp_path / "english.txt"
    text.write_text("the film is good . the film is bad . a good film and a bad one .\n" * 200, encoding="utf-8")
    experiment = EXPERIMENTS["sentiment"]
    small = tasks.Pretrain("brown-gpt", tasks._with(experiment.pretrains[0].config, data={"corpus": str(text)}))
    monkeypatch.setitem(EXPERIMENTS, "sentiment", dataclasses.replace(experiment, pretrains=(small,)))
    out = tmp_path / "sentiment"
    lora = "GPT-style Transformer from a Brown LM (LoRA r8 on the embedding)"
    code = main(["experiment", "sentiment", "--steps", "2", "--folds", "2", "--rows", lora, "--out", str(out),
                 "--no-progress"])
    assert code == 0
    row = list(csv.DictReader(io.StringIO((out / "sentiment.csv").read_text())))[0]
    assert len(row["folds"].split()) == 2
    run = out / "mr-gpt-style-transformer-from-a-brown-lm-lora-r8-on-the-embedding"
    assert (run / "fold-1" / "adapters.safetensors").is_file() and (run / "fold-2" / "adapters.safetensors").is_file()
    assert (out / "pretrain-brown-gpt" / "model.safetensors").is_file()
    assert "± " in capsys.readouterr().out
    # --resume reuses the finished runs (a fine-tuned run's saved config holds its base's model) and
    # their saved scores: nothing is trained again.
    stamp = (run / "fold-1" / "model.safetensors").stat().st_mtime_ns
    code = main(["experiment", "sentiment", "--steps", "2", "--folds", "2", "--rows", lora, "--out", str(out),
                 "--no-progress", "--resume"])
    assert code == 0 and (run / "fold-1" / "model.safetensors").stat().st_mtime_ns == stamp
    again = list(csv.DictReader(io.StringIO((out / "sentiment.csv").read_text())))[0]
    assert again["folds"] == row["folds"]


def test_quick_sentiment_fits_nbsvm_and_stacks_it_with_a_gru(needs, tmp_path, capsys, one_thread, monkeypatch):
    needs("sentence-polarity")
    monkeypatch.setenv("SEQLAB_CACHE", str(tmp_path / "cache"))
    monkeypatch.setattr(stacking, "GRID", ((2, 1.0),))  # one candidate: the choice itself is tested below
    out = tmp_path / "sentiment"
    rows = "NBSVM (n-grams 1..2 or 1..3),GRU stacked with NBSVM"
    assert main(["experiment", "sentiment", "--steps", "2", "--folds", "0", "--rows", rows, "--out", str(out),
                 "--no-progress"]) == 0
    found = {r["row"]: r for r in csv.DictReader(io.StringIO((out / "sentiment.csv").read_text()))}
    # NBSVM on MR's seeded split is a real classifier, near its published 79.4 on the folds.
    assert float(found["NBSVM (n-grams 1..2 or 1..3)"]["value"]) > 0.75
    assert int(found["NBSVM (n-grams 1..2 or 1..3)"]["steps"]) == 0
    # A GRU of 2 steps knows nothing yet: stacking leans on NBSVM and keeps most of its accuracy.
    assert float(found["GRU stacked with NBSVM"]["value"]) > 0.7
    assert NBSVM.load(out / "mr-nbsvm-n-grams-1-2-or-1-3" / "fold-0" / "nbsvm").labels == ("neg", "pos")
    assert NBSVM.load(out / "mr-gru-stacked-with-nbsvm" / "fold-0" / "nbsvm").ngram == 2
    assert (out / "mr-gru-stacked-with-nbsvm" / "fold-0" / "model.safetensors").is_file()


def test_stacking_takes_the_weight_most_accurate_on_validation(monkeypatch):
    """z = neural log-odds + a · NBSVM value, with a chosen on val; here the neural run is right on
    the val texts that NBSVM gets wrong only when a is small, and a = 4 is the first to be best."""
    val = Labelled(["v1", "v2", "v3", "v4"], ["pos", "neg", "pos", "neg"])
    test = Labelled(["t1", "t2"], ["pos", "neg"])
    examples = TaskExamples(val, val, test, ("neg", "pos"), False)
    neural = {"v1": 3.0, "v2": -3.0, "v3": -2.0, "v4": 1.5, "t1": -1.0, "t2": 0.5}
    nbsvm_values = {"v1": -0.5, "v2": 0.5, "v3": 1.0, "v4": -1.0, "t1": 1.0, "t2": -1.0}

    class Fixed:
        def decision(self, texts):
            return np.array([nbsvm_values[t] for t in texts])

    monkeypatch.setattr(stacking, "neural_log_odds", lambda run_dir, *splits: [np.array([neural[t] for t in split.inputs]) for split in splits])
    accuracy, weight = stacking.stack("run", examples, Fixed(), Fixed())
    # a = 0, 1, 2: v3 or v4 wrong; a = 4: v1 + 4 · (−0.5) = 1 > 0, v2 −1 < 0, v3 2 > 0, v4 −2.5 < 0, all right.
    assert weight == 4.0
    assert accuracy == 1.0  # t1: −1 + 4 = 3 > 0 (pos), t2: 0.5 − 4 < 0 (neg)
