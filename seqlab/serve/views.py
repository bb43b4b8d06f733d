"""What each view of `seqlab serve` computes, as plain functions of a run and checked inputs.

Every function here runs on the run's worker thread (`ServedRun.call`) and returns JSON-ready data;
the web app (`seqlab.serve.app`) only parses requests and sends answers. Each view goes through
the same code the rest of seqlab uses, so the page shows what the library computes:

- tokens and surprisal: `tokenizer.encode` and the model contract's `token_log_probs`, in windows
  of the model's context (each token scored after at least half a window) for a model with one;
- the next-token distribution: one `step` of the model contract over the text (the prefill that
  generation starts with), then `seqlab.generate.sampling.filter_logits`, the filter sampling
  draws through: the bars are softmax(logits / T), and what top-k and top-p remove is at zero;
- generation: `seqlab.generate.sampling.iter_generate` and `TextStream`, as `seqlab sample` runs
  them (`seqlab.api.stream_sample`), so a seed gives the CLI's tokens;
- attention, neurons, HMM trellis, n-gram backoff: `seqlab.inspect.trace`;
- translation: `seqlab.seq2seq.translate`, and the family's alignment (`Family.alignment`).

Dimensions: T positions · V vocab · L layers · H heads · S source positions · U units · K states.
"""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import Tensor

from seqlab.api import prompt_ids
from seqlab.budget import check_generation
from seqlab.errors import SeqlabError
from seqlab.generate.sampling import filter_logits, iter_generate
from seqlab.generate.stream import TextStream
from seqlab.models.contract import model_device
from seqlab.serve.inputs import MAX_TRACE_TOKENS, BadRequest
from seqlab.serve.runs import ServedRun

LOG2 = math.log(2)


def _language_model(run: ServedRun) -> None:
    if run.seq2seq:
        raise BadRequest(f"run {run.name!r} translates a source ({run.family.name}): use /api/translate", status=422)


def _encode(run: ServedRun, text: str) -> list[int]:
    try:
        return run.tokenizer.encode(text)
    except SeqlabError as exc:  # a character outside a char vocabulary
        raise BadRequest(f"run {run.name!r} cannot encode the text: {exc}", status=422) from None


def _token_texts(run: ServedRun, ids: list[int]) -> list[str]:
    return [run.tokenizer.decode([i]) for i in ids]


# ---- tokens and surprisal -------------------------------------------------------------------------

@torch.inference_mode()
def tokens_view(run: ServedRun, text: str) -> dict[str, Any]:
    """The text's tokens, and each one's surprisal −log2 p(token | the tokens before it) in bits
    (None for the first, which has nothing before it)."""
    _language_model(run)
    ids = _encode(run, text)
    bits = surprisal_bits(run.model, ids)
    total = sum(b for b in bits if b is not None)
    return {"tokens": [{"id": i, "text": t, "surprisal": b} for i, t, b in zip(ids, _token_texts(run, ids), bits)],
            "bits": total, "bits_per_char": total / len(text) if len(ids) > 1 else None,
            "context": run.block_size}


def surprisal_bits(model: Any, ids: list[int]) -> list[float | None]:
    """−log2 p(x_t | x_<t) for t ≥ 1 (None at t = 0). A model with a context of `block_size` tokens
    reads overlapping windows of it: each token after the first window is scored in a window that
    gives it at least half a window of context."""
    if len(ids) < 2:
        return [None] * len(ids)
    idx = torch.tensor([ids], dtype=torch.long, device=model_device(model))  # (1, T)
    block = getattr(model, "block_size", None)
    if block is None or len(ids) <= block:
        scores = model.token_log_probs(idx)[0]  # (T - 1,) nats
    else:
        scores = torch.empty(len(ids) - 1)
        scores[:block - 1] = model.token_log_probs(idx[:, :block])[0]
        done, stride = block, max(1, block // 2)  # positions < done are scored
        while done < len(ids):
            start = min(done - block + stride, len(ids) - block)
            window = model.token_log_probs(idx[:, start:start + block])[0]  # positions start+1 .. start+block-1
            scores[done - 1:start + block - 1] = window[done - start - 1:]
            done = start + block
    return [None] + [round(-s / LOG2, 6) for s in scores.float().tolist()]


# ---- next-token distribution --------------------------------------------------------------------

@torch.inference_mode()
def next_logits(run: ServedRun, text: str) -> tuple[Tensor, int, bool]:
    """The logits (V,) of the token after `text` (its last `block_size` tokens; a newline, or token 0,
    for an empty text, as `seqlab sample` starts), how many tokens the model read, and whether the
    text was cut to the model's context."""
    ids = _encode(run, text) if text else prompt_ids(run.tokenizer, "", None)
    block = run.block_size
    cut = block is not None and len(ids) > block
    ids = ids[-block:] if cut else ids
    idx = torch.tensor([ids], dtype=torch.long, device=model_device(run.model))  # (1, T)
    logits, _ = run.model.step(idx, run.model.new_state(1, idx.device))  # (1, V): generation's prefill
    return logits[0].float().cpu(), len(ids), cut


def distribution_view(run: ServedRun, text: str, *, temperature: float, top_k: int, top_p: float,
                      bars: int) -> dict[str, Any]:
    """The next-token distribution after `text` at temperature T, with what top-k and top-p keep.

    Each bar has `p_temperature` = softmax(logits / T) and `p` = the distribution sampling draws
    from: the same after the filters, renormalised, 0 for a removed token. Bars are the `bars` most
    probable tokens under softmax(logits / T), the most probable first (lowest id on ties)."""
    _language_model(run)
    logits, used, cut = next_logits(run, text)
    k, p = top_k or None, top_p if top_p < 1.0 else None
    scaled = torch.softmax(filter_logits(logits[None], temperature=temperature)[0], dim=-1)  # (V,)
    drawn = torch.softmax(filter_logits(logits[None], temperature=temperature, top_k=k, top_p=p)[0], dim=-1)
    order = torch.sort(scaled, descending=True, stable=True).indices[:bars].tolist()  # ties: lowest id first
    kept = drawn > 0
    nonzero = scaled[scaled > 0].double()
    names = run.token_strings
    return {
        "temperature": temperature, "beta": None if temperature == 0 else 1.0 / temperature,
        "top_k": top_k, "top_p": top_p, "context_tokens": used, "cut": cut,
        "vocab_size": len(scaled), "kept": int(kept.sum()), "kept_mass": float(scaled[kept].sum()),
        "entropy_bits": float(-(nonzero * nonzero.log2()).sum()),
        "bars": [{"id": i, "token": names[i], "p": float(drawn[i]), "p_temperature": float(scaled[i]),
                  "kept": bool(kept[i])} for i in order],
    }


# ---- generation ----------------------------------------------------------------------------------

class _RecordingStepper:
    """Passes the generation loop's calls to the model's stepper and keeps the last logits, so each
    new token can be shown with the probability it was drawn with; the loop's arithmetic and random
    draws are untouched."""

    def __init__(self, model: Any) -> None:
        self._model = model
        self._inner = model
        self.logits: Tensor | None = None

    def stepper(self) -> _RecordingStepper:  # the loop asks once, after putting the model in eval mode
        make = getattr(self._model, "stepper", None)
        self._inner = make() if make is not None else self._model
        return self

    @property
    def block_size(self) -> int | None:
        return self._inner.block_size

    def new_state(self, batch_size: int, device: Any) -> Any:
        return self._inner.new_state(batch_size, device)

    def step(self, tokens: Tensor, state: Any) -> tuple[Tensor, Any]:
        logits, state = self._inner.step(tokens, state)
        self.logits = logits
        return logits, state


class Generation:
    """One generation, advanced a token at a time by `next_event` (on the run's worker thread), as
    `seqlab.api.stream_sample` makes it: the prompt's ids cut to the model's context, the cached
    generation loop, the seed, the text streamed up to the stop string."""

    def __init__(self, run: ServedRun, *, prompt: str, max_new_tokens: int, temperature: float, top_k: int,
                 top_p: float, seed: int, stop: str, top: int) -> None:
        _language_model(run)
        if prompt:
            _encode(run, prompt)  # a text it cannot encode is the client's mistake, said as such
        model, tokenizer = run.model, run.tokenizer
        ids = prompt_ids(tokenizer, prompt, model.block_size)
        check_generation(model, tokenizer.vocab_size, rows=1, prompt_tokens=len(ids), new_tokens=max_new_tokens,
                         keep_all=False)
        self.run, self.prompt, self.top = run, prompt, top
        self.sampling = {"temperature": temperature, "top_k": top_k or None, "top_p": top_p}
        self._recorder = _RecordingStepper(model)
        idx = torch.tensor([ids], dtype=torch.long, device=model_device(model))
        self._tokens = iter_generate(self._recorder, idx, max_new_tokens, use_cache=True, seed=seed,
                                     **self.sampling)
        self._stream = TextStream(tokenizer, stop=stop)
        self.count = 0
        self.finished: str | None = None  # why it ended: "length" or "stop"

    def next_event(self) -> dict[str, Any] | None:
        """The next token as {"id", "token", "text", "p", "top"} (`text`: what became printable), or
        None at the end (then `finished` says why, and `tail` holds the last text)."""
        if self.finished:
            return None
        column = next(self._tokens, None)
        if column is None:
            self.finished = "length"
            return None
        token = int(column[0])
        self.count += 1
        text = self._stream.push([token])
        if self._stream.stopped:
            self.finished = "stop"
        return {"id": token, "token": self.run.tokenizer.decode([token]), "text": text, **self._chances(token)}

    def _chances(self, token: int) -> dict[str, Any]:
        """The probability the token was drawn with, and the likeliest alternatives."""
        logits = self._recorder.logits
        if logits is None:  # pragma: no cover - the loop always steps before it yields
            return {}
        with torch.inference_mode():
            probs = torch.softmax(filter_logits(logits[:1].float(), **self.sampling)[0], dim=-1)  # (V,)
            best = torch.topk(probs, min(self.top, probs.shape[0])) if self.top else None
        top = [] if best is None else [{"id": i, "token": self.run.token_strings[i], "p": round(p, 6)}
                                       for p, i in zip(best.values.tolist(), best.indices.tolist()) if p > 0]
        return {"p": float(probs[token]), "top": top}

    def tail(self) -> str:
        """Text held back until the end (a partial character, the start of a possible stop string)."""
        return self._stream.flush()

    def close(self) -> None:
        """Stop the loop now (its model's mode restored); called on the worker thread."""
        self._tokens.close()


# ---- tracing ------------------------------------------------------------------------------------

def _tracer():
    try:
        from seqlab.inspect import trace
    except ImportError:
        raise BadRequest("this version of seqlab cannot trace models (seqlab.inspect.trace is missing)",
                         status=501) from None
    return trace


def _rounded(t: Tensor, digits: int) -> list:
    """A tensor as nested lists of rounded floats (non-finite values as None)."""
    values = t.detach().double().cpu()
    finite = torch.isfinite(values)
    values = torch.where(finite, values, torch.zeros_like(values))
    scale = 10.0 ** digits
    rounded = (values * scale).round() / scale
    return _with_none(rounded.tolist(), finite.tolist())


def _with_none(values, finite):
    if isinstance(values, list):
        return [_with_none(v, f) for v, f in zip(values, finite)]
    return values if finite else None


@torch.inference_mode()
def trace_view(run: ServedRun, text: str, *, top: int, parts: tuple[str, ...]) -> dict[str, Any]:
    """What `seqlab.inspect.trace` records over `text`: tokens, surprisal, the top next tokens at each
    position, and the parts asked for that the model has (attention maps (L, H, T, S) by kind,
    activations (T, U) by layer with their units ordered by how much they vary, the HMM's state
    posteriors (T, K) and Viterbi path, the n-gram's answering order and interpolation weights)."""
    _language_model(run)
    trace = _tracer()
    ids = _encode(run, text)
    if not ids:
        raise BadRequest("text is empty: nothing to trace")
    limit = min(MAX_TRACE_TOKENS, run.block_size or MAX_TRACE_TOKENS)
    if len(ids) > limit:
        raise BadRequest(f"the text has {len(ids)} tokens: at most {limit} are traced"
                         f"{' (the model context)' if limit == run.block_size else ''}", status=413)
    result = trace(run.model, ids)
    out: dict[str, Any] = {"tokens": [{"id": i, "text": t} for i, t in zip(ids, _token_texts(run, ids))],
                           "surprisal": _rounded(result.surprisal, 4)}
    if top:
        probs = result.log_probs.float().exp()  # (T, V)
        best = torch.topk(probs, min(top, probs.shape[-1]), dim=-1)  # (T, top)
        names = run.token_strings
        out["top"] = [[{"id": i, "token": names[i], "p": round(p, 5)} for p, i in zip(ps, ix)]
                      for ps, ix in zip(best.values.tolist(), best.indices.tolist())]
    if "attention" in parts and result.attention:
        out["attention"] = {kind: _rounded(maps, 4) for kind, maps in result.attention.items()}  # (L, H, T, S)
    if "activations" in parts and result.activations:
        out["activations"] = {name: _units(acts) for name, acts in result.activations.items()}
    if "hmm" in parts and result.hmm:
        out["hmm"] = {"posteriors": _rounded(result.hmm["posteriors"], 4),
                      "viterbi": [int(s) for s in result.hmm["viterbi"].tolist()]}
    if "ngram" in parts and result.ngram:
        out["ngram"] = {"order": [int(o) for o in result.ngram["order"].tolist()],
                        "weights": _rounded(result.ngram["weights"], 4)}
    return out


def _units(acts: Tensor) -> dict[str, Any]:
    """A layer's activations (T, U): the values, the units ordered by their spread (most varying
    first), and each unit's largest magnitude (the page colours a unit on its own range)."""
    acts = acts.detach().float().cpu()
    spread = acts.std(dim=0) if acts.shape[0] > 1 else acts.abs()[0]
    return {"values": _rounded(acts, 3), "order": spread.argsort(descending=True, stable=True).tolist(),
            "scale": [round(s, 4) for s in acts.abs().amax(dim=0).clamp(min=1e-8).tolist()]}


# ---- translation --------------------------------------------------------------------------------

def translate_view(run: ServedRun, text: str, *, max_new_tokens: int, temperature: float, top_k: int,
                   top_p: float, seed: int) -> dict[str, Any]:
    """The translation of `text` as `seqlab sample RUN --prompt TEXT` decodes it (greedy at
    temperature 0), and the attention of greedy decoding over the source: one (T, S) map per
    layer and head of cross-attention (or the RNN decoder's one map)."""
    from seqlab.data.seq2seq import BOS, EOS
    from seqlab.seq2seq import translate
    from seqlab.tokenizers import source_side

    if not run.seq2seq:
        raise BadRequest(f"run {run.name!r} is a {run.family.name} language model: it continues a text "
                         f"(/api/generate), it does not translate", status=422)
    tokenizer = run.tokenizer
    source = source_side(tokenizer)
    try:
        src_ids = source.encode(text)
    except SeqlabError as exc:
        raise BadRequest(f"run {run.name!r} cannot encode the source: {exc}", status=422) from None
    limit = run.block_size - 1 if run.block_size else None
    if limit is not None and len(src_ids) > limit:
        raise BadRequest(f"the source has {len(src_ids)} tokens: the model reads at most {limit}", status=413)
    output = translate(run.model, tokenizer, [text], max_new_tokens=max_new_tokens, temperature=temperature,
                       top_k=top_k or None, top_p=top_p, seed=seed)[0]
    result: dict[str, Any] = {"source": text, "output": output,
                              "source_tokens": [source.decode([i]) for i in src_ids]}
    align = run.family.alignment
    if align is not None:
        bos, eos = tokenizer.encode(BOS)[0], tokenizer.encode(EOS)[0]
        with torch.inference_mode():
            target, panels = align(run.model, src_ids, bos, eos, max(1, max_new_tokens))
        result["alignment"] = {"target_tokens": [tokenizer.decode([i]) or EOS for i in target],
                               "of": "the greedy output", "maps": {name: _rounded(w, 4) for name, w in panels.items()}}
    return result


__all__ = ["Generation", "distribution_view", "next_logits", "surprisal_bits", "tokens_view",
           "trace_view", "translate_view"]
