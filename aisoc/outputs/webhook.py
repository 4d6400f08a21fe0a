"""HTTP webhook output: alerts as a JSON POST, optionally signed with HMAC-SHA256.

Body (batch mode, the default): `{"source": "aisoc", "count": n, "alerts": [<nested ECS alert>, ...]}`;
with `batch=False` one POST per alert whose body is the alert itself.

Signature (when `secret_env` names an environment variable holding the shared secret):

    X-Aisoc-Timestamp: <unix seconds>
    X-Aisoc-Signature: sha256=<hex HMAC-SHA256(secret, "<timestamp>." + body)>

The receiver recomputes the HMAC over the timestamp, a dot and the raw body, compares in constant
time and rejects timestamps outside its tolerance (replays); `verify_signature` does exactly that.
Every attempt is signed afresh; `X-Aisoc-Delivery` stays the same across retries so a receiver can
drop duplicates.

Retries: connection errors, timeouts, 429 and 5xx are retried with exponential backoff (a
`Retry-After` in seconds is honoured, capped); other 4xx are not (retrying cannot fix them). TLS
certificates are verified unless `verify=False` is set explicitly. The secret is read once from
the environment, is never logged, and the URL is logged without its query string.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import os
import time
import uuid
from collections.abc import Mapping
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx

from aisoc.outputs.base import Alert, Backoff, OutputConfigError, OutputResult, unflatten

log = logging.getLogger(__name__)

SIGNATURE_HEADER = "X-Aisoc-Signature"
TIMESTAMP_HEADER = "X-Aisoc-Timestamp"
DELIVERY_HEADER = "X-Aisoc-Delivery"
RETRYABLE_STATUS = frozenset({429, 500, 502, 503, 504})


def sign(secret: bytes, timestamp: str, body: bytes) -> str:
    """The `X-Aisoc-Signature` value for this timestamp and body."""
    return "sha256=" + hmac.new(secret, timestamp.encode("ascii") + b"." + body, hashlib.sha256).hexdigest()


def verify_signature(secret: bytes | str, timestamp: str, body: bytes, signature: str, *,
                     tolerance: float = 300.0, now: float | None = None) -> bool:
    """Check a received signature in constant time, refusing timestamps more than `tolerance` s off."""
    key = secret.encode("utf-8") if isinstance(secret, str) else secret
    try:
        sent_at = int(timestamp)
    except (TypeError, ValueError):
        return False
    if abs((time.time() if now is None else now) - sent_at) > tolerance:
        return False
    return hmac.compare_digest(sign(key, timestamp, body), signature or "")


def redacted_url(url: str) -> str:
    """`scheme://host:port/path` without user info, query or fragment (they may carry tokens)."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    port = f":{parts.port}" if parts.port else ""
    return f"{parts.scheme}://{host}{port}{parts.path}"


def _env_secret(name: str, what: str) -> str:
    value = os.environ.get(name)
    if not value:
        raise OutputConfigError(f"{what}: environment variable {name} is not set (it must hold the secret)")
    return value


class WebhookOutput:
    """POST alerts as JSON to a URL, with HMAC signing, retries and TLS verification."""

    def __init__(
        self,
        url: str,
        *,
        secret_env: str | None = None,
        headers: Mapping[str, str] | None = None,
        header_env: Mapping[str, str] | None = None,
        batch: bool = True,
        timeout: float = 10.0,
        max_retries: int = 3,
        backoff: Backoff | None = None,
        verify: bool = True,
        ca_file: str | Path | None = None,
        name: str | None = None,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise OutputConfigError(f"webhook output: {redacted_url(url)!r} is not an http(s) URL")
        self.url = url
        self.name = name or f"webhook:{parts.hostname}"
        self.batch = batch
        self.max_retries = max(0, max_retries)
        self.backoff = backoff or Backoff()
        self._secret = _env_secret(secret_env, self.name).encode("utf-8") if secret_env else None
        self._headers = {"Content-Type": "application/json", "User-Agent": "aisoc-webhook/1"}
        self._headers.update(headers or {})
        for header, env in (header_env or {}).items():
            self._headers[header] = _env_secret(env, f"{self.name} header {header}")
        if not verify:
            log.warning("webhook output %s: TLS certificate verification is OFF (verify=false)", self.name)
        tls: Any = str(ca_file) if ca_file and verify else verify
        if isinstance(tls, str):
            import ssl

            tls = ssl.create_default_context(cafile=tls)
        self._client = httpx.Client(timeout=timeout, verify=tls, transport=transport, follow_redirects=False)

    def __repr__(self) -> str:
        return f"WebhookOutput(name={self.name!r}, url={redacted_url(self.url)!r}, signed={self._secret is not None})"

    def _bodies(self, alerts: list[Alert]) -> list[tuple[list[Alert], bytes]]:
        def dump(doc: Any) -> bytes:
            return json.dumps(doc, ensure_ascii=False, sort_keys=True, default=str).encode("utf-8")

        if self.batch:
            return [(alerts, dump({"source": "aisoc", "count": len(alerts), "alerts": [unflatten(a) for a in alerts]}))]
        return [([alert], dump(unflatten(alert))) for alert in alerts]

    def _post(self, body: bytes) -> tuple[bool, str, int]:
        """POST with retries. Returns (delivered, error, attempts)."""
        delivery = str(uuid.uuid4())
        error = ""
        for attempt in range(self.max_retries + 1):
            headers = dict(self._headers)
            headers[DELIVERY_HEADER] = delivery
            if self._secret is not None:
                timestamp = str(int(time.time()))
                headers[TIMESTAMP_HEADER] = timestamp
                headers[SIGNATURE_HEADER] = sign(self._secret, timestamp, body)
            retry_after = 0.0
            try:
                response = self._client.post(self.url, content=body, headers=headers)
            except httpx.TransportError as exc:
                error = f"{type(exc).__name__}: {exc}"
            else:
                if response.status_code < 300:
                    return True, "", attempt + 1
                error = f"HTTP {response.status_code}"
                if response.status_code not in RETRYABLE_STATUS:
                    return False, error + " (not retried)", attempt + 1
                try:
                    retry_after = float(response.headers.get("Retry-After", "0"))
                except ValueError:
                    retry_after = 0.0
            if attempt < self.max_retries:
                log.info("webhook %s: attempt %d failed (%s); retrying", self.name, attempt + 1, error)
                self.backoff.sleep(attempt, retry_after)
        return False, error, self.max_retries + 1

    def send(self, alerts: list[Alert]) -> OutputResult:
        result = OutputResult(self.name, attempts=0)
        for group, body in self._bodies(alerts):
            delivered, error, attempts = self._post(body)
            result.attempts += attempts
            if delivered:
                result.sent += len(group)
            else:
                result.failed.extend(group)
                result.errors.append(f"{redacted_url(self.url)}: {error}")
                log.warning("webhook %s: %d alert(s) not delivered after %d attempt(s): %s",
                            self.name, len(group), attempts, error)
        return result

    def close(self) -> None:
        self._client.close()
