"""`seqlab import-hf` and `seqlab export-hf` end to end: an imported run samples, evaluates and
describes itself like a trained one, with the Hugging Face model's numbers; an exported run loads in
`transformers`; every user mistake is one line."""

from __future__ import annotations

import json
import math

import pytest
import torch
from safetensors.torch import load_file

from seqlab.cli import main
from seqlab.config import Config, ModelConfig
from seqlab.interop import from_hf
from seqlab.models.transformer import TransformerLM
from seqlab.runs import load_run, write_run_files
from seqlab.tokenizers import CharTokenizer, HFTokenizer
from seqlab.training.checkpoint import save_weights

transformers = pytest.importorskip("transformers")

PROMPT = "To be, or not"


def run_cli(capsys, *argv):
    capsys.readouterr()  # drop what came before (transformers' progress bars)
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


def error_line(code, err):
    assert code == 2
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("seqlab: error: ")
    return lines[0]


@pytest.fixture
def hf_gpt2(tmp_path, make_gpt2, tiny_tokenizer_json):
    """A GPT-2 folder with its tokenizer.json; the embedding is padded 6 ids past the tokenizer's."""
    own = HFTokenizer.from_file(tiny_tokenizer_json).vocab_size
    folder = tmp_path / "hf-gpt2"
    model = make_gpt2(0, vocab_size=own + 6)
    model.save_pretrained(folder)
    (folder / "tokenizer.json").write_bytes(tiny_tokenizer_json.read_bytes())
    return folder, model


def test_imported_run_samples_evaluates_and_describes_itself(tmp_path, capsys, hf_gpt2):
    folder, hf = hf_gpt2
    run = tmp_path / "run"
    code, out, err = run_cli(capsys, "import-hf", folder, "--out", run)
    assert code == 0, err
    assert f"run saved in {run}" in out

    # Greedy sample: the prompt, then the Hugging Face model's greedy continuation.
    code, out, err = run_cli(capsys, "sample", run, "--prompt", PROMPT, "--max-new-tokens", 12,
                             "--temperature", 0)
    assert code == 0, err
    tokenizer = HFTokenizer.from_file(folder / "tokenizer.json", vocab_size=hf.config.vocab_size)
    prompt = torch.tensor([tokenizer.encode(PROMPT)])
    expected = hf.generate(prompt, do_sample=False, max_new_tokens=12, min_new_tokens=12, pad_token_id=0)
    assert out == PROMPT + tokenizer.decode(expected[0, prompt.shape[1]:]) + "\n"

    # Eval on a text shorter than the context: one window, so the loss is Hugging Face's own.
    text = "To be, or not to be, that is the question."
    (tmp_path / "corpus.txt").write_text(text, encoding="utf-8")
    code, out, err = run_cli(capsys, "eval", run, "--corpus", tmp_path / "corpus.txt", "--split", "all", "--json")
    assert code == 0, err
    result = json.loads(out)
    ids = torch.tensor([tokenizer.encode(text)])
    assert ids.shape[1] <= hf.config.n_positions
    with torch.no_grad():
        hf_loss = hf(ids, labels=ids).loss.item()
    assert math.isclose(result["loss"], hf_loss, rel_tol=1e-5)

    code, out, err = run_cli(capsys, "info", run, "--json")
    assert code == 0, err
    info = json.loads(out)
    assert info["tokenizer"] == "hf" and info["vocab_size"] == hf.config.vocab_size
    assert info["model"]["activation"] == "gelu_tanh" and info["model"]["block_size"] == 32


def test_import_llama_then_sample(tmp_path, capsys, make_llama, tiny_tokenizer_json):
    own = HFTokenizer.from_file(tiny_tokenizer_json).vocab_size
    folder = tmp_path / "hf-llama"
    make_llama(1, vocab_size=own).save_pretrained(folder)
    run = tmp_path / "run"
    code, _, err = run_cli(capsys, "import-hf", folder, "--out", run, "--tokenizer", tiny_tokenizer_json)
    assert code == 0, err
    model, tokenizer, config = load_run(run)
    assert config.model.position == "rope" and config.model.kv_heads == 2
    reference, _ = from_hf(folder)
    x = torch.tensor([tokenizer.encode(PROMPT)])
    with torch.no_grad():
        torch.testing.assert_close(model(x)[0], reference(x)[0], atol=0, rtol=0)
    code, out, err = run_cli(capsys, "sample", run, "--prompt", PROMPT, "--max-new-tokens", 8)
    assert code == 0 and out.startswith(PROMPT), err


def test_import_without_tokenizer_needs_one(tmp_path, capsys, make_gpt2, tiny_tokenizer_json):
    folder = tmp_path / "hf"
    make_gpt2(2, vocab_size=HFTokenizer.from_file(tiny_tokenizer_json).vocab_size).save_pretrained(folder)
    code, _, err = run_cli(capsys, "import-hf", folder, "--out", tmp_path / "run")
    assert "has no tokenizer.json" in error_line(code, err) and "--tokenizer" in err
    assert not (tmp_path / "run").exists()
    code, _, err = run_cli(capsys, "import-hf", folder, "--out", tmp_path / "run", "--tokenizer", tiny_tokenizer_json)
    assert code == 0, err
    tokenizer = load_run(tmp_path / "run")[1]
    assert tokenizer.kind == "hf"
    # A seqlab tokenizer file (here the run's own) is accepted too.
    code, _, err = run_cli(capsys, "import-hf", folder, "--out", tmp_path / "run2", "--tokenizer",
                           tmp_path / "run" / "tokenizer.json")
    assert code == 0, err
    assert load_run(tmp_path / "run2")[1] == tokenizer


def test_import_refuses_to_overwrite_a_run(tmp_path, capsys, hf_gpt2):
    folder, _ = hf_gpt2
    run = tmp_path / "run"
    assert run_cli(capsys, "import-hf", folder, "--out", run)[0] == 0
    code, _, err = run_cli(capsys, "import-hf", folder, "--out", run)
    assert "already holds a run" in error_line(code, err)
    assert run_cli(capsys, "import-hf", folder, "--out", run, "--overwrite")[0] == 0


def test_import_errors_are_one_line(tmp_path, capsys, hf_gpt2, tiny_tokenizer_json, edit_config):
    folder, _ = hf_gpt2
    code, _, err = run_cli(capsys, "import-hf", tmp_path / "nowhere", "--out", tmp_path / "run")
    assert "is not a folder" in error_line(code, err)
    edit_config(folder, model_type="mistral")
    code, _, err = run_cli(capsys, "import-hf", folder, "--out", tmp_path / "run")
    assert 'model_type = "mistral" is not supported' in error_line(code, err)
    edit_config(folder, model_type="gpt2", vocab_size=10)
    code, _, err = run_cli(capsys, "import-hf", folder, "--out", tmp_path / "run")
    assert "transformer.wte.weight has shape" in error_line(code, err)


def test_export_run_loads_in_transformers(tmp_path, capsys, hf_gpt2, load_hf):
    folder, _ = hf_gpt2
    run, out = tmp_path / "run", tmp_path / "exported"
    assert run_cli(capsys, "import-hf", folder, "--out", run)[0] == 0
    code, _, err = run_cli(capsys, "export-hf", run, "--out", out)
    assert code == 0, err
    model, tokenizer, _ = load_run(run)
    reloaded = load_hf(out)
    x = torch.tensor([tokenizer.encode(PROMPT)])
    with torch.no_grad():
        torch.testing.assert_close(reloaded(x).logits, model(x)[0], atol=1e-4, rtol=1e-4)
    hf_tokenizer = transformers.PreTrainedTokenizerFast(tokenizer_file=str(out / "tokenizer.json"))
    assert hf_tokenizer(PROMPT)["input_ids"] == tokenizer.encode(PROMPT)
    code, _, err = run_cli(capsys, "export-hf", run, "--out", out)
    assert "already holds a model" in error_line(code, err)


def test_float64_weights_stay_float64_through_import_and_export(tmp_path, capsys, make_gpt2,
                                                               tiny_tokenizer_json):
    folder = tmp_path / "hf"
    make_gpt2(3, vocab_size=HFTokenizer.from_file(tiny_tokenizer_json).vocab_size,
              dtype=torch.float64).save_pretrained(folder)
    run, out = tmp_path / "run", tmp_path / "exported"
    assert run_cli(capsys, "import-hf", folder, "--out", run, "--tokenizer", tiny_tokenizer_json)[0] == 0
    assert run_cli(capsys, "export-hf", run, "--out", out)[0] == 0
    assert json.loads((out / "config.json").read_text())["dtype"] == "float64"
    original, exported = load_file(folder / "model.safetensors"), load_file(out / "model.safetensors")
    assert original.keys() == exported.keys()
    for name, tensor in original.items():
        assert torch.equal(exported[name], tensor), name


def test_export_of_char_run_writes_its_tokenizer_and_refuses_alibi(tmp_path, capsys):
    torch.manual_seed(0)
    tokenizer = CharTokenizer.train("abcdefgh \n")
    for name, position in (("gpt2-like", "learned"), ("alibi", "alibi")):
        config = Config(model=ModelConfig(n_layer=1, n_head=2, d_model=16, block_size=8, position=position))
        run = tmp_path / name
        write_run_files(run, config, tokenizer)
        save_weights(TransformerLM(config.model, tokenizer.vocab_size), run / "model.safetensors")
    code, _, err = run_cli(capsys, "export-hf", tmp_path / "gpt2-like", "--out", tmp_path / "out")
    assert code == 0, err
    assert (tmp_path / "out" / "config.json").is_file() and (tmp_path / "out" / "tokenizer.json").is_file()
    code, _, err = run_cli(capsys, "export-hf", tmp_path / "alibi", "--out", tmp_path / "out2")
    assert "model.position = 'alibi' cannot be exported" in error_line(code, err)
