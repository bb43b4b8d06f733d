"""The `seqlab inspect` page and figures (seqlab.inspect.page, seqlab.inspect.report): one
self-contained file whose embedded data decodes back to the trace, views only where they apply,
512 tokens × 16 heads in a compact page that renders in headless Chromium without errors."""

import base64
import json
import re
import shutil

import numpy as np
import pytest
import torch

from seqlab.config.schema import ModelConfig
from seqlab.inspect import trace
from seqlab.inspect.page import feature_units, inspect_page, page_data, text_features
from seqlab.inspect.report import Inspection, write_figures
from seqlab.models import HMM, NGramLM, TransformerLM

TEXT = 'say "hi" (to me)\nand "bye" </script>'


def embedded(page: str) -> dict:
    return json.loads(re.search(r"const D = (.*);\nconst app", page).group(1).replace("<\\/", "</"))


def tiny_gpt(n_head=2, block_size=64, d_model=16, n_layer=2):
    torch.manual_seed(0)
    return TransformerLM(ModelConfig(n_layer=n_layer, n_head=n_head, d_model=d_model, block_size=block_size), 128).eval()


def test_page_is_self_contained_and_its_data_decodes_to_the_trace():
    ids = [ord(c) for c in TEXT]
    t = trace(tiny_gpt(), ids)
    page = inspect_page(t, list(TEXT), title="t <1>", top_strings=[chr(i) for i in range(128)])
    assert "<title>t &lt;1&gt;</title>" in page and page.count("</script>") == 1
    assert not re.search(r"(src|href)=\"?https?:", page) and "cdn" not in page.lower()
    data = embedded(page)
    assert data["tokens"] == list(TEXT) and data["surprisal"][0] is None
    a = data["attention"]["self"]
    assert (a["L"], a["H"], a["T"], a["S"], a["causal"]) == (2, 2, len(ids), len(ids), True)
    q = np.frombuffer(base64.b64decode(a["q"]), np.uint8).reshape(2, 2, -1)  # the lower triangles
    w = t.attention["self"].numpy()
    rows, cols = np.tril_indices(len(ids))
    np.testing.assert_allclose(q / 255, w[:, :, rows, cols], atol=0.5 / 255 + 1e-6)
    assert data["hmm"] is None and data["ngram"] is None  # views that do not apply are absent
    names = [n["name"] for n in data["neurons"]]
    assert names == list(t.activations)


def test_feature_units_find_a_unit_that_tracks_the_position_in_the_line():
    tokens = list("ab cd\nefg h\nij")
    features = text_features(tokens)
    assert features["position in line"].tolist() == [0, 1, 2, 3, 4, 5, 0, 1, 2, 3, 4, 5, 0, 1]
    assert features["inside quotes"].sum() == 0
    acts = torch.randn(len(tokens), 6, generator=torch.Generator().manual_seed(0))
    acts[:, 4] = torch.tensor(features["position in line"]) * 0.3 - 1  # unit 4 counts the column
    best = feature_units(acts, features)["position in line"][0]
    assert best["unit"] == 4 and best["r"] == pytest.approx(1.0)
    quoted = text_features(list('a "b c" d'))["inside quotes"].tolist()
    assert quoted == [0, 0, 1, 1, 1, 1, 1, 0, 0]


def test_counted_models_get_their_own_views():
    ids = [1, 2, 3, 1, 2, 0, 3]
    data = np.random.default_rng(0).integers(0, 4, 300)
    hmm = HMM(3, 4, seed=0, numerics="reference").fit([data], n_iter=3)
    for model, probe, view in ((hmm, "trellis", "hmm"), (NGramLM(3, 4).fit(data), "backoff", "ngram")):
        d = page_data(trace(model, ids, probes=[probe]), [str(i) for i in ids])
        assert d["attention"] == {} and d["neurons"] == []
        assert [key for key in ("hmm", "ngram") if d[key] is not None] == [view]


def test_figures(tmp_path):
    """One PNG per view: a one-layer Transformer's, and an HMM's trellis."""
    t = trace(tiny_gpt(n_layer=1), [ord(c) for c in TEXT], probes=["attention", "neurons"])
    written = write_figures(Inspection(t, list(TEXT)), tmp_path / "gpt")
    assert {p.name for p in written} == {"surprisal.png", "attention-self.png", "attention-self-head.png",
                                         "neurons-layer0.mlp.png"}
    hmm = HMM(3, 4, seed=0, numerics="reference").fit([np.random.default_rng(0).integers(0, 4, 300)], n_iter=3)
    written += write_figures(Inspection(trace(hmm, [1, 2, 3, 1], probes=["trellis"]), list("abca")), tmp_path / "hmm")
    assert written[-1].name == "hmm-trellis.png"
    assert all(p.read_bytes()[:4] == b"\x89PNG" for p in written)


def test_512_tokens_and_16_heads_make_a_compact_page_that_renders(tmp_path):
    model = tiny_gpt(n_head=16, block_size=512, d_model=32, n_layer=1)
    ids = torch.randint(0, 128, (512,), generator=torch.Generator().manual_seed(0)).tolist()
    page = inspect_page(trace(model, ids), [chr(32 + i % 90) for i in ids], top_strings=[chr(i) for i in range(128)])
    # 16 heads' lower triangles of 131,328 bytes, in base64, are most of it
    assert len(page.encode()) < 4_000_000
    if shutil.which("chromium") is None:
        pytest.skip("no chromium on this machine: the page was not rendered (apt-get install chromium)")
    playwright = pytest.importorskip("playwright.sync_api")
    path = tmp_path / "page.html"
    path.write_text(page, encoding="utf-8")
    with playwright.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=shutil.which("chromium"), args=["--no-sandbox"])
        try:
            tab = browser.new_page()
            errors = []
            tab.on("pageerror", lambda e: errors.append(str(e)))
            tab.goto(path.as_uri())
            assert tab.locator("#model-view canvas").count() == 16
            tab.locator("#model-view .thumb").nth(5).click()  # enlarge layer 0 head 5
            assert tab.locator("#attn-head").input_value() == "5" and tab.locator("#attn-mode").input_value() == "matrix"
            assert errors == []
        finally:
            browser.close()
