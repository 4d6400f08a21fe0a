"""KServe / Seldon inference-logger collector: CloudEvents request/response pairs -> `inference-request` events.

The KServe logger (the `logger:` block of an InferenceService, `mode: all`) sends every request
and every HTTP-200 response as a CloudEvent 1.0 in **binary mode** (`parse_binary`, `parse_http`):

    ce-specversion: 1.0
    ce-id: <request id, shared by the request and its response>
    ce-type: org.kubeflow.serving.inference.request | org.kubeflow.serving.inference.response
    ce-source: http://localhost:9081/
    ce-time: 2026-01-01T00:00:00.123456789Z
    ce-inferenceservicename: fraud-scorer     ce-namespace: models-prod
    ce-component: predictor                   ce-endpoint: default | canary
    ce-metadata: {"X-Client-Id":["acme"]}     (request headers listed in the logger's metadataHeaders)
    ce-annotations: {...}                     Content-Type: application/json
    <body: the request or response body as the predictor saw it>

Header values are percent-decoded (CloudEvents HTTP binding). Files hold the same events in
**structured mode** (`parse_structured`, `replay`: NDJSON or a JSON array of
`{"specversion", "id", "type", ..., "data" | "data_base64"}`). Seldon Core's logger
(`io.seldon.serving.inference.request|response`) is accepted the same way. Bodies follow the V2
inference protocol (`inputs` / `outputs`: `[{name, shape, datatype, data}]`) or V1
(`{"instances": [...]}` / `{"predictions": [...]}`); other content types are kept opaque.

A `RequestResponseJoiner` pairs a request with its response by ce-id (plus service, namespace,
component and endpoint, so mirrored traffic on two predictors is two pairs) and emits one event per
pair. Only HTTP-200 responses are logged, so a request still alone after `ttl_seconds` becomes an
event with `event.outcome: unknown`; a response whose request never came becomes an event with
`event.outcome: success` and no input fields. Memory is bounded by `max_pending` (the oldest
waiting message is emitted unpaired when full); nothing is persisted across restarts.

The KServe logger cannot add an Authorization header: protect its receiver by network policy or
mesh mTLS, not by token.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import ipaddress
import json
import math
import re
import sqlite3
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Iterator, Mapping
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import unquote

from pydantic import BaseModel, ConfigDict, Field

from aisoc.collectors.base import MappingError, cap_original, make_event, read_replay_file
from aisoc.collectors.llm_gateway import iter_json_records
from aisoc.records import Rejected
from aisoc.rules.model import normalize_timestamp

ACTION = "inference-request"
LAYER = "inference"
REQUEST_TYPES = {"org.kubeflow.serving.inference.request": "kserve", "io.seldon.serving.inference.request": "seldon"}
RESPONSE_TYPES = {"org.kubeflow.serving.inference.response": "kserve",
                  "io.seldon.serving.inference.response": "seldon"}
DEFAULT_MAX_BODY_BYTES = 10 * 1024 * 1024
MAX_REPLAY_FILE_BYTES = 256 * 1024 * 1024
MAX_ATTR = 256
MAX_REASON = 1024
MAX_RAW = 64 * 1024
MAX_VALUES = 1_000_000
SIGNIFICANT_DIGITS = 3
SOURCE = "kserve:http"
# what a malformed record can raise on its way through decoding and mapping (never out of a parse_* call)
_BAD_INPUT = (MappingError, ValueError, TypeError, KeyError, IndexError, AttributeError, OverflowError, RecursionError)


def _why(exc: Exception) -> str:
    return str(exc) if isinstance(exc, MappingError) else f"cannot read record: {type(exc).__name__}: {exc}"


class KServeConfig(BaseModel):
    """How the KServe collector joins and reads inference-logger events."""

    model_config = ConfigDict(extra="forbid")

    name: str = "kserve"
    ttl_seconds: float = Field(default=300.0, gt=0, le=86_400,
                               description="How long a request waits for its response before it is emitted alone.")
    max_pending: int = Field(default=50_000, ge=1, le=10_000_000)
    max_body_bytes: int = Field(default=DEFAULT_MAX_BODY_BYTES, ge=1024, le=256 * 1024 * 1024)
    client_id_headers: list[str] = Field(
        default_factory=lambda: ["X-Client-Id", "X-Consumer-Id", "X-User-Id", "X-Api-Key-Id"],
        description="Request headers (forwarded via the logger's metadataHeaders) naming the caller, first match wins.")
    source_ip_headers: list[str] = Field(default_factory=lambda: ["X-Forwarded-For", "X-Real-Ip"])
    probability_outputs: list[str] = Field(
        default_factory=lambda: ["probabilities", "probability", "probs", "predict_proba", "output_probability",
                                 "scores", "softmax"],
        description="V2 output tensor names holding class probabilities (else the first numeric output).")
    label_outputs: list[str] = Field(
        default_factory=lambda: ["label", "labels", "class", "classes", "predicted_class", "output_label"],
        description="V2 output tensor names holding the predicted class label.")


# ---- messages --------------------------------------------------------------------------------------


@dataclass
class InferenceMessage:
    """One logged request or response: its CloudEvent attributes and parsed body."""

    id: str
    kind: str  # "request" | "response"
    provider: str  # "kserve" | "seldon"
    source: str | None
    time: str | None  # normalized ISO-8601 UTC
    service: str | None
    namespace: str | None
    component: str | None
    endpoint: str | None
    metadata: dict[str, list[str]]
    content_type: str
    body: Any  # parsed JSON, or None for an opaque body
    body_size: int  # bytes of a binary-mode body; 0 for structured-mode data (already parsed)
    original: dict[str, Any] = field(repr=False, default_factory=dict)

    @property
    def key(self) -> tuple[str, ...]:
        return (self.id, self.service or "", self.namespace or "", self.component or "", self.endpoint or "")

    def header(self, name: str) -> str | None:
        for key, values in self.metadata.items():
            if key.lower() == name.lower() and values:
                return values[0]
        return None


def _attr(value: Any, what: str, required: bool = False) -> str | None:
    if value is None or value == "":
        if required:
            raise MappingError(f"CloudEvent attribute {what} is missing")
        return None
    if not isinstance(value, str):
        raise MappingError(f"CloudEvent attribute {what} must be a string, got {type(value).__name__}")
    if len(value) > MAX_ATTR and what not in ("metadata", "annotations"):
        raise MappingError(f"CloudEvent attribute {what} is {len(value)} characters, over {MAX_ATTR}")
    return value


def _ce_time(value: str | None) -> str | None:
    if value is None:
        return None
    text = re.sub(r"(\.\d{6})\d+", r"\1", value.strip())
    try:
        stamp = normalize_timestamp(text)
    except (ValueError, OverflowError, TypeError):
        stamp = None
    if stamp is None:
        raise MappingError(f"CloudEvent time {value[:64]!r} is not RFC 3339")
    return stamp


def _metadata(value: str | None) -> dict[str, list[str]]:
    """The logger's `metadata` extension: JSON {header: [values]} of the forwarded request headers."""
    if not value:
        return {}
    try:
        data = json.loads(value)
    except (ValueError, RecursionError):
        raise MappingError("CloudEvent attribute metadata is not JSON") from None
    if not isinstance(data, dict):
        raise MappingError("CloudEvent attribute metadata must be a JSON object of header lists")
    out: dict[str, list[str]] = {}
    for key, values in list(data.items())[:64]:
        if isinstance(values, str):
            values = [values]
        if isinstance(values, list):
            out[str(key)[:MAX_ATTR]] = [v[:MAX_ATTR] for v in values[:16] if isinstance(v, str)]
    return out


def _parse_body(data: bytes | str | Any, content_type: str, max_bytes: int) -> tuple[Any, int]:
    """Body -> (parsed JSON or None for an opaque body, size). JSON content that does not parse is an error."""
    if not isinstance(data, bytes | str):  # structured mode: data is already JSON, so never opaque and its
        return data, 0  # size is not needed (serializing tensors only to measure them doubled the mapping cost)
    raw = data.encode("utf-8") if isinstance(data, str) else data
    if len(raw) > max_bytes:
        raise MappingError(f"body is {len(raw)} bytes, over the {max_bytes}-byte limit")
    jsonish = not content_type or "json" in content_type.lower()
    if not jsonish:
        return None, len(raw)
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise MappingError(f"JSON body is not UTF-8 (byte {exc.start})") from None
    if not text.strip():
        return None, 0
    try:
        return json.loads(text), len(raw)
    except (ValueError, RecursionError) as exc:
        raise MappingError(f"body is not valid JSON ({str(exc)[:200]})") from None


def _json_text(value: Any) -> Any:
    """Extension attributes are strings; a structured-mode writer may have stored the object itself."""
    return json.dumps(value) if isinstance(value, dict) else value


def _kind(ce_type: str | None) -> tuple[str, str]:
    if ce_type in REQUEST_TYPES:
        return "request", REQUEST_TYPES[ce_type]
    if ce_type in RESPONSE_TYPES:
        return "response", RESPONSE_TYPES[ce_type]
    raise MappingError(f"unknown CloudEvent type {str(ce_type)[:128]!r} (expected an inference request or response)")


def _message(attrs: Mapping[str, Any], data: Any, content_type: str, max_bytes: int,
             original: dict[str, Any]) -> InferenceMessage:
    specversion = _attr(attrs.get("specversion"), "specversion", required=True)
    if specversion != "1.0":
        raise MappingError(f"CloudEvents specversion {str(specversion)[:16]!r} is not 1.0")
    kind, provider = _kind(_attr(attrs.get("type"), "type", required=True))
    ce_id = _attr(attrs.get("id"), "id", required=True)
    assert ce_id is not None
    body, size = _parse_body(data, content_type, max_bytes)
    service = _attr(attrs.get("inferenceservicename"), "inferenceservicename") or _attr(
        attrs.get("modelid"), "modelid")
    return InferenceMessage(
        id=ce_id, kind=kind, provider=provider, source=_attr(attrs.get("source"), "source"),
        time=_ce_time(_attr(attrs.get("time"), "time")), service=service,
        namespace=_attr(attrs.get("namespace"), "namespace"), component=_attr(attrs.get("component"), "component"),
        endpoint=_attr(attrs.get("endpoint"), "endpoint"),
        metadata=_metadata(_attr(_json_text(attrs.get("metadata")), "metadata")),
        content_type=content_type[:MAX_ATTR], body=body, body_size=size, original=original)


def _headers(headers: Mapping[str, str] | Any) -> dict[str, str]:
    try:
        items = list(headers.items())
    except AttributeError:
        return {}
    return {k.lower(): v for k, v in items if isinstance(k, str) and isinstance(v, str)}


def decode_binary(headers: Mapping[str, str] | Any, body: bytes,
                  max_body_bytes: int = DEFAULT_MAX_BODY_BYTES) -> InferenceMessage:
    """A binary-mode CloudEvent (ce-* headers + body) -> InferenceMessage. Raises MappingError."""
    if not isinstance(body, bytes | bytearray):
        raise MappingError(f"body must be bytes, got {type(body).__name__}")
    lowered = _headers(headers)
    attrs = {k[3:]: unquote(v) for k, v in lowered.items() if k.startswith("ce-")}
    content_type = lowered.get("content-type", "")
    text = bytes(body[:MAX_RAW]).decode("utf-8", errors="replace")
    original = {"headers": {k: v for k, v in lowered.items() if k.startswith("ce-") or k == "content-type"},
                "body": text}
    return _message(attrs, bytes(body), content_type, max_body_bytes, original)


def decode_structured(obj: Any, max_body_bytes: int = DEFAULT_MAX_BODY_BYTES) -> InferenceMessage:
    """A structured-mode CloudEvent (JSON object) -> InferenceMessage. Raises MappingError."""
    if not isinstance(obj, dict):
        raise MappingError(f"a structured CloudEvent must be a JSON object, got {type(obj).__name__}")
    content_type = obj.get("datacontenttype") if isinstance(obj.get("datacontenttype"), str) else "application/json"
    if "data_base64" in obj:
        encoded = obj["data_base64"]
        if not isinstance(encoded, str) or len(encoded) > max_body_bytes * 4 // 3 + 4:
            raise MappingError("data_base64 must be a base64 string within the body limit")
        try:
            data: Any = base64.b64decode(encoded, validate=True)
        except (binascii.Error, ValueError):
            raise MappingError("data_base64 is not valid base64") from None
    else:
        data = obj.get("data")
        if isinstance(data, str) and "json" in content_type.lower():
            data = data.encode("utf-8")
    return _message(obj, data, content_type, max_body_bytes, obj)


# ---- features of bodies -----------------------------------------------------------------------------


def _flatten(data: Any, out: list[Any], budget: int = MAX_VALUES) -> None:
    stack = [data]
    while stack:
        item = stack.pop()
        if isinstance(item, list):
            stack.extend(reversed(item))
        else:
            if len(out) >= budget:
                raise MappingError(f"tensor has more than {budget} values")
            out.append(item)


def _round(value: Any) -> Any:
    """A value for the skeleton: floats to 3 significant digits, long strings by hash."""
    if isinstance(value, bool) or value is None:
        return value
    if isinstance(value, int):
        return value if abs(value) < 10**15 else float(f"{value:.{SIGNIFICANT_DIGITS}g}")
    if isinstance(value, float):
        if not math.isfinite(value):
            return str(value)
        return float(f"{value:.{SIGNIFICANT_DIGITS}g}")
    if isinstance(value, str):
        return value if len(value) <= 64 else "sha256:" + hashlib.sha256(value.encode()).hexdigest()[:16]
    return type(value).__name__


def _tensors(body: Any, key: str) -> list[dict[str, Any]] | None:
    tensors = body.get(key) if isinstance(body, dict) else None
    return [t for t in tensors if isinstance(t, dict)] if isinstance(tensors, list) else None


def input_fields(body: Any) -> dict[str, Any]:
    """`aisoc.inference.input.count` and `.input.skeleton_hash` of a V2 or V1 request body.

    V2: count = the batch dimension (largest shape[0] of the input tensors, else the number of
    tensors); skeleton = sha256 of the canonical JSON of `[name, shape, datatype, values]` per
    tensor in name order. V1: count = len(instances) (or `inputs`); skeleton = sha256 of the
    canonical JSON of the instances. Values are rounded to 3 significant digits (strings over 64
    characters by their hash), so the same input always hashes the same and a replayed or
    near-identical input is recognizable across predictors.
    """
    v2 = _tensors(body, "inputs")
    if v2 is not None and isinstance(body, dict) and not isinstance(body.get("instances"), list):
        skeleton = []
        batch = 0
        for tensor in v2:
            shape = tensor.get("shape") if isinstance(tensor.get("shape"), list) else []
            if shape and isinstance(shape[0], int) and not isinstance(shape[0], bool):
                batch = max(batch, shape[0])
            values: list[Any] = []
            _flatten(tensor.get("data"), values)
            skeleton.append([str(tensor.get("name", ""))[:MAX_ATTR], [s for s in shape if isinstance(s, int)][:16],
                             str(tensor.get("datatype", ""))[:32], [_round(v) for v in values]])
        skeleton.sort(key=lambda t: t[0])
        digest = hashlib.sha256(json.dumps(skeleton, separators=(",", ":"), sort_keys=True).encode()).hexdigest()
        return {"aisoc.inference.input.count": batch or len(v2), "aisoc.inference.input.skeleton_hash": digest}
    instances = body.get("instances", body.get("inputs")) if isinstance(body, dict) else None
    if isinstance(instances, list):
        budget = [MAX_VALUES]
        rows = [_round_nested(row, budget) for row in instances]
        digest = hashlib.sha256(json.dumps(rows, separators=(",", ":"), sort_keys=True).encode()).hexdigest()
        return {"aisoc.inference.input.count": len(instances), "aisoc.inference.input.skeleton_hash": digest}
    return {}


def _round_nested(value: Any, budget: list[int], depth: int = 0) -> Any:
    """`_round` through nested instances, at most 32 levels and `budget[0]` values."""
    if depth > 32:
        raise MappingError("instance nested more than 32 levels deep")
    budget[0] -= 1
    if budget[0] < 0:
        raise MappingError(f"request has more than {MAX_VALUES} values")
    if isinstance(value, list):
        return [_round_nested(v, budget, depth + 1) for v in value]
    if isinstance(value, dict):
        return {str(k): _round_nested(v, budget, depth + 1) for k, v in value.items()}
    return _round(value)


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        return None
    return float(value)


def _probabilities(values: list[float]) -> list[float]:
    """Class probabilities: as given when they already sum to 1 (within 1e-3), else softmax of the scores."""
    if all(0.0 <= v <= 1.0 for v in values) and abs(sum(values) - 1.0) <= 1e-3:
        return values
    top = max(values)
    exps = [math.exp(v - top) for v in values]
    total = sum(exps)
    return [e / total for e in exps]


def prediction_fields(row: Any) -> dict[str, Any]:
    """Predicted class, confidence and margin of one output row.

    - a vector of 2+ numbers: class probabilities (softmax first if they do not sum to 1): class =
      arg-max index, confidence = top probability, margin = top1 - top2;
    - one number in (0, 1) (alone or as a 1-vector): probability p of the positive class: class "1"
      if p >= 0.5 else "0", confidence = max(p, 1-p), margin = |2p - 1|;
    - an integer-valued number or a string: the class label itself (no confidence);
    - a dict (V1 custom predictors): `label`/`class`/`prediction` and `probabilities`/`scores`/`score`.
    """
    if isinstance(row, dict):
        fields: dict[str, Any] = {}
        for key in ("probabilities", "probs", "scores", "proba"):
            if isinstance(row.get(key), list):
                fields = prediction_fields(row[key])
                break
        for key in ("label", "class", "predicted_class", "prediction"):
            if isinstance(row.get(key), str | int) and not isinstance(row.get(key), bool):
                fields["aisoc.inference.predicted_class"] = str(row[key])[:MAX_ATTR]
                break
        score = _number(row.get("score", row.get("confidence")))
        if score is not None and 0.0 <= score <= 1.0 and "aisoc.inference.confidence" not in fields:
            fields["aisoc.inference.confidence"] = round(score, 6)
        return fields
    if isinstance(row, list) and len(row) == 1:
        row = row[0]
    if isinstance(row, list):
        values = [_number(v) for v in row]
        if len(values) < 2 or any(v is None for v in values):
            return {}
        probs = _probabilities([v for v in values if v is not None])
        order = sorted(range(len(probs)), key=lambda i: (-probs[i], i))
        return {"aisoc.inference.predicted_class": str(order[0]),
                "aisoc.inference.confidence": round(probs[order[0]], 6),
                "aisoc.inference.margin": round(probs[order[0]] - probs[order[1]], 6)}
    if isinstance(row, str):
        return {"aisoc.inference.predicted_class": row[:MAX_ATTR]}
    value = _number(row)
    if value is None:
        return {}
    if value == int(value) and abs(value) < 2**53:
        return {"aisoc.inference.predicted_class": str(int(value))}
    if 0.0 < value < 1.0:
        return {"aisoc.inference.predicted_class": "1" if value >= 0.5 else "0",
                "aisoc.inference.confidence": round(max(value, 1 - value), 6),
                "aisoc.inference.margin": round(abs(2 * value - 1), 6)}
    return {}


def _first_row(tensor: dict[str, Any]) -> Any:
    """Row 0 of a V2 tensor (its data reshaped by `shape`), or None."""
    data = tensor.get("data")
    shape = tensor.get("shape") if isinstance(tensor.get("shape"), list) else []
    if isinstance(data, list) and data and isinstance(data[0], list):
        return data[0]
    values: list[Any] = []
    _flatten(data, values)
    if not values:
        return None
    dims = [d for d in shape if isinstance(d, int) and not isinstance(d, bool) and d >= 0]
    if len(dims) >= 2:
        width = math.prod(dims[1:])
        return values[:width] if 0 < width <= len(values) else None
    return values[0]


def output_fields(body: Any, config: KServeConfig) -> dict[str, Any]:
    """Prediction of a V2 or V1 response, plus the model name and version a V2 response reports.

    For a batch the fields describe row 0 (the same row on every predictor, so canary and default
    compare like with like); `aisoc.inference.input.count` says how many rows there were.
    """
    if not isinstance(body, dict):
        return {}
    fields: dict[str, Any] = {}
    outputs = _tensors(body, "outputs")
    if outputs is not None:
        by_name = {str(t.get("name", "")).lower(): t for t in outputs}
        probs = next((by_name[n.lower()] for n in config.probability_outputs if n.lower() in by_name), None)
        label = next((by_name[n.lower()] for n in config.label_outputs if n.lower() in by_name), None)
        if probs is None and label is None and outputs:
            probs = outputs[0]
        if probs is not None:
            fields.update(prediction_fields(_first_row(probs)))
        if label is not None:
            label_fields = prediction_fields(_first_row(label))
            if "aisoc.inference.predicted_class" in label_fields:
                fields["aisoc.inference.predicted_class"] = label_fields["aisoc.inference.predicted_class"]
        model = body.get("model_name")
        version = body.get("model_version")
        fields["aisoc.model.name"] = model[:MAX_ATTR] if isinstance(model, str) else None
        fields["aisoc.model.version"] = version[:MAX_ATTR] if isinstance(version, str) else None
        return fields
    predictions = body.get("predictions", body.get("outputs"))
    if isinstance(predictions, list) and predictions:
        fields.update(prediction_fields(predictions[0]))
    return fields


# ---- events -----------------------------------------------------------------------------------------


def _endpoint(value: str | None) -> str | None:
    if value is None:
        return None
    return "canary" if "canary" in value.lower() else "default"


def _ip(value: str | None) -> str | None:
    if not value:
        return None
    try:
        return str(ipaddress.ip_address(value.split(",")[0].strip()))
    except ValueError:
        return None


def inference_event(request: InferenceMessage | None, response: InferenceMessage | None,
                    config: KServeConfig | None = None, received: str | None = None) -> dict[str, Any]:
    """One `inference-request` event from a request and/or its response. Raises MappingError."""
    config = config or KServeConfig()
    head = request or response
    if head is None:
        raise ValueError("inference_event needs a request or a response")
    outcome = "success" if response is not None else "unknown"
    timestamp = (request.time if request else None) or (response.time if response else None) or received
    fields: dict[str, Any] = {
        "event.category": ["api"],
        "event.type": ["access"] if response is not None else ["access", "info"],
        "aisoc.inference.service": head.service,
        "aisoc.inference.namespace": head.namespace,
        "aisoc.inference.component": head.component,
        "aisoc.inference.endpoint": _endpoint(head.endpoint),
        "aisoc.inference.request_id": head.id,
        "service.name": head.service,
        "http.response.status_code": 200 if response is not None else None,
        "tags": [],
    }
    source = request or response
    assert source is not None
    client = next((v for h in config.client_id_headers if (v := source.header(h))), None)
    fields["aisoc.inference.client_id"] = client
    fields["source.ip"] = next((ip for h in config.source_ip_headers if (ip := _ip(source.header(h)))), None)
    fields["user_agent.original"] = source.header("User-Agent")
    if request is not None:
        if request.body is None and request.body_size:
            fields["tags"].append("opaque-request-body")
        fields.update(input_fields(request.body))
    else:
        fields["tags"].append("request-not-logged")
    if response is not None:
        fields.update(output_fields(response.body, config))
    if request is not None and response is not None and request.time and response.time:
        start = datetime.fromisoformat(request.time.replace("Z", "+00:00"))
        end = datetime.fromisoformat(response.time.replace("Z", "+00:00"))
        if end >= start:
            fields["event.duration"] = int((end - start).total_seconds() * 1e9)
    cls = fields.get("aisoc.inference.predicted_class")
    fields["message"] = (f"inference {head.service or '?'}/{_endpoint(head.endpoint) or '?'} "
                         + (f"predicted {cls}" if cls is not None else outcome))
    original = {"request": request.original if request else None, "response": response.original if response else None}
    return make_event(
        layer=LAYER, provider=head.provider, action=ACTION, record_id=head.key, timestamp=timestamp,
        fields=fields, original=cap_original(original), outcome=outcome, collector=config.name)


@dataclass
class _Pending:
    message: InferenceMessage
    arrived: float


class RequestResponseJoiner:
    """Pairs logged requests with their responses (by ce-id, service, namespace, component, endpoint).

    `add` returns the events that became ready: the joined pair, and anything whose TTL ran out or
    that was pushed out by `max_pending`. `expire` emits what waited longer than the TTL (call it
    on a timer when traffic may stop); `flush` emits everything (end of a replay). `now` defaults to
    a monotonic clock; replays pass the event time instead.

    With a `store` (SQLite file) the waiting halves survive a restart: each is written when it
    arrives, before the receiver acknowledges it, and removed by `commit` once the events it became
    part of are stored. A crash in between leaves it in the store, so it is joined (or expired)
    again after the restart, into an event with the same id. The clock is then wall time.
    """

    def __init__(self, config: KServeConfig | None = None, clock: Callable[[], float] | None = None,
                 store: Path | None = None) -> None:
        self.config = config or KServeConfig()
        self.clock = clock or (time.time if store is not None else time.monotonic)
        self._pending: OrderedDict[tuple[str, ...], dict[str, _Pending]] = OrderedDict()
        self._settled: list[tuple[str, ...]] = []  # left the joiner, rows deleted at the next commit
        self._lock = threading.RLock()
        self._db: sqlite3.Connection | None = None
        self.stats = {"joined": 0, "expired_requests": 0, "orphan_responses": 0, "evicted": 0, "duplicates": 0}
        if store is not None:
            self._open(store)

    def _open(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=FULL")
        self._db.execute("CREATE TABLE IF NOT EXISTS pending (key TEXT NOT NULL, kind TEXT NOT NULL, "
                         "message TEXT NOT NULL, arrived REAL NOT NULL, PRIMARY KEY (key, kind))")
        self._load()

    def _load(self) -> None:
        assert self._db is not None
        self._pending.clear()
        self._settled.clear()
        for key, message, arrived in self._db.execute("SELECT key, message, arrived FROM pending ORDER BY arrived"):
            restored = InferenceMessage(**json.loads(message))
            self._pending.setdefault(tuple(json.loads(key)), {})[restored.kind] = _Pending(restored, arrived)

    def __len__(self) -> int:
        return len(self._pending)

    def _emit(self, key: tuple[str, ...], entry: dict[str, _Pending]) -> dict[str, Any] | Rejected:
        self._settled.append(key)
        request = entry["request"].message if "request" in entry else None
        response = entry["response"].message if "response" in entry else None
        try:
            return inference_event(request, response, self.config, received=_now_iso())
        except _BAD_INPUT as exc:
            head = request or response
            return Rejected(f"{self.config.name}:join", f"cannot build event: {_why(exc)}"[:MAX_REASON],
                            _dump(head.original if head else {}))

    def _remember(self, message: InferenceMessage, now: float) -> None:
        if self._db is not None:
            self._db.execute("INSERT OR IGNORE INTO pending (key, kind, message, arrived) VALUES (?, ?, ?, ?)",
                             (json.dumps(message.key), message.kind, json.dumps(asdict(message), default=str), now))

    def add(self, message: InferenceMessage, now: float | None = None) -> list[dict[str, Any] | Rejected]:
        with self._lock:
            now = self.clock() if now is None else now
            out = self.expire(now)
            entry = self._pending.get(message.key)
            if entry is None:
                self._remember(message, now)
                self._pending[message.key] = {message.kind: _Pending(message, now)}
                while len(self._pending) > self.config.max_pending:
                    key, oldest = self._pending.popitem(last=False)
                    self.stats["evicted"] += 1
                    out.append(self._emit(key, oldest))
                return out
            if message.kind in entry:
                self.stats["duplicates"] += 1  # redelivery: the first copy stands
                return out
            entry[message.kind] = _Pending(message, now)
            del self._pending[message.key]
            self.stats["joined"] += 1
            out.append(self._emit(message.key, entry))
            return out

    def expire(self, now: float | None = None) -> list[dict[str, Any] | Rejected]:
        with self._lock:
            now = self.clock() if now is None else now
            out: list[dict[str, Any] | Rejected] = []
            while self._pending:
                key, entry = next(iter(self._pending.items()))
                arrived = min(p.arrived for p in entry.values())
                if now - arrived <= self.config.ttl_seconds:
                    break
                del self._pending[key]
                self.stats["expired_requests" if "request" in entry else "orphan_responses"] += 1
                out.append(self._emit(key, entry))
            return out

    def flush(self) -> list[dict[str, Any] | Rejected]:
        with self._lock:
            out = []
            while self._pending:
                key, entry = self._pending.popitem(last=False)
                self.stats["expired_requests" if "request" in entry else "orphan_responses"] += 1
                out.append(self._emit(key, entry))
            return out

    def commit(self) -> None:
        """The events emitted so far are stored: forget their halves in the store too."""
        with self._lock:
            settled, self._settled = self._settled, []
            if self._db is not None and settled:
                with self._db:
                    self._db.execute("BEGIN")
                    self._db.executemany("DELETE FROM pending WHERE key = ?", [(json.dumps(k),) for k in settled])

    def discard(self) -> None:
        """The events emitted since the last commit were not stored: go back to the halves in the store."""
        with self._lock:
            if self._db is not None:
                self._load()

    def close(self) -> None:
        if self._db is not None:
            self._db.close()
            self._db = None


def _now_iso() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


_DEFAULT_JOINER: RequestResponseJoiner | None = None


def default_joiner() -> RequestResponseJoiner:
    """The process-wide joiner `parse_http` uses when none is given (call `.expire()` on a timer)."""
    global _DEFAULT_JOINER
    if _DEFAULT_JOINER is None:
        _DEFAULT_JOINER = RequestResponseJoiner()
    return _DEFAULT_JOINER


# ---- entry points -------------------------------------------------------------------------------------


def _reject(source: str, reason: str, raw: bytes | str, line: int | None = None) -> Rejected:
    return Rejected(source=source, reason=reason[:MAX_REASON], raw=raw[:MAX_RAW], line=line)


def parse_binary(headers: Mapping[str, str] | Any, body: bytes,
                 joiner: RequestResponseJoiner | None = None) -> list[dict[str, Any] | Rejected]:
    """A binary-mode CloudEvent from the logger -> the events it completes (often none yet)."""
    joiner = default_joiner() if joiner is None else joiner
    try:
        message = decode_binary(headers, body, joiner.config.max_body_bytes)
    except _BAD_INPUT as exc:
        raw = body if isinstance(body, bytes | bytearray) else b""
        return [_reject(f"{joiner.config.name}:binary", _why(exc), bytes(raw[:MAX_RAW]))]
    return joiner.add(message)


def parse_structured(obj: Any, joiner: RequestResponseJoiner | None = None, now: float | None = None,
                     where: str = "kserve:structured") -> list[dict[str, Any] | Rejected]:
    """A structured-mode CloudEvent (JSON object) -> the events it completes."""
    joiner = default_joiner() if joiner is None else joiner
    try:
        message = decode_structured(obj, joiner.config.max_body_bytes)
    except _BAD_INPUT as exc:
        return [_reject(where, _why(exc), _dump(obj))]
    return joiner.add(message, now)


def _dump(obj: Any) -> str:
    try:
        return json.dumps(obj, default=str)[:MAX_RAW]
    except (ValueError, RecursionError):
        return repr(obj)[:MAX_RAW]


def parse_http(headers: Mapping[str, str] | Any, body: bytes,
               joiner: RequestResponseJoiner | None = None) -> list[dict[str, Any] | Rejected]:
    """Any HTTP delivery of the logger: binary mode, structured (`application/cloudevents+json`) or batch."""
    joiner = default_joiner() if joiner is None else joiner
    source = f"{joiner.config.name}:http"
    if not isinstance(body, bytes | bytearray):
        return [_reject(source, f"body must be bytes, got {type(body).__name__}", b"")]
    if len(body) > joiner.config.max_body_bytes:
        return [_reject(source, f"body is {len(body)} bytes, over the {joiner.config.max_body_bytes}-byte limit",
                        bytes(body[:4096]))]
    lowered = _headers(headers)
    content_type = lowered.get("content-type", "").lower()
    if content_type.startswith(("application/cloudevents+json", "application/cloudevents-batch+json")):
        try:
            text = bytes(body).decode("utf-8")
        except UnicodeDecodeError as exc:
            return [_reject(source, f"body is not UTF-8 (byte {exc.start})", bytes(body))]
        out: list[dict[str, Any] | Rejected] = []
        for record in iter_json_records(text, source):
            if record.error is not None:
                out.append(_reject(record.where, record.error, record.raw, record.line))
            else:
                out.extend(parse_structured(record.value, joiner, where=record.where))
        return out
    if "ce-specversion" not in lowered:
        return [_reject(source, "not a CloudEvent: no ce-specversion header and not application/cloudevents+json",
                        bytes(body[:4096]))]
    return parse_binary(headers, bytes(body), joiner)


def _epoch(stamp: str | None) -> float | None:
    if stamp is None:
        return None
    return datetime.fromisoformat(stamp.replace("Z", "+00:00")).timestamp()


def replay(path: str | Path, config: KServeConfig | None = None) -> Iterator[dict[str, Any] | Rejected]:
    """Events from a file of structured-mode CloudEvents (NDJSON or a JSON array), joined in event time.

    The TTL is measured between CloudEvent times, so a file replays as it happened; whatever is still
    waiting at the end of the file is emitted unpaired. Bad records are Rejected as `file:line`.
    """
    path = Path(path)
    joiner = RequestResponseJoiner(config)
    data = read_replay_file(path, MAX_REPLAY_FILE_BYTES)
    if isinstance(data, Rejected):
        yield data
        return
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        text = None
    lines = iter_json_records(text, str(path)) if text is not None else _byte_lines(data, str(path))
    last = 0.0
    for record in lines:
        if isinstance(record, Rejected):
            yield record
            continue
        if record.error is not None:
            yield _reject(record.where, record.error, record.raw, record.line)
            continue
        try:
            message = decode_structured(record.value, joiner.config.max_body_bytes)
        except _BAD_INPUT as exc:
            yield _reject(record.where, _why(exc), record.raw, record.line)
            continue
        last = max(last, _epoch(message.time) or last)
        yield from joiner.add(message, _epoch(message.time) or last)
    yield from joiner.flush()


def _byte_lines(data: bytes, source: str) -> Iterator[Any]:
    """NDJSON lines of a file that is not all UTF-8: bad lines become Rejected, good ones records."""
    from aisoc.collectors.llm_gateway import JsonRecord

    for number, raw in enumerate(data.split(b"\n"), start=1):
        if not raw.strip():
            continue
        where = f"{source}:{number}"
        try:
            line = raw.decode("utf-8")
            yield JsonRecord(where, number, line, json.loads(line))
        except UnicodeDecodeError as exc:
            yield _reject(where, f"line is not UTF-8 (byte {exc.start})", raw, number)
        except (ValueError, RecursionError) as exc:
            yield JsonRecord(where, number, raw.decode("utf-8", "replace"), error=f"not valid JSON: {exc}")
