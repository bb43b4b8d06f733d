"""The web application of `seqlab serve`: a Starlette ASGI app over the runs named on the command line.

    app = create_app(load_runs(["runs/demo", "runs/ngram"]))   # then: uvicorn, or starlette's TestClient

Routes: the page (`/`, its files under `/static/`), one JSON endpoint per view under `/api/`
(documented in each handler's docstring, after `---`, as OpenAPI YAML; `/openapi.json` collects them
and `/docs` lists them as plain HTML), and nothing else.

Safety, as DESIGN.md promises it:
- a request names a run by index or name (`seqlab.serve.runs`), never by a path;
- every input is checked against its declared limits (`seqlab.serve.inputs`); the body is read up to
  `MAX_BODY_BYTES` and must be JSON (`Content-Type: application/json`, which also makes a browser
  ask before another site's page may post to it);
- a bad request is answered with a 4xx JSON error `{"error": message, "status": code}`; anything else
  that escapes a handler is a bug, logged with its traceback and answered with a JSON 500;
- bound to a loopback address, the app answers only requests whose Host is a loopback name
  (`allowed_hosts`), which defeats DNS rebinding; the page's Content-Security-Policy allows
  nothing but this server's own files;
- a generation runs a token at a time on its run's worker thread and checks between tokens that
  its client is still there: the stop button, or a client that goes away, ends it.
"""

from __future__ import annotations

import html
import json
import logging
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import FileResponse, HTMLResponse, JSONResponse, Response, StreamingResponse
from starlette.routing import Mount, Route
from starlette.schemas import SchemaGenerator
from starlette.staticfiles import StaticFiles
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from seqlab.errors import SeqlabError
from seqlab.serve import inputs, views
from seqlab.serve.inputs import MAX_BODY_BYTES, REQUESTS, BadRequest
from seqlab.serve.runs import ServedRun

log = logging.getLogger(__name__)

STATIC = Path(__file__).parent / "static"
LOOPBACK_HOSTS = ("127.0.0.1", "localhost", "::1")
SECURITY_HEADERS = [
    (b"content-security-policy", b"default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; "
                                 b"connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'"),
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"no-referrer"),
]


def error(message: str, status: int) -> JSONResponse:
    return JSONResponse({"error": message, "status": status}, status_code=status)


# ---- reading requests -----------------------------------------------------------------------------

async def read_json(request: Request) -> Any:
    """The request's JSON body: 415 unless it is declared JSON, 413 beyond MAX_BODY_BYTES (before it
    is read whole), 400 when it is not valid JSON."""
    kind = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if kind != "application/json":
        raise BadRequest(f"send the body as JSON with Content-Type: application/json (got {kind[:40] or 'none'!r})",
                         status=415)
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > MAX_BODY_BYTES:
        raise BadRequest(f"the body has {int(declared):,} bytes: at most {MAX_BODY_BYTES:,} are accepted", status=413)
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > MAX_BODY_BYTES:
            raise BadRequest(f"the body is over {MAX_BODY_BYTES:,} bytes", status=413)
    try:
        return json.loads(body.decode("utf-8"), parse_constant=_no_constant)
    except (ValueError, RecursionError) as exc:  # JSONDecodeError and UnicodeDecodeError are ValueErrors
        raise BadRequest(f"malformed JSON: {str(exc)[:120]}") from None


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON number")


def find_run(request: Request, ref: int | str) -> ServedRun:
    """The served run a request names (index or name), or 404."""
    runs: list[ServedRun] = request.app.state.runs
    for run in runs:
        if ref == run.index or ref == run.name:
            return run
    served = ", ".join(f"{r.index} ({r.name})" for r in runs)
    raise BadRequest(f"unknown run {str(ref)[:60]!r}: this server serves {served}", status=404)


async def parse_request(request: Request, kind: str) -> tuple[ServedRun, dict[str, Any]]:
    """The run and the checked values of a request of kind `kind` (a key of `inputs.REQUESTS`); the
    sampling settings it leaves out are the run's (its [sample] section), as `seqlab sample` has them;
    a translation's are `seqlab translate`'s (greedy)."""
    body = await read_json(request)
    fields = REQUESTS[kind]
    if not isinstance(body, dict) or "run" not in body:
        inputs.parse(body, fields)  # says what is wrong
    run = find_run(request, inputs.check("run", body["run"], fields["run"]))
    sample = run.config.sample
    defaults = {"temperature": sample.temperature, "top_k": sample.top_k, "top_p": sample.top_p,
                "seed": sample.seed, "max_new_tokens": min(sample.max_new_tokens, inputs.MAX_NEW_TOKENS)}
    if kind == "TranslateRequest":  # as `seqlab translate`: greedy, unfiltered, up to 256 tokens
        defaults.update(temperature=0.0, top_k=0, top_p=1.0, max_new_tokens=256)
    return run, inputs.parse(body, fields, defaults)


# ---- the JSON endpoints ---------------------------------------------------------------------------

async def list_runs(request: Request) -> JSONResponse:
    """The runs this server serves.
    ---
    summary: The served runs
    description: Every run named on the command line, by index and name, with its family, vocabulary,
      context and sampling defaults (its [sample] section), and the limits on every input.
    responses:
      200:
        description: "{runs: [{index, name, family, summary, kind, tokenizer, vocab_size, block_size,
          sample}], limits: {...}}"
    """
    return JSONResponse({"runs": [run.describe() for run in request.app.state.runs], "limits": inputs.limits()})


async def tokens(request: Request) -> JSONResponse:
    """A text's tokens and surprisal.
    ---
    summary: Tokens and per-token surprisal
    description: The text's tokens, and each token's surprisal -log2 p(token | the tokens before it)
      in bits (null for the first). A model with a context reads overlapping windows of it.
    requestBody:
      required: true
      content:
        application/json:
          schema: {$ref: "#/components/schemas/TokensRequest"}
    responses:
      200:
        description: "{tokens: [{id, text, surprisal}], bits, bits_per_char, context}"
      4XX: {$ref: "#/components/responses/Error"}
    """
    run, values = await parse_request(request, "TokensRequest")
    return JSONResponse(await run.call(views.tokens_view, run, values["text"]))


async def distribution(request: Request) -> JSONResponse:
    """The next-token distribution, with temperature, top-k and top-p.
    ---
    summary: Next-token distribution
    description: The distribution of the token after the text (its last block_size tokens; an
      empty text starts as `seqlab sample` does). Each bar has p_temperature = softmax(logits / T)
      and p, the distribution sampling draws from after top-k and top-p (0 for a removed token).
      beta is 1/T (null at T = 0, greedy). Defaults are the run's [sample] settings.
    requestBody:
      required: true
      content:
        application/json:
          schema: {$ref: "#/components/schemas/DistributionRequest"}
    responses:
      200:
        description: "{temperature, beta, top_k, top_p, context_tokens, cut, vocab_size, kept,
          kept_mass, entropy_bits, bars: [{id, token, p, p_temperature, kept}]}"
      4XX: {$ref: "#/components/responses/Error"}
    """
    run, v = await parse_request(request, "DistributionRequest")
    return JSONResponse(await run.call(lambda: views.distribution_view(
        run, v["text"], temperature=v["temperature"], top_k=v["top_k"], top_p=v["top_p"], bars=v["bars"])))


async def _start_generation(request: Request) -> tuple[ServedRun, views.Generation]:
    run, v = await parse_request(request, "GenerateRequest")
    generation = await run.call(lambda: views.Generation(
        run, prompt=v["prompt"], max_new_tokens=v["max_new_tokens"], temperature=v["temperature"], top_k=v["top_k"],
        top_p=v["top_p"], seed=v["seed"], stop=v["stop"], top=v["top"]))
    return run, generation


async def _tokens_while_connected(request: Request, run: ServedRun,
                                  generation: views.Generation) -> AsyncIterator[dict[str, Any]]:
    """The generation's token events, one worker call each, until it ends or its client goes away;
    the loop is closed either way (on the worker thread, after the step it may be in)."""
    try:
        while not await request.is_disconnected():
            event = await run.call(generation.next_event)
            if event is None:
                return
            yield event
        log.info("generation on run %r stopped after %d tokens: its client went away", run.name, generation.count)
    finally:
        run.executor.submit(generation.close)


async def generate(request: Request) -> JSONResponse:
    """A whole generation.
    ---
    summary: Generate (whole)
    description: Continue the prompt as `seqlab sample RUN --prompt ... --seed S` does, with the same
      tokens for the same seed and settings. Each new token comes with the probability it was drawn
      with and the likeliest alternatives. Defaults are the run's [sample] settings.
    requestBody:
      required: true
      content:
        application/json:
          schema: {$ref: "#/components/schemas/GenerateRequest"}
    responses:
      200:
        description: "{prompt, completion, text, tokens: [{id, token, text, p, top}], finished:
          length | stop}"
      4XX: {$ref: "#/components/responses/Error"}
    """
    run, generation = await _start_generation(request)
    events = [event async for event in _tokens_while_connected(request, run, generation)]
    completion = "".join(e["text"] for e in events) + await run.call(generation.tail)
    return JSONResponse({"prompt": generation.prompt, "completion": completion, "text": generation.prompt + completion,
                         "tokens": events, "finished": generation.finished})


def _sse(event: dict[str, Any]) -> bytes:
    return f"data: {json.dumps(event, ensure_ascii=False)}\n\n".encode("utf-8")


async def generate_stream(request: Request) -> Response:
    """A generation streamed token by token (Server-Sent Events).
    ---
    summary: Generate (streamed)
    description: The generation of POST /api/generate, sent as Server-Sent Events as each token is
      made - data lines of {"type":"token", id, token, text, p, top}, then {"type":"done", finished,
      text, count}. Closing the connection (the page's stop button) stops the generation at the next
      token. Errors in the request are 4xx JSON answers before any event.
    requestBody:
      required: true
      content:
        application/json:
          schema: {$ref: "#/components/schemas/GenerateRequest"}
    responses:
      200:
        description: text/event-stream of token events, then a done event
      4XX: {$ref: "#/components/responses/Error"}
    """
    run, generation = await _start_generation(request)

    async def events() -> AsyncIterator[bytes]:
        async for event in _tokens_while_connected(request, run, generation):
            yield _sse({"type": "token", **event})
        if generation.finished:
            tail = await run.call(generation.tail)
            yield _sse({"type": "done", "finished": generation.finished, "text": tail, "count": generation.count})

    return StreamingResponse(events(), media_type="text/event-stream",
                             headers={"cache-control": "no-store", "x-accel-buffering": "no"})


async def trace(request: Request) -> JSONResponse:
    """What the model computes inside, over a text.
    ---
    summary: Trace (attention, neurons, HMM trellis, n-gram backoff)
    description: seqlab.inspect.trace over the text (at most trace_tokens tokens, and the model's
      context) - tokens, surprisal in bits, the top next tokens at each position, and what the
      model has of attention maps [layer][head][t][s] by kind (self, encoder, cross), activations
      {values [t][u], order, scale} by layer, HMM posteriors [t][k] and Viterbi path, n-gram
      answering order and interpolation weights. 501 where tracing is unavailable.
    requestBody:
      required: true
      content:
        application/json:
          schema: {$ref: "#/components/schemas/TraceRequest"}
    responses:
      200:
        description: "{tokens, surprisal, top, attention?, activations?, hmm?, ngram?}"
      4XX: {$ref: "#/components/responses/Error"}
    """
    run, v = await parse_request(request, "TraceRequest")
    return JSONResponse(await run.call(lambda: views.trace_view(run, v["text"], top=v["top"], parts=v["parts"])))


async def translate(request: Request) -> JSONResponse:
    """A seq2seq run's translation and its alignment.
    ---
    summary: Translate (seq2seq runs)
    description: The output `seqlab sample RUN --prompt SOURCE --seed S` decodes (greedy at
      temperature 0, the default here as in `seqlab translate`), and the cross-attention of greedy
      decoding over the source, one [t][s] map per layer and head.
    requestBody:
      required: true
      content:
        application/json:
          schema: {$ref: "#/components/schemas/TranslateRequest"}
    responses:
      200:
        description: "{source, output, source_tokens, alignment: {target_tokens, of, maps}}"
      4XX: {$ref: "#/components/responses/Error"}
    """
    run, v = await parse_request(request, "TranslateRequest")
    return JSONResponse(await run.call(lambda: views.translate_view(
        run, v["text"], max_new_tokens=v["max_new_tokens"], temperature=v["temperature"], top_k=v["top_k"],
        top_p=v["top_p"], seed=v["seed"])))


# ---- the page and the documentation ---------------------------------------------------------------

async def page(request: Request) -> Response:
    return FileResponse(STATIC / "index.html", media_type="text/html")


def schema_generator() -> SchemaGenerator:
    return SchemaGenerator({
        "openapi": "3.0.3",
        "info": {"title": "seqlab serve", "version": "1",
                 "description": "JSON endpoints of the seqlab playground: every view of the page. A request "
                                "names a run by its index or name in GET /api/runs."},
        "components": {
            "schemas": {name: inputs.json_schema(fields) for name, fields in REQUESTS.items()},
            "responses": {"Error": {"description": "a refused request: {error, status}", "content": {
                "application/json": {"schema": {"type": "object", "properties": {
                    "error": {"type": "string"}, "status": {"type": "integer"}}}}}}},
        },
    })


async def openapi(request: Request) -> Response:
    return JSONResponse(request.app.state.schema)


async def docs(request: Request) -> HTMLResponse:
    return HTMLResponse(docs_page(request.app.state.schema))


def docs_page(schema: dict[str, Any]) -> str:
    """The OpenAPI schema as a plain HTML page: each endpoint, what it does, its request fields."""
    e = html.escape
    parts = [f"<!doctype html><html lang='en'><head><meta charset='utf-8'><title>{e(schema['info']['title'])} API"
             f"</title><link rel='stylesheet' href='/static/style.css'></head><body class='docs'>"
             f"<h1>{e(schema['info']['title'])}: JSON endpoints</h1><p>{e(schema['info']['description'])} "
             f"The machine-readable schema is <a href='/openapi.json'>/openapi.json</a>; the page is "
             f"<a href='/'>/</a>.</p>"]
    components = schema["components"]["schemas"]
    for path, methods in schema["paths"].items():
        for method, op in methods.items():
            parts.append(f"<section class='endpoint'><h2><code>{e(method.upper())} {e(path)}</code> "
                         f"{e(op.get('summary', ''))}</h2><p>{e(op.get('description', ''))}</p>")
            body = op.get("requestBody", {}).get("content", {}).get("application/json", {}).get("schema", {})
            ref = body.get("$ref", "").rsplit("/", 1)[-1]
            if ref in components:
                parts.append(_fields_table(components[ref]))
            for code, answer in op.get("responses", {}).items():
                text = answer.get("description", "a JSON error {error, status}") if "$ref" not in answer else \
                    "a refused request: JSON {error, status}"
                parts.append(f"<p><b>{e(str(code))}</b>: <code>{e(text)}</code></p>")
            parts.append("</section>")
    parts.append("</body></html>")
    return "".join(parts)


def _fields_table(component: dict[str, Any]) -> str:
    e = html.escape
    rows = []
    for name, prop in component["properties"].items():
        kind = prop.get("type") or " or ".join(option["type"] for option in prop.get("oneOf", []))
        bounds = ", ".join(f"{key} {prop[key]}" for key in ("minimum", "exclusiveMinimum", "maximum", "minLength",
                                                             "maxLength") if key in prop)
        default = "required" if name in component["required"] else json.dumps(prop.get("default", "the run's"))
        rows.append(f"<tr><td><code>{e(name)}</code></td><td>{e(kind)}</td><td>{e(default)}</td><td>{e(bounds)}</td>"
                    f"<td>{e(prop['description'])}</td></tr>")
    return ("<table><tr><th>field</th><th>type</th><th>default</th><th>limits</th><th>meaning</th></tr>"
            + "".join(rows) + "</table>")


# ---- errors and middleware ------------------------------------------------------------------------

async def bad_request(request: Request, exc: Exception) -> JSONResponse:
    status = exc.status if isinstance(exc, BadRequest) else 400  # any other SeqlabError: the input's fault
    return error(str(exc), status)


async def http_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, HTTPException)
    return error(str(exc.detail), exc.status_code)


async def internal_error(request: Request, exc: Exception) -> JSONResponse:
    """A bug: logged with its traceback (the server also re-raises it to its own log), answered with
    a JSON 500 and no detail."""
    log.error("internal error on %s %s", request.method, request.url.path, exc_info=exc)
    return error("internal error (a bug in seqlab: see the server's log)", 500)


class Guard:
    """Pure ASGI middleware: refuses a Host outside `allowed_hosts` (None: any) with a JSON 400, and
    adds the security headers to every answer."""

    def __init__(self, app: ASGIApp, allowed_hosts: Sequence[str] | None) -> None:
        self.app = app
        self.allowed = None if allowed_hosts is None else {h.lower() for h in allowed_hosts}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        if self.allowed is not None:
            host = _host_name(dict(scope["headers"]).get(b"host", b"").decode("latin-1"))
            if host not in self.allowed:
                await error(f"unexpected Host {host[:60]!r}: this server answers {', '.join(sorted(self.allowed))}",
                            400)(scope, receive, send)
                return

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                message = {**message, "headers": [*message.get("headers", []), *SECURITY_HEADERS]}
            await send(message)

        await self.app(scope, receive, send_with_headers)


def _host_name(host: str) -> str:
    """A Host header without its port: "127.0.0.1:8000" → "127.0.0.1", "[::1]:8000" → "::1"."""
    host = host.strip().lower()
    if host.startswith("["):
        return host[1:].split("]", 1)[0]
    return host.rsplit(":", 1)[0] if host.count(":") == 1 else host


# ---- the app --------------------------------------------------------------------------------------

def create_app(runs: Sequence[ServedRun], *, allowed_hosts: Sequence[str] | None = None) -> Starlette:
    """The ASGI app serving `runs` (loaded once, by `seqlab.serve.runs.load_runs`). `allowed_hosts`
    (None: any) are the Host names it answers; `seqlab serve` passes the loopback names when it
    listens on a loopback address."""
    if not runs:
        raise SeqlabError("serve needs at least one run")

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        yield
        for run in runs:
            run.close()

    routes = [
        Route("/", page, methods=["GET"], include_in_schema=False),
        Route("/docs", docs, methods=["GET"], include_in_schema=False),
        Route("/openapi.json", openapi, methods=["GET"], include_in_schema=False),
        Route("/api/runs", list_runs, methods=["GET"]),
        Route("/api/tokens", tokens, methods=["POST"]),
        Route("/api/distribution", distribution, methods=["POST"]),
        Route("/api/generate", generate, methods=["POST"]),
        Route("/api/generate/stream", generate_stream, methods=["POST"]),
        Route("/api/trace", trace, methods=["POST"]),
        Route("/api/translate", translate, methods=["POST"]),
        Mount("/static", StaticFiles(directory=STATIC), name="static"),
    ]
    app = Starlette(routes=routes, lifespan=lifespan, exception_handlers={
        SeqlabError: bad_request, HTTPException: http_error, Exception: internal_error})
    app.state.runs = list(runs)
    app.state.schema = schema_generator().get_schema(routes)
    app.add_middleware(Guard, allowed_hosts=allowed_hosts)
    return app


__all__ = ["LOOPBACK_HOSTS", "create_app", "docs_page", "read_json"]
