"""An encoder-decoder run end to end: train on a generated task, evaluate, sample through the CLI."""

import pytest

import seqlab
from seqlab.cli import main
from seqlab.config import load_config

TINY = ["model.family=encoder_decoder", "data.task=copy", "data.task_examples=2000", "data.task_max_len=4",
        "model.n_layer=1", "model.n_head=2", "model.d_model=32", "model.block_size=8", "train.max_steps=250",
        "train.batch_size=32", "train.lr=5e-3", "train.warmup_steps=10", "train.eval_every=0",
        "train.checkpoint_every=0", "train.device=cpu", "train.sample_tokens=0"]


def test_train_evaluate_and_sample_an_encoder_decoder(tmp_path, capsys):
    run_dir = seqlab.train(load_config(None, TINY), out=tmp_path / "run", progress=False)
    result = seqlab.evaluate(run_dir)
    assert result["task"] == "copy" and result["pairs"] == 200
    assert result["exact_match"] > 0.5 and result["char_accuracy"] > 0.7  # copying is learned
    assert main(["sample", str(run_dir), "--prompt", "abca", "--temperature", "0"]) == 0
    assert capsys.readouterr().out.strip() == "abca"


def test_encoder_decoder_without_a_task_is_a_one_line_error(tmp_path, capsys):
    args = ["train", "shakespeare-char", "--out", str(tmp_path / "run"), "--model.family=encoder_decoder", "--train.max_steps=1"]
    assert main(args) == 2
    err = capsys.readouterr().err
    assert "data.task" in err and len(err.strip().splitlines()) == 1


@pytest.mark.parametrize("option", [["--corpus", "shakespeare"], ["--context", "32"]])
def test_encoder_decoder_eval_refuses_corpus_options(tmp_path, capsys, option):
    run_dir = seqlab.train(load_config(None, [*TINY, "train.max_steps=1"]), out=tmp_path / "run", progress=False)
    assert main(["eval", str(run_dir), *option]) == 2
    assert "pairs" in capsys.readouterr().err
