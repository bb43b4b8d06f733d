"""`seqlab serve` in a real browser: Playwright drives Chromium (Debian's /usr/bin/chromium) over the
page served by uvicorn on a free port. The tests type, move the temperature slider, set top-k and
top-p, generate (streamed, step by step, stopped), switch and compare runs, open the traced views,
and check the numbers the page shows against the library (`seqlab.load`, `seqlab sample`,
`seqlab.inspect.trace`).

Chromium: /usr/bin/chromium (or `chromium` on PATH); where it is missing the set-up installs it with
`apt-get install -y chromium` when it runs as root with apt-get, and otherwise skips with the reason.

SEQLAB_SCREENSHOTS=1 saves a screenshot of each view as docs/serve-VIEW.png (nothing is written
outside tmp_path otherwise). SEQLAB_SERVE_RUNS=DIR,DIR,... serves those runs instead of the tiny
ones (one per family; the tests of a family with no run there skip), e.g. to take the screenshots
of trained models.
"""

import os
import shutil
import subprocess
import threading
from pathlib import Path

import pytest
import torch

import seqlab
from seqlab.cli import main
from seqlab.runs import read_config
from seqlab.serve import create_app, load_runs
from seqlab.serve.server import listen

sync_api = pytest.importorskip("playwright.sync_api", reason="Playwright for Python is not installed "
                                                             "(pip install playwright)")
expect = sync_api.expect

DOCS = Path(__file__).resolve().parents[2] / "docs"
PROMPT = "to be "


def find_chromium() -> str | None:
    for candidate in ("/usr/bin/chromium", shutil.which("chromium"), shutil.which("chromium-browser")):
        if candidate and os.access(candidate, os.X_OK):
            return candidate
    return None


@pytest.fixture(scope="session")
def chromium() -> str:
    """The Chromium executable, installed with apt-get when missing and possible; else a skip."""
    path = find_chromium()
    if path is None:
        if os.geteuid() != 0 or shutil.which("apt-get") is None:
            pytest.skip("Chromium is not installed (/usr/bin/chromium) and cannot be installed here: "
                        "apt-get install -y chromium needs root and apt-get")
        env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
        try:  # a fresh machine may have no package lists yet: update first
            subprocess.run(["apt-get", "update", "-q"], check=True, capture_output=True, timeout=600, env=env)
            subprocess.run(["apt-get", "install", "-y", "-q", "chromium"], check=True, capture_output=True,
                           timeout=900, env=env)
        except (subprocess.SubprocessError, OSError) as exc:
            pytest.skip(f"Chromium is not installed and `apt-get install -y chromium` failed: {exc}")
        path = find_chromium()
        if path is None:
            pytest.skip("`apt-get install -y chromium` ran but no chromium executable was found")
    return path


@pytest.fixture(scope="module")
def runs(tiny_runs) -> dict[str, Path]:
    """family -> run directory: SEQLAB_SERVE_RUNS's runs when given, else the tiny runs."""
    given = os.environ.get("SEQLAB_SERVE_RUNS")
    if not given:
        return dict(tiny_runs)
    chosen = {}
    for path in (Path(p) for p in given.split(",") if p):
        chosen.setdefault(read_config(path).model.family, path)
    return chosen


@pytest.fixture(scope="module")
def server(runs):
    """(base URL, {family: run index}) of uvicorn serving `runs` from a thread."""
    import uvicorn

    families = list(runs)
    app = create_app(load_runs([runs[f] for f in families]), allowed_hosts=("127.0.0.1",))
    sock = listen("127.0.0.1", 0)
    srv = uvicorn.Server(uvicorn.Config(app, log_level="warning", access_log=False))
    thread = threading.Thread(target=srv.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    for _ in range(500):
        if srv.started:
            break
        thread.join(0.02)
    assert srv.started, "uvicorn did not start"
    yield f"http://127.0.0.1:{sock.getsockname()[1]}", {f: i for i, f in enumerate(families)}
    srv.should_exit = True
    thread.join(10)
    sock.close()


@pytest.fixture(scope="module")
def browser(chromium):
    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=chromium)
        yield browser
        browser.close()


@pytest.fixture
def page(browser, server):
    """A fresh page of the app, loaded and ready; fails the test on any script error or console error."""
    url, _ = server
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    page = context.new_page()
    problems = []
    page.on("pageerror", lambda exc: problems.append(f"page error: {exc}"))
    # A refused request (422) is one the tests make on purpose; any other console error is a fault.
    page.on("console", lambda msg: problems.append(f"console {msg.type}: {msg.text}")
            if msg.type == "error" and "status of 422" not in msg.text else None)
    page.goto(url + "/")
    page.locator("body[data-ready='1']").wait_for()
    yield page
    context.close()
    assert not problems, problems


def shoot(page, name: str, selector: str | None = None) -> None:
    """docs/serve-NAME.png, only with SEQLAB_SCREENSHOTS=1."""
    if os.environ.get("SEQLAB_SCREENSHOTS") == "1":
        target = page.locator(selector) if selector else page
        target.screenshot(path=str(DOCS / f"serve-{name}.png"))


def need(runs, server, family):
    if family not in runs:
        pytest.skip(f"no {family} run is served (SEQLAB_SERVE_RUNS)")
    return server[1][family]


def choose_run(page, index: int) -> None:
    page.select_option("#run", str(index))
    expect(page.locator("#columns .column").first).to_have_attribute("data-run", str(index))


def type_text(page, text: str) -> None:
    page.locator("#text").fill("")
    page.locator("#text").press_sequentially(text)
    expect(page.locator("#columns")).to_have_attribute("data-text", text)


def set_knobs(page, *, temperature=None, top_k=None, top_p=None) -> None:
    if top_k is not None:
        page.locator("#top-k").fill(str(top_k))
    if top_p is not None:
        page.locator("#top-p").fill(str(top_p))
    if temperature is not None:
        page.locator("#temperature").fill(str(temperature))  # a range input: value set, input event sent


def bars(page, column: int = 0) -> list[dict]:
    """The bars of a column as the page shows them: token id, shown number, data-p, kept."""
    rows = page.locator("#columns .column").nth(column).locator(".bar")
    return rows.evaluate_all("""rows => rows.map(r => ({id: Number(r.dataset.id), p: Number(r.dataset.p),
        shown: Number(r.querySelector('.num').textContent), kept: r.dataset.kept === 'true'}))""")


def library_probs(run_dir, text: str, temperature: float) -> torch.Tensor:
    model, tokenizer = seqlab.load(run_dir)
    ids = tokenizer.encode(text)[-(model.block_size or 10**9):]
    with torch.inference_mode():
        logits, _ = model.step(torch.tensor([ids]), None)
    return torch.softmax(logits[0].double() / temperature, dim=-1)


def test_typing_and_the_temperature_slider_show_softmax_over_t(page, runs, server):
    index = need(runs, server, "transformer")
    choose_run(page, index)
    page.locator("#bars").select_option("100")
    set_knobs(page, top_k=0, top_p=1)
    type_text(page, PROMPT)
    for temperature in (0.25, 1, 4):
        set_knobs(page, temperature=temperature)
        meta = page.locator("#columns .column").first.locator(".meta")
        expect(meta).to_contain_text(f"T = {temperature:.2f}")
        expect(page.locator("#beta")).to_have_text(f"{1 / temperature:.2f}")
        expect(meta).to_contain_text(f"β = {1 / temperature:.2f}")
        expected = library_probs(runs["transformer"], PROMPT, temperature)
        shown = bars(page)
        assert len(shown) == min(100, expected.shape[0])
        for bar in shown:  # the page's numbers, 4 decimals, and the exact values behind them
            assert abs(bar["shown"] - expected[bar["id"]].item()) <= 1e-4 / 2 + 1e-9
            assert abs(bar["p"] - expected[bar["id"]].item()) < 1e-6
        if temperature == 1:
            shoot(page, "distribution", "#columns")
    tokens = page.locator("#columns .column").first.locator(".tokens .tok")
    expect(tokens).to_have_count(len(seqlab.load(runs["transformer"])[1].encode(PROMPT)))
    shoot(page, "tokens", "#controls")


def test_top_k_and_top_p_grey_out_what_they_remove(page, runs, server):
    index = need(runs, server, "ngram")
    choose_run(page, index)
    page.locator("#bars").select_option("100")
    type_text(page, PROMPT)
    set_knobs(page, temperature=1, top_p=1, top_k=5)
    expect(page.locator("#columns .column").first.locator(".meta")).to_contain_text("kept 5 of")
    shown = bars(page)
    assert sum(b["p"] > 0 for b in shown) == 5 and [b["kept"] for b in shown[:5]] == [True] * 5
    assert page.locator("#columns .column").first.locator(".bar.removed").count() == len(shown) - 5
    set_knobs(page, top_k=0, top_p=0.5)
    expect(page.locator("#top-p-value")).to_have_text("0.50")
    expect(page.locator("#columns .column").first.locator(".meta")).not_to_contain_text("kept 5 of")
    probs = library_probs(runs["ngram"], PROMPT, 1.0)
    order = torch.sort(probs, descending=True, stable=True).indices.tolist()
    need_n = next(n for n in range(1, len(order) + 1) if probs[order[:n]].sum() >= 0.5)
    expect(page.locator("#columns .column").first.locator(".meta")).to_contain_text(f"kept {need_n} of")
    kept = [b["id"] for b in bars(page) if b["kept"]]
    assert kept == order[:need_n]
    shoot(page, "filters", "#columns")


def test_streamed_and_stepped_generation_equal_seqlab_sample(page, runs, server, capsys):
    index = need(runs, server, "lstm")
    choose_run(page, index)
    type_text(page, PROMPT)
    set_knobs(page, temperature=1.2, top_k=9, top_p=0.9)
    page.locator("#seed").fill("21")
    page.locator("#max-new").fill("30")
    page.click("#stream")
    expect(page.locator("#gen-output")).to_have_attribute("data-done", "1")
    streamed = page.locator("#gen-output").text_content()
    assert main(["sample", str(runs["lstm"]), "--prompt", PROMPT, "--max-new-tokens", "30", "--temperature", "1.2",
                 "--top-k", "9", "--top-p", "0.9", "--seed", "21"]) == 0
    assert streamed + "\n" == capsys.readouterr().out
    shoot(page, "generate", "#view-generate")
    for n in range(1, 4):  # step by step: the first n tokens of the same seeded sample
        page.click("#step")
        expect(page.locator("#gen-status")).to_contain_text(f"step {n}:")
    assert streamed.startswith(page.locator("#gen-output").text_content())
    assert len(page.locator("#gen-output").text_content()) > len(PROMPT)
    assert page.locator("#gen-step .bar").count() >= 1
    shoot(page, "step", "#view-generate")


def test_the_stop_button_ends_a_generation(page, runs, server):
    index = need(runs, server, "transformer")
    choose_run(page, index)
    type_text(page, PROMPT)
    page.locator("#max-new").fill("2000")
    page.click("#stream")
    page.click("#stop-button")  # enabled as soon as the stream starts
    expect(page.locator("#gen-output")).to_have_attribute("data-done", "stopped")
    expect(page.locator("#gen-status")).to_contain_text("stopped after")
    assert page.locator("#gen-output .new").count() < 2000
    expect(page.locator("#stream")).to_be_enabled()


def test_switching_and_comparing_runs(page, runs, server):
    _, index = server
    lms = [f for f in ("ngram", "lstm", "transformer") if f in runs]
    if len(lms) < 2:
        pytest.skip("comparing needs two language-model runs")
    choose_run(page, index[lms[0]])
    for family in lms[1:]:
        page.check(f"#compare-{index[family]}")
    expect(page.locator("#columns .column")).to_have_count(len(lms))
    type_text(page, PROMPT)
    set_knobs(page, temperature=1, top_k=0, top_p=1)
    # the chosen run's column first, then the compared ones in the order they are served
    for column, family in enumerate([lms[0], *sorted(lms[1:], key=lambda f: index[f])]):
        col = page.locator("#columns .column").nth(column)
        expect(col.locator("h2")).to_contain_text(Path(runs[family]).name)
        expect(col.locator(".bars")).to_have_attribute("data-text", PROMPT)
        expected = library_probs(runs[family], PROMPT, 1.0)
        expect(col.locator(".meta")).to_contain_text("T = 1.00")
        for bar in bars(page, column)[:10]:
            assert abs(bar["p"] - expected[bar["id"]].item()) < 1e-6
    shoot(page, "compare")
    choose_run(page, index[lms[1]])  # the chosen run's column comes first
    expect(page.locator("#columns .column").first.locator("h2")).to_contain_text(Path(runs[lms[1]]).name)


def test_attention_view_shows_the_traced_weights(page, runs, server):
    from seqlab.inspect import trace

    index = need(runs, server, "transformer")
    choose_run(page, index)
    type_text(page, PROMPT)
    page.click("button[data-view=attention]")
    expect(page.locator("#att-row table tr[data-key]").first).to_be_visible()
    model, tokenizer = seqlab.load(runs["transformer"])
    ids = tokenizer.encode(PROMPT)
    weights = trace(model, ids).attention["self"]  # (L, H, T, T)
    assert page.locator("#att-thumbs canvas").count() == weights.shape[0] * weights.shape[1]
    page.locator(f"#att-thumbs canvas[data-layer='{weights.shape[0] - 1}'][data-head='1']").click()
    readout = page.locator("#att-row")
    expect(readout).to_have_attribute("data-layer", str(weights.shape[0] - 1))
    expect(readout).to_have_attribute("data-head", "1")
    row = weights[-1, 1, len(ids) - 1]
    shown = readout.locator("tr[data-key]").evaluate_all("rows => rows.map(r => [Number(r.dataset.key), "
                                                         "Number(r.dataset.weight)])")
    assert len(shown) == min(8, len(ids))
    for key, weight in shown:
        assert abs(weight - row[key].item()) < 1e-4
    shoot(page, "attention", "#view-attention")


def test_neurons_view_colours_the_traced_units(page, runs, server):
    from seqlab.inspect import trace

    index = need(runs, server, "lstm")
    choose_run(page, index)
    type_text(page, PROMPT)
    page.click("button[data-view=neurons]")
    expect(page.locator("#neuron-text .tok")).to_have_count(len(PROMPT))
    layer = page.locator("#neuron-layer").input_value()
    unit = int(page.locator("#neuron-text").get_attribute("data-unit"))
    model, tokenizer = seqlab.load(runs["lstm"])
    acts = trace(model, tokenizer.encode(PROMPT)).activations[layer]  # (T, U)
    assert unit == int(acts.std(dim=0).argmax())  # the most varying unit first
    values = page.locator("#neuron-text .tok").evaluate_all("spans => spans.map(s => Number(s.dataset.value))")
    torch.testing.assert_close(torch.tensor(values), acts[:, unit], atol=1e-3, rtol=0)
    page.click("#neuron-next")
    expect(page.locator("#neuron-status")).to_contain_text("rank 2")
    shoot(page, "neurons", "#view-neurons")


def test_trellis_view_draws_the_viterbi_path(page, runs, server):
    from seqlab.inspect import trace

    index = need(runs, server, "hmm")
    choose_run(page, index)
    type_text(page, PROMPT)
    page.click("button[data-view=trellis]")
    model, tokenizer = seqlab.load(runs["hmm"])
    path = trace(model, tokenizer.encode(PROMPT)).hmm["viterbi"].tolist()
    expect(page.locator("#trellis")).to_have_attribute("data-viterbi", ",".join(map(str, path)))
    shoot(page, "trellis", "#view-trellis")
    if "ngram" in runs:
        choose_run(page, server[1]["ngram"])
        expect(page.locator("#ngram tr[data-order]")).to_have_count(len(tokenizer.encode(PROMPT)))
        orders = trace(seqlab.load(runs["ngram"])[0], tokenizer.encode(PROMPT)).ngram["order"].tolist()
        assert page.locator("#ngram tr[data-order]").evaluate_all("rows => rows.map(r => Number(r.dataset.order))") == orders
        shoot(page, "ngram", "#view-trellis")


def test_translate_view_shows_the_translation_and_its_alignment(page, runs, server, capsys):
    index = need(runs, server, "encoder_decoder")
    source = "abcd"
    choose_run(page, index)
    expect(page.locator("button[data-view=translate]")).to_have_class("active")
    page.locator("#text").fill(source)
    page.click("#translate")
    expect(page.locator("#translate-status")).to_contain_text("alignment of")
    assert main(["translate", str(runs["encoder_decoder"]), source]) == 0
    assert page.locator("#translation").text_content() + "\n" == capsys.readouterr().out
    assert page.locator("#align-map option").count() >= 1
    assert page.locator("#align").evaluate("c => c.width") > 0
    shoot(page, "translate", "#view-translate")


def test_every_view_reports_a_bad_input_in_the_page(page, runs, server):
    index = need(runs, server, "lstm")  # a char vocabulary without byte fallback
    choose_run(page, index)
    page.locator("#text").fill("€")  # outside its vocabulary: a 422 the column shows, not a broken page
    error = page.locator("#columns .column").first.locator(".error")
    expect(error).to_be_visible()
    expect(error).to_contain_text("cannot encode")
    type_text(page, PROMPT)  # and the page goes on once the text is one it can encode
    expect(error).to_be_hidden()
