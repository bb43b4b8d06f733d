"""Task runs through the CLI: a classifier, a tagger (with a CRF) and a series classifier trained a few
steps on seeded synthetic data that a model must learn (chance is far below the bar), evaluated
(`eval --json`, the confusion matrix figure), used (`predict`), and bad configs refused in one line."""

import json
import random

import numpy as np
import pytest

from seqlab import plots
from seqlab.cli import main

SEED = 0
LETTERS = "abcdefgh"


def write_classes(path, n=400, seed=SEED):
    """Balanced classes by a rule a model must find: "early" when the text starts with a-d, else "late"."""
    rng = random.Random(seed)
    lines = []
    for _ in range(n):
        text = "".join(rng.choice(LETTERS) for _ in range(rng.randint(4, 10)))
        lines.append(f"{'early' if text[0] in 'abcd' else 'late'}\t{text}")
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def write_chunks(path, n=300, seed=SEED):
    """NP VP NP sentences with IOB chunk tags; "fish" is a noun after a determiner or adjective and a
    verb after a noun, so its tag needs the word before it."""
    rng = random.Random(seed)
    dets, adjs, nouns, verbs = ["the", "a"], ["big", "red"], ["cat", "dog", "fish"], ["sees", "eats", "fish"]

    def noun_phrase():
        words = [(rng.choice(dets), "B-NP")] + ([(rng.choice(adjs), "I-NP")] if rng.random() < 0.5 else [])
        return words + [(rng.choice(nouns), "I-NP")]

    blocks = []
    for _ in range(n):
        sentence = noun_phrase() + [(rng.choice(verbs), "B-VP")] + noun_phrase()
        blocks.append("\n".join(f"{word} {tag}" for word, tag in sentence))
    path.write_text("\n\n".join(blocks) + "\n", encoding="utf-8")
    return path


def write_series(path, n=300, seed=SEED):
    """Series of 16 steps, rising or falling, with noise: x (N, 16), y (N,) in {0, 1}."""
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 2, n)
    slope = np.where(y == 1, 1.0, -1.0)[:, None] * rng.uniform(0.5, 1.5, (n, 1))
    x = slope * np.linspace(-1, 1, 16)[None] + 0.3 * rng.standard_normal((n, 16))
    np.savez(path, x=x.astype(np.float32), y=y)
    return path


TRAIN = ("[train]\nbatch_size = 16\nmax_steps = {steps}\nlr = 0.01\nwarmup_steps = 5\neval_every = 0\n"
         "eval_steps = 2\ndevice = \"cpu\"\nseed = 1\n")


def write_config(path, *, model: str, task: str, steps: int = 60, extra: str = "") -> str:
    path.write_text(f"[tokenizer]\nkind = \"char\"\n\n[model]\n{model}\n\n{TRAIN.format(steps=steps)}\n"
                    f"[task]\n{task}\n{extra}", encoding="utf-8")
    return str(path)


def eval_json(capsys, run, *options) -> dict:
    capsys.readouterr()
    assert main(["eval", run, "--json", *options]) == 0
    return json.loads(capsys.readouterr().out)


def one_line_error(capsys, code: int) -> str:
    err = capsys.readouterr().err
    assert code == 2 and "Traceback" not in err, err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("seqlab: error: "), err
    return lines[0]


@pytest.fixture
def work(tmp_path, monkeypatch, one_thread):
    monkeypatch.setenv("SEQLAB_CACHE", str(tmp_path / "cache"))
    return tmp_path


def test_a_classifier_learns_the_rule_and_is_evaluated_and_used(work, capsys, monkeypatch):
    data = write_classes(work / "classes.tsv")
    config = write_config(work / "classify.toml", model='family = "gru"\nn_layer = 1\nd_model = 24',
                          task=f'kind = "classify"\ndata = "{data}"\npooling = "mean"', steps=80)
    run = str(work / "run")
    assert main(["train", config, "--out", run, "--no-progress"]) == 0
    figures = []
    monkeypatch.setattr("seqlab.tasks.evaluate.save_png", lambda fig, path: (figures.append(fig), fig.savefig(path)))
    result = eval_json(capsys, run)
    assert result["split"] == "val" and result["examples"] == 40
    assert result["accuracy"] > 0.9 and result["macro_f1"] > 0.9, result
    assert (work / "run" / "confusion-val.png").is_file() and plots.figure_problems(figures[0]) == []
    assert eval_json(capsys, run, "--split", "test")["accuracy"] > 0.9
    assert main(["predict", run, "--text", "abhgf"]) == 0
    label, probability = capsys.readouterr().out.split()
    assert label == "early" and 0.5 < float(probability) <= 1.0
    # The char tokenizer has byte fallback (the default): a character never seen is read as its bytes.
    assert json.loads((work / "run" / "tokenizer.json").read_text())["byte_fallback"] is True
    assert main(["predict", run, "--text", "abé"]) == 0 and capsys.readouterr().out.split()[0] == "early"
    assert main(["predict", run, "--text", "gabcd", "--json"]) == 0
    answer = json.loads(capsys.readouterr().out)
    assert answer["label"] == "late" and sum(answer["probabilities"].values()) == pytest.approx(1.0)
    assert "task.kind" in one_line_error(capsys, main(["sample", run]))
    assert "non-empty" in one_line_error(capsys, main(["predict", run, "--text", " "]))
    assert main(["info", run, "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["task"] == "classify" and info["labels"] == 2 and info["family"] == "gru" and info["parameters"] > 0


def test_a_bidirectional_crf_tagger_learns_chunks_in_context(work, capsys):
    data = write_chunks(work / "chunks.txt")
    config = write_config(work / "tag.toml", model='family = "lstm"\nn_layer = 1\nd_model = 24',
                          task=f'kind = "tag"\ndata = "{data}"\ncrf = true\nbidirectional = true')
    run = str(work / "tagger")
    assert main(["train", config, "--out", run, "--no-progress"]) == 0
    result = eval_json(capsys, run, "--split", "test")
    assert result["words"] > 150 and result["accuracy"] > 0.9 and result["f1"] > 0.9, result
    assert {"precision", "recall", "macro_f1"} <= set(result)
    assert main(["predict", run, "--text", "the fish fish a big cat"]) == 0
    assert capsys.readouterr().out.split() == ["the/B-NP", "fish/I-NP", "fish/B-VP", "a/B-NP", "big/I-NP",
                                               "cat/I-NP"]


def write_pos_chunks(path, n=300, seed=SEED):
    """`word POS chunk` lines where the words are drawn at random, independent of everything: only
    the POS column tells the chunks (DT opens a noun phrase, VB a verb phrase, JJ and NN continue)."""
    rng = random.Random(seed)
    vocabulary = [f"w{i}" for i in range(40)]
    blocks = []
    for _ in range(n):
        rows = []
        for phrase in ("NP", "VP", "NP"):
            tags = ["VB"] if phrase == "VP" else ["DT", *(["JJ"] * rng.randint(0, 2)), "NN"]
            for i, pos in enumerate(tags):
                rows.append(f"{rng.choice(vocabulary)} {pos} {'B' if i == 0 else 'I'}-{phrase}")
        blocks.append("\n".join(rows))
    path.write_text("\n\n".join(blocks) + "\n", encoding="utf-8")
    return path


def test_a_chunker_reads_the_pos_column_as_input(work, capsys):
    data = write_pos_chunks(work / "pos-chunks.txt")
    config = write_config(work / "tag.toml", model='family = "lstm"\nn_layer = 1\nd_model = 24',
                          task=f'kind = "tag"\ndata = "{data}"\ncrf = true\nbidirectional = true\npos_input = true')
    run = str(work / "chunker")
    assert main(["train", config, "--out", run, "--no-progress"]) == 0
    labels = json.loads((work / "chunker" / "labels.json").read_text())
    assert labels["pos"] == ["DT", "JJ", "NN", "VB"]
    result = eval_json(capsys, run, "--split", "test")
    assert result["accuracy"] > 0.95 and result["f1"] > 0.9, result
    assert main(["predict", run, "--text", "w3/DT w9/NN w1/VB w7/DT w2/JJ w5/NN"]) == 0
    assert capsys.readouterr().out.split() == ["w3/B-NP", "w9/I-NP", "w1/B-VP", "w7/B-NP", "w2/I-NP", "w5/I-NP"]
    assert "WORD/POS" in one_line_error(capsys, main(["predict", run, "--text", "w3 w9 w1"]))


def test_series_are_classified_through_the_same_path(work, capsys):
    data = write_series(work / "series.npz")
    config = write_config(work / "series.toml", model='family = "transformer"\nn_layer = 1\nn_head = 2\n'
                          'd_model = 16\nblock_size = 16', task=f'kind = "classify"\ndata = "{data}"\npooling = "mean"')
    run = work / "series"
    assert main(["train", config, "--out", str(run), "--no-progress"]) == 0
    assert not (run / "tokenizer.json").exists()
    assert json.loads((run / "labels.json").read_text())["features"] == 1
    assert eval_json(capsys, str(run))["accuracy"] > 0.9
    rising = " ".join(f"{v:.2f}" for v in np.linspace(-1, 1, 16))
    assert main(["predict", str(run), "--text", rising]) == 0
    assert capsys.readouterr().out.split()[0] == "1"
    assert "numbers" in one_line_error(capsys, main(["predict", str(run), "--text", "0.1 up"]))
    assert main(["info", str(run)]) == 0
    assert "real-valued series" in capsys.readouterr().out


BAD = [
    ('family = "ngram"', 'kind = "classify"\ndata = "DATA"', "", "has none"),
    ('family = "wavenet"', 'kind = "tag"\ndata = "DATA"\nbidirectional = true', "", "left to right only"),
    ('family = "gru"', 'kind = "classify"\ndata = "conll2000"', "", "set task.kind = \"tag\""),
    ('family = "gru"', 'kind = "classify"\ndata = "DATA"\npooling = "meen"', "", "did you mean 'mean'"),
    ('family = "gru"', 'kind = "classify"\ndata = "DATA"\ncrf = true', "", "task.crf"),
    ('family = "gru"', 'kind = "classify"\ndata = "DATA"', '[finetune]\nmethod = "lora"\n', "train.init_from"),
    ('family = "gru"', 'kind = "classify"\ndata = "nowhere.tsv"', "", "neither a labelled set"),
    ('family = "gru"', 'kind = "classify"\ndata = "DATA"', '[finetune]\nrank = 0\n', "finetune.rank"),
    ('family = "gru"', 'kind = "classify"\ndata = "DATA"\npos_input = true', "", "task.pos_input"),
    ('family = "gru"', 'kind = "tag"\ndata = "conll2000"\ncolumn = "pos"\npos_input = true', "", "task.pos_input"),
]


@pytest.mark.parametrize("model, task, extra, expected", BAD)
def test_bad_task_configs_are_one_line_errors(work, capsys, model, task, extra, expected):
    data = write_classes(work / "classes.tsv", n=40)
    config = write_config(work / "bad.toml", model=model, task=task.replace("DATA", str(data)), extra=extra)
    line = one_line_error(capsys, main(["train", config, "--out", str(work / "bad"), "--no-progress"]))
    assert expected in line
    assert not (work / "bad").exists()
