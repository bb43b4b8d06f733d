"""The command line end to end on a few KB of generated text: train, eval, sample, info, resume,
and the one-line errors of every user mistake."""

import json
import subprocess
import sys

import pytest

from seqlab.cli import main
from seqlab.runs import read_config, read_tokenizer

TINY = """
[data]
corpus = "{corpus}"
val_fraction = 0.2

[tokenizer]
kind = "{kind}"
vocab_size = 300

[model]
n_layer = 1
n_head = 2
d_model = 16
block_size = 16

[train]
batch_size = 4
max_steps = 20
lr = 3e-3
warmup_steps = 2
eval_every = 10
eval_steps = 2
checkpoint_every = 10
log_every = 5
sample_tokens = 10
device = "cpu"

[sample]
max_new_tokens = 30
"""




@pytest.fixture
def workspace(tmp_path, monkeypatch, word_corpus):
    monkeypatch.setenv("SEQLAB_CACHE", str(tmp_path / "cache"))
    monkeypatch.chdir(tmp_path)
    corpus = word_corpus(tmp_path / "corpus.txt")
    config = tmp_path / "tiny.toml"
    config.write_text(TINY.format(corpus=corpus, kind="char"))
    return tmp_path, config


def run_cli(capsys, *argv):
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def error_line(code, err):
    assert code == 2
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("seqlab: error: ")
    return lines[0]


@pytest.mark.parametrize("kind", ["char", "byte", "bpe"])
def test_train_eval_sample_info(workspace, capsys, kind):
    tmp, config = workspace
    config.write_text(TINY.format(corpus=tmp / "corpus.txt", kind=kind))
    run = tmp / f"run-{kind}"
    code, out, _ = run_cli(capsys, "train", str(config), "--out", str(run), "--no-progress")
    assert code == 0
    for name in ("config.toml", "tokenizer.json", "model.safetensors", "metrics.csv", "loss.png", "samples.txt"):
        assert (run / name).is_file(), name
    assert (run / "state" / "latest.json").is_file()

    code, out, _ = run_cli(capsys, "eval", str(run), "--json")
    result = json.loads(out)
    assert code == 0 and {"loss", "perplexity", "bits_per_char", "tokens"} <= set(result)
    assert 0 < result["loss"] < 10 and result["tokens"] > 100

    args = ("sample", str(run), "--max-new-tokens", "25", "--seed", "7", "--prompt", "To be")
    code, first, _ = run_cli(capsys, *args)
    code2, second, _ = run_cli(capsys, *args)
    assert code == code2 == 0 and first == second and first.startswith("To be")

    code, out, _ = run_cli(capsys, "info", str(run), "--json")
    info = json.loads(out)
    assert info["step"] == 20 and info["tokenizer"] == kind and info["parameters"] > 0


def test_a_new_char_run_spells_what_its_corpus_lacks_in_bytes(workspace, capsys):
    tmp, config = workspace
    run = tmp / "run"
    assert run_cli(capsys, "train", str(config), "--out", str(run), "--no-progress", "--train.max_steps=2")[0] == 0
    assert read_config(run).tokenizer.byte_fallback and read_tokenizer(run).byte_fallback  # a new config's default
    code, out, _ = run_cli(capsys, "sample", str(run), "--prompt", "Zürich 同学", "--max-new-tokens", "3")
    assert code == 0 and out.startswith("Zürich 同学")


def test_a_run_from_before_byte_fallback_reads_without_it(workspace, capsys):
    tmp, config = workspace
    run = tmp / "run"
    run_cli(capsys, "train", str(config), "--out", str(run), "--no-progress", "--train.max_steps=2",
            "--tokenizer.byte_fallback=false")
    toml = (run / "config.toml").read_text(encoding="utf-8")
    (run / "config.toml").write_text(toml.replace("byte_fallback = false\n", ""), encoding="utf-8")
    assert "byte_fallback" not in (run / "config.toml").read_text(encoding="utf-8")
    assert "byte_fallback" not in (run / "tokenizer.json").read_text(encoding="utf-8")
    assert not read_config(run).tokenizer.byte_fallback and not read_tokenizer(run).byte_fallback
    code, _, err = run_cli(capsys, "train", "--out", str(run), "--resume", "--no-progress", "--train.max_steps=3")
    assert code == 0, err


def test_resume_continues_to_a_later_max_steps(workspace, capsys):
    tmp, config = workspace
    run = tmp / "run"
    assert run_cli(capsys, "train", str(config), "--out", str(run), "--no-progress", "--train.max_steps=10")[0] == 0
    code, _, _ = run_cli(capsys, "train", "--out", str(run), "--resume", "--no-progress", "--train.max_steps=20")
    assert code == 0
    code, out, _ = run_cli(capsys, "info", str(run), "--json")
    assert json.loads(out)["step"] == 20


def test_existing_run_is_never_overwritten_by_accident(workspace, capsys):
    tmp, config = workspace
    run = tmp / "run"
    assert run_cli(capsys, "train", str(config), "--out", str(run), "--no-progress", "--train.max_steps=2")[0] == 0
    line = error_line(*run_cli(capsys, "train", str(config), "--out", str(run), "--no-progress")[::2])
    assert "--resume" in line and "--overwrite" in line
    assert run_cli(capsys, "train", str(config), "--out", str(run), "--no-progress", "--overwrite",
                   "--train.max_steps=2")[0] == 0
    line = error_line(*run_cli(capsys, "train", "--out", str(run), "--resume", "--model.n_layer=2")[::2])
    assert "cannot change [model]" in line


def test_sample_stop_string_and_greedy(workspace, capsys):
    tmp, config = workspace
    run = tmp / "run"
    run_cli(capsys, "train", str(config), "--out", str(run), "--no-progress")
    code, out, _ = run_cli(capsys, "sample", str(run), "--stop", " ", "--max-new-tokens", "200", "--prompt", "t")
    assert code == 0 and out.count(" ") <= 1 and out.rstrip("\n").endswith(" ")
    greedy = [run_cli(capsys, "sample", str(run), "--temperature", "0", "--seed", str(s), "--max-new-tokens", "20")[1]
              for s in (1, 2)]
    assert greedy[0] == greedy[1]
    cached, uncached = (run_cli(capsys, "sample", str(run), "--temperature", "0", "--max-new-tokens", "40", *extra)[1]
                        for extra in ((), ("--no-cache",)))
    assert cached == uncached
    # several samples come from one batch: greedy rows are all the single greedy sample, each cut at --stop
    code, out, _ = run_cli(capsys, "sample", str(run), "--temperature", "0", "--max-new-tokens", "40",
                           "--num-samples", "3")
    assert code == 0 and out.split("\n---------------\n") == [cached.rstrip("\n")] * 2 + [cached]
    code, out, _ = run_cli(capsys, "sample", str(run), "--num-samples", "4", "--stop", " ", "--prompt", "t",
                           "--max-new-tokens", "60")
    samples = out.rstrip("\n").split("\n---------------\n")
    assert code == 0 and len(samples) == 4 and all(s.startswith("t") and s.count(" ") <= 1 for s in samples)
    assert len(set(samples)) > 1  # sampled rows differ


def test_long_prompt_is_cropped_with_a_warning(workspace, capsys):
    tmp, config = workspace
    run = tmp / "run"
    run_cli(capsys, "train", str(config), "--out", str(run), "--no-progress", "--train.max_steps=2")
    code, out, err = run_cli(capsys, "sample", str(run), "--prompt", "to be or not " * 10, "--max-new-tokens", "5")
    assert code == 0 and "only its last 16 are used" in err


def test_user_mistakes_are_one_line_errors(workspace, capsys):
    tmp, config = workspace
    run = tmp / "run"  # without byte tokens, so that a character the corpus lacks is an error
    run_cli(capsys, "train", str(config), "--out", str(run), "--no-progress", "--train.max_steps=2",
            "--tokenizer.byte_fallback=false")
    binary = tmp / "blob.bin"
    binary.write_bytes(bytes(range(256)) * 10)
    cases = [
        (("train", "no-such-preset"), "unknown preset"),
        (("train", str(config), "--model.n_layr=2", "--out", str(tmp / "x")), "did you mean 'n_layer'"),
        (("train", str(config), "--tokenizer.byte_fallbak=false", "--out", str(tmp / "x")),
         "did you mean 'byte_fallback'"),
        (("train", str(config), "--tokenizer.unknown_token=true", "--out", str(tmp / "x")),
         "set tokenizer.byte_fallback = false to keep <unk>"),
        (("train", str(config), "--data.corpus=" + str(tmp / "missing.txt"), "--out", str(tmp / "y")), "missing.txt"),
        (("train", str(config), "--data.corpus=" + str(binary), "--out", str(tmp / "z")), "binary"),
        (("sample", str(tmp / "nowhere")), "does not exist"),
        (("sample", str(tmp)), "not a seqlab run"),
        (("sample", str(run), "--prompt", "Zürich"), "not in the char vocabulary"),
        (("sample", str(run), "--prompt-file", str(tmp / "missing.txt")), "cannot read prompt file"),
        (("sample", str(run), "--temperature", "-1"), "sample.temperature"),
        (("eval", str(run), "--corpus", str(tmp / "missing.txt")), "missing.txt"),
        (("sample", str(run), "--max-new-tokens", "lots"), "invalid int value"),
        (("nonsense",), "invalid choice"),
    ]
    for argv, words in cases:
        line = error_line(*run_cli(capsys, *argv)[::2])
        assert words in line, (argv, line)


def test_damaged_weights_are_a_clear_error(workspace, capsys):
    tmp, config = workspace
    run = tmp / "run"
    run_cli(capsys, "train", str(config), "--out", str(run), "--no-progress", "--train.max_steps=2")
    (run / "model.safetensors").write_bytes(b"\x00" * 100)
    assert "damaged" in error_line(*run_cli(capsys, "eval", str(run))[::2])
    (run / "config.toml").write_text("[model]\nn_layer = 'x'\n")
    assert "config.toml" in error_line(*run_cli(capsys, "info", str(run))[::2])


def test_module_entry_point_and_debug_traceback(tmp_path):
    ok = subprocess.run([sys.executable, "-m", "seqlab", "presets"], capture_output=True, text=True)
    assert ok.returncode == 0 and "shakespeare-char" in ok.stdout
    bad = subprocess.run([sys.executable, "-m", "seqlab", "train", "nope"], capture_output=True, text=True)
    assert bad.returncode == 2 and len(bad.stderr.strip().splitlines()) == 1
    for argv in (["--debug", "train", "nope"], ["train", "nope", "--debug"]):
        debug = subprocess.run([sys.executable, "-m", "seqlab", *argv], capture_output=True, text=True)
        assert debug.returncode != 0 and "Traceback" in debug.stderr


def test_resume_through_the_cli_repeats_the_uninterrupted_losses(workspace, capsys):
    tmp, config = workspace
    whole, parts = tmp / "whole", tmp / "parts"
    common = ("--no-progress", "--train.log_every=1", "--model.dropout=0.1")
    assert run_cli(capsys, "train", str(config), "--out", str(whole), *common)[0] == 0
    # The first half stops at its checkpoint (step 10); resuming must then log what `whole` logged.
    assert run_cli(capsys, "train", str(config), "--out", str(parts), *common, "--train.max_steps=10",
                   "--train.lr_decay_steps=20")[0] == 0
    assert run_cli(capsys, "train", "--out", str(parts), "--resume", *common, "--train.max_steps=20",
                   "--train.lr_decay_steps=20")[0] == 0

    def losses(run):
        rows = (run / "metrics.csv").read_text().splitlines()[1:]
        return [row.split(",")[:3] for row in rows if ",batch," in row]
    assert losses(parts) == losses(whole) and len(losses(whole)) == 20


def test_experiment_shannon_prints_every_approximation(workspace, capsys, word_corpus):
    tmp, _ = workspace
    big = word_corpus(tmp / "big.txt", size=30_000)
    code, out, _ = run_cli(capsys, "experiment", "shannon", "--corpus", str(big), "--length", "60", "--out", str(tmp))
    assert code == 0
    assert out.count("bits/char") == 6 and "Zero-order" in out and (tmp / "shannon.md").is_file()
    assert "invalid choice" in error_line(*run_cli(capsys, "experiment", "markov")[::2])
