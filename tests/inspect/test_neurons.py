import json
import math
import os
import re
import shutil

import pytest
import torch
from torch import nn

from seqlab.cli import main
from seqlab.config.schema import ModelConfig
from seqlab.inspect import neuron_page, trace_neurons
from seqlab.models import TransformerLM
from seqlab.models.rnn import RecurrentConfig, RNNLM
from seqlab.tokenizers import train_tokenizer

TEXT = "ab ba </script> abba"


def tiny_lstm(vocab: int) -> RNNLM:
    """A one-layer LSTM language model of width 5."""
    return RNNLM(RecurrentConfig(family="lstm", n_layer=1, d_model=5, tie_embeddings=False), vocab).eval()


@pytest.fixture
def tokenizer():
    return train_tokenizer("char", TEXT)


def test_recurrent_hidden_states_and_predictions_are_recorded(tokenizer):
    torch.manual_seed(0)
    model = tiny_lstm(tokenizer.vocab_size)
    trace = trace_neurons(model, tokenizer, TEXT, top_k=3)
    ids = torch.tensor([tokenizer.encode(TEXT)])
    states, _ = model.rnn(model.tok_emb(ids))
    assert list(trace.layers) == ["surprisal (bits)", "rnn hidden state"]
    torch.testing.assert_close(trace.layers["rnn hidden state"], states[0])  # (T, H): the layer's real output
    probs = torch.softmax(model(ids)[0][0], dim=-1)
    # Each token's surprisal in bits under the model's prediction from the tokens before it.
    expected = -torch.log2(probs[:-1].gather(-1, ids[0, 1:, None]))
    torch.testing.assert_close(trace.layers["surprisal (bits)"][1:], expected, atol=1e-5, rtol=1e-5)
    top = probs.topk(3, dim=-1)
    assert trace.top_probs == [[round(p, 4) for p in row] for row in top.values.tolist()]
    assert trace.top_tokens[0] == [tokenizer.token_strings()[i] for i in top.indices[0].tolist()]
    assert "".join(trace.tokens) == TEXT
    assert not model.rnn._forward_hooks  # the hooks are gone afterwards


def test_every_contract_model_is_traced_through_its_steps(tokenizer):
    from seqlab.models import HMM, NGramLM

    ids = tokenizer.encode(TEXT)
    for model in (NGramLM(3, tokenizer.vocab_size).fit(ids), HMM(3, tokenizer.vocab_size, seed=0).fit([ids], n_iter=3)):
        trace = trace_neurons(model, tokenizer, TEXT, top_k=2, units=lambda _m, _ids: {})
        assert list(trace.layers) == ["surprisal (bits)"] and len(trace.top_probs) == len(TEXT)
        expected = -model.token_log_probs(torch.tensor([ids]))[0] / math.log(2)  # the contract's scoring, in bits
        torch.testing.assert_close(trace.layers["surprisal (bits)"][1:, 0].double(), expected, atol=1e-4, rtol=1e-4)


def test_transformer_mlp_neurons_are_recorded(tokenizer):
    torch.manual_seed(0)
    model = TransformerLM(ModelConfig(n_layer=2, n_head=2, d_model=8, block_size=32), tokenizer.vocab_size)
    trace = trace_neurons(model, tokenizer, TEXT)
    assert list(trace.layers) == ["surprisal (bits)", "blocks.0.mlp neurons", "blocks.1.mlp neurons"]
    ids = torch.tensor([tokenizer.encode(TEXT)])
    x = model.pos_emb.embed(model.tok_emb(ids), 0)
    first = model.blocks[0]
    from seqlab.nn.attention import attention_inputs
    inputs = attention_inputs(model.pos_emb, start=0, n_query=x.shape[1], causal=True, device=x.device, dtype=x.dtype)
    h = x + first.attn(first.norm1(x), inputs)[0]
    expected = first.mlp.activation(first.mlp.up(first.norm2(h)))[0]  # (T, 4D)
    torch.testing.assert_close(trace.layers["blocks.0.mlp neurons"], expected.detach())


def test_page_is_self_contained_and_carries_the_data(tokenizer):
    torch.manual_seed(0)
    trace = trace_neurons(tiny_lstm(tokenizer.vocab_size), tokenizer, TEXT)
    page = neuron_page(trace, title="t <1>")
    assert "<title>t &lt;1&gt;</title>" in page
    assert page.count("</script>") == 1  # the text's own "</script>" is escaped inside the data
    assert not re.search(r"(src|href)=\"http", page)  # nothing loaded from elsewhere
    data = json.loads(re.search(r"const DATA = (.*);\n", page).group(1).replace("<\\/", "</"))
    assert data["tokens"] == trace.tokens
    layer = data["layers"][1]  # the LSTM's hidden state (the first is the surprisal)
    assert sorted(layer["order"]) == list(range(5)) and len(layer["acts"]) == 5 and len(layer["acts"][0]) == len(TEXT)


def test_learned_positions_refuse_a_text_longer_than_the_context(tokenizer):
    model = TransformerLM(ModelConfig(n_layer=1, n_head=1, d_model=4, block_size=8), tokenizer.vocab_size)
    with pytest.raises(ValueError, match="at most 8"):
        trace_neurons(model, tokenizer, TEXT)


def test_cli_writes_the_page_and_reports_mistakes_in_one_line(tmp_path, capsys, word_corpus, monkeypatch):
    monkeypatch.setenv("SEQLAB_CACHE", str(tmp_path / "cache"))
    corpus = word_corpus(tmp_path / "c.txt", size=2000)
    args = ["train", "shakespeare-char", "--out", str(tmp_path / "run"), f"--data.corpus={corpus}",
            "--model.n_layer=1", "--model.d_model=16", "--model.n_head=2", "--model.block_size=16",
            "--train.max_steps=2", "--train.eval_every=0", "--train.checkpoint_every=0", "--train.sample_tokens=0",
            "--no-progress"]
    assert main(args) == 0
    assert main(["inspect", str(tmp_path / "run"), "--text", "To be"]) == 0
    assert (tmp_path / "run" / "inspect.html").is_file()
    capsys.readouterr()
    assert main(["inspect", str(tmp_path / "run"), "--text", "To be or not to be that is the"]) == 2
    assert main(["inspect", str(tmp_path / "run")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 2 and "at most 16" in err[0] and "--text" in err[1]


def test_hover_panel_stays_in_view_below_a_long_text_and_the_colours_have_a_legend(tokenizer, tmp_path):
    """In Chromium: hovering the last character of a text longer than the window, scrolled to it,
    shows the panel inside the window; the legend gives the unit's range."""
    chromium = shutil.which("chromium") or ("/usr/bin/chromium" if os.path.exists("/usr/bin/chromium") else None)
    if chromium is None:
        pytest.skip("no chromium on this machine: the page was not rendered (apt-get install chromium)")
    playwright = pytest.importorskip("playwright.sync_api")
    torch.manual_seed(0)
    long_text = (TEXT + " ") * 150  # about 3,000 characters: some 45 lines in a 700-pixel window
    trace = trace_neurons(tiny_lstm(tokenizer.vocab_size), tokenizer, long_text)
    path = tmp_path / "page.html"
    path.write_text(neuron_page(trace), encoding="utf-8")
    with playwright.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium, args=["--no-sandbox"])
        try:
            page = browser.new_page(viewport={"width": 700, "height": 400})
            page.goto(path.as_uri())
            assert page.evaluate("document.body.scrollHeight") > 2 * 400  # the text runs far below the window
            last = page.locator("#text span").last
            last.scroll_into_view_if_needed()
            last.hover()
            info = page.locator("#info")
            assert f"position {len(trace.tokens) - 1}" in info.inner_text()
            box = info.bounding_box()
            assert box is not None and 0 <= box["y"] and box["y"] + box["height"] <= 400
            assert 0 <= box["x"] and box["x"] + box["width"] <= 700
            low, high = page.locator("#low").inner_text(), page.locator("#high").inner_text()
            assert float(low) < 0 < float(high) and float(high) == pytest.approx(-float(low))
        finally:
            browser.close()
