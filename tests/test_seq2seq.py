"""Seq2seq runs end to end (the Transformer encoder-decoder and Seq2SeqRNN): train on a generated
task or a parallel TSV file, evaluate (greedy and beam, BLEU for parallel text), translate and plot
alignments through the CLI."""

import json

import pytest

import seqlab
from seqlab.cli import main
from seqlab.config import load_config

TINY = ["model.family=encoder_decoder", "data.task=copy", "data.task_examples=2000", "data.task_max_len=4",
        "model.n_layer=1", "model.n_head=2", "model.d_model=32", "model.block_size=8", "train.max_steps=250",
        "train.batch_size=32", "train.lr=5e-3", "train.warmup_steps=10", "train.eval_every=0",
        "train.checkpoint_every=0", "train.device=cpu", "train.sample_tokens=0",
        "tokenizer.byte_fallback=false"]  # the task's alphabet alone: 256 byte tokens more take these models more steps


def test_train_evaluate_and_sample_an_encoder_decoder(tmp_path, capsys):
    run_dir = seqlab.train(load_config(None, TINY), out=tmp_path / "run", progress=False)
    result = seqlab.evaluate(run_dir)
    assert result["data"] == "copy" and result["pairs"] == 200
    assert result["exact_match"] > 0.5 and result["token_accuracy"] > 0.7  # copying is learned
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


RNN = [t for t in TINY if not t.startswith(("model.family", "model.n_head", "train.max_steps"))] + [
    "model.family=rnn_seq2seq", "model.cell=gru", "model.attention=bahdanau", "train.max_steps=150"]


@pytest.mark.parametrize("attention", ["bahdanau", "luong"])
def test_rnn_seq2seq_learns_to_copy_and_translates_with_beam_search(tmp_path, capsys, attention):
    run_dir = seqlab.train(load_config(None, [*RNN, f"model.attention={attention}"]), out=tmp_path / "run",
                           progress=False)
    greedy = seqlab.evaluate(run_dir)
    beam = seqlab.evaluate(run_dir, beam_size=3)
    assert greedy["exact_match"] > 0.5 and beam["beam_size"] == 3
    assert beam["exact_match"] >= greedy["exact_match"] - 0.05  # beam search keeps what greedy found
    plot = tmp_path / "align.png"
    assert main(["translate", str(run_dir), "abca", "--beam", "3", "--plot", str(plot)]) == 0
    assert capsys.readouterr().out.strip() == "abca"
    assert plot.read_bytes()[:4] == b"\x89PNG"


def test_parallel_tsv_run_reports_bleu_on_its_test_split(tmp_path, capsys):
    words = ["red", "blue", "cat", "dog", "big", "small", "a", "the"]
    lines = [f"{a} {b}\t{b} {a}" for a in words for b in words]  # "reverse two words", 64 pairs
    tsv = tmp_path / "pairs.tsv"
    tsv.write_text("\n".join(lines) + "\n", encoding="utf-8")
    overrides = [t for t in TINY if not t.startswith(("data.task", "train.max_steps"))] + [
        f"data.pairs={tsv}", "data.val_fraction=0.2", "tokenizer.kind=word", "train.max_steps=30"]
    run_dir = seqlab.train(load_config(None, overrides), out=tmp_path / "run", progress=False)
    assert main(["eval", str(run_dir), "--split", "test", "--beam", "2", "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["split"] == "test" and result["pairs"] > 0 and 0.0 <= result["bleu"] <= 100.0
    assert result["bleu_signature"].startswith("nrefs:1|case:mixed|eff:no|tok:13a|smooth:exp|version:")
    sources = tmp_path / "sources.txt"
    sources.write_text("red cat\nbig dog\n", encoding="utf-8")
    assert main(["translate", str(run_dir), "--file", str(sources)]) == 0
    assert len(capsys.readouterr().out.strip().splitlines()) == 2


def test_translate_refuses_a_language_model(tmp_path, capsys):
    lm = seqlab.train(load_config("shakespeare-char", ["train.max_steps=1", "model.n_layer=1", "model.d_model=16",
                                                       "model.n_head=2", "train.eval_every=0",
                                                       "train.checkpoint_every=0", "train.sample_tokens=0"]),
                      out=tmp_path / "lm", progress=False)
    assert main(["translate", str(lm), "hello"]) == 2
    assert "use seqlab sample" in capsys.readouterr().err


def test_a_tokenizer_per_side_gives_each_side_its_own_vocabulary(tmp_path, capsys):
    overrides = [t for t in TINY if not t.startswith("data.task=")] + ["data.task=addition", "tokenizer.shared=false",
                                                                        "data.task_max_len=4", "train.max_steps=2"]
    run_dir = seqlab.train(load_config(None, overrides), out=tmp_path / "run", progress=False)
    model, tokenizer = seqlab.load(run_dir)
    assert tokenizer.kind == "pair" and "+" in tokenizer.source.token_strings()
    assert "+" not in tokenizer.target.token_strings()  # sums have no plus sign: the target side lacks it
    assert model.encoder.tok_emb.num_embeddings == tokenizer.source.vocab_size
    assert model.lm_head.out_features == tokenizer.vocab_size
    assert main(["translate", str(run_dir), "12+3"]) == 0
    assert set(capsys.readouterr().out.rstrip("\n")) <= set("0123456789\t")  # only target-side tokens


def test_byte_fallback_gives_both_sides_byte_tokens(tmp_path, capsys):
    overrides = [t for t in TINY if not t.startswith(("data.task=", "tokenizer.byte_fallback"))] + [
        "data.task=addition", "tokenizer.shared=false", "data.task_max_len=4", "train.max_steps=2"]
    run_dir = seqlab.train(load_config(None, overrides), out=tmp_path / "run", progress=False)
    model, tokenizer = seqlab.load(run_dir)
    assert tokenizer.byte_fallback_offset == tokenizer.target.byte_fallback_offset == tokenizer.vocab_size - 256
    assert tokenizer.source.byte_fallback_offset == tokenizer.source.vocab_size - 256
    assert model.encoder.tok_emb.num_embeddings == tokenizer.source.vocab_size
    assert main(["translate", str(run_dir), "12+é"]) == 0  # an unseen character is its bytes, not an error


@pytest.mark.parametrize("family", ["encoder_decoder", "rnn_seq2seq"])
def test_a_steppers_teacher_forced_logits_equal_the_forward_pass(family):
    import torch

    from seqlab import families
    from seqlab.families import build_model

    torch.manual_seed(0)
    settings = families.get(family).settings(family=family, n_layer=2, d_model=16, block_size=8)
    model = build_model(settings, 9).double().eval()
    src, tgt = torch.randint(9, (3, 5)), torch.randint(9, (3, 6))
    src_mask = torch.tensor([[True] * 5, [True] * 3 + [False] * 2, [True] * 4 + [False]])
    expected, _ = model(src, tgt, src_mask)
    torch.testing.assert_close(model.stepper_for(src, src_mask).teacher_forced(tgt), expected)
