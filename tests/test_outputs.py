"""Alert outputs against real sockets on 127.0.0.1: NDJSON file, webhook (HMAC, retries, TLS), syslog CEF
over UDP/TCP/TLS, and the dispatcher that keeps one dead output from stopping the others."""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import socket
import socketserver
import ssl
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from fixtures.respond.tls import TlsFiles, make_tls
from hypothesis import given, settings
from hypothesis import strategies as st

from aisoc.outputs import (
    Backoff,
    NdjsonFileOutput,
    OutputConfigError,
    OutputDispatcher,
    OutputResult,
    SyslogCefOutput,
    WebhookOutput,
    build_dispatcher,
    cef_message,
    verify_signature,
)
from aisoc.outputs.syslog import cef_header, cef_severity, cef_value, parse_cef_extension
from aisoc.sinks.deadletter import DeadLetterStore

FIXTURES = Path(__file__).parent / "fixtures" / "respond"
ALERTS: dict[str, Any] = json.loads((FIXTURES / "alerts.json").read_text())
FAST = Backoff(base=0.01, cap=0.05, jitter=False)
SECRET = "whsec-7f1d2c9a4b8e6f00d1a2b3c4e5f6a7b8"


def alerts() -> list[dict[str, Any]]:
    return [case["alert"] for case in ALERTS.values()]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def split_cef(line: str) -> tuple[list[str], str]:
    """Split a CEF message on unescaped pipes: 7 header fields and the extension."""
    fields, current, escaped = [], "", False
    for ch in line:
        if escaped:
            current += ch
            escaped = False
        elif ch == "\\":
            current += ch
            escaped = True
        elif ch == "|" and len(fields) < 7:
            fields.append(current)
            current = ""
        else:
            current += ch
    return fields, current


# ------------------------------------------------------------------------------------------- servers

class UdpSyslog:
    def __init__(self) -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.settimeout(0.2)
        self.port = self.sock.getsockname()[1]
        self.messages: list[str] = []
        self._stop = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                data, _ = self.sock.recvfrom(65535)
            except TimeoutError:
                continue
            except OSError:
                return
            self.messages.append(data.decode("utf-8"))

    def wait(self, count: int, timeout: float = 5.0) -> list[str]:
        deadline = time.monotonic() + timeout
        while len(self.messages) < count and time.monotonic() < deadline:
            time.sleep(0.02)
        return self.messages

    def close(self) -> None:
        self._stop.set()
        self.thread.join(2)
        self.sock.close()


def read_frames(stream: Any, framing: str) -> Iterator[str]:
    """RFC 5425/6587 octet-counted frames (or LF-terminated lines) from a socket file."""
    while True:
        if framing == "lf":
            line = stream.readline()
            if not line:
                return
            yield line.rstrip(b"\n").decode("utf-8")
            continue
        digits = b""
        while True:
            ch = stream.read(1)
            if not ch:
                return
            if ch == b" ":
                break
            assert ch.isdigit(), f"bad frame length byte {ch!r}"
            digits += ch
        yield stream.read(int(digits)).decode("utf-8")


class StreamSyslog:
    """A TCP (or TLS) syslog collector; `close_after` closes each connection after that many messages."""

    def __init__(self, tls: TlsFiles | None = None, framing: str = "octet", close_after: int | None = None) -> None:
        self.messages: list[str] = []
        self.connections = 0
        collector = self
        context = None
        if tls is not None:
            context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            context.load_cert_chain(tls.server_cert, tls.server_key)

        class Handler(socketserver.StreamRequestHandler):
            def handle(self) -> None:
                collector.connections += 1
                for count, message in enumerate(read_frames(self.rfile, framing), start=1):
                    collector.messages.append(message)
                    if close_after and count >= close_after:
                        return

        class Server(socketserver.ThreadingTCPServer):
            daemon_threads = True
            allow_reuse_address = True

            def get_request(self) -> tuple[socket.socket, Any]:
                sock, addr = super().get_request()
                if context is not None:
                    sock = context.wrap_socket(sock, server_side=True)
                return sock, addr

            def handle_error(self, request: Any, client_address: Any) -> None:  # quiet on refused handshakes
                pass

        self.server = Server(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        self.thread.start()

    def wait(self, count: int, timeout: float = 5.0) -> list[str]:
        deadline = time.monotonic() + timeout
        while len(self.messages) < count and time.monotonic() < deadline:
            time.sleep(0.02)
        return self.messages

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


class Webhook:
    """An http.server receiver. `fail_first` answers 500 to that many requests, then 200;
    with a secret it verifies X-Aisoc-Signature and answers 401 when it does not match."""

    def __init__(self, secret: str | None = None, fail_first: int = 0, tls: TlsFiles | None = None,
                 status: int = 500) -> None:
        self.requests: list[dict[str, Any]] = []
        self.verified: list[bool] = []
        hook = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def do_POST(self) -> None:  # noqa: N802
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                hook.requests.append({"headers": dict(self.headers), "body": body})
                if secret is not None:
                    timestamp = self.headers.get("X-Aisoc-Timestamp", "")
                    expected = "sha256=" + hmac.new(secret.encode(), timestamp.encode() + b"." + body,
                                                    hashlib.sha256).hexdigest()
                    ok = hmac.compare_digest(expected, self.headers.get("X-Aisoc-Signature", "")) \
                        and abs(time.time() - int(timestamp or 0)) < 300
                    hook.verified.append(ok)
                    if not ok:
                        self.send_response(401)
                        self.end_headers()
                        return
                if len(hook.requests) <= fail_first:
                    self.send_response(status)
                    self.send_header("Retry-After", "0")
                    self.end_headers()
                    return
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.end_headers()
                self.wfile.write(b'{"ok": true}')

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        if tls is not None:
            context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            context.load_cert_chain(tls.server_cert, tls.server_key)
            self.server.socket = context.wrap_socket(self.server.socket, server_side=True)
        self.port = self.server.server_address[1]
        self.url = f"{'https' if tls else 'http'}://127.0.0.1:{self.port}/hooks/aisoc"
        self.thread = threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def tls(tmp_path: Path) -> TlsFiles:
    return make_tls(tmp_path / "tls")


@pytest.fixture
def udp_syslog() -> Iterator[UdpSyslog]:
    server = UdpSyslog()
    yield server
    server.close()


@pytest.fixture
def tcp_syslog() -> Iterator[StreamSyslog]:
    server = StreamSyslog()
    yield server
    server.close()


@pytest.fixture
def tls_syslog(tls: TlsFiles) -> Iterator[StreamSyslog]:
    server = StreamSyslog(tls=tls)
    yield server
    server.close()


@pytest.fixture
def secret_env(monkeypatch: pytest.MonkeyPatch) -> str:
    monkeypatch.setenv("AISOC_TEST_WEBHOOK_SECRET", SECRET)
    return "AISOC_TEST_WEBHOOK_SECRET"


# ---------------------------------------------------------------------------------------- NDJSON file

def test_file_output_appends_nested_json_lines(tmp_path: Path) -> None:
    path = tmp_path / "out" / "alerts.ndjson"
    output = NdjsonFileOutput(path)
    batch = alerts()
    assert output.send(batch[:2]).sent == 2
    assert output.send(batch[2:]).sent == len(batch) - 2
    lines = [json.loads(line) for line in path.read_text().splitlines()]
    assert len(lines) == len(batch)
    assert lines[0]["rule"]["id"] == batch[0]["rule.id"]
    assert lines[0]["aisoc"]["alert"]["count"] == batch[0]["aisoc.alert.count"]
    assert lines[0]["event"]["kind"] == "alert"


def test_file_output_flat_mode_keeps_dotted_keys(tmp_path: Path) -> None:
    path = tmp_path / "alerts.ndjson"
    NdjsonFileOutput(path, nested=False).send(alerts()[:1])
    assert json.loads(path.read_text())["rule.id"] == alerts()[0]["rule.id"]


def test_file_output_rotates_by_size_and_loses_nothing(tmp_path: Path) -> None:
    path = tmp_path / "alerts.ndjson"
    output = NdjsonFileOutput(path, max_bytes=8192, backups=50)
    batch = alerts()
    for _ in range(10):
        assert output.send(batch).ok
    files = sorted(tmp_path.glob("alerts.ndjson*"))
    files = [f for f in files if not f.name.endswith(".lock")]
    assert len(files) > 2, "expected rotation"
    total = 0
    for file in files:
        text = file.read_text()
        total += len(text.splitlines())
        assert all(json.loads(line) for line in text.splitlines())  # never half a line
    assert total == 10 * len(batch)


def test_file_output_rotation_keeps_only_the_backups(tmp_path: Path) -> None:
    path = tmp_path / "alerts.ndjson"
    output = NdjsonFileOutput(path, max_bytes=4096, backups=2)
    for _ in range(20):
        output.send(alerts())
    names = sorted(f.name for f in tmp_path.iterdir() if not f.name.endswith(".lock"))
    assert names == ["alerts.ndjson", "alerts.ndjson.1", "alerts.ndjson.2"]


def test_file_output_reports_an_unwritable_path(tmp_path: Path) -> None:
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("x")
    result = NdjsonFileOutput(blocker / "alerts.ndjson").send(alerts()[:2])
    assert not result.ok and len(result.failed) == 2 and result.errors


# ------------------------------------------------------------------------------------------- webhook

def test_webhook_signs_with_hmac_and_receiver_verifies(secret_env: str) -> None:
    hook = Webhook(secret=SECRET)
    try:
        output = WebhookOutput(hook.url, secret_env=secret_env, backoff=FAST)
        result = output.send(alerts())
        assert result.ok and result.sent == len(alerts())
        assert hook.verified == [True]
        request = hook.requests[0]
        body = json.loads(request["body"])
        assert body["count"] == len(alerts()) and body["alerts"][0]["rule"]["id"] == alerts()[0]["rule.id"]
        headers = request["headers"]
        assert headers["X-Aisoc-Signature"].startswith("sha256=")
        assert verify_signature(SECRET, headers["X-Aisoc-Timestamp"], request["body"], headers["X-Aisoc-Signature"])
        assert not verify_signature("wrong", headers["X-Aisoc-Timestamp"], request["body"],
                                    headers["X-Aisoc-Signature"])
        assert not verify_signature(SECRET, headers["X-Aisoc-Timestamp"], request["body"] + b" ",
                                    headers["X-Aisoc-Signature"])
        stale = str(int(headers["X-Aisoc-Timestamp"]) - 3600)
        assert not verify_signature(SECRET, stale, request["body"], headers["X-Aisoc-Signature"])
        output.close()
    finally:
        hook.close()


def test_webhook_with_a_wrong_secret_is_rejected_and_not_retried(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AISOC_TEST_WRONG_SECRET", "not-the-shared-secret")
    hook = Webhook(secret=SECRET)
    try:
        result = WebhookOutput(hook.url, secret_env="AISOC_TEST_WRONG_SECRET", backoff=FAST).send(alerts()[:1])
        assert not result.ok and "401" in result.errors[0]
        assert hook.verified == [False] and len(hook.requests) == 1
    finally:
        hook.close()


def test_webhook_retries_500_twice_then_delivers_once(secret_env: str) -> None:
    hook = Webhook(secret=SECRET, fail_first=2)
    try:
        result = WebhookOutput(hook.url, secret_env=secret_env, max_retries=3, backoff=FAST).send(alerts())
        assert result.ok and result.attempts == 3
        assert len(hook.requests) == 3 and hook.verified == [True, True, True]
        deliveries = {r["headers"]["X-Aisoc-Delivery"] for r in hook.requests}
        assert len(deliveries) == 1, "one delivery id across retries, so the receiver can de-duplicate"
    finally:
        hook.close()


def test_webhook_retries_429(secret_env: str) -> None:
    hook = Webhook(fail_first=1, status=429)
    try:
        result = WebhookOutput(hook.url, max_retries=2, backoff=FAST).send(alerts()[:1])
        assert result.ok and len(hook.requests) == 2
    finally:
        hook.close()


def test_webhook_per_alert_mode_posts_each_alert() -> None:
    hook = Webhook()
    try:
        result = WebhookOutput(hook.url, batch=False, backoff=FAST).send(alerts()[:3])
        assert result.sent == 3 and len(hook.requests) == 3
        assert json.loads(hook.requests[1]["body"])["event"]["id"] == alerts()[1]["event.id"]
    finally:
        hook.close()


def test_webhook_gives_up_after_retries_on_a_dead_endpoint() -> None:
    result = WebhookOutput(f"http://127.0.0.1:{free_port()}/x", max_retries=2, backoff=FAST).send(alerts()[:2])
    assert not result.ok and len(result.failed) == 2 and result.attempts == 3
    assert "ConnectError" in result.errors[0]


def test_webhook_tls_trusts_given_ca_and_refuses_untrusted_by_default(tls: TlsFiles) -> None:
    hook = Webhook(tls=tls)
    try:
        refused = WebhookOutput(hook.url, max_retries=0, backoff=FAST).send(alerts()[:1])
        assert not refused.ok and "CERTIFICATE_VERIFY_FAILED" in refused.errors[0]
        trusted = WebhookOutput(hook.url, ca_file=tls.ca_cert, backoff=FAST).send(alerts()[:1])
        assert trusted.ok and len(hook.requests) == 1
    finally:
        hook.close()


def test_webhook_secret_must_be_in_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("AISOC_TEST_MISSING", raising=False)
    with pytest.raises(OutputConfigError, match="AISOC_TEST_MISSING"):
        WebhookOutput("http://127.0.0.1:1/x", secret_env="AISOC_TEST_MISSING")
    with pytest.raises(OutputConfigError):
        WebhookOutput("ftp://example/x")


def test_webhook_secret_never_logged(secret_env: str, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    hook = Webhook(secret=SECRET, fail_first=1)
    try:
        output = WebhookOutput(hook.url + "?token=query-secret-123", secret_env=secret_env, backoff=FAST)
        output.send(alerts())
        output2 = WebhookOutput(f"http://127.0.0.1:{free_port()}/?token=query-secret-123", secret_env=secret_env,
                                max_retries=1, backoff=FAST)
        failed = output2.send(alerts()[:1])
        text = caplog.text + repr(output) + repr(output2) + json.dumps(failed.to_dict())
        assert SECRET not in text
        assert "query-secret-123" not in "".join(r.getMessage() for r in caplog.records if r.name.startswith("aisoc"))
    finally:
        hook.close()


# ------------------------------------------------------------------------------------------------ CEF

def test_cef_message_carries_rule_atlas_entity_count_and_times() -> None:
    alert = ALERTS["llm_templated_extraction_with_token_spike"]["alert"]
    header, ext = split_cef(cef_message(alert))
    assert header[0] == "CEF:0" and header[1:3] == ["aisoc", "aisoc"]
    assert header[4] == alert["rule.id"] and header[5] == alert["rule.name"]
    assert header[6] == "8"  # high
    fields = parse_cef_extension(ext)
    techniques = fields["cs1"].split(",")
    assert set(alert["threat.technique.id"]) <= set(techniques)
    assert fields["cs1Label"] == "atlasTechniques"
    assert fields["cs3"] == alert["aisoc.alert.entity"]
    assert fields["cs4"] == alert["rule.id"]
    assert fields["cnt"] == str(alert["aisoc.alert.count"])
    assert int(fields["start"]) <= int(fields["end"])
    assert fields["externalId"] == alert["event.id"]
    assert fields["cs5"].split(",") == alert["aisoc.alert.playbooks"]


def test_cef_severity_mapping() -> None:
    assert [cef_severity(s) for s in (99, 73, 47, 21, 0, None)] == [10, 8, 5, 3, 1, 5]


def test_cef_escaping_neutralizes_hostile_names() -> None:
    alert = dict(ALERTS["production_alias_moved_by_non_pipeline"]["alert"])
    alert["rule.name"] = "evil|name\\with\nnewline"
    alert["user.name"] = "x cs4=forged\nCEF:0|fake|fake|1|1|1|10|"
    alert["aisoc.alert.entity"] = "a=b\\c"
    message = cef_message(alert)
    assert "\n" not in message and "\r" not in message
    header, ext = split_cef(message)
    assert len(header) == 7
    assert header[5] == "evil\\|name\\\\with newline"
    fields = parse_cef_extension(ext)
    assert fields["suser"] == alert["user.name"]
    assert fields["cs4"] == alert["rule.id"], "a forged key inside a value must not override the real one"
    assert fields["cs3"] == "a=b\\c"


@settings(max_examples=300, deadline=None)
@given(st.text(alphabet=st.characters(blacklist_categories=("Cs",)), max_size=60),
       st.text(alphabet=st.characters(blacklist_categories=("Cs",)), max_size=60))
def test_cef_extension_values_round_trip(a: str, b: str) -> None:
    ext = f"cs1={cef_value(a)} msg={cef_value(b)}"
    assert "\n" not in ext and "\r" not in ext
    parsed = parse_cef_extension(ext)

    def normal(text: str) -> str:  # other control characters become spaces
        return "".join(ch if ch in "\r\n" or (ord(ch) >= 0x20 and ch != "\x7f") else " " for ch in text)

    assert parsed == {"cs1": normal(a), "msg": normal(b)}


@settings(max_examples=200, deadline=None)
@given(st.text(max_size=40))
def test_cef_header_escaping_keeps_seven_fields(name: str) -> None:
    line = "|".join(["CEF:0", "aisoc", "aisoc", "1", "id", cef_header(name), "5"]) + "|msg=x"
    header, ext = split_cef(line)
    assert len(header) == 7 and ext == "msg=x" and "\n" not in line


# --------------------------------------------------------------------------------------------- syslog

def test_syslog_udp_delivers_rfc5424_cef(udp_syslog: UdpSyslog) -> None:
    output = SyslogCefOutput("127.0.0.1", udp_syslog.port, transport="udp", hostname="aisoc-test")
    batch = alerts()
    assert output.send(batch).sent == len(batch)
    messages = udp_syslog.wait(len(batch))
    assert len(messages) == len(batch)
    first = messages[0]
    pri, rest = first[1:].split(">", 1)
    assert rest.startswith("1 ") and " aisoc-test aisoc " in rest and " alert - CEF:0|aisoc|aisoc|" in rest
    critical = next(m for m in messages if ALERTS["model_artifact_hash_mismatch"]["alert"]["rule.id"] in m)
    assert critical.startswith(f"<{16 * 8 + 2}>1 ")  # local0.crit
    assert int(pri) // 8 == 16
    output.close()


def test_syslog_udp_truncates_to_datagram_size(udp_syslog: UdpSyslog) -> None:
    alert = dict(alerts()[0])
    alert["event.reason"] = "x=" * 5000
    SyslogCefOutput("127.0.0.1", udp_syslog.port, max_datagram=1024).send([alert])
    (message,) = udp_syslog.wait(1)
    assert len(message.encode()) <= 1024
    assert not message.endswith("\\") or message.endswith("\\\\")


def test_syslog_tcp_octet_counting(tcp_syslog: StreamSyslog) -> None:
    output = SyslogCefOutput("127.0.0.1", tcp_syslog.port, transport="tcp")
    batch = alerts()
    assert output.send(batch).sent == len(batch)
    assert output.send(batch[:1]).sent == 1
    messages = tcp_syslog.wait(len(batch) + 1)
    assert len(messages) == len(batch) + 1
    assert all("CEF:0|aisoc|aisoc|" in m for m in messages)
    assert tcp_syslog.connections == 1, "the connection is kept between batches"
    output.close()


def test_syslog_tcp_lf_framing() -> None:
    server = StreamSyslog(framing="lf")
    try:
        output = SyslogCefOutput("127.0.0.1", server.port, transport="tcp", framing="lf")
        hostile = dict(alerts()[0])
        hostile["user.name"] = "line1\nline2"
        assert output.send([hostile, alerts()[1]]).sent == 2
        messages = server.wait(2)
        assert len(messages) == 2 and "line1\\nline2" in messages[0]
        output.close()
    finally:
        server.close()


def test_syslog_tcp_reconnects_after_the_collector_drops_the_connection() -> None:
    server = StreamSyslog(close_after=1)
    try:
        output = SyslogCefOutput("127.0.0.1", server.port, transport="tcp", backoff=FAST)
        assert output.send(alerts()[:1]).ok
        server.wait(1)
        time.sleep(0.2)  # the collector has closed its end by now
        assert output.send(alerts()[1:2]).ok
        assert len(server.wait(2)) == 2 and server.connections == 2
        output.close()
    finally:
        server.close()


def test_syslog_tcp_down_reports_failure_without_raising() -> None:
    output = SyslogCefOutput("127.0.0.1", free_port(), transport="tcp", max_retries=1, backoff=FAST)
    result = output.send(alerts()[:3])
    assert not result.ok and len(result.failed) == 3 and "ConnectionRefused" in result.errors[0]


def test_syslog_tls_with_trusted_ca(tls: TlsFiles, tls_syslog: StreamSyslog) -> None:
    output = SyslogCefOutput("127.0.0.1", tls_syslog.port, transport="tls", ca_file=tls.ca_cert)
    assert output.send(alerts()).sent == len(alerts())
    assert len(tls_syslog.wait(len(alerts()))) == len(alerts())
    output.close()


def test_syslog_tls_refuses_an_untrusted_certificate_by_default(tls_syslog: StreamSyslog, tmp_path: Path) -> None:
    default = SyslogCefOutput("127.0.0.1", tls_syslog.port, transport="tls", max_retries=0)
    result = default.send(alerts()[:1])
    assert not result.ok and "CERTIFICATE_VERIFY_FAILED" in result.errors[0]
    other_ca = make_tls(tmp_path / "other", label="someone-else")
    wrong = SyslogCefOutput("127.0.0.1", tls_syslog.port, transport="tls", ca_file=other_ca.ca_cert, max_retries=0)
    assert not wrong.send(alerts()[:1]).ok
    time.sleep(0.1)
    assert tls_syslog.messages == []


def test_syslog_rejects_bad_settings() -> None:
    with pytest.raises(OutputConfigError):
        SyslogCefOutput("127.0.0.1", 514, transport="smtp")  # type: ignore[arg-type]
    with pytest.raises(OutputConfigError):
        SyslogCefOutput("127.0.0.1", 514, facility="local9")


# ----------------------------------------------------------------------------------------- dispatcher

class Exploding:
    name = "exploding"

    def send(self, alerts: list[dict[str, Any]]) -> OutputResult:
        raise RuntimeError("bug in an output")

    def close(self) -> None:
        pass


def test_dead_webhook_does_not_stop_file_and_syslog(tmp_path: Path, udp_syslog: UdpSyslog,
                                                    tcp_syslog: StreamSyslog, secret_env: str,
                                                    caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    dead_letters = DeadLetterStore(":memory:")
    file_path = tmp_path / "alerts.ndjson"
    dead = WebhookOutput(f"http://127.0.0.1:{free_port()}/hook", secret_env=secret_env, max_retries=1,
                         backoff=FAST, name="dead-webhook")
    outputs = [dead, NdjsonFileOutput(file_path), SyslogCefOutput("127.0.0.1", udp_syslog.port),
               SyslogCefOutput("127.0.0.1", tcp_syslog.port, transport="tcp"), Exploding()]
    batch = alerts()
    with OutputDispatcher(outputs, retries=1, backoff=FAST, dead_letters=dead_letters) as dispatcher:
        report = dispatcher.dispatch(batch)  # must not raise
        assert set(report.failed_outputs()) == {"dead-webhook", "exploding"}
        assert report.results["dead-webhook"].attempts == 4  # (1 + 1 retry in the output) x (1 + 1 dispatcher)
        assert len(file_path.read_text().splitlines()) == len(batch)
        assert len(udp_syslog.wait(len(batch))) == len(batch)
        assert len(tcp_syslog.wait(len(batch))) == len(batch)
        assert dispatcher.stats["dead-webhook"].failed == len(batch)
        assert "ConnectError" in dispatcher.stats["dead-webhook"].last_error
        assert dispatcher.stats["exploding"].failed == len(batch)
        assert dispatcher.stats[outputs[1].name].sent == len(batch)
    letters = dead_letters.list()
    assert len(letters) == 2 * len(batch)
    assert {d.source for d in letters} == {"output:dead-webhook", "output:exploding"}
    assert json.loads(letters[0].raw)["rule.id"]
    assert SECRET not in caplog.text


def test_dispatcher_retries_only_undelivered_alerts() -> None:
    class Flaky:
        name = "flaky"

        def __init__(self) -> None:
            self.calls: list[int] = []

        def send(self, alerts: list[dict[str, Any]]) -> OutputResult:
            self.calls.append(len(alerts))
            if len(self.calls) == 1:
                return OutputResult(self.name, sent=1, failed=alerts[1:], errors=["half"])
            return OutputResult(self.name, sent=len(alerts))

        def close(self) -> None:
            pass

    flaky = Flaky()
    report = OutputDispatcher([flaky], retries=2, backoff=FAST).dispatch(alerts()[:4])
    assert report.ok and flaky.calls == [4, 3] and report.results["flaky"].sent == 4


def test_outputs_from_config(tmp_path: Path, udp_syslog: UdpSyslog, secret_env: str) -> None:
    hook = Webhook(secret=SECRET)
    try:
        dispatcher = build_dispatcher({"retries": 0, "outputs": [
            {"type": "file", "path": str(tmp_path / "a.ndjson")},
            {"type": "webhook", "url": hook.url, "secret_env": secret_env},
            {"type": "syslog", "host": "127.0.0.1", "port": udp_syslog.port, "transport": "udp"},
        ]})
        report = dispatcher.dispatch(alerts()[:2])
        assert report.ok, report.to_dict()
        assert hook.verified == [True] and len(udp_syslog.wait(2)) == 2
        dispatcher.close()
    finally:
        hook.close()
    with pytest.raises(ValueError):
        build_dispatcher({"outputs": [{"type": "kafka", "topic": "x"}]})
