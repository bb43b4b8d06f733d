"""`seqlab serve`: a local web playground over trained runs (DESIGN.md: serve sits above api, below cli).

A user types a text and sees, as they type, its tokens and surprisal, the next-token distribution
with temperature (β = 1/T), top-k and top-p, step-by-step and streamed generation, the attention
heads, the neurons, the HMM trellis, several runs side by side, and a seq2seq run's translation
with its alignment. The page is plain HTML, CSS and JavaScript shipped in `static/`; every view is
also a JSON endpoint (`/docs`, `/openapi.json`).

    from seqlab.serve import create_app, load_runs
    app = create_app(load_runs(["runs/demo"]))     # an ASGI app: uvicorn, or starlette's TestClient

`seqlab.serve.inputs` declares and checks every input, `seqlab.serve.runs` loads the runs and owns
their worker threads, `seqlab.serve.views` computes each view, `seqlab.serve.app` is the web app and
`seqlab.serve.server` runs it.
"""

from seqlab.serve.app import create_app
from seqlab.serve.runs import ServedRun, load_runs
from seqlab.serve.server import serve

__all__ = ["ServedRun", "create_app", "load_runs", "serve"]
