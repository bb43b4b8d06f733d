"""Runs started from another run (`train.init_from`): the base's weights, tokenizer and [model] are
taken, frozen parts stay bit for bit the base's, LoRA adapters are saved on their own (a small file)
and put back onto the base run, and a merged run gives the same logits; an import-hf run is a base
like any other. Mistakes are one-line errors."""

import random

import pytest
import torch
from safetensors.torch import load_file

from seqlab.cli import main
from seqlab.runs import load_run, read_config
from seqlab.tasks.run import load_task_run
from seqlab.tasks.data import Labelled, collate, encode
from seqlab.tokenizers import CharTokenizer

SEED = 0
WORDS = ["to", "be", "or", "not", "that", "is", "the", "question", "whether", "tis", "nobler"]


def write_classes(path, n=200, seed=SEED):
    """Sentences of the corpus's words, "neg" when they hold "not", else "pos"."""
    rng = random.Random(seed)
    lines = []
    for _ in range(n):
        words = [rng.choice(WORDS) for _ in range(rng.randint(3, 8))]
        lines.append(f"{'neg' if 'not' in words else 'pos'}\t{' '.join(words)}")
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def one_line_error(capsys, code: int) -> str:
    err = capsys.readouterr().err
    assert code == 2 and "Traceback" not in err, err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("seqlab: error: "), err
    return lines[0]


@pytest.fixture(scope="module")
def base(tmp_path_factory, word_corpus):
    """A tiny character GPT (2 layers, width 48) trained a few steps: the run to start from."""
    folder = tmp_path_factory.mktemp("base")
    corpus = word_corpus(folder / "words.txt", size=3000)
    config = folder / "lm.toml"
    config.write_text(f'[data]\ncorpus = "{corpus}"\n\n[tokenizer]\nkind = "char"\n\n[model]\nn_layer = 2\n'
                      'n_head = 2\nd_model = 48\nblock_size = 32\n\n[train]\nbatch_size = 4\nmax_steps = 4\n'
                      'eval_every = 0\neval_steps = 1\nsample_tokens = 0\ndevice = "cpu"\n', encoding="utf-8")
    run = folder / "lm"
    assert main(["train", str(config), "--out", str(run), "--no-progress", "-q"]) == 0
    return run


@pytest.fixture
def work(tmp_path, monkeypatch, one_thread):
    monkeypatch.setenv("SEQLAB_CACHE", str(tmp_path / "cache"))
    write_classes(tmp_path / "classes.tsv")
    return tmp_path


def task_config(work, base, finetune: str = "", steps: int = 8, task: str = "") -> str:
    path = work / "task.toml"
    path.write_text(f'[train]\ninit_from = "{base}"\nbatch_size = 8\nmax_steps = {steps}\nlr = 0.01\n'
                    f'warmup_steps = 2\neval_every = 0\neval_steps = 1\ndevice = "cpu"\n\n[task]\nkind = "classify"\n'
                    f'data = "{work / "classes.tsv"}"\npooling = "mean"\n{task}\n{finetune}', encoding="utf-8")
    return str(path)


def test_full_fine_tuning_takes_the_base_and_keeps_frozen_parts_bit_for_bit(work, base, capsys):
    run = work / "full"
    config = task_config(work, base, '[finetune]\nfreeze = ["tok_emb", "blocks.0"]\n')
    assert main(["train", config, "--out", str(run), "--no-progress"]) == 0
    assert read_config(run).model == read_config(base).model
    assert (run / "tokenizer.json").read_bytes() == (base / "tokenizer.json").read_bytes()
    before, after = load_run(base)[0].state_dict(), load_task_run(run)[0].backbone.state_dict()
    frozen = [key for key in before if key.startswith(("tok_emb.", "blocks.0."))]
    assert len(frozen) > 5 and all(torch.equal(after[key], before[key]) for key in frozen)
    assert not torch.equal(after["blocks.1.attn.qkv.weight"], before["blocks.1.attn.qkv.weight"])


def test_a_lora_run_saves_small_adapters_and_merges_to_the_same_logits(work, base, capsys):
    run, merged = work / "lora", work / "merged"
    config = task_config(work, base, '[finetune]\nmethod = "lora"\nrank = 2\nalpha = 4\n'
                                     'targets = ["tok_emb", "attn.qkv", "attn.out"]\n', steps=6)
    assert main(["train", config, "--out", str(run), "--no-progress"]) == 0
    adapters = (run / "adapters.safetensors").stat().st_size
    assert adapters <= 0.05 * (run / "model.safetensors").stat().st_size
    keys = set(load_file(str(run / "adapters.safetensors")))
    assert keys and all(".lora_" in key or key.startswith(("head.", "pooling.")) for key in keys)

    model, tokenizer, config_, info = load_task_run(run)
    base_weights = load_run(base)[0].state_dict()
    assert torch.equal(model.backbone.blocks[0].attn.qkv.weight, base_weights["blocks.0.attn.qkv.weight"])
    assert any(model.backbone.blocks[0].attn.qkv.lora_B[name].abs().sum() > 0
               for name in model.backbone.blocks[0].attn.qkv.lora_B)  # trained: B left zero
    assert model.backbone.tok_emb.lora_A["all"].abs().sum() > 0  # the embedding's A starts at zero
    assert torch.equal(model.backbone.tok_emb.weight, base_weights["tok_emb.weight"])

    assert main(["merge", str(run), "--out", str(merged)]) == 0
    plain, *_ = load_task_run(merged)
    assert not any(".lora_" in key for key in plain.state_dict())
    examples = Labelled(["to be or not", "the question is whether tis nobler"], [])
    inputs, _ = collate(encode(examples, kind="classify", labels=info.labels, tokenizer=tokenizer, max_len=32,
                               with_targets=False), [0, 1])
    with torch.no_grad():
        torch.testing.assert_close(plain.scores(**inputs), model.scores(**inputs), rtol=1e-5, atol=1e-5)
    capsys.readouterr()
    assert "no adapters" in one_line_error(capsys, main(["merge", str(merged), "--out", str(work / "again")]))


def test_a_language_model_continues_from_its_base_with_a_frozen_embedding(work, base, word_corpus):
    corpus = word_corpus(work / "more.txt", seed=1, size=2000)
    config = work / "more.toml"
    config.write_text(f'[data]\ncorpus = "{corpus}"\n\n[train]\ninit_from = "{base}"\nbatch_size = 4\n'
                      'max_steps = 3\neval_every = 0\neval_steps = 1\nsample_tokens = 0\ndevice = "cpu"\n\n'
                      '[finetune]\nfreeze = ["tok_emb"]\n', encoding="utf-8")
    run = work / "more"
    assert main(["train", str(config), "--out", str(run), "--no-progress", "-q"]) == 0
    before, after = load_run(base)[0].state_dict(), load_run(run)[0].state_dict()
    assert torch.equal(after["tok_emb.weight"], before["tok_emb.weight"])
    assert not torch.equal(after["blocks.0.attn.qkv.weight"], before["blocks.0.attn.qkv.weight"])


def test_an_imported_hugging_face_model_is_a_base_like_any_other(work, capsys):
    transformers = pytest.importorskip("transformers")
    torch.manual_seed(SEED)
    tokenizer = CharTokenizer.train(" ".join(WORDS))
    hf = transformers.GPT2LMHeadModel(transformers.GPT2Config(vocab_size=tokenizer.vocab_size, n_positions=32,
                                                               n_embd=16, n_layer=1, n_head=2))
    hf.save_pretrained(work / "hf")
    tokenizer.save(work / "chars.json")
    imported = work / "imported"
    assert main(["import-hf", str(work / "hf"), "--out", str(imported), "--tokenizer", str(work / "chars.json")]) == 0
    run = work / "tuned"
    config = task_config(work, imported, '[finetune]\nmethod = "lora"\nrank = 2\n', steps=3)
    assert main(["train", config, "--out", str(run), "--no-progress", "-q"]) == 0
    capsys.readouterr()
    assert main(["predict", str(run), "--text", "to be or not"]) == 0
    assert capsys.readouterr().out.split()[0] in ("neg", "pos")


def test_fine_tuning_mistakes_are_one_line_errors(work, base, capsys, word_corpus):
    out = str(work / "bad")

    def error(config) -> str:
        return one_line_error(capsys, main(["train", config, "--out", out, "--no-progress"]))

    assert "does not exist" in error(task_config(work, work / "nowhere"))
    assert "finetune.freeze" in error(task_config(work, base, '[finetune]\nfreeze = ["tok_embedding"]\n'))
    assert "names no linear layer or embedding" in error(task_config(work, base, '[finetune]\nmethod = "lora"\n'
                                                                     'targets = ["attn.query"]\n'))
    assert "finetune.freeze" in error(task_config(work, base, '[finetune]\nmethod = "lora"\nfreeze = ["x"]\n'))
    task_run = work / "task-run"
    assert main(["train", task_config(work, base, steps=1), "--out", str(task_run), "--no-progress", "-q"]) == 0
    assert "is a classify run" in error(task_config(work, task_run))
    assert "not a language model" in one_line_error(capsys, main(["sample", str(task_run)]))
    assert not (work / "bad").exists()
