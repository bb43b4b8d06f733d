"""Char and byte tokenizers export as a `tokenizer.json` that `transformers` loads with the same ids
(`seqlab.interop.hf_tokenizer`); an exported character-level run, loaded in `transformers` alone,
continues a text prompt greedily with exactly the tokens of `seqlab sample --temperature 0`; every
export carries a model card with its config, data, validation figures and the commands that made it."""

from __future__ import annotations

import json

import pytest
import torch

from seqlab.cli import main
from seqlab.interop.hf_tokenizer import byte_stand_ins, tokenizer_config, tokenizer_json
from seqlab.tokenizers import ByteTokenizer, CharTokenizer

transformers = pytest.importorskip("transformers")

TEXTS = ["ROMEO: hello, world!\n  two  spaces\tand a tab.", "Café, naïve: 中文 ünïcödé", ""]


def hf_tokenizer(tmp_path, tokenizer):
    folder = tmp_path / tokenizer.kind
    folder.mkdir()
    (folder / "tokenizer.json").write_text(json.dumps(tokenizer_json(tokenizer)), encoding="utf-8")
    (folder / "tokenizer_config.json").write_text(json.dumps(tokenizer_config(tokenizer)), encoding="utf-8")
    return transformers.AutoTokenizer.from_pretrained(folder)


@pytest.mark.parametrize("make", [lambda: CharTokenizer.train("".join(TEXTS)), ByteTokenizer],
                         ids=["char", "byte"])
def test_transformers_encodes_and_decodes_as_seqlab(tmp_path, make):
    ours = make()
    theirs = hf_tokenizer(tmp_path, ours)
    assert len(theirs) == ours.vocab_size
    for text in TEXTS:
        ids = ours.encode(text)
        assert theirs(text)["input_ids"] == ids
        assert theirs.decode(ids) == ours.decode(ids) == text


def test_char_byte_fallback_exports_with_the_same_byte_ids(tmp_path):
    # Trained on the first text only: the others have characters it spells in bytes.
    ours = CharTokenizer.train(TEXTS[0], byte_fallback=True)
    theirs = hf_tokenizer(tmp_path, ours)
    assert len(theirs) == ours.vocab_size
    for text in [*TEXTS, "Hi, class हैलो क्लास 同学们好", "<0x41> is text, not a byte",
                 "👨\u200d👩\u200d👧 e\u0301"]:
        ids = ours.encode(text)
        assert theirs(text)["input_ids"] == ids
        assert theirs.decode(ids) == ours.decode(ids) == text
    assert theirs.convert_ids_to_tokens(ours.encode("é")) == ["<0xC3>", "<0xA9>"]


def test_char_unknown_token_is_the_last_id(tmp_path):
    ours = CharTokenizer.train("abc ", unknown_token=True)
    theirs = hf_tokenizer(tmp_path, ours)
    assert theirs("cab z a")["input_ids"] == ours.encode("cab z a") == [3, 1, 2, 0, 4, 0, 1]


def test_byte_stand_ins_are_gpt2s():
    stand_in = byte_stand_ins()
    assert sorted(stand_in) == list(range(256)) and len(set(stand_in.values())) == 256
    assert stand_in[ord("A")] == "A" and stand_in[ord(" ")] == "Ġ" and stand_in[ord("\n")] == "Ċ"


@pytest.mark.parametrize("kind", ["char", "byte"])
def test_exported_run_generates_in_transformers_as_seqlab_samples(tmp_path, monkeypatch, capsys, word_corpus,
                                                                  tiny_toml, load_hf, kind):
    monkeypatch.setenv("SEQLAB_CACHE", str(tmp_path / "cache"))
    corpus = word_corpus(tmp_path / "corpus.txt", seed=1)
    config = tmp_path / "tiny.toml"
    config.write_text(tiny_toml(corpus, max_steps=40, eval_every=20, eval_steps=2, sample_tokens=0, threads=1)
                      .replace('kind = "char"', f'kind = "{kind}"'))
    run, out = tmp_path / "run", tmp_path / "exported"
    assert main(["-q", "train", str(config), "--out", str(run), "--no-progress"]) == 0
    assert main(["-q", "export-hf", str(run), "--out", str(out)]) == 0
    capsys.readouterr()
    prompt, new = "To be", 10  # 15 tokens at most: inside the context of 16
    assert main(["sample", str(run), "--prompt", prompt, "--temperature", "0", "--max-new-tokens", str(new)]) == 0
    sampled = capsys.readouterr().out.removesuffix("\n")

    tokenizer = transformers.AutoTokenizer.from_pretrained(out)
    model = load_hf(out)
    ids = tokenizer(prompt, return_tensors="pt").input_ids
    with torch.no_grad():
        generated = model.generate(ids, do_sample=False, max_new_tokens=new, min_new_tokens=new, pad_token_id=0)
    assert generated[0].tolist() == tokenizer(sampled)["input_ids"]  # token for token
    assert tokenizer.decode(generated[0]) == sampled

    card = (out / "README.md").read_text(encoding="utf-8")
    last_val = [line for line in (run / "metrics.csv").read_text().splitlines() if ",val," in line][-1].split(",")
    assert f"| {last_val[0]} | {float(last_val[2]):.4f} | {float(last_val[4]):.4f} |" in card  # step, loss, bits/char
    assert f"seqlab export-hf {run} --out {out}" in card and "```toml" in card and str(corpus) in card
    assert f"tokenizer: {kind}" in card and "AutoTokenizer.from_pretrained" in card
