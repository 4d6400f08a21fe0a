"""Turn a pushed HTTP body into events, per source kind. Each parser returns events and Rejected
records; it never raises on bad input."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from aisoc.records import Rejected
from aisoc.rules.model import flatten_event, normalize_timestamp

Parsed = list[dict[str, Any] | Rejected]
Parser = Callable[[Mapping[str, str], bytes, str], Parsed]


def parse_ndjson(headers: Mapping[str, str], body: bytes, source: str) -> Parsed:
    """ECS events, one JSON object per line (or one JSON array). An event without `event.id` gets one
    derived from its content, so a redelivered event keeps its id."""
    out: Parsed = []
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError as exc:
        return [Rejected(source, f"body is not UTF-8 (byte {exc.start})", body)]
    stripped = text.lstrip()
    if stripped.startswith("["):
        try:
            items = json.loads(stripped)
        except json.JSONDecodeError as exc:
            return [Rejected(source, f"not JSON: {exc.msg} at line {exc.lineno} column {exc.colno}", body)]
        lines = [(i + 1, item) for i, item in enumerate(items)]
    else:
        lines = []
        for number, line in enumerate(text.splitlines(), start=1):
            if not line.strip():
                continue
            try:
                lines.append((number, json.loads(line)))
            except json.JSONDecodeError as exc:
                out.append(Rejected(f"{source}:{number}", f"not JSON: {exc.msg} at column {exc.colno}", line, number))
    for number, item in lines:
        where = f"{source}:{number}"
        if not isinstance(item, dict):
            out.append(Rejected(where, "each record must be a JSON object", json.dumps(item), number))
            continue
        flat = flatten_event(item)
        try:
            timestamp = normalize_timestamp(flat.get("@timestamp")) if flat.get("@timestamp") else None
        except (TypeError, ValueError):
            timestamp = None
        if timestamp is None:
            out.append(Rejected(where, "event has no valid '@timestamp' (ISO-8601)", json.dumps(item), number))
            continue
        if not flat.get("event.id"):
            canonical = json.dumps(item, sort_keys=True, ensure_ascii=False, default=str)
            item = {**item, "event.id": hashlib.sha256(f"{source}|{canonical}".encode()).hexdigest()[:40]}
        out.append(item)
    return out


class KServeSource:
    """The KServe/Seldon logger's pushes: request and response halves joined across deliveries.

    With a `state` file the waiting halves are durable (see `RequestResponseJoiner`): the receiver
    calls `commit` once a delivery's events are spooled, and `tick` on a timer so halves whose
    partner never comes are emitted after the TTL even when traffic stops.
    """

    def __init__(self, options: dict[str, Any], state: Path | None = None) -> None:
        from aisoc.collectors import kserve

        self._parse_http = kserve.parse_http
        self.joiner = kserve.RequestResponseJoiner(kserve.KServeConfig(**options), store=state)

    def __call__(self, headers: Mapping[str, str], body: bytes, source: str) -> Parsed:
        return self._parse_http(headers, body, self.joiner)

    def commit(self) -> None:
        self.joiner.commit()

    def discard(self) -> None:
        self.joiner.discard()

    def tick(self) -> Parsed:
        return self.joiner.expire()

    def close(self) -> None:
        self.joiner.close()


def _collector_parser(kind: str, options: dict[str, Any], state: Path | None = None) -> Parser:
    """Parsers of the collectors' own push formats, with the source's collector settings."""
    if kind == "litellm":
        from aisoc.collectors import llm_gateway

        gateway = llm_gateway.LLMGatewayConfig(**options)
        return lambda headers, body, source: llm_gateway.parse_push(headers, body, gateway)
    if kind == "kserve":
        return KServeSource(options, state)
    if kind == "mlflow_webhook":
        from aisoc.collectors.mlflow import MlflowCollector, MlflowConfig

        collector = MlflowCollector(MlflowConfig(**options))  # verifies X-MLflow-Signature with its secret
        return lambda headers, body, source: collector.receive_webhook(headers, body)
    raise ValueError(f"unknown source kind {kind!r}")


def parser_for(kind: str, options: dict[str, Any] | None = None, state: Path | None = None) -> Parser:
    """The parser of a push source; `state` is where a source that holds records between deliveries keeps them."""
    return parse_ndjson if kind == "ndjson" else _collector_parser(kind, options or {}, state)
