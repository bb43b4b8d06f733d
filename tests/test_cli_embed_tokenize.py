"""`seqlab embed` and `seqlab tokenize` end to end: a tiny GPT run whose token embedding has a planted
analogy (queen = king − man + woman), queried, evaluated, drawn and exported; texts cut by a run's
tokenizer and by trained kinds; the fertility table; and the one-line errors."""

from __future__ import annotations

import re

import numpy as np
import pytest
import torch

from seqlab.cli import main
from seqlab.config.load import build_config
from seqlab.families import build_model
from seqlab.pieces import cut, render
from seqlab.runs import write_run_files
from seqlab.tokenizers import train_tokenizer
from seqlab.training.checkpoint import save_weights

WORDS = "the king queen man woman boy girl prince princess tiger cat money cash walk walked".split()
LECTURE = "Hi, class हैलो क्लास 同学们好"


def run_cli(capsys, *argv):
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def error_line(code, err):
    assert code == 2
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("seqlab: error: ")
    return lines[0]


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    rng = np.random.default_rng(0)
    lines = [" ".join(rng.choice(WORDS, size=10)) for _ in range(300)]
    path = tmp_path_factory.mktemp("corpus") / "words.txt"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def run(corpus, tmp_path_factory):
    """A 1-layer GPT run on a word tokenizer, its embedding random but for queen = king − man + woman."""
    config = build_config({"data": {"corpus": str(corpus)}, "tokenizer": {"kind": "word", "vocab_size": 300},
                           "model": {"n_layer": 1, "n_head": 2, "d_model": 16, "block_size": 16}})
    tokenizer = train_tokenizer("word", corpus.read_text(encoding="utf-8"), vocab_size=300)
    torch.manual_seed(0)
    model = build_model(config.model, tokenizer.vocab_size)
    ids = {w: tokenizer.words.index(w) + 3 for w in WORDS}
    with torch.no_grad():
        emb = model.tok_emb.weight
        emb[ids["queen"]] = emb[ids["king"]] - emb[ids["man"]] + emb[ids["woman"]]
    run_dir = tmp_path_factory.mktemp("runs") / "tiny-gpt"
    write_run_files(run_dir, config, tokenizer)
    save_weights(model, run_dir / "model.safetensors")
    return run_dir


def test_embed_neighbours_analogy_and_export(run, capsys, tmp_path) -> None:
    code, out, _ = run_cli(capsys, "embed", str(run), "--neighbors", "king", "--top", "3")
    lines = out.strip().splitlines()
    assert code == 0 and len(lines) == 3 and all(re.fullmatch(r" *-?\d\.\d{4}  \S+", line) for line in lines)
    neighbours = [line.split()[1] for line in lines]
    assert "king" not in neighbours
    code, out, _ = run_cli(capsys, "embed", str(run), "--analogy", "king", "man", "woman")
    assert code == 0
    add, mul = out.strip().splitlines()
    assert "(3CosAdd):  queen " in add and "(3CosMul):  queen " in mul
    path = tmp_path / "vectors.txt"
    code, out, _ = run_cli(capsys, "embed", str(run), "--export", str(path))
    assert code == 0 and "word2vec text format" in out
    from gensim.models import KeyedVectors
    loaded = KeyedVectors.load_word2vec_format(str(path))
    assert [w for w, _ in loaded.most_similar("king", topn=3)] == neighbours


def test_embed_plot_and_eval(run, capsys, tmp_path) -> None:
    code, out, _ = run_cli(capsys, "embed", str(run), "--plot", "king,queen,man,woman", "--out", str(tmp_path / "m"))
    assert code == 0 and (tmp_path / "m-pca.png").is_file() and (tmp_path / "m-tsne.png").is_file()
    code, out, _ = run_cli(capsys, "embed", str(run), "--plot", "--top", "6", "--out", str(tmp_path / "top"))
    assert code == 0 and (tmp_path / "top-tsne.png").is_file()
    code, out, _ = run_cli(capsys, "embed", str(run), "--eval")
    assert code == 0
    assert re.search(r"WordSim353 Spearman ρ +-?\d\.\d{4} +\d+/353 +\d+\.\d%", out)
    assert re.search(r"SimLex-999 Spearman ρ +\S+ +\d+/999", out)
    assert re.search(r"analogies, total +\S+ +\S+ +\d+/19544", out)
    assert out.count("\n") == 2 + 2 + 14 + 1  # header, rule, two pair sets, 14 sections, total


def test_embed_one_line_errors(run, capsys, tmp_path) -> None:
    line = error_line(*run_cli(capsys, "embed", str(run), "--neighbors", "kng")[::2])
    assert "'kng' is not in the vocabulary" in line and "did you mean 'king'" in line
    assert "needs --neighbors" in error_line(*run_cli(capsys, "embed", str(run))[::2])
    assert "does not exist" in error_line(*run_cli(capsys, "embed", str(tmp_path / "nope"), "--eval")[::2])
    assert "at least 3 words" in error_line(*run_cli(capsys, "embed", str(run), "--plot", "king")[::2])
    assert "--top must be at least 1" in error_line(*run_cli(capsys, "embed", str(run), "--neighbors", "king",
                                                             "--top", "0")[::2])


def test_tokenize_a_run_and_a_trained_kind(run, corpus, capsys) -> None:
    code, out, _ = run_cli(capsys, "tokenize", str(run), "the king walked")
    assert code == 0
    lines = out.splitlines()
    assert lines[1] == "the|king|walked"  # not a terminal: plain
    assert lines[2].startswith("ids: [") and "3 tokens" in lines[3] and "round trip exact" in lines[3]
    for kind in ("wordpiece", "unigram", "bpe", "byte"):
        code, out, _ = run_cli(capsys, "tokenize", kind, LECTURE, "--corpus", str(corpus), "--vocab-size", "600")
        assert code == 0 and "round trip exact" in out, kind
        pieces = out.splitlines()[1]
        assert "##" in pieces if kind == "wordpiece" else "##" not in pieces


def test_tokenize_shows_byte_fallback_pieces_as_bytes(corpus, capsys) -> None:
    for kind, first in (("char", "<0x48>|i|<0x2C>| |c|l|a|s|s| |<0xE0>|<0xA4>|<0xB9>"),
                        ("word", "<0x48>|<0x69>|<0x2C>")):
        code, out, _ = run_cli(capsys, "tokenize", kind, LECTURE, "--corpus", str(corpus), "--plain")
        assert code == 0 and "round trip exact" in out and "with byte fallback" in out.splitlines()[0], kind
        assert out.splitlines()[1].startswith(first), out
        code, out, _ = run_cli(capsys, "tokenize", kind, LECTURE, "--corpus", str(corpus), "--no-byte-fallback")
        assert code == 0 and "round trip NOT exact" in out and "<0x" not in out, kind
    code, out, _ = run_cli(capsys, "tokenize", "word", "the  king,", "--corpus", str(corpus), "--plain")
    assert out.splitlines()[1] == "the|<0x20>|<0x20>|king|<0x2C>"  # spacing decode would not give back


def test_colour_pieces_reassemble_the_text() -> None:
    tok = train_tokenizer("bpe", "the king walked " * 20, vocab_size=270)
    result = cut(tok, "the king walked")
    coloured = render(result, colour=True)
    assert coloured.count("\x1b[48;5;") == len(result.ids)
    assert re.sub(r"\x1b\[[0-9;]*m", "", coloured) == "the king walked"
    assert render(result, colour=False) == "|".join(result.pieces)


def test_fertility_table_is_deterministic(corpus, capsys) -> None:
    code, first, _ = run_cli(capsys, "tokenize", "--fertility", str(corpus), "--vocab-size", "600")
    assert code == 0
    rows = {line.split()[0]: line.split() for line in first.splitlines()[3:]}
    assert list(rows) == ["char", "byte", "bpe", "wordpiece", "unigram", "word"]
    assert float(rows["byte"][4]) == 1.0  # bytes per token
    assert all(row[5] == "yes" for row in rows.values())  # char and word with byte fallback too
    assert run_cli(capsys, "tokenize", "--fertility", str(corpus), "--vocab-size", "600")[1] == first
    code, out, _ = run_cli(capsys, "tokenize", "--fertility", str(corpus), "--vocab-size", "600", "--no-byte-fallback")
    rows = {line.split()[0]: line.split() for line in out.splitlines()[3:]}
    assert code == 0 and "without byte fallback" in out and rows["word"][5] == "no"
    assert int(rows["char"][1]) - 1 + 256 == int(first.splitlines()[3].split()[1])  # <unk> instead of the bytes


def test_tokenize_one_line_errors(capsys) -> None:
    assert "neither a run directory nor a tokenizer kind" in error_line(*run_cli(capsys, "tokenize", "nope", "x")[::2])
    assert "needs RUN|KIND and TEXT" in error_line(*run_cli(capsys, "tokenize")[::2])
    assert "at least 513 for a wordpiece" in error_line(
        *run_cli(capsys, "tokenize", "wordpiece", "x", "--vocab-size", "300")[::2])
    assert "at least 513 for a wordpiece" in error_line(*run_cli(capsys, "tokenize", "--fertility", "--vocab-size",
                                                                 "300")[::2])
    assert "at least 260 for a word tokenizer with byte_fallback" in error_line(
        *run_cli(capsys, "tokenize", "word", "x", "--vocab-size", "259")[::2])
