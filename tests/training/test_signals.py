"""SIGTERM and SIGINT stop a training at the end of its step with a checkpoint; the run then ends in
`TrainingInterrupted` (the API) and exit status 143 or 130 (the CLI) with the command to go on; a
second Ctrl-C aborts; a signal at the last step leaves a finished run. The same through real
processes, killed at random moments: tests/training/test_fault_injection.py."""

import os
import pickle
import signal

import pytest

from seqlab import api
from seqlab.cli import main
from seqlab.errors import SeqlabError, TrainingInterrupted
from seqlab.training import Trainer, latest_checkpoint
from seqlab.training.signals import StopSignals

# The [train] keys laid over the tiny config of tests/conftest.py (`tiny_toml`).
TRAIN = dict(max_steps=30, lr=1e-3, eval_every=0, eval_steps=1, checkpoint_every=10, log_every=1,
             sample_tokens=0, dtype="float32", compile=False, threads=1)


@pytest.fixture
def config(tmp_path, monkeypatch, word_corpus, tiny_toml):
    monkeypatch.setenv("SEQLAB_CACHE", str(tmp_path / "cache"))
    path = tmp_path / "tiny.toml"
    path.write_text(tiny_toml(word_corpus(tmp_path / "corpus.txt"), **TRAIN))
    return path


def signal_at(monkeypatch, step, *signums):
    """Send `signums` to this process once the trainer has taken `step`, as `kill` would."""
    original = Trainer._train_step

    def step_then_signal(trainer):
        loss = original(trainer)
        if trainer.step == step:
            for signum in signums:
                os.kill(os.getpid(), signum)
        return loss
    monkeypatch.setattr(Trainer, "_train_step", step_then_signal)


def test_the_first_signal_is_recorded_a_second_ctrl_c_aborts_and_the_handlers_come_back():
    before = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM)}
    with StopSignals() as stop:
        os.kill(os.getpid(), signal.SIGTERM)
        assert stop.signum == signal.SIGTERM
        os.kill(os.getpid(), signal.SIGTERM)  # again: already stopping
        assert stop.signum == signal.SIGTERM
        with pytest.raises(KeyboardInterrupt):
            os.kill(os.getpid(), signal.SIGINT)
    assert {s: signal.getsignal(s) for s in before} == before


@pytest.mark.parametrize("signum, status", [(signal.SIGTERM, 143), (signal.SIGINT, 130)])
def test_a_signal_checkpoints_the_step_and_the_cli_exits_with_its_status(tmp_path, config, capsys, monkeypatch,
                                                                         signum, status):
    run = tmp_path / "run"
    signal_at(monkeypatch, 13, signum)
    code = main(["-q", "train", str(config), "--out", str(run), "--no-progress"])
    err = capsys.readouterr().err
    assert code == status
    assert latest_checkpoint(run).step == 13
    name = signal.Signals(signum).name
    assert err.strip().splitlines()[-1] == (f"seqlab: interrupted by {name} at step 13, checkpoint saved; "
                                            f"continue with: seqlab train --out {run} --resume")
    monkeypatch.undo()
    monkeypatch.setenv("SEQLAB_CACHE", str(tmp_path / "cache"))
    assert main(["-q", "train", "--out", str(run), "--resume", "--no-progress"]) == 0
    assert latest_checkpoint(run).step == 30


def test_the_api_raises_training_interrupted_with_the_signal_and_step(tmp_path, config, monkeypatch):
    signal_at(monkeypatch, 4, signal.SIGTERM)
    with pytest.raises(TrainingInterrupted) as caught:
        api.train(config, out=tmp_path / "run", progress=False)
    error = caught.value
    assert isinstance(error, SeqlabError)
    assert (error.signum, error.step, error.exit_status) == (signal.SIGTERM, 4, 143)
    assert latest_checkpoint(tmp_path / "run").step == 4
    assert pickle.loads(pickle.dumps(error)).args == error.args


def test_a_second_ctrl_c_aborts_without_a_checkpoint_of_that_step(tmp_path, config, capsys, monkeypatch):
    run = tmp_path / "run"
    signal_at(monkeypatch, 13, signal.SIGINT, signal.SIGINT)
    assert main(["-q", "train", str(config), "--out", str(run), "--no-progress"]) == 130
    assert capsys.readouterr().err.strip().splitlines()[-1] == "seqlab: interrupted"
    assert latest_checkpoint(run).step == 10  # the one before stays current and whole
    assert not list((run / "state").glob(".*"))


def test_a_signal_at_the_last_step_leaves_a_finished_run(tmp_path, config, capsys, monkeypatch):
    signal_at(monkeypatch, 30, signal.SIGTERM)
    assert main(["-q", "train", str(config), "--out", str(tmp_path / "run"), "--no-progress"]) == 0
    assert latest_checkpoint(tmp_path / "run").step == 30
