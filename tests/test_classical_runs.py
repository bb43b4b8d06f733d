"""n-gram and HMM runs end to end through the config, the run directory, eval, sample and info: the
same commands as a neural run, and the same figures as the NGramLM or HMM used directly."""

import json
import math

import numpy as np
import pytest

import seqlab
from seqlab.cli import main
from seqlab.config import load_config
from seqlab.data import split_text
from seqlab.models.hmm import HMM
from seqlab.models.ngram import NGramLM
from seqlab.tokenizers import load_tokenizer

TEXT = "the cat sat on the mat. the dog sat on the log. " * 40 + "a bird sang on the tree. " * 20


@pytest.fixture()
def run(tmp_path):
    corpus = tmp_path / "corpus.txt"
    corpus.write_text(TEXT, encoding="utf-8")
    config = load_config("shakespeare-char-ngram", [f"data.corpus={corpus}", "model.order=3"])
    return seqlab.train(config, out=tmp_path / "run", progress=False), corpus


def test_eval_equals_the_model_used_directly(run):
    run_dir, corpus = run
    result = seqlab.evaluate(run_dir)
    tokenizer = load_tokenizer(run_dir / "tokenizer.json")
    train_text, val_text = split_text(TEXT, 0.1)
    model = NGramLM(3, tokenizer.vocab_size).fit(tokenizer.encode_array(train_text))
    log_probs = model.log_probs(tokenizer.encode_array(val_text))
    assert result["bits_per_char"] == pytest.approx(-log_probs.sum() / math.log(2) / len(val_text), rel=1e-12)
    assert result["loss"] == pytest.approx(-log_probs.mean(), rel=1e-12)
    logged = (run_dir / "metrics.csv").read_text().splitlines()[1].split(",")
    assert float(logged[2]) == pytest.approx(result["loss"], rel=1e-5)  # training logged the same val loss


def test_sample_and_info_through_the_cli(run, capsys):
    run_dir, _ = run
    assert main(["sample", str(run_dir), "--prompt", "the ", "--max-new-tokens", "20", "--temperature", "0"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("the ") and len(out.rstrip("\n")) == 24
    assert main(["info", str(run_dir), "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["family"] == "ngram" and info["n_grams"] > 0


def test_context_is_a_one_line_error(run, capsys):
    run_dir, _ = run
    assert main(["eval", str(run_dir), "--context", "8"]) == 2
    assert "one stream" in capsys.readouterr().err


def test_damaged_counts_are_a_checkpoint_error(run, capsys):
    run_dir, _ = run
    (run_dir / "ngram" / "ngram.npz").write_bytes(np.zeros(3, np.uint8).tobytes())
    assert main(["eval", str(run_dir)]) == 2
    assert "cannot be read" in capsys.readouterr().err


@pytest.fixture()
def hmm_run(tmp_path):
    corpus = tmp_path / "corpus.txt"
    corpus.write_text(TEXT, encoding="utf-8")
    config = load_config("shakespeare-char-hmm", [f"data.corpus={corpus}", "model.n_states=4",
                                                   "model.em_iterations=5", "train.seed=3"])
    return seqlab.train(config, out=tmp_path / "hmm", progress=False)


def test_hmm_run_equals_baum_welch_used_directly(hmm_run):
    result = seqlab.evaluate(hmm_run)
    tokenizer = load_tokenizer(hmm_run / "tokenizer.json")
    train_text, val_text = split_text(TEXT, 0.1)
    train = tokenizer.encode_array(train_text)
    chunks = [train[i:i + 1000] for i in range(0, len(train), 1000)]
    model = HMM(4, tokenizer.vocab_size, seed=3).fit(chunks, n_iter=5)
    expected = -model.score(tokenizer.encode_array(val_text)) / math.log(2) / len(val_text)
    assert result["bits_per_char"] == pytest.approx(expected, rel=1e-9)
    assert result["bits_per_char"] < math.log2(tokenizer.vocab_size)  # better than uniform


def test_hmm_sample_and_info(hmm_run, capsys):
    assert main(["sample", str(hmm_run), "--prompt", "the ", "--max-new-tokens", "15", "--seed", "0"]) == 0
    out = capsys.readouterr().out.rstrip("\n")
    assert out.startswith("the ") and len(out) == 19
    assert main(["info", str(hmm_run), "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    vocab = load_tokenizer(hmm_run / "tokenizer.json").vocab_size
    assert info["family"] == "hmm" and info["free_parameters"] == 3 + 4 * 3 + 4 * (vocab - 1)
