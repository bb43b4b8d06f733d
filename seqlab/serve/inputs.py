"""Every input `seqlab serve` accepts, declared once with its type and limits, and checked.

A request body is a JSON object; each endpoint declares its fields (`Field`), and `parse` returns
their values or raises `BadRequest` (a 4xx JSON error) that names the field, the value and what is
allowed: a wrong type, a value out of range, a text too long, an unknown field. The same
declarations write the request schemas of the OpenAPI page (`json_schema`), so the page and the
checks cannot disagree. Sampling means what it means everywhere in seqlab (`seqlab.generate`):
temperature 0 is greedy, top_k 0 and top_p 1 are off, a seed is any integer.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Literal

from seqlab.errors import SeqlabError

MAX_BODY_BYTES = 64 * 1024  # a request body larger than this is refused before it is read whole
MAX_TEXT_CHARS = 4000  # a text, prompt or source
MAX_STOP_CHARS = 64
MAX_NEW_TOKENS = 2000  # one generation
MAX_TRACE_TOKENS = 256  # a traced text: attention of every layer and head grows as its square
MAX_BARS = 512  # tokens listed by /api/distribution
MAX_TOP_LIST = 50  # alternatives listed per position or per generated token
MAX_TEMPERATURE = 100.0
MAX_SEED = 2**63  # |seed| below this; any integer is a seed, but a request's must be bounded
MAX_RUN_NAME = 200


class BadRequest(SeqlabError):
    """A request the server refuses: `status` is its HTTP status (4xx), the message says why."""

    def __init__(self, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.status = status


Kind = Literal["run", "text", "integer", "number", "ids", "boolean", "choices"]


@dataclass(frozen=True)
class Field:
    """One field of a request body: its kind, default (None: required), bounds and description."""

    kind: Kind
    description: str
    default: Any = None
    low: float | None = None  # numbers: the least value; texts and lists: the least length
    high: float | None = None  # numbers: the greatest; texts and lists: the greatest length
    low_open: bool = False  # low itself is not allowed (top_p > 0)
    choices: tuple[str, ...] = ()
    required: bool = False


RUN = Field("run", "the run: its index in `GET /api/runs` or its name", required=True)
TEXT = Field("text", "the text", default="", high=MAX_TEXT_CHARS)
TEMPERATURE = Field("number", "softmax temperature T (β = 1/T); 0 is greedy", low=0.0, high=MAX_TEMPERATURE)
TOP_K = Field("integer", "keep the k most probable tokens; 0 turns it off", low=0, high=1_000_000)
TOP_P = Field("number", "keep the smallest set of most probable tokens whose mass reaches p; 1 turns it off",
              low=0.0, high=1.0, low_open=True)
SEED = Field("integer", "any integer: the same seed gives the same tokens as `seqlab sample --seed`",
             low=-MAX_SEED + 1, high=MAX_SEED - 1)
MAX_NEW = Field("integer", "tokens to generate", low=0, high=MAX_NEW_TOKENS)
STOP = Field("text", "stop when this text appears; empty for none", high=MAX_STOP_CHARS)

SAMPLING = {"temperature": TEMPERATURE, "top_k": TOP_K, "top_p": TOP_P}  # defaults: the run's [sample]

REQUESTS: dict[str, dict[str, Field]] = {
    "TokensRequest": {"run": RUN, "text": TEXT},
    "DistributionRequest": {
        "run": RUN, "text": TEXT, **SAMPLING,
        "bars": Field("integer", "how many tokens to list, the most probable first", default=40, low=1,
                      high=MAX_BARS),
    },
    "GenerateRequest": {
        "run": RUN, "prompt": Field("text", "the text to continue; empty starts from a newline", default="",
                                    high=MAX_TEXT_CHARS),
        **SAMPLING, "seed": SEED, "max_new_tokens": MAX_NEW, "stop": STOP,
        "top": Field("integer", "alternatives listed with each new token", default=5, low=0, high=MAX_TOP_LIST),
    },
    "TraceRequest": {
        "run": RUN, "text": Field("text", "the text to trace", default="", high=MAX_TEXT_CHARS),
        "top": Field("integer", "next tokens listed at each position", default=5, low=0, high=MAX_TOP_LIST),
        "parts": Field("choices", "what to return (default: all the model has)",
                       default=("attention", "activations", "hmm", "ngram"),
                       choices=("attention", "activations", "hmm", "ngram")),
    },
    "TranslateRequest": {
        "run": RUN, "text": Field("text", "the source to translate", required=True, low=1, high=MAX_TEXT_CHARS),
        **SAMPLING, "seed": SEED, "max_new_tokens": MAX_NEW,
    },
}


def parse(body: Any, fields: dict[str, Field], defaults: dict[str, Any] | None = None) -> dict[str, Any]:
    """The values of `fields` in a decoded JSON body; a missing field takes `defaults` (the run's
    sampling settings), then its own default. Raises BadRequest for anything else."""
    if not isinstance(body, dict):
        raise BadRequest(f"the request body must be a JSON object, got {_json_type(body)}")
    unknown = sorted(set(body) - set(fields))
    if unknown:
        raise BadRequest(f"unknown field {unknown[0][:40]!r}: expected {', '.join(fields)}")
    values = {}
    for name, field in fields.items():
        if name in body:
            values[name] = check(name, body[name], field)
        elif field.required:
            raise BadRequest(f"{name} is required: {field.description}")
        else:
            values[name] = (defaults or {}).get(name, field.default)
    return values


def check(name: str, value: Any, field: Field) -> Any:
    """`value` as field `name` takes it, or BadRequest."""
    kind = field.kind
    if kind == "run":
        if _is_int(value) or (isinstance(value, str) and 0 < len(value) <= MAX_RUN_NAME):
            return value
        raise BadRequest(f"{name} must be a run's index or name (see GET /api/runs), got {_show(value)}")
    if kind == "text":
        if not isinstance(value, str):
            raise BadRequest(f"{name} must be a string, got {_json_type(value)}")
        _length(name, len(value), field, "characters")
        return value
    if kind == "integer":
        if not _is_int(value):
            raise BadRequest(f"{name} must be an integer, got {_show(value)}")
        _bounds(name, value, field)
        return int(value)
    if kind == "number":
        if not (_is_int(value) or isinstance(value, float)) or not math.isfinite(value):
            raise BadRequest(f"{name} must be a finite number, got {_show(value)}")
        _bounds(name, value, field)
        return float(value)
    if kind == "choices":
        if not isinstance(value, list) or not all(isinstance(v, str) and v in field.choices for v in value):
            raise BadRequest(f"{name} must be a list of {', '.join(field.choices)}, got {_show(value)}")
        return tuple(dict.fromkeys(value))
    raise AssertionError(f"unknown field kind {kind!r}")


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)  # JSON true is not 1


def _bounds(name: str, value: float, field: Field) -> None:
    low, high = field.low, field.high
    too_low = low is not None and (value <= low if field.low_open else value < low)
    if too_low or (high is not None and value > high):
        left = "(" if field.low_open else "["
        raise BadRequest(f"{name} = {_show(value)} is out of range: expected a value in {left}{_num(low)}, "
                         f"{_num(high)}]")


def _length(name: str, length: int, field: Field, unit: str) -> None:
    if field.low is not None and length < field.low:
        raise BadRequest(f"{name} is empty: {field.description}")
    if field.high is not None and length > field.high:
        raise BadRequest(f"{name} has {length:,} {unit}: at most {int(field.high):,} are accepted", status=413)


def _num(x: float | None) -> str:
    return "-inf" if x is None else f"{x:g}" if isinstance(x, float) else str(x)


def _show(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


def _json_type(value: Any) -> str:
    return {dict: "an object", list: "an array", str: "a string", bool: "a boolean", type(None): "null",
            int: "a number", float: "a number"}.get(type(value), type(value).__name__)


def json_schema(fields: dict[str, Field]) -> dict[str, Any]:
    """The OpenAPI (JSON Schema) description of a request body made of `fields`."""
    properties = {}
    for name, field in fields.items():
        prop: dict[str, Any] = {"description": field.description}
        if field.kind == "run":
            prop["oneOf"] = [{"type": "integer", "minimum": 0}, {"type": "string", "maxLength": MAX_RUN_NAME}]
        elif field.kind == "text":
            prop.update(type="string", maxLength=int(field.high))
            if field.low:
                prop["minLength"] = int(field.low)
        elif field.kind == "choices":
            prop.update(type="array", items={"type": "string", "enum": list(field.choices)})
        else:
            prop["type"] = field.kind
            if field.low is not None:
                prop["exclusiveMinimum" if field.low_open else "minimum"] = field.low
            if field.high is not None:
                prop["maximum"] = field.high
        if field.default is not None and not field.required:
            prop["default"] = list(field.default) if isinstance(field.default, tuple) else field.default
        properties[name] = prop
    required = [name for name, field in fields.items() if field.required]
    return {"type": "object", "properties": properties, "required": required, "additionalProperties": False}


def limits() -> dict[str, int]:
    """The limits, as `GET /api/runs` reports them to the page."""
    return {"body_bytes": MAX_BODY_BYTES, "text_chars": MAX_TEXT_CHARS, "new_tokens": MAX_NEW_TOKENS,
            "trace_tokens": MAX_TRACE_TOKENS, "bars": MAX_BARS, "stop_chars": MAX_STOP_CHARS}


__all__ = ["BadRequest", "Field", "REQUESTS", "check", "json_schema", "limits", "parse"]
