"""The `seqlab inspect` page: one self-contained HTML file of everything a `Trace` holds.

Views (each present only when the trace has its data):
  - text: the tokens, each coloured by its surprisal in bits (legend), and on hover or click the
    model's top next tokens after it;
  - attention, head view: one head of one layer as lines from a query token to the keys (opacity =
    weight) or as a matrix; model view: every layer × head as a thumbnail, click to enlarge, each
    with its induction score (`seqlab.inspect.induction`), induction heads marked; for cross-attention
    the alignment of target and source tokens and each head's mass on the mirrored source position;
  - neurons: the text coloured by one unit's activation (red positive, blue negative; Karpathy et al.
    2015), units that track simple features of the text (position in the line, inside quotes, inside
    brackets) found by correlation and offered first;
  - HMM trellis: states × time shaded by posterior, the Viterbi path drawn through it;
  - n-gram backoff: each token coloured by the order that answered it, the interpolation weights on
    hover.

Everything is inline (style, script, data as JSON); nothing is fetched, so the file opens offline.
Matrices are embedded compactly: attention and HMM posteriors quantised to bytes (1/255 steps;
causal attention stores only its lower triangle), activations to signed bytes per unit, all
base64. Drawing is on <canvas>, so 512 tokens × 16 heads stay responsive.

`write_figures` draws the same views as PNG files with matplotlib (titles, labelled axes, colour bars).

Dimensions: T tokens · S source tokens · L layers · H heads · U units · K HMM states.
"""

from __future__ import annotations

import base64
import html
import json
import math
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from seqlab.inspect.induction import induction_scores, mirrored_mass
from seqlab.inspect.page_template import TEMPLATE
from seqlab.inspect.trace import Trace

FEATURES = ("position in line", "inside quotes", "inside brackets")
INDUCTION_MARK = 0.4  # a head scoring at least this is marked as an induction head


def text_features(tokens: Sequence[str]) -> dict[str, np.ndarray]:
    """Per token (T,): characters since the line began, inside a "quoted" span, inside brackets."""
    position, quotes, brackets = [], [], []
    column, inside, depth = 0, False, 0
    for token in tokens:
        position.append(column)
        quotes.append(inside or '"' in token)
        brackets.append(depth > 0 or any(c in "([{" for c in token))
        for c in token:
            column = 0 if c == "\n" else column + 1
            inside = (not inside) if c == '"' else inside
            depth = depth + 1 if c in "([{" else max(depth - 1, 0) if c in ")]}" else depth
    return {"position in line": np.array(position, float), "inside quotes": np.array(quotes, float),
            "inside brackets": np.array(brackets, float)}


def feature_units(acts: Tensor, features: dict[str, np.ndarray], top: int = 3) -> dict[str, list[dict]]:
    """For each feature that varies, the `top` units most correlated with it (Pearson r)."""
    a = acts.double().numpy()  # (T, U)
    a = a - a.mean(0)
    a_norm = np.sqrt((a * a).sum(0))  # (U,)
    found = {}
    for name, f in features.items():
        f = f - f.mean()
        f_norm = math.sqrt(float((f * f).sum()))
        if f_norm == 0:
            continue
        with np.errstate(divide="ignore", invalid="ignore"):
            r = np.where(a_norm > 0, (a * f[:, None]).sum(0) / (a_norm * f_norm), 0.0)  # (U,)
        best = np.argsort(-np.abs(r))[:top]
        found[name] = [{"unit": int(u), "r": round(float(r[u]), 3)} for u in best]
    return found


def _b64(a: np.ndarray) -> str:
    return base64.b64encode(np.ascontiguousarray(a).tobytes()).decode("ascii")


def _bytes(w: Tensor) -> np.ndarray:
    """Values in [0, 1] as uint8 steps of 1/255."""
    return np.clip(np.rint(w.float().numpy() * 255), 0, 255).astype(np.uint8)


def _attention_data(trace: Trace) -> dict:
    out = {}
    for kind, w in trace.attention.items():
        L, H, T, S = w.shape
        causal = kind == "self" and T == S and bool((w.triu(1) == 0).all())
        q = _bytes(w)  # (L, H, T, S)
        if causal:  # the lower triangle only, row by row
            q = q[:, :, *np.tril_indices(T)]  # (L, H, T(T+1)/2)
        out[kind] = {"L": L, "H": H, "T": T, "S": S, "causal": causal, "q": _b64(q),
                     "queries": "source" if kind == "encoder" else "tokens",
                     "keys": "tokens" if kind == "self" else "source"}
    return out


def _scores(trace: Trace, n_source: int | None) -> dict:
    scores = {}
    if "self" in trace.attention:
        s = induction_scores(trace)
        if not torch.isnan(s).all():
            scores["induction"] = [[round(float(v), 3) for v in row] for row in s]
    if "cross" in trace.attention:
        m = mirrored_mass(trace.attention["cross"], n_source)
        scores["mirrored"] = [[round(float(v), 3) for v in row] for row in m]
    return scores


def _neuron_data(trace: Trace, tokens: Sequence[str]) -> list[dict]:
    features = text_features(tokens)
    layers = []
    for name, acts in trace.activations.items():
        if acts.shape[0] != len(tokens):  # an encoder's states run over the source
            continue
        scale = acts.abs().amax(dim=0).clamp(min=1e-8)  # (U,): each unit on its own range
        q = np.clip(np.rint(acts.numpy() / scale.numpy() * 127), -127, 127).astype(np.int8)  # (T, U)
        found = feature_units(acts, features)
        first = [u["unit"] for units in found.values() for u in units[:1]]
        rest = [u for u in acts.std(dim=0).argsort(descending=True).tolist() if u not in first]
        layers.append({"name": name, "U": acts.shape[1], "scale": [round(float(s), 4) for s in scale],
                       "q": _b64(q), "order": list(dict.fromkeys(first)) + rest, "features": found})
    return layers


def page_data(trace: Trace, tokens: Sequence[str], *, source: Sequence[str] | None = None,
              top_strings: Sequence[str] = (), top_k: int = 10, n_source: int | None = None) -> dict:
    """The page's JSON: `tokens` the text of each traced token, `source` the source's (seq2seq),
    `top_strings` the text of every vocabulary id (for the top next tokens)."""
    k = min(top_k, trace.log_probs.shape[-1])
    top = trace.log_probs.exp().topk(k, dim=-1)
    data: dict = {
        "tokens": list(tokens), "source": None if source is None else list(source),
        "surprisal": [None if math.isnan(s) else round(s, 2) for s in trace.surprisal.tolist()],
        "top": [[[top_strings[i] if i < len(top_strings) else str(i), round(p, 3)] for i, p in zip(ids, ps)]
                for ids, ps in zip(top.indices.tolist(), top.values.tolist())],
        "attention": _attention_data(trace), "scores": _scores(trace, n_source), "mark": INDUCTION_MARK,
        "neurons": _neuron_data(trace, tokens), "hmm": None, "ngram": None,
    }
    if trace.hmm:
        post = trace.hmm["posteriors"]
        data["hmm"] = {"K": post.shape[1], "q": _b64(_bytes(post)), "viterbi": trace.hmm["viterbi"].tolist()}
    if trace.ngram:
        data["ngram"] = {"order": trace.ngram["order"].tolist(),
                         "weights": [[round(v, 2) for v in row] for row in trace.ngram["weights"].tolist()]}
    return data


def inspect_page(trace: Trace, tokens: Sequence[str], *, title: str = "seqlab inspect", **options) -> str:
    """The self-contained HTML page of a trace (options: those of `page_data`)."""
    data = json.dumps(page_data(trace, tokens, **options), ensure_ascii=False, separators=(",", ":"))
    data = data.replace("</", "<\\/")  # a token "</script>" stays inside the data
    return TEMPLATE.replace("{{TITLE}}", html.escape(title)).replace("{{DATA}}", data)


__all__ = ["FEATURES", "feature_units", "inspect_page", "page_data", "text_features"]
