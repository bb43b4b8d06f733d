"""The parentheses experiment end to end on a tiny budget, through the CLI: one run per model, and
reports (CSV, Markdown, PNG) with finite numbers that agree with each other."""

from __future__ import annotations

import contextlib
import csv
import io
import json
import math

import pytest
import torch

from seqlab.cli import main
from seqlab.experiments.parens import WIDTHS, ParensSetup, build_classifier

SEED = 5
MODELS = ("rnn", "lstm", "transformer")


@pytest.fixture(scope="module")
def experiment(tmp_path_factory):
    """The experiment run once through the CLI: (out folder, printed text)."""
    out = tmp_path_factory.mktemp("parens") / "out"
    stdout = io.StringIO()  # capsys is function-scoped: redirect by hand
    with contextlib.redirect_stdout(stdout):
        code = main(["experiment", "parens", "--models", ",".join(MODELS), "--steps", "4", "--seed", str(SEED),
                     "--seeds", "2", "--train-size", "200", "--test-size", "40",
                     "--out", str(out), "--no-progress"])
    assert code == 0
    return out, stdout.getvalue()


def test_reports_are_written_with_finite_numbers(experiment):
    out, printed = experiment
    for name in ("parens.md", "parens.csv", "parens.png"):
        assert (out / name).stat().st_size > 0
        assert str(out / name) in printed
    with open(out / "parens.csv", encoding="utf-8", newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert [(r["model"], int(r["seed"])) for r in rows] == [(m, s) for s in (SEED, SEED + 1) for m in MODELS]
    accuracy_columns = [c for c in rows[0] if c.startswith("acc_")]
    assert accuracy_columns == ["acc_2_60", "acc_62_100", "acc_102_160"]
    for row in rows:
        assert int(row["steps"]) == 4
        for column in accuracy_columns:
            assert 0.0 <= float(row[column]) <= 1.0 and math.isfinite(float(row[column]))
    markdown = (out / "parens.md").read_text(encoding="utf-8")
    for model in MODELS:  # the table shows each model's mean ± sd over the two seeds
        values = [float(r["acc_102_160"]) for r in rows if r["model"] == model]
        mean, sd = sum(values) / 2, abs(values[0] - values[1]) / 2 ** 0.5
        assert f"{mean:.3f} ± {sd:.3f}" in markdown


def test_each_model_has_a_run_with_accuracy_and_loss_curves(experiment):
    out, _ = experiment
    for name, seed in ((m, s) for m in MODELS for s in (SEED, SEED + 1)):
        with open(out / name / f"seed-{seed}" / "metrics.csv", encoding="utf-8", newline="") as handle:
            rows = list(csv.DictReader(handle))
        curve = [r for r in rows if r["split"] == "val"]  # the trainer's accuracy at each evaluation
        assert [int(r["step"]) for r in curve][0] == 0 and int(curve[-1]["step"]) == 4
        assert all(0.0 <= float(r["accuracy"]) <= 1.0 for r in curve)
        losses = [float(r["loss"]) for r in rows if r["split"] == "train"]
        assert losses and all(math.isfinite(v) for v in losses)


def test_models_have_similar_parameter_counts():
    counts = {name: sum(p.numel() for p in build_classifier(name, ParensSetup()).parameters())
              for name in (*WIDTHS, "transformer")}
    assert max(counts.values()) < 1.4 * min(counts.values()), counts


def test_models_start_from_the_seed():
    setup = ParensSetup(seed=SEED)
    first, second = build_classifier("gated", setup), build_classifier("gated", setup)
    for a, b in zip(first.parameters(), second.parameters()):
        torch.testing.assert_close(a, b)


def test_unknown_model_is_a_user_error(tmp_path, capsys):
    assert main(["experiment", "parens", "--models", "rnn,cnn", "--steps", "2", "--out", str(tmp_path)]) == 2
    assert "unknown model 'cnn'" in capsys.readouterr().err


def test_training_regime_comes_from_the_command_line(tmp_path, monkeypatch):
    seen = {}

    def fake_run(models, *, out, setup, progress, resume):
        seen["setup"] = setup
        return []

    monkeypatch.setattr("seqlab.experiments.parens.run_parens", fake_run)
    monkeypatch.setattr("seqlab.experiments.parens.render_table", lambda results: "")
    monkeypatch.setattr("seqlab.experiments.parens.write_reports", lambda results, out: [])
    assert main(["experiment", "parens", "--batch-size", "64", "--lr", "3e-3", "--clip", "1", "--steps", "1500",
                 "--out", str(tmp_path)]) == 0
    setup = seen["setup"]
    assert (setup.batch_size, setup.lr, setup.grad_clip, setup.steps) == (64, 3e-3, 1.0, 1500)
    assert setup.train_config().grad_clip == 1.0 and setup.eval_every == 150
    assert main(["experiment", "parens", "--out", str(tmp_path)]) == 0  # the default: online, unclipped
    assert (seen["setup"].batch_size, seen["setup"].grad_clip) == (1, 0.0)


def test_bad_training_regime_is_a_user_error(tmp_path, capsys):
    assert main(["experiment", "parens", "--lr", "0", "--out", str(tmp_path)]) == 2
    assert "lr = 0" in capsys.readouterr().err


def test_resume_keeps_finished_runs_and_refuses_another_setup(tmp_path, capsys):
    out = tmp_path / "out"
    base = ["experiment", "parens", "--models", "rnn", "--steps", "3", "--test-size", "20", "--out", str(out),
            "--no-progress", "--train-size", "100"]
    assert main([*base, "--seed", "1", "--seeds", "1"]) == 0  # a seed run on its own, as in parallel
    first = (out / "rnn" / "seed-1" / "result.json").read_text(encoding="utf-8")
    assert main([*base, "--seed", "0", "--seeds", "2", "--resume"]) == 0  # trains seed 0, keeps seed 1
    assert (out / "rnn" / "seed-1" / "result.json").read_text(encoding="utf-8") == first
    with open(out / "parens.csv", encoding="utf-8", newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert [int(r["seed"]) for r in rows] == [0, 1]
    saved = json.loads(first)["result"]
    assert float(rows[1]["acc_2_60"]) == saved["test_accuracy"]["2-60"]
    capsys.readouterr()
    assert main([*base[:4], "--steps", "4", *base[6:], "--seed", "1", "--seeds", "1", "--resume"]) == 2
    assert "trained with another setup" in capsys.readouterr().err


def test_retraining_drops_the_old_result_first(tmp_path, monkeypatch):
    import seqlab.experiments.parens as parens

    setup = ParensSetup(steps=2, seeds=1, n_train=20, n_val=10, n_test=10, eval_batch_size=10)
    run_dir = tmp_path / "rnn" / "seed-0"
    run_dir.mkdir(parents=True)
    (run_dir / parens.RESULT_FILE).write_text("{}", encoding="utf-8")

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(parens, "_train_one", interrupted)
    with pytest.raises(KeyboardInterrupt):
        parens.run_parens(["rnn"], out=tmp_path, setup=setup, progress=False)
    assert not (run_dir / parens.RESULT_FILE).exists()  # a later --resume cannot take a stale result
