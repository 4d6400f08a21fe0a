"""The HTTP receiver: authenticated push endpoints, health, readiness and Prometheus metrics.

POST /ingest/<source>   body per the source's kind; 202 only after the events are in the spool
GET  /healthz           the process is alive
GET  /readyz            the spool accepts events (503 when full)
GET  /metrics           Prometheus exposition

Every source authenticates (bearer token or HMAC-SHA256 of the body, compared in constant time);
bodies are capped (413 before reading); slow clients hit the socket timeout; bad records go to the
dead-letter store and never block the good ones of the same batch.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, Protocol

import structlog
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from aisoc.config import PushSource, ReceiverConfig
from aisoc.records import Rejected
from aisoc.service.metrics import ServiceMetrics
from aisoc.service.parsers import parser_for
from aisoc.sinks.deadletter import DeadLetterStore
from aisoc.spool import Spool, SpoolFull

log = structlog.get_logger("aisoc.receiver")
RETRY_AFTER_SECONDS = 5


class Transform(Protocol):
    """What runs on received events before they are spooled (the analyzer chain): `run` without saving
    its state, then `commit` once the events are spooled, or `discard` when they could not be."""

    def run(self, events: list[dict[str, Any]]) -> list[dict[str, Any]]: ...

    def commit(self) -> None: ...

    def discard(self) -> None: ...


def authenticate(source: PushSource, headers: Any, body: bytes, query: str = "") -> bool:
    auth = source.auth
    if auth.token:
        given = headers.get("Authorization", "")
        expected = f"Bearer {auth.token}"
        if hmac.compare_digest(given.encode(), expected.encode()):
            return True
        if auth.allow_query_token:
            from urllib.parse import parse_qs

            for candidate in parse_qs(query).get("token", []):
                if hmac.compare_digest(candidate.encode(), auth.token.encode()):
                    return True
    if auth.hmac_secret:
        given = headers.get(auth.hmac_header, "")
        digest = hmac.new(auth.hmac_secret.encode(), body, hashlib.sha256).hexdigest()
        if hmac.compare_digest(given.encode(), f"sha256={digest}".encode()):
            return True
    return False


TICK_SECONDS = 1.0  # how often sources holding records between deliveries are asked for expired ones


class Receiver:
    def __init__(self, config: ReceiverConfig, spool: Spool, dead_letters: DeadLetterStore,
                 metrics: ServiceMetrics, transform: Transform | None = None, state_dir: Path | None = None) -> None:
        """`state_dir`: where sources that hold records between deliveries (KServe halves) keep them durably."""
        self.config = config
        self.spool = spool
        self.dead_letters = dead_letters
        self.metrics = metrics
        self.transform = transform
        self._parsers = {name: parser_for(source.kind, source.options,
                                          state_dir / f"{name}.pending.db" if state_dir else None)
                         for name, source in config.sources.items()}
        # a source that holds records commits them after its events are spooled: one delivery at a time
        self._source_locks = {name: threading.Lock() for name, p in self._parsers.items() if hasattr(p, "commit")}
        self._ticking = threading.Event()
        self._ticker: threading.Thread | None = None
        self._transform_lock = threading.Lock()
        self.server = ThreadingHTTPServer((config.host, config.port), self._handler_class())
        self.server.daemon_threads = True
        self._thread: threading.Thread | None = None

    @property
    def port(self) -> int:
        return int(self.server.server_address[1])

    def start(self) -> None:
        self._thread = threading.Thread(target=self.server.serve_forever, name="receiver", daemon=True)
        self._thread.start()
        if self._source_locks:
            self._ticker = threading.Thread(target=self._tick_loop, name="receiver-tick", daemon=True)
            self._ticker.start()

    def stop(self) -> None:
        """Stop accepting; requests already being handled finish (their batches reach the spool). Records a
        source still holds stay in its state file for the next start."""
        self._ticking.set()
        self.server.shutdown()
        self.server.server_close()
        if self._ticker is not None:
            self._ticker.join(timeout=10)
        for parser in self._parsers.values():
            close = getattr(parser, "close", None)
            if close is not None:
                close()

    def ingest(self, name: str, source: PushSource, headers: Any, body: bytes) -> tuple[int, dict[str, Any]]:
        """Parse, dead-letter the bad records, spool the good ones. Returns (HTTP status, JSON reply)."""
        parser = self._parsers[name]
        lock = self._source_locks.get(name)
        if lock is None:
            parsed = parser(headers, body, f"receiver:{name}")
            return self.accept(name, [p for p in parsed if isinstance(p, dict)],
                               [p for p in parsed if isinstance(p, Rejected)])
        with lock:
            return self._held(name, parser(headers, body, f"receiver:{name}"))

    def tick(self) -> None:
        """Spool what the holding sources release on their own (halves whose partner did not come in time)."""
        for name, lock in self._source_locks.items():
            with lock:
                parser: Any = self._parsers[name]
                released = parser.tick()
                if released:
                    self._held(name, released)

    def _tick_loop(self) -> None:
        while not self._ticking.wait(TICK_SECONDS):
            try:
                self.tick()
            except Exception as exc:  # noqa: BLE001 - retried next tick; what a source holds stays in its state
                log.error("receiver_tick_failed", error=f"{type(exc).__name__}: {exc}")

    def _held(self, name: str, parsed: list[Any]) -> tuple[int, dict[str, Any]]:
        """Accept what a holding source emitted; it forgets the records behind them only once they are spooled."""
        parser: Any = self._parsers[name]
        try:
            status, reply = self.accept(name, [p for p in parsed if isinstance(p, dict)],
                                        [p for p in parsed if isinstance(p, Rejected)])
        except BaseException:
            parser.discard()
            raise
        if status < 500:
            parser.commit()
        else:
            parser.discard()  # not spooled: the halves stay held, and the resent delivery joins them again
        return status, reply

    def accept(self, name: str, events: list[dict[str, Any]], rejected: list[Rejected]) -> tuple[int, dict[str, Any]]:
        """Dead-letter the rejected records, run the transform, spool the events (pushed or pulled)."""
        for record in rejected:
            self.dead_letters.add(record.source, record.reason, record.raw)
        self.metrics.dead_letters.labels(source=name).inc(len(rejected))
        if events:
            try:
                events = self._spool(name, events)
            except SpoolFull:
                self.metrics.backpressure.labels(source=name).inc()
                return 503, {"error": "spool full, retry later", "retry_after": RETRY_AFTER_SECONDS}
            self.metrics.events_in.labels(source=name).inc(len(events))
            self.metrics.spool_depth.set(self.spool.depth())
        status = 202 if events or not rejected else 400
        return status, {"accepted": len(events), "rejected": len(rejected),
                        "reasons": sorted({r.reason for r in rejected})[:5]}

    def _spool(self, name: str, events: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """Transform and spool one batch; the transform's state is saved only once the batch is spooled, so a
        batch refused here (and sent again by the client) is not counted twice by the analyzers."""
        if self.transform is None:
            self.spool.append(name, events)
            return events
        with self._transform_lock:
            out = self.transform.run(events)
            try:
                self.spool.append(name, out)
                self.transform.commit()
            except BaseException:
                self.transform.discard()
                raise
        return out

    def _handler_class(self) -> type[BaseHTTPRequestHandler]:
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            server_version = "aisoc"
            sys_version = ""
            timeout = receiver.config.request_timeout_seconds

            def log_message(self, fmt: str, *args: Any) -> None:  # route through structlog, no secrets
                log.debug("http", client=self.client_address[0], request=self.requestline)

            def _reply(self, status: int, payload: dict[str, Any] | bytes, content_type: str = "application/json",
                       extra: dict[str, str] | None = None) -> None:
                body = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
                self.send_response(status)
                self.send_header("Content-Type", content_type)
                self.send_header("Content-Length", str(len(body)))
                for key, value in (extra or {}).items():
                    self.send_header(key, value)
                self.end_headers()
                self.wfile.write(body)

            def do_GET(self) -> None:  # noqa: N802 - http.server's naming
                if self.path == "/healthz":
                    self._reply(200, {"status": "ok"})
                elif self.path == "/readyz":
                    full = receiver.spool.depth() >= receiver.spool.max_events
                    self._reply(503 if full else 200, {"ready": not full, "spool_depth": receiver.spool.depth()})
                elif self.path == "/metrics":
                    receiver.metrics.spool_depth.set(receiver.spool.depth())
                    self._reply(200, generate_latest(receiver.metrics.registry), CONTENT_TYPE_LATEST)
                else:
                    self._reply(404, {"error": "not found"})

            def do_POST(self) -> None:  # noqa: N802
                name = self.path.removeprefix("/ingest/").split("?", 1)[0]
                source = receiver.config.sources.get(name) if self.path.startswith("/ingest/") else None
                if source is None:
                    receiver.metrics.requests.labels(source="unknown", status="404").inc()
                    self._reply(404, {"error": "unknown source"})
                    return
                status, payload, extra = self._handle(name, source)
                receiver.metrics.requests.labels(source=name, status=str(status)).inc()
                self._reply(status, payload, extra=extra)

            def _handle(self, name: str, source: PushSource) -> tuple[int, dict[str, Any], dict[str, str]]:
                length_header = self.headers.get("Content-Length")
                if length_header is None:
                    return 411, {"error": "Content-Length required"}, {}
                try:
                    length = int(length_header)
                except ValueError:
                    return 400, {"error": "bad Content-Length"}, {}
                if length < 0 or length > source.max_body_bytes:
                    self.close_connection = True
                    return 413, {"error": f"body over {source.max_body_bytes} bytes"}, {}
                try:
                    body = self.rfile.read(length)
                except TimeoutError:
                    self.close_connection = True
                    return 408, {"error": "request body too slow"}, {}
                if len(body) < length:
                    return 400, {"error": "body shorter than Content-Length"}, {}
                if not authenticate(source, self.headers, body, self.path.partition("?")[2]):
                    receiver.metrics.auth_failures.labels(source=name).inc()
                    log.warning("auth_failed", source=name, client=self.client_address[0])
                    return 401, {"error": "authentication failed"}, {"WWW-Authenticate": "Bearer"}
                status, payload = receiver.ingest(name, source, self.headers, body)
                extra = {"Retry-After": str(RETRY_AFTER_SECONDS)} if status == 503 else {}
                return status, payload, extra

        return Handler
