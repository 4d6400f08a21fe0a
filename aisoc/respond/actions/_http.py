"""A small httpx client factory shared by the REST-backed actions (TLS verified unless told otherwise)."""

from __future__ import annotations

import logging
import ssl
from typing import Any

import httpx

log = logging.getLogger(__name__)


def client(base_url: str, *, verify: bool, ca_file: str | None, timeout: float,
           headers: dict[str, str] | None = None, auth: Any = None) -> httpx.Client:
    if not verify:
        log.warning("TLS certificate verification is OFF for %s (verify: false)", base_url)
        tls: Any = False
    elif ca_file:
        tls = ssl.create_default_context(cafile=ca_file)
    else:
        tls = True
    return httpx.Client(base_url=base_url.rstrip("/"), verify=tls, timeout=timeout, headers=headers or {},
                        auth=auth, follow_redirects=False)


def error_text(response: httpx.Response, limit: int = 300) -> str:
    """The server's error message (JSON `message`/`detail`/`error`), shortened."""
    try:
        body = response.json()
    except ValueError:
        return response.text[:limit]
    if isinstance(body, dict):
        for key in ("message", "detail", "error"):
            if body.get(key):
                value = body[key]
                return (value if isinstance(value, str) else str(value))[:limit]
    return str(body)[:limit]
