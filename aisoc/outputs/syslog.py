"""Syslog output: alerts as CEF messages in RFC 5424 syslog, over UDP, TCP or TLS.

Message: `<PRI>1 <time> <host> aisoc <pid> alert - CEF:0|aisoc|aisoc|<version>|<rule.id>|<rule.name>|<sev>|<ext>`

- CEF header fields escape `\\` and `|` (newlines become spaces); extension values escape `\\`,
  `=` and turn CR/LF into the two-character sequences `\\r` / `\\n`, so a hostile model or user name
  can neither forge extension keys nor inject another syslog line.
- Severity: the alert's 0-100 `event.severity` maps to CEF 0-10 (critical 10, high 8, medium 5,
  low 3) and to the syslog severity in PRI (crit, err, warning, notice, info).
- Extensions: `externalId` (alert id), `rt`/`start`/`end` (alert, first and last event, epoch ms),
  `cnt` (folded events), `cat` (layer), `msg` (reason), `cs1` ATLAS techniques, `cs2` ATLAS
  tactics, `cs3` entity, `cs4` rule id, `cs5` playbooks, `cs6` owner team, `cn1` risk score, and
  `suser`/`dhost`/`src`/`fname`/`flexString1` (model) when the alert carries them.
- Framing: UDP sends one message per datagram (RFC 5426, truncated to `max_datagram` bytes; UDP
  gives no delivery guarantee). TCP and TLS use octet counting (`<len> <msg>`, RFC 5425/6587) by
  default, or `framing="lf"` (newline-terminated) for receivers that want it. TLS verifies the
  server certificate and hostname unless `verify=False` is set explicitly; `ca_file` trusts a
  private CA; `cert_file`/`key_file` present a client certificate.
- A TCP/TLS connection is kept between batches; a dropped connection is reopened and the message
  retried with backoff. Messages already handed to the kernel when a connection dies can be lost
  (syslog has no acknowledgements); that is a limit of the protocol.
"""

from __future__ import annotations

import logging
import os
import re
import select
import socket
import ssl
import threading
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

from aisoc import __version__ as AISOC_VERSION
from aisoc.outputs.base import Alert, Backoff, OutputConfigError, OutputResult, flatten

log = logging.getLogger(__name__)

Transport = Literal["udp", "tcp", "tls"]
Framing = Literal["octet", "lf"]

FACILITIES = {
    "kern": 0, "user": 1, "mail": 2, "daemon": 3, "auth": 4, "syslog": 5, "lpr": 6, "news": 7, "uucp": 8,
    "cron": 9, "authpriv": 10, "ftp": 11, "ntp": 12, "security": 13, "console": 14, "solaris-cron": 15,
    **{f"local{i}": 16 + i for i in range(8)},
}
DEFAULT_MAX_DATAGRAM = 8192


# ------------------------------------------------------------------------------------------- CEF

def cef_header(value: Any) -> str:
    """Escape a CEF header field: backslash and pipe; line breaks become spaces."""
    text = "" if value is None else str(value)
    text = text.replace("\\", "\\\\").replace("|", "\\|")
    return "".join(" " if ch in "\r\n" or ord(ch) < 0x20 or ch == "\x7f" else ch for ch in text)


def cef_value(value: Any) -> str:
    """Escape a CEF extension value: backslash, equals sign, CR and LF (other controls -> space)."""
    if isinstance(value, list | tuple):
        value = ",".join(str(v) for v in value)
    text = "" if value is None else str(value)
    out: list[str] = []
    for ch in text:
        if ch == "\\":
            out.append("\\\\")
        elif ch == "=":
            out.append("\\=")
        elif ch == "\n":
            out.append("\\n")
        elif ch == "\r":
            out.append("\\r")
        elif ord(ch) < 0x20 or ch == "\x7f":
            out.append(" ")
        else:
            out.append(ch)
    return "".join(out)


def cef_unescape_value(text: str) -> str:
    """Inverse of `cef_value` (for receivers and tests)."""
    out: list[str] = []
    chars = iter(text)
    for ch in chars:
        if ch != "\\":
            out.append(ch)
            continue
        nxt = next(chars, "")
        out.append({"n": "\n", "r": "\r"}.get(nxt, nxt))
    return "".join(out)


def parse_cef_extension(ext: str) -> dict[str, str]:
    """Split a CEF extension string into key -> unescaped value (keys are `[A-Za-z0-9]+` before an unescaped `=`)."""
    pairs: dict[str, str] = {}
    # a key starts after a space (or at the start) and is followed by an unescaped '='
    positions = [m for m in re.finditer(r"(?:^| )([A-Za-z0-9_]+)=", ext)
                 if not _escaped(ext, m.end() - 1)]
    for index, match in enumerate(positions):
        end = positions[index + 1].start() if index + 1 < len(positions) else len(ext)
        pairs[match.group(1)] = cef_unescape_value(ext[match.end():end])
    return pairs


def _escaped(text: str, index: int) -> bool:
    backslashes = 0
    while index - 1 - backslashes >= 0 and text[index - 1 - backslashes] == "\\":
        backslashes += 1
    return backslashes % 2 == 1


def cef_severity(score: Any) -> int:
    """0-100 alert severity -> CEF 0-10 (Low 0-3, Medium 4-6, High 7-8, Very-High 9-10)."""
    try:
        value = float(score)
    except (TypeError, ValueError):
        return 5
    if value >= 90:
        return 10
    if value >= 70:
        return 8
    if value >= 40:
        return 5
    if value >= 20:
        return 3
    return 1


def syslog_severity(score: Any) -> int:
    """0-100 alert severity -> RFC 5424 severity (2 crit, 3 err, 4 warning, 5 notice, 6 info)."""
    cef = cef_severity(score)
    return {10: 2, 8: 3, 5: 4, 3: 5}.get(cef, 6)


def _epoch_ms(value: Any) -> str | None:
    if not value:
        return None
    try:
        when = datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    except ValueError:
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return str(int(when.timestamp() * 1000))


def _joined(value: Any) -> str | None:
    if value is None or value == [] or value == "":
        return None
    if isinstance(value, list | tuple):
        return ",".join(str(v) for v in value)
    return str(value)


def cef_message(alert: Alert, *, vendor: str = "aisoc", product: str = "aisoc",
                version: str = AISOC_VERSION) -> str:
    """The CEF:0 line for one alert (flat or nested)."""
    flat = flatten(alert)
    severity = flat.get("event.severity", flat.get("event.risk_score"))
    techniques = list(flat.get("threat.technique.id") or []) + list(flat.get("threat.technique.subtechnique.id") or [])
    model = flat.get("aisoc.model.name")
    if model and flat.get("aisoc.model.version"):
        model = f"{model}@{flat['aisoc.model.version']}"
    ext: list[tuple[str, Any]] = [
        ("externalId", flat.get("event.id")),
        ("rt", _epoch_ms(flat.get("@timestamp"))),
        ("start", _epoch_ms(flat.get("aisoc.alert.first_event"))),
        ("end", _epoch_ms(flat.get("aisoc.alert.last_event"))),
        ("cnt", flat.get("aisoc.alert.count")),
        ("cat", flat.get("aisoc.layer") or flat.get("rule.category")),
        ("cs1Label", "atlasTechniques"), ("cs1", _joined(techniques)),
        ("cs2Label", "atlasTactics"), ("cs2", _joined(flat.get("threat.tactic.id"))),
        ("cs3Label", "entity"), ("cs3", flat.get("aisoc.alert.entity")),
        ("cs4Label", "ruleId"), ("cs4", flat.get("rule.id")),
        ("cs5Label", "playbooks"), ("cs5", _joined(flat.get("aisoc.alert.playbooks"))),
        ("cs6Label", "ownerTeam"), ("cs6", flat.get("aisoc.owner.team")),
        ("cn1Label", "riskScore"), ("cn1", flat.get("event.risk_score")),
        ("flexString1Label", "model"), ("flexString1", model),
        ("suser", _joined(flat.get("user.name"))),
        ("dhost", _joined(flat.get("host.name"))),
        ("src", _joined(flat.get("source.ip"))),
        ("fname", _joined(flat.get("file.path"))),
        ("msg", flat.get("event.reason")),
    ]
    present = {k for k, v in ext if v is not None and v != ""}
    parts = []
    for key, value in ext:
        if value is None or value == "":
            continue
        if key.endswith("Label") and key[: -len("Label")] not in present:
            continue
        parts.append(f"{key}={cef_value(value)}")
    header = [
        "CEF:0", cef_header(vendor), cef_header(product), cef_header(version),
        cef_header(flat.get("rule.id") or "unknown"), cef_header(flat.get("rule.name") or "aisoc alert"),
        str(cef_severity(severity)),
    ]
    return "|".join(header) + "|" + " ".join(parts)


def _print_ascii(value: str, limit: int) -> str:
    text = "".join(ch for ch in value if 33 <= ord(ch) <= 126)[:limit]
    return text or "-"


def rfc5424(message: str, *, severity: int, facility: int = 16, hostname: str | None = None,
            app_name: str = "aisoc", msgid: str = "alert", when: datetime | None = None) -> str:
    """Wrap a message in an RFC 5424 header (no structured data, no BOM)."""
    stamp = (when or datetime.now(UTC)).astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
    host = _print_ascii(hostname or socket.gethostname(), 255)
    return (f"<{facility * 8 + severity}>1 {stamp} {host} {_print_ascii(app_name, 48)} "
            f"{os.getpid()} {_print_ascii(msgid, 32)} - {message}")


def _truncate(data: bytes, limit: int) -> bytes:
    if len(data) <= limit:
        return data
    text = data[:limit].decode("utf-8", "ignore")
    # never end on half an escape sequence
    trailing = len(text) - len(text.rstrip("\\"))
    if trailing % 2:
        text = text[:-1]
    return text.encode("utf-8")


# ------------------------------------------------------------------------------------- transport

class SyslogCefOutput:
    """Send each alert as one CEF-over-syslog message to a collector (UDP, TCP or TLS)."""

    def __init__(
        self,
        host: str,
        port: int = 514,
        *,
        transport: Transport = "udp",
        framing: Framing = "octet",
        facility: str = "local0",
        hostname: str | None = None,
        app_name: str = "aisoc",
        timeout: float = 5.0,
        max_retries: int = 3,
        backoff: Backoff | None = None,
        max_datagram: int = DEFAULT_MAX_DATAGRAM,
        verify: bool = True,
        ca_file: str | Path | None = None,
        cert_file: str | Path | None = None,
        key_file: str | Path | None = None,
        server_name: str | None = None,
        name: str | None = None,
    ) -> None:
        if transport not in ("udp", "tcp", "tls"):
            raise OutputConfigError(f"syslog output: transport must be udp, tcp or tls, not {transport!r}")
        if framing not in ("octet", "lf"):
            raise OutputConfigError(f"syslog output: framing must be octet or lf, not {framing!r}")
        if facility not in FACILITIES:
            raise OutputConfigError(f"syslog output: unknown facility {facility!r} (one of {', '.join(FACILITIES)})")
        self.host = host
        self.port = int(port)
        self.transport = transport
        self.framing = framing
        self.facility = FACILITIES[facility]
        self.hostname = hostname
        self.app_name = app_name
        self.timeout = timeout
        self.max_retries = max(0, max_retries)
        self.backoff = backoff or Backoff()
        self.max_datagram = max_datagram
        self.server_name = server_name or host
        self.name = name or f"syslog-{transport}:{host}:{port}"
        self._sock: socket.socket | None = None
        self._lock = threading.Lock()
        self._ssl: ssl.SSLContext | None = None
        if transport == "tls":
            context = ssl.create_default_context(cafile=str(ca_file) if ca_file else None)
            context.minimum_version = ssl.TLSVersion.TLSv1_2
            if not verify:
                log.warning("syslog output %s: TLS certificate verification is OFF (verify=false)", self.name)
                context.check_hostname = False
                context.verify_mode = ssl.CERT_NONE
            if cert_file:
                context.load_cert_chain(str(cert_file), str(key_file) if key_file else None)
            self._ssl = context

    # -- formatting
    def format(self, alert: Alert) -> bytes:
        """The bytes on the wire for one alert (framing included)."""
        flat = flatten(alert)
        line = rfc5424(cef_message(flat), severity=syslog_severity(flat.get("event.severity")),
                       facility=self.facility, hostname=self.hostname, app_name=self.app_name)
        data = line.encode("utf-8")
        if self.transport == "udp":
            return _truncate(data, self.max_datagram)
        if self.framing == "lf":
            return data + b"\n"
        return str(len(data)).encode("ascii") + b" " + data

    # -- connection
    def _connect(self) -> socket.socket:
        if self.transport == "udp":
            family = socket.getaddrinfo(self.host, self.port, type=socket.SOCK_DGRAM)[0][0]
            sock = socket.socket(family, socket.SOCK_DGRAM)
            sock.settimeout(self.timeout)
            return sock
        raw = socket.create_connection((self.host, self.port), timeout=self.timeout)
        if self._ssl is not None:
            try:
                return self._ssl.wrap_socket(raw, server_hostname=self.server_name)
            except (ssl.SSLError, OSError):
                raw.close()
                raise
        return raw

    def _peer_closed(self, sock: socket.socket) -> bool:
        """True when a stream peer has closed (or reset) the connection since the last batch."""
        try:
            readable, _, _ = select.select([sock], [], [], 0)
            if not readable:
                return False
            if isinstance(sock, ssl.SSLSocket) and sock.pending() == 0:
                sock.setblocking(False)
                try:
                    return sock.recv(1) == b""
                except ssl.SSLWantReadError:
                    return False
                finally:
                    sock.setblocking(True)
                    sock.settimeout(self.timeout)
            return sock.recv(1, socket.MSG_PEEK) == b""
        except (OSError, ValueError):
            return True

    def _drop(self) -> None:
        if self._sock is not None:
            try:
                self._sock.close()
            except OSError:
                pass
            self._sock = None

    def _send_one(self, data: bytes) -> None:
        if self._sock is None:
            self._sock = self._connect()
        if self.transport == "udp":
            self._sock.sendto(data, (self.host, self.port))
        else:
            self._sock.sendall(data)

    def send(self, alerts: list[Alert]) -> OutputResult:
        result = OutputResult(self.name, attempts=0)
        with self._lock:
            if self._sock is not None and self.transport != "udp" and self._peer_closed(self._sock):
                self._drop()
            for index, alert in enumerate(alerts):
                try:
                    data = self.format(alert)
                except Exception as exc:  # noqa: BLE001 - a bad alert must not stop the batch
                    result.failed.append(alert)
                    result.errors.append(f"cannot format alert: {exc}")
                    continue
                error = ""
                for attempt in range(self.max_retries + 1):
                    result.attempts += 1
                    try:
                        self._send_one(data)
                        error = ""
                        break
                    except (OSError, ssl.SSLError) as exc:
                        error = f"{type(exc).__name__}: {exc}"
                        self._drop()
                        if attempt < self.max_retries:
                            log.info("syslog %s: send failed (%s); reconnecting", self.name, error)
                            self.backoff.sleep(attempt)
                if error:
                    remaining = alerts[index:]
                    result.failed.extend(remaining)
                    result.errors.append(f"{self.host}:{self.port}: {error}")
                    log.warning("syslog %s: %d alert(s) not delivered: %s", self.name, len(remaining), error)
                    break
                result.sent += 1
        result.attempts = max(result.attempts, 1)
        return result

    def close(self) -> None:
        with self._lock:
            self._drop()
