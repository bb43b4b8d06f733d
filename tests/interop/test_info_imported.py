"""`seqlab info` and `seqlab runs` of a run made by `seqlab import-hf`: where its weights came from,
never a corpus or a step budget it did not have."""

from __future__ import annotations

import json

import pytest

from seqlab.cli import main

transformers = pytest.importorskip("transformers")


def test_an_imported_run_says_where_it_came_from(tmp_path, capsys, make_gpt2, tiny_tokenizer_json):
    from seqlab.tokenizers import HFTokenizer

    folder = tmp_path / "hf-gpt2"
    make_gpt2(0, vocab_size=HFTokenizer.from_file(tiny_tokenizer_json).vocab_size).save_pretrained(folder)
    run = tmp_path / "runs" / "imported"
    assert main(["import-hf", str(folder), "--out", str(run), "--tokenizer", str(tiny_tokenizer_json)]) == 0
    capsys.readouterr()

    assert main(["info", str(run), "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["imported_from"] == "hf:hf-gpt2"
    assert not {"corpus", "task", "pairs", "max_steps"} & set(info)
    assert info["val_loss"] is None and info["val_measured_on"] is None
    assert main(["info", str(run)]) == 0
    text = capsys.readouterr().out
    assert "imported_from" in text and "corpus" not in text and "max_steps" not in text

    assert main(["runs", str(tmp_path / "runs")]) == 0
    row = capsys.readouterr().out.splitlines()[2]
    assert row.split()[:3] == ["imported", "transformer", "imported"]
