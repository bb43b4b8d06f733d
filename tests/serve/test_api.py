"""`seqlab serve`'s JSON endpoints against the library: the bars are softmax(logits / T) of the model
`seqlab.load` reads, the filters keep what `seqlab.generate` keeps, a seeded generation is the
`seqlab sample` one token for token (every family), traces are `seqlab.inspect.trace`'s; and every
bad request is a 4xx JSON answer (the test client re-raises any exception a handler lets escape,
so a 500 fails the test)."""

import asyncio
import json
import math

import pytest
import torch
from starlette.testclient import TestClient

import seqlab
from seqlab import families
from seqlab.cli import main
from seqlab.serve import create_app, load_runs, views
from seqlab.serve.app import LOOPBACK_HOSTS
from seqlab.serve.inputs import MAX_BODY_BYTES, MAX_TEXT_CHARS
from seqlab.serve.runs import unique_names
from tests.serve.conftest import WITHOUT_BYTE_FALLBACK

SERVED = [f for f, entry in families.FAMILIES.items() if getattr(entry, "language_model", True)]
LM_FAMILIES = [f for f in SERVED if not families.get(f).reads_pairs]
SEQ2SEQ = [f for f in SERVED if families.get(f).reads_pairs]
PROMPT = "to be "


@pytest.fixture(scope="module")
def served(tiny_runs):
    """(client, {family: index}) over one app serving every tiny run."""
    names = list(tiny_runs)
    app = create_app(load_runs([tiny_runs[f] for f in names]))
    with TestClient(app) as client:
        yield client, {family: i for i, family in enumerate(names)}


def post(client, path, body):
    response = client.post(path, json=body)
    assert response.status_code == 200, response.text
    return response.json()


def reference_logits(run_dir, text):
    """The next-token logits (V,) after `text` from the model `seqlab.load` reads, by the contract."""
    model, tokenizer = seqlab.load(run_dir)
    ids = tokenizer.encode(text)[-(model.block_size or 10**9):]
    with torch.inference_mode():
        logits, _ = model.step(torch.tensor([ids]), None)  # the recompute path: no state
    return logits[0].float(), tokenizer


def test_runs_are_listed_by_index_and_name(served, tiny_runs):
    client, index = served
    runs = client.get("/api/runs").json()["runs"]
    assert [r["index"] for r in runs] == list(range(len(tiny_runs)))
    assert [r["family"] for r in runs] == list(tiny_runs)
    assert [r["name"] for r in runs] == list(tiny_runs)  # the run directories' names
    by_name = post(client, "/api/distribution", {"run": "lstm", "text": PROMPT})
    assert by_name == post(client, "/api/distribution", {"run": index["lstm"], "text": PROMPT})


@pytest.mark.parametrize("temperature", [0.25, 1.0, 4.0])
@pytest.mark.parametrize("family", ["ngram", "hmm", "lstm", "transformer", "wavenet"])
def test_bars_are_softmax_of_logits_over_temperature(served, tiny_runs, family, temperature):
    client, index = served
    logits, tokenizer = reference_logits(tiny_runs[family], PROMPT)
    V = logits.shape[0]
    d = post(client, "/api/distribution", {"run": index[family], "text": PROMPT, "temperature": temperature,
                                            "top_k": 0, "top_p": 1.0, "bars": V})
    expected = torch.softmax(logits.double() / temperature, dim=-1)
    ids = torch.tensor([b["id"] for b in d["bars"]])
    assert sorted(ids.tolist()) == list(range(V))
    torch.testing.assert_close(torch.tensor([b["p"] for b in d["bars"]], dtype=torch.float64), expected[ids],
                               atol=1e-6, rtol=0)
    torch.testing.assert_close(torch.tensor([b["p_temperature"] for b in d["bars"]], dtype=torch.float64),
                               expected[ids], atol=1e-6, rtol=0)
    # kept: every token of nonzero probability (an HMM gives the byte tokens it never saw none)
    assert d["beta"] == pytest.approx(1 / temperature) and d["kept"] == int((expected > 0).sum())
    assert all(a["p_temperature"] >= b["p_temperature"] for a, b in zip(d["bars"], d["bars"][1:]))


@pytest.mark.parametrize("family", ["ngram", "transformer"])
def test_top_k_leaves_exactly_k_bars(served, tiny_runs, family):
    client, index = served
    logits, _ = reference_logits(tiny_runs[family], PROMPT)
    d = post(client, "/api/distribution", {"run": index[family], "text": PROMPT, "temperature": 1.0, "top_k": 5,
                                            "top_p": 1.0, "bars": logits.shape[0]})
    nonzero = [b for b in d["bars"] if b["p"] > 0]
    assert len(nonzero) == 5 and d["kept"] == 5 and [b["kept"] for b in d["bars"]].count(True) == 5
    assert nonzero == d["bars"][:5]  # the five most probable
    assert set(b["id"] for b in nonzero) == set(torch.topk(logits, 5).indices.tolist())
    kept = torch.softmax(logits.double()[[b["id"] for b in nonzero]], dim=-1)  # renormalised among the five
    torch.testing.assert_close(torch.tensor([b["p"] for b in nonzero], dtype=torch.float64), kept, atol=1e-6, rtol=0)


@pytest.mark.parametrize("top_p", [0.3, 0.6, 0.9])
@pytest.mark.parametrize("family", ["ngram", "hmm", "transformer"])
def test_top_p_keeps_the_smallest_set_reaching_p(served, tiny_runs, family, top_p):
    client, index = served
    logits, _ = reference_logits(tiny_runs[family], PROMPT)
    d = post(client, "/api/distribution", {"run": index[family], "text": PROMPT, "temperature": 1.0, "top_k": 0,
                                            "top_p": top_p, "bars": logits.shape[0]})
    probs = torch.softmax(logits.double(), dim=-1)
    order = torch.sort(probs, descending=True, stable=True).indices.tolist()
    need = next(n for n in range(1, len(order) + 1) if probs[order[:n]].sum() >= top_p - 1e-6)
    kept = [b["id"] for b in d["bars"] if b["kept"]]
    assert kept == order[:need]  # the most probable first, and no more than needed
    assert sum(b["p_temperature"] for b in d["bars"] if b["kept"]) == pytest.approx(d["kept_mass"], abs=1e-6)
    assert d["kept_mass"] >= top_p - 1e-6
    assert all(b["p"] == 0 for b in d["bars"] if not b["kept"])
    assert sum(b["p"] for b in d["bars"]) == pytest.approx(1.0, abs=1e-5)


def test_greedy_temperature_keeps_the_argmax(served, tiny_runs):
    client, index = served
    logits, _ = reference_logits(tiny_runs["transformer"], PROMPT)
    d = post(client, "/api/distribution", {"run": index["transformer"], "text": PROMPT, "temperature": 0,
                                            "bars": 3})
    assert d["beta"] is None and d["kept"] == 1
    assert d["bars"][0] == {**d["bars"][0], "id": int(logits.argmax()), "p": 1.0}


def _cli_sample(capsys, run_dir, args) -> str:
    assert main(["sample", str(run_dir), *args]) == 0
    return capsys.readouterr().out


@pytest.mark.parametrize("family", LM_FAMILIES)
def test_seeded_generation_is_seqlab_sample_token_for_token(served, tiny_runs, capsys, family):
    client, index = served
    settings = {"temperature": 1.3, "top_k": 7, "top_p": 0.95, "seed": 11}
    body = {"run": index[family], "prompt": PROMPT, "max_new_tokens": 24, **settings}
    whole = post(client, "/api/generate", body)
    cli = _cli_sample(capsys, tiny_runs[family], ["--prompt", PROMPT, "--max-new-tokens", "24", "--temperature", "1.3",
                                                  "--top-k", "7", "--top-p", "0.95", "--seed", "11"])
    assert whole["text"] + "\n" == cli
    model, tokenizer = seqlab.load(tiny_runs[family])
    ids = torch.tensor([tokenizer.encode(PROMPT)])
    expected = model.generate(ids, 24, **settings)[0, ids.shape[1]:].tolist()
    assert [t["id"] for t in whole["tokens"]] == expected
    streamed = _stream(client, body)
    assert [e["id"] for e in streamed if e["type"] == "token"] == expected
    done = streamed[-1]
    assert {k: done[k] for k in ("type", "finished", "count")} == {"type": "done", "finished": "length", "count": 24}
    # The done event carries what is left of a character the last byte tokens did not finish.
    assert "".join(e["text"] for e in streamed if e["type"] == "token") + done["text"] == whole["completion"]


def test_run_defaults_and_stop_string_are_seqlab_samples(served, tiny_runs, capsys):
    client, index = served
    body = {"run": index["transformer"], "prompt": PROMPT, "max_new_tokens": 40}  # the rest: the run's [sample]
    free = post(client, "/api/generate", body)
    assert free["text"] + "\n" == _cli_sample(capsys, tiny_runs["transformer"], ["--prompt", PROMPT, "--max-new-tokens",
                                                                                  "40"])
    stop = free["completion"][10:12]  # met after 12 tokens at the latest
    whole = post(client, "/api/generate", {**body, "stop": stop})
    cli = _cli_sample(capsys, tiny_runs["transformer"], ["--prompt", PROMPT, "--max-new-tokens", "40", "--stop", stop])
    assert whole["text"] + "\n" == cli
    end = free["completion"].find(stop) + len(stop)
    assert whole["finished"] == "stop" and whole["completion"] == free["completion"][:end]


def test_empty_prompt_starts_as_seqlab_sample(served, tiny_runs, capsys):
    client, index = served
    whole = post(client, "/api/generate", {"run": index["lstm"], "max_new_tokens": 10, "seed": 5})
    assert whole["text"] + "\n" == _cli_sample(capsys, tiny_runs["lstm"], ["--max-new-tokens", "10", "--seed", "5"])


def _stream(client, body) -> list[dict]:
    events = []
    with client.stream("POST", "/api/generate/stream", json=body) as response:
        assert response.status_code == 200 and response.headers["content-type"].startswith("text/event-stream")
        for line in response.iter_lines():
            if line.startswith("data: "):
                events.append(json.loads(line[6:]))
    return events


def test_step_probabilities_are_the_drawn_distribution(served, tiny_runs):
    """Each generated token comes with p, its probability under the filtered distribution it was
    drawn from: for the first token, the distribution endpoint's bar of that token."""
    client, index = served
    settings = {"temperature": 0.7, "top_k": 4, "top_p": 0.9}
    first = post(client, "/api/generate", {"run": index["gru"], "prompt": PROMPT, "max_new_tokens": 1, "seed": 2,
                                           "top": 4, **settings})["tokens"][0]
    bars = post(client, "/api/distribution", {"run": index["gru"], "text": PROMPT, "bars": 50, **settings})["bars"]
    p = {b["id"]: b["p"] for b in bars}
    assert first["p"] == pytest.approx(p[first["id"]], abs=1e-6)
    assert [(t["id"], t["p"]) for t in first["top"]] == [(b["id"], pytest.approx(b["p"], abs=1e-6))
                                                          for b in bars if b["p"] > 0][:4]


@pytest.mark.parametrize("family", SEQ2SEQ)
def test_translation_is_seqlab_sample_and_has_its_alignment(served, tiny_runs, capsys, family):
    client, index = served
    d = post(client, "/api/translate", {"run": index[family], "text": "abcd", "max_new_tokens": 8})
    assert d["output"] + "\n" == _cli_sample(capsys, tiny_runs[family], ["--prompt", "abcd", "--max-new-tokens", "8",
                                                                         "--temperature", "0"])
    sampled = post(client, "/api/translate", {"run": index[family], "text": "abcd", "max_new_tokens": 8,
                                              "temperature": 1.5, "seed": 4})
    assert sampled["output"] + "\n" == _cli_sample(capsys, tiny_runs[family], [  # a translation's default: unfiltered
        "--prompt", "abcd", "--max-new-tokens", "8", "--temperature", "1.5", "--seed", "4", "--top-k", "0"])
    alignment = d["alignment"]
    assert alignment["maps"] and d["source_tokens"] == list("abcd")
    for weights in alignment["maps"].values():
        w = torch.tensor(weights)  # (T, S): one row per target token, over the source
        assert w.shape == (len(alignment["target_tokens"]), 4)
        torch.testing.assert_close(w.sum(-1), torch.ones(w.shape[0]), atol=1e-3, rtol=0)


def test_tokens_and_surprisal_are_the_models(served, tiny_runs):
    client, index = served
    model, tokenizer = seqlab.load(tiny_runs["transformer"])
    text = "to be or not to be that is the question whether tis nobler in the "  # longer than block_size 32
    d = post(client, "/api/tokens", {"run": index["transformer"], "text": text})
    ids = tokenizer.encode(text)
    assert [t["id"] for t in d["tokens"]] == ids and "".join(t["text"] for t in d["tokens"]) == text
    assert d["tokens"][0]["surprisal"] is None
    block = model.block_size
    with torch.inference_mode():
        for t in range(1, len(ids)):
            # scored after at least half a window of context (all of it within the first window)
            options = [-model.token_log_probs(torch.tensor([ids[t - c:t + 1]]))[0, -1].item() / math.log(2)
                       for c in ([t] if t < block else range(block // 2, block))]
            assert min(abs(d["tokens"][t]["surprisal"] - o) for o in options) < 1e-4, t
    first = -model.token_log_probs(torch.tensor([ids[:block]]))[0] / math.log(2)
    torch.testing.assert_close(torch.tensor([t["surprisal"] for t in d["tokens"][1:block]]), first,
                               atol=1e-5, rtol=0)


def test_trace_is_seqlab_inspect_trace(served, tiny_runs):
    from seqlab.inspect import trace

    client, index = served
    model, tokenizer = seqlab.load(tiny_runs["transformer"])
    ids = tokenizer.encode(PROMPT)
    d = post(client, "/api/trace", {"run": index["transformer"], "text": PROMPT, "top": 3})
    expected = trace(model, ids)
    attention = torch.tensor(d["attention"]["self"])  # (L, H, T, T)
    assert attention.shape == (2, 2, len(ids), len(ids))
    torch.testing.assert_close(attention, expected.attention["self"], atol=1e-4, rtol=0)
    assert set(d["activations"]) == set(expected.activations)
    for name, layer in d["activations"].items():
        torch.testing.assert_close(torch.tensor(layer["values"]), expected.activations[name], atol=1e-3, rtol=0)
    assert d["surprisal"][0] is None
    torch.testing.assert_close(torch.tensor(d["surprisal"][1:]), expected.surprisal[1:], atol=1e-4, rtol=0)
    assert [t["id"] for t in d["top"][-1]] == expected.log_probs[-1].topk(3).indices.tolist()

    hmm = post(client, "/api/trace", {"run": index["hmm"], "text": PROMPT, "parts": ["hmm"]})
    reference = trace(seqlab.load(tiny_runs["hmm"])[0], ids)
    assert hmm["hmm"]["viterbi"] == reference.hmm["viterbi"].tolist() and "attention" not in hmm
    torch.testing.assert_close(torch.tensor(hmm["hmm"]["posteriors"]), reference.hmm["posteriors"], atol=1e-4, rtol=0)
    ngram = post(client, "/api/trace", {"run": index["ngram"], "text": PROMPT, "parts": ["ngram"]})
    assert ngram["ngram"]["order"] == trace(seqlab.load(tiny_runs["ngram"])[0], ids).ngram["order"].tolist()
    lstm = post(client, "/api/trace", {"run": index["lstm"], "text": PROMPT, "parts": ["activations"]})
    assert lstm["activations"] and "attention" not in lstm


# ---- bad requests: 4xx JSON, never a 500 ---------------------------------------------------------

BAD = [
    # (path, raw body or JSON, expected status)
    ("/api/distribution", b"{", 400),
    ("/api/distribution", b"\xff\xfe", 400),
    ("/api/distribution", b"[1, 2]", 400),
    ("/api/distribution", b'{"run": 0, "temperature": NaN}', 400),
    ("/api/distribution", b"[" * 20000 + b"]" * 20000, 400),
    ("/api/distribution", {"text": "x"}, 400),
    ("/api/distribution", {"run": 99}, 404),
    ("/api/distribution", {"run": "no-such-run"}, 404),
    ("/api/distribution", {"run": "../../etc/passwd"}, 404),
    ("/api/distribution", {"run": "/tmp"}, 404),
    ("/api/distribution", {"run": None}, 400),
    ("/api/distribution", {"run": True}, 400),
    ("/api/distribution", {"run": 0, "text": 5}, 400),
    ("/api/distribution", {"run": 0, "text": "x" * (MAX_TEXT_CHARS + 1)}, 413),
    ("/api/distribution", {"run": 0, "temperature": -1}, 400),
    ("/api/distribution", {"run": 0, "temperature": 1e9}, 400),
    ("/api/distribution", {"run": 0, "temperature": "hot"}, 400),
    ("/api/distribution", {"run": 0, "top_k": -1}, 400),
    ("/api/distribution", {"run": 0, "top_k": 2.5}, 400),
    ("/api/distribution", {"run": 0, "top_k": True}, 400),
    ("/api/distribution", {"run": 0, "top_p": 0}, 400),
    ("/api/distribution", {"run": 0, "top_p": 1.5}, 400),
    ("/api/distribution", {"run": 0, "bars": 0}, 400),
    ("/api/distribution", {"run": 0, "bars": 10**6}, 400),
    ("/api/distribution", {"run": 0, "path": "/etc"}, 400),
    ("/api/generate", {"run": 0, "max_new_tokens": 10**6}, 400),
    ("/api/generate", {"run": 0, "seed": 2**70}, 400),
    ("/api/generate", {"run": 0, "stop": "x" * 1000}, 413),
    ("/api/generate/stream", {"run": 0, "top_p": -0.5}, 400),
    ("/api/generate/stream", {"run": 0, "prompt": ["a"]}, 400),
    ("/api/trace", {"run": 0, "parts": ["weights"]}, 400),
    ("/api/trace", {"run": 0, "text": ""}, 400),
    ("/api/translate", {"run": 0}, 400),
    ("/api/tokens", {"run": 0, "text": "x" * (MAX_TEXT_CHARS + 1)}, 413),
]


@pytest.mark.parametrize("path, body, status", BAD)
def test_bad_requests_get_a_4xx_json_error(served, path, body, status):
    client, _ = served
    raw = body if isinstance(body, bytes) else json.dumps(body).encode()
    response = client.post(path, content=raw, headers={"content-type": "application/json"})
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/json"
    answer = response.json()
    assert set(answer) == {"error", "status"} and answer["status"] == status
    assert "Traceback" not in answer["error"] and "\n" not in answer["error"]


def test_requests_the_run_cannot_take_are_4xx(served):
    client, index = served
    cases = [
        ("/api/distribution", {"run": index[WITHOUT_BYTE_FALLBACK], "text": "€uro"}, 422),  # outside its vocabulary
        ("/api/generate", {"run": index[WITHOUT_BYTE_FALLBACK], "prompt": "\x00"}, 422),
        ("/api/distribution", {"run": index["encoder_decoder"], "text": "ab"}, 422),  # a seq2seq run
        ("/api/generate/stream", {"run": index["rnn_seq2seq"]}, 422),
        ("/api/translate", {"run": index["lstm"], "text": "ab"}, 422),  # a language model
        ("/api/translate", {"run": index["encoder_decoder"], "text": "a" * 100}, 413),  # beyond its context
        ("/api/trace", {"run": index["transformer"], "text": "to be " * 10}, 413),  # beyond block_size 32
    ]
    for path, body, status in cases:
        response = client.post(path, json=body)
        assert response.status_code == status and response.json()["status"] == status, (path, body, response.text)
    # A vocabulary with byte fallback spells the same text in bytes.
    assert client.post("/api/distribution", json={"run": index["transformer"], "text": "€uro"}).status_code == 200


def test_body_size_content_type_and_methods(served):
    client, _ = served
    big = b'{"run": 0, "text": "' + b"x" * MAX_BODY_BYTES + b'"}'
    assert client.post("/api/tokens", content=big, headers={"content-type": "application/json"}).status_code == 413
    form = client.post("/api/tokens", content=b'{"run": 0}', headers={"content-type": "text/plain"})
    assert form.status_code == 415 and "application/json" in form.json()["error"]  # no cross-site simple posts
    for method, path, status in [("GET", "/api/generate", 405), ("GET", "/nothing", 404), ("POST", "/api/runs", 405),
                                 ("GET", "/static/../../seqlab/cli.py", 404), ("GET", "/static/nothing.js", 404)]:
        response = client.request(method, path)
        assert response.status_code == status and response.json()["status"] == status


def test_page_and_static_files_are_served_with_a_strict_policy(served):
    client, _ = served
    page = client.get("/")
    assert page.status_code == 200 and "<textarea id=\"text\"" in page.text
    assert "default-src 'self'" in page.headers["content-security-policy"]
    assert "http" not in page.text.replace("http-equiv", "")  # nothing from another origin
    for name in ("app.js", "style.css"):
        assert client.get(f"/static/{name}").status_code == 200


def test_openapi_documents_every_endpoint(served):
    client, _ = served
    schema = client.get("/openapi.json").json()
    assert set(schema["paths"]) == {"/api/runs", "/api/tokens", "/api/distribution", "/api/generate",
                                    "/api/generate/stream", "/api/trace", "/api/translate"}
    components = schema["components"]["schemas"]
    for path, methods in schema["paths"].items():
        for op in methods.values():
            assert op["summary"] and op["responses"]
            ref = op.get("requestBody", {}).get("content", {}).get("application/json", {}).get("schema", {}).get("$ref")
            assert ref is None or ref.rsplit("/", 1)[1] in components
    assert components["DistributionRequest"]["properties"]["top_p"]["exclusiveMinimum"] == 0
    docs = client.get("/docs")
    assert docs.status_code == 200 and all(path in docs.text for path in schema["paths"])


def test_only_loopback_hosts_when_bound_to_loopback(tiny_runs):
    app = create_app(load_runs([tiny_runs["ngram"]]), allowed_hosts=LOOPBACK_HOSTS)
    with TestClient(app, base_url="http://127.0.0.1:8000") as client:
        assert client.get("/api/runs").status_code == 200
        assert client.get("/api/runs", headers={"host": "localhost:8000"}).status_code == 200
        assert client.get("/api/runs", headers={"host": "[::1]:8000"}).status_code == 200
        rebound = client.get("/api/runs", headers={"host": "attacker.example:8000"})
        assert rebound.status_code == 400 and "Host" in rebound.json()["error"]


def test_repeated_run_names_are_made_unique(tmp_path):
    paths = [tmp_path / "a" / "run", tmp_path / "b" / "run", tmp_path / "c" / "other"]
    assert unique_names(paths) == ["run", "run-2", "other"]


# ---- cancellation: a client that goes away stops its generation ---------------------------------

@pytest.mark.parametrize("spec_version", ["2.0", "2.4"])
def test_a_client_that_disconnects_stops_the_generation(tiny_runs, monkeypatch, spec_version):
    """Drive the app as a server would, with a client that goes away after three token events: the
    generation stops within a token or two of it, not after its 2000 tokens."""
    made = []
    original = views.Generation.next_event

    def counted(self):
        event = original(self)
        made.append(event)
        return event

    monkeypatch.setattr(views.Generation, "next_event", counted)
    app = create_app(load_runs([tiny_runs["transformer"]]))
    body = json.dumps({"run": 0, "max_new_tokens": 2000, "seed": 0}).encode()

    async def scenario():
        gone = asyncio.Event()
        received = {"body": False}
        sent = []

        async def receive():
            if not received["body"]:
                received["body"] = True
                return {"type": "http.request", "body": body, "more_body": False}
            await gone.wait()
            return {"type": "http.disconnect"}

        async def send(message):
            if message["type"] == "http.response.body" and message.get("body"):
                sent.append(message["body"])
                if len(sent) == 3:
                    gone.set()
            if gone.is_set() and spec_version == "2.4" and len(sent) > 3:
                raise OSError("the client went away")

        scope = {"type": "http", "asgi": {"version": "3.0", "spec_version": spec_version}, "http_version": "1.1",
                 "method": "POST", "scheme": "http", "path": "/api/generate/stream", "raw_path": b"/api/generate/stream",
                 "query_string": b"", "root_path": "", "server": ("127.0.0.1", 8000), "client": ("127.0.0.1", 5000),
                 "headers": [(b"host", b"127.0.0.1:8000"), (b"content-type", b"application/json"),
                             (b"content-length", str(len(body)).encode())]}
        try:
            await asyncio.wait_for(app(scope, receive, send), timeout=60)
        except OSError:
            pass
        await asyncio.sleep(0)
        return sent

    sent = asyncio.run(scenario())
    print(f"{len(sent)} events sent, {len(made)} tokens made")
    assert len(sent) >= 3 and len(made) <= len(sent) + 2, (len(sent), len(made))
    app.state.runs[0].close()


# ---- the command line ---------------------------------------------------------------------------

@pytest.fixture
def no_server(monkeypatch):
    """uvicorn's serving loop replaced: returns at once, recording the sockets it was given."""
    import uvicorn

    given = []

    def run(self, sockets=None):
        given.extend(sockets or [])
        for sock in sockets or []:
            sock.close()

    monkeypatch.setattr(uvicorn.Server, "run", run)
    return given


def test_cli_binds_loopback_by_default_and_warns_for_all_interfaces(tiny_runs, no_server, capsys):
    assert main(["serve", str(tiny_runs["ngram"]), "--port", "0"]) == 0
    assert no_server[-1].family.name == "AF_INET"
    err = capsys.readouterr().err
    assert "warning" not in err and "http://127.0.0.1:" in err
    assert main(["serve", str(tiny_runs["ngram"]), "--host", "0.0.0.0", "--port", "0"]) == 0
    warnings = [line for line in capsys.readouterr().err.splitlines() if line.startswith("warning:")]
    assert len(warnings) == 1 and "0.0.0.0" in warnings[0]


def test_cli_errors_are_one_line(tiny_runs, tmp_path, no_server, capsys):
    import socket

    assert main(["serve", str(tmp_path / "missing")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("seqlab: error:")
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen(1)
        assert main(["serve", str(tiny_runs["ngram"]), "--port", str(taken.getsockname()[1])]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1].startswith("seqlab: error: cannot listen on 127.0.0.1:") and "Traceback" not in "".join(err)
