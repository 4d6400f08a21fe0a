"""One way to build an Elasticsearch client: API key or basic auth, TLS verification on by default."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from elasticsearch import Elasticsearch


@dataclass(frozen=True)
class EsConnection:
    url: str
    api_key: str | None = None
    username: str | None = None
    password: str | None = None
    ca_certs: Path | None = None
    verify_certs: bool = True
    request_timeout: float = 30.0

    @classmethod
    def from_env(cls, url: str, **overrides: object) -> EsConnection:
        """Secrets from the environment (AISOC_ES_API_KEY, AISOC_ES_USERNAME/PASSWORD), never from argv."""
        values: dict[str, object] = {
            "api_key": os.environ.get("AISOC_ES_API_KEY"),
            "username": os.environ.get("AISOC_ES_USERNAME"),
            "password": os.environ.get("AISOC_ES_PASSWORD"),
        }
        values.update({k: v for k, v in overrides.items() if v is not None})
        return cls(url=url, **values)  # type: ignore[arg-type]

    def __repr__(self) -> str:  # never show secrets in logs or tracebacks
        auth = "api_key" if self.api_key else "basic" if self.username else "none"
        return f"EsConnection(url={self.url!r}, auth={auth})"


def make_client(conn: EsConnection) -> Elasticsearch:
    kwargs: dict[str, object] = {"request_timeout": conn.request_timeout, "verify_certs": conn.verify_certs}
    if conn.ca_certs:
        kwargs["ca_certs"] = str(conn.ca_certs)
    if not conn.verify_certs:
        kwargs["ssl_show_warn"] = True
    if conn.api_key:
        kwargs["api_key"] = conn.api_key
    elif conn.username:
        kwargs["basic_auth"] = (conn.username, conn.password or "")
    return Elasticsearch(conn.url, **kwargs)  # type: ignore[arg-type]
