"""`aisoc serve` as a real process on real sockets: auth, caps, back-pressure, crash and outage safety."""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import signal
import socket
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from elasticsearch import Elasticsearch

from aisoc.testing.es_node import ElasticsearchNode

TOKEN = "test-token-0123456789"
HMAC_SECRET = "hmac-secret-abcdef"


def _config(tmp: Path, *, max_events: int = 1_000_000, es_url: str | None = None, detection: bool = False,
            sqlite: bool = True, kserve_ttl_seconds: float = 300) -> Path:
    lines = [
        "data_dir: data",
        "receiver:",
        "  port: 0",
        "  request_timeout_seconds: 2",
        "  sources:",
        "    events:",
        "      kind: ndjson",
        "      max_body_bytes: 200000",
        "      auth: {token: \"${AISOC_TEST_TOKEN}\"}",
        "    signed:",
        "      kind: ndjson",
        "      auth: {hmac_secret: \"${AISOC_TEST_HMAC}\"}",
        "    kserve:",
        "      kind: kserve",
        "      auth: {token: \"${AISOC_TEST_TOKEN}\", allow_query_token: true}",
        f"      options: {{ttl_seconds: {kserve_ttl_seconds}}}",
        f"spool: {{max_events: {max_events}}}",
        "sinks:",
        f"  sqlite: {str(sqlite).lower()}",
    ]
    if es_url:
        lines += ["  elasticsearch:", f"    url: {es_url}", "    namespace: svc", "    batch_size: 1000"]
    lines += ["detection:", f"  enabled: {str(detection).lower()}", "  interval_seconds: 0.5"]
    path = tmp / "aisoc.yml"
    path.write_text("\n".join(lines) + "\n")
    return path


class Served:
    def __init__(self, config: Path) -> None:
        self.config = config
        self.proc: subprocess.Popen[str] | None = None
        self.port = 0

    def start(self) -> Served:
        env = {**os.environ, "AISOC_TEST_TOKEN": TOKEN, "AISOC_TEST_HMAC": HMAC_SECRET}
        self.proc = subprocess.Popen([sys.executable, "-m", "aisoc.cli", "serve", "-c", str(self.config)],
                                     stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            if line.startswith('{"ready"'):
                self.port = json.loads(line)["port"]
                return self
        raise AssertionError(f"service did not start: {self.proc.stderr.read() if self.proc.stderr else ''}")

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def post(self, events: list[dict], source: str = "events", token: str = TOKEN, **kw) -> httpx.Response:
        body = "\n".join(json.dumps(e) for e in events).encode()
        return httpx.post(f"{self.url}/ingest/{source}", content=body,
                          headers={"Authorization": f"Bearer {token}"}, timeout=30, **kw)

    def kill9(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(timeout=30)

    def term(self) -> int:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGTERM)
        return self.proc.wait(timeout=60)


@pytest.fixture
def served(tmp_path: Path) -> Iterator[Served]:
    service = Served(_config(tmp_path)).start()
    yield service
    if service.proc and service.proc.poll() is None:
        service.term()


def _events(prefix: str, n: int, start: int = 0) -> list[dict]:
    return [{"@timestamp": "2026-05-01T00:00:00Z", "event.id": f"{prefix}-{i}", "event.dataset": "aisoc.data",
             "event.action": "data-batch-landed", "aisoc.data.batch.rows": i} for i in range(start, start + n)]


def _stored_ids(data_dir: Path) -> list[str]:
    conn = sqlite3.connect(data_dir / "events.db")
    try:
        return [r[0] for r in conn.execute('SELECT "event.id" FROM logs WHERE _variant = 0')]
    finally:
        conn.close()


def _wait(predicate, timeout: float = 60.0) -> None:  # noqa: ANN001
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.2)
    raise AssertionError("condition not reached in time")


def test_receiver_refuses_what_it_must_and_keeps_serving(served: Served) -> None:
    assert httpx.get(f"{served.url}/healthz").status_code == 200
    assert served.post(_events("a", 3), token="wrong-token").status_code == 401
    assert served.post(_events("a", 3), source="nope").status_code == 404
    body = b'{"@timestamp": "2026-05-01T00:00:00Z", "event.id": "h1"}'
    forged = httpx.post(f"{served.url}/ingest/signed", content=body,
                        headers={"X-Aisoc-Signature": "sha256=" + "0" * 64})
    assert forged.status_code == 401
    good_sig = "sha256=" + hmac.new(HMAC_SECRET.encode(), body, hashlib.sha256).hexdigest()
    assert httpx.post(f"{served.url}/ingest/signed", content=body,
                      headers={"X-Aisoc-Signature": good_sig}).status_code == 202
    big = served.post(_events("big", 3000))
    assert big.status_code == 413
    malformed = httpx.post(f"{served.url}/ingest/events", content=b"{not json\n[1,2]\n\xff\xfe",
                           headers={"Authorization": f"Bearer {TOKEN}"})
    assert malformed.status_code == 400 and malformed.json()["rejected"] >= 1
    mixed = served.post([*_events("m", 2), {"no": "timestamp"}])
    assert mixed.status_code == 202 and mixed.json() == {
        "accepted": 2, "rejected": 1, "reasons": ["event has no valid '@timestamp' (ISO-8601)"]}
    # a slow client that never sends its body is cut off by the request timeout, others go on
    slow = socket.create_connection(("127.0.0.1", served.port))
    request = ("POST /ingest/events HTTP/1.1\r\nHost: x\r\nContent-Length: 1000\r\n"
               f"Authorization: Bearer {TOKEN}\r\n\r\n{{")
    slow.sendall(request.encode())
    assert served.post(_events("after-slow", 1)).status_code == 202  # served while the slow one hangs
    slow.settimeout(10)
    assert slow.recv(200).startswith(b"HTTP/1.0 408")  # cut off after request_timeout_seconds
    slow.close()
    metrics = httpx.get(f"{served.url}/metrics").text
    assert 'aisoc_auth_failures_total{source="events"} 1.0' in metrics
    assert 'aisoc_auth_failures_total{source="signed"} 1.0' in metrics
    assert 'aisoc_http_requests_total{source="events",status="413"} 1.0' in metrics
    assert "aisoc_dead_letters_total" in metrics


def test_no_secret_in_logs(served: Served) -> None:
    served.post(_events("s", 1), token="wrong-token")
    served.post(_events("s", 1))
    assert served.term() == 0
    assert served.proc is not None and served.proc.stderr is not None and served.proc.stdout is not None
    logs = served.proc.stderr.read() + served.proc.stdout.read()
    assert TOKEN not in logs and "wrong-token" not in logs and HMAC_SECRET not in logs


def test_full_spool_pushes_back_and_drops_nothing(tmp_path: Path) -> None:
    service = Served(_config(tmp_path, max_events=50, sqlite=False)).start()  # no sink drains it
    try:
        first = service.post(_events("f", 40))
        assert first.status_code == 202
        refused = service.post(_events("g", 20))
        assert refused.status_code == 503 and refused.headers["Retry-After"]
        assert httpx.get(f"{service.url}/readyz").status_code == 200  # 40 < 50: still takes smaller batches
        assert service.post(_events("g", 10)).status_code == 202
        assert httpx.get(f"{service.url}/readyz").status_code == 503
    finally:
        service.term()
    conn = sqlite3.connect(tmp_path / "data" / "spool.db")
    ids = sorted(json.loads(b)["event.id"] for (b,) in conn.execute("SELECT body FROM spool"))
    assert ids == sorted([f"f-{i}" for i in range(40)] + [f"g-{i}" for i in range(10)])


def test_kill_9_loses_nothing_acknowledged_and_duplicates_nothing(tmp_path: Path) -> None:
    config = _config(tmp_path)
    service = Served(config).start()
    acknowledged: set[str] = set()
    batches = [_events("k", 200, start=i * 200) for i in range(30)]
    for number, batch in enumerate(batches):
        if number == 15:
            service.kill9()
            break
        if service.post(batch).status_code == 202:
            acknowledged |= {e["event.id"] for e in batch}
    restarted = Served(config).start()
    try:
        for batch in batches[12:]:  # the source resends what it is not sure about, overlapping on purpose
            assert restarted.post(batch).status_code == 202
        expected = {e["event.id"] for b in batches for e in b}
        _wait(lambda: len(_stored_ids(tmp_path / "data")) >= len(expected))
    finally:
        restarted.term()
    stored = _stored_ids(tmp_path / "data")
    assert len(stored) == len(set(stored)) == len(expected)
    assert acknowledged <= set(stored)


def test_elasticsearch_outage_mid_stream_delivers_every_event_exactly_once(tmp_path: Path) -> None:
    node = ElasticsearchNode().start()
    try:
        service = Served(_config(tmp_path, es_url=node.url, sqlite=False)).start()
        try:
            total = 50_000
            for number in range(total // 1000):
                if number == 20:
                    node.kill()
                if number == 35:
                    node.restart()
                batch = _events("es", 1000, start=number * 1000)
                assert service.post(batch).status_code == 202  # the spool keeps them while ES is down
            client = Elasticsearch(node.url, request_timeout=30)

            def all_arrived() -> bool:
                client.indices.refresh(index="logs-aisoc.data-svc")
                return int(client.count(index="logs-aisoc.data-svc")["count"]) >= total

            _wait(all_arrived, timeout=240)
            assert int(client.count(index="logs-aisoc.data-svc")["count"]) == total
            ids = {h["_id"] for h in client.search(index="logs-aisoc.data-svc", size=10,
                                                   query={"ids": {"values": ["es-0", "es-49999"]}})["hits"]["hits"]}
            assert ids == {"es-0", "es-49999"}
        finally:
            service.term()
    finally:
        node.stop()


def test_sigterm_drains_and_a_restart_continues(tmp_path: Path) -> None:
    config = _config(tmp_path, detection=True)
    service = Served(config).start()
    assert service.post(_events("t", 500)).status_code == 202
    assert service.term() == 0
    assert len(set(_stored_ids(tmp_path / "data"))) == 500
    again = Served(config).start()
    try:
        assert again.post(_events("t", 10, start=500)).status_code == 202
        _wait(lambda: len(_stored_ids(tmp_path / "data")) == 510)
    finally:
        again.term()


def test_analyzer_signals_from_received_traffic_raise_an_alert(tmp_path: Path) -> None:
    service = Served(_config(tmp_path, detection=True)).start()
    try:
        key = "ab" * 32
        now = time.time()
        base = now - 3 * 3600 - (now % 3600)  # the start of an hour three hours ago
        def at(seconds: float) -> str:
            return time.strftime("%Y-%m-%dT%H:%M:%S.000Z", time.gmtime(base + seconds))
        requests = [{"@timestamp": at(i * 30), "event.id": f"req-{i}", "event.action": "llm-request",
                     "event.dataset": "aisoc.inference", "aisoc.api_key.hash": key,
                     "aisoc.llm.logprobs_requested": i % 10 != 0, "gen_ai.usage.input_tokens": 50}
                    for i in range(100)]
        closing = [{**requests[0], "event.id": "req-next-hour", "@timestamp": at(3 * 3600 + 10)}]
        assert service.post(requests).status_code == 202
        assert service.post(closing).status_code == 202  # event time moves on: the hour's window closes
        alerts_file = tmp_path / "data" / "alerts.ndjson"
        _wait(lambda: alerts_file.exists() and "logprobs" in alerts_file.read_text().lower(), timeout=30)
        alerts = [json.loads(line) for line in alerts_file.read_text().splitlines()]
        harvest = [a for a in alerts if "AML.T0024.002" in json.dumps(a["threat"])]
        assert harvest and harvest[0]["aisoc"]["signal"]["entity"] == key
        # its auto-approved playbooks ran as dry runs, and the audit log says so
        audit = tmp_path / "data" / "audit.jsonl"
        _wait(lambda: audit.exists() and harvest[0]["event"]["id"] in audit.read_text(), timeout=30)
        runs = [json.loads(line) for line in audit.read_text().splitlines()]
        mine = [r for r in runs if r.get("alert_id") == harvest[0]["event"]["id"]]
        assert mine and all(r.get("mode") in (None, "dry_run") for r in mine)
        assert any("nothing was changed" in r.get("message", "") for r in mine)
    finally:
        service.term()


def test_pull_collector_runs_on_its_interval_and_resumes_from_its_cursor(tmp_path: Path) -> None:
    logs = tmp_path / "s3-logs"
    logs.mkdir()
    fixture = Path(__file__).parent / "fixtures" / "training_data" / "s3_access.log"
    (logs / "access.log").write_text(fixture.read_text())
    config = _config(tmp_path)
    config.write_text(config.read_text() + "\n".join([
        "collectors:",
        "  landing-bucket-logs:",
        "    type: object_access_logs",
        f"    path: {logs}",
        "    interval_seconds: 0.5",
        "    options:",
        "      ingestion_paths: [{prefix: s3://training-landing/txn/}]",
        "      pipeline_identities: ['*svc-ingest*']",
    ]) + "\n")
    service = Served(config).start()
    try:
        _wait(lambda: len(_stored_ids(tmp_path / "data")) > 0, timeout=30)
        time.sleep(1.5)  # a few more intervals: nothing read twice
        first = _stored_ids(tmp_path / "data")
    finally:
        service.term()
    assert len(first) == len(set(first)) >= 5
    with open(logs / "access.log", "a") as fh:  # the bucket keeps logging while aisoc is down
        fh.write(fixture.read_text().splitlines()[1].replace("8D2A1F0C9EXAMPLE", "NEWREQUEST000001") + "\n")
    again = Served(config).start()
    try:
        _wait(lambda: len(_stored_ids(tmp_path / "data")) == len(first) + 1, timeout=30)
    finally:
        again.term()
    assert len(set(_stored_ids(tmp_path / "data"))) == len(first) + 1


def test_kserve_logger_pushes_binary_cloudevents_with_a_url_token(served: Served, tmp_path: Path) -> None:
    pairs = json.loads((Path(__file__).parent / "fixtures" / "kserve" / "binary_pairs.json").read_text())[:2]
    for message in pairs:
        headers = {k: v for k, v in message["headers"].items() if k.lower() != "content-length"}
        refused = httpx.post(f"{served.url}/ingest/kserve?token=wrong", content=message["body"].encode(),
                             headers=headers)
        assert refused.status_code == 401
        accepted = httpx.post(f"{served.url}/ingest/kserve?token={TOKEN}", content=message["body"].encode(),
                              headers=headers)
        assert accepted.status_code == 202, accepted.text
    data = served.config.parent / "data"
    _wait(lambda: len(_stored_ids(data)) == 1)  # the request and its response, joined into one event
    conn = sqlite3.connect(data / "events.db")
    row = conn.execute('SELECT "event.action", "aisoc.inference.service", "aisoc.inference.client_id" '
                       "FROM logs").fetchone()
    assert row == ("inference-request", "fraud-scorer", "checkout-web")


def test_a_kserve_request_acknowledged_before_a_crash_is_joined_or_expired_after_it(tmp_path: Path) -> None:
    """The logger's request half is acknowledged long before its response comes: it must survive kill -9,
    join the response sent after the restart, and a half whose partner never comes must still be stored."""
    pairs = json.loads((Path(__file__).parent / "fixtures" / "kserve" / "binary_pairs.json").read_text())

    def push(service: Served, message: dict) -> int:
        headers = {k: v for k, v in message["headers"].items() if k.lower() != "content-length"}
        return httpx.post(f"{service.url}/ingest/kserve?token={TOKEN}", content=message["body"].encode(),
                          headers=headers, timeout=30).status_code

    config = _config(tmp_path, kserve_ttl_seconds=3)
    service = Served(config).start()
    assert push(service, pairs[0]) == 202  # a request; its response has not come yet
    service.kill9()
    service = Served(config).start()
    try:
        assert push(service, pairs[1]) == 202  # the response, after the restart
        data = tmp_path / "data"
        _wait(lambda: len(_stored_ids(data)) == 1)
        assert push(service, pairs[2]) == 202  # a request whose response never comes
        _wait(lambda: len(_stored_ids(data)) == 2, timeout=30)  # released after the TTL, with no more traffic
    finally:
        service.term()
    conn = sqlite3.connect(data / "events.db")
    query = ('SELECT "aisoc.inference.request_id", "aisoc.inference.input.skeleton_hash", '
             '"aisoc.inference.predicted_class" FROM logs')
    rows = {r[0]: r[1:] for r in conn.execute(query)}
    ids = [p["headers"]["Ce-Id"] for p in pairs[:3]]
    assert set(rows) == {ids[0], ids[2]}
    assert None not in rows[ids[0]]  # the request's inputs (held across the crash) joined with the response's class
    assert rows[ids[2]][0] is not None and rows[ids[2]][1] is None  # the request alone


def test_a_batch_refused_by_the_full_spool_is_not_counted_twice_by_the_analyzers(tmp_path: Path) -> None:
    """The receiver runs the analyzers, spools, and only then saves their state: the client's resend of a
    refused batch is seen once, and so is every batch after a restart."""
    from aisoc.analyzers.base import StateStore
    from aisoc.analyzers.pipeline import AnalyzerChain
    from aisoc.analyzers.settings import AnalyzerSettings
    from aisoc.config import ReceiverConfig
    from aisoc.service.metrics import ServiceMetrics
    from aisoc.service.receiver import Receiver
    from aisoc.sinks.deadletter import DeadLetterStore
    from aisoc.spool import Spool

    def chain() -> AnalyzerChain:
        state = StateStore(tmp_path / "analyzers.db")
        return AnalyzerChain(None, state, factory=lambda: AnalyzerSettings().build(state))

    def requests(prefix: str, n: int, minute: int) -> list[dict]:
        return [{"@timestamp": f"2026-05-01T10:{minute:02d}:{i % 60:02d}.000Z", "event.id": f"{prefix}-{i}",
                 "event.action": "llm-request", "event.dataset": "aisoc.inference", "aisoc.api_key.hash": "k1",
                 "aisoc.llm.logprobs_requested": True} for i in range(n)]

    spool = Spool(tmp_path / "spool.db", ["sink"], max_events=60)
    receiver = Receiver(ReceiverConfig(port=0), spool, DeadLetterStore(tmp_path / "dead.db"), ServiceMetrics(),
                        transform=chain())
    try:
        assert receiver.accept("events", requests("a", 40, 0), [])[0] == 202
        assert receiver.accept("events", requests("b", 30, 1), [])[0] == 503  # 40 + 30 (+ signals) > 60
        for entry in spool.read("sink", 1000):  # a sink drains the spool
            spool.ack("sink", entry.seq)
        assert receiver.accept("events", requests("b", 30, 1), [])[0] == 202  # the client's resend
    finally:
        receiver.server.server_close()
    restarted = chain()  # a restart reloads the saved state: both batches, once each
    later = {**requests("c", 1, 0)[0], "@timestamp": "2026-05-01T12:00:00.000Z"}  # closes the 10:00 hour
    share = [e for e in restarted.process([later]) if e.get("aisoc.signal.name") == "api_key_logprobs_share"]
    assert [(s["aisoc.signal.entity"], s["aisoc.signal.sample_size"]) for s in share] == [("k1", 70)]
