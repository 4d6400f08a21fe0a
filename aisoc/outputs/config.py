"""Output settings as they appear in `aisoc.yml` (`outputs: [...]`), and building outputs from them.

```yaml
outputs:
  - {type: file, path: /var/log/aisoc/alerts.ndjson, max_bytes: 104857600, backups: 5}
  - {type: webhook, url: https://soar.example/hooks/aisoc, secret_env: AISOC_WEBHOOK_SECRET}
  - {type: syslog, host: siem.example, port: 6514, transport: tls, ca_file: /etc/aisoc/siem-ca.pem}
```

Secrets are never in the file: the webhook names the environment variable that holds its secret.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field

from aisoc.outputs.base import Backoff, Output
from aisoc.outputs.dispatcher import OutputDispatcher
from aisoc.outputs.ndjson import DEFAULT_BACKUPS, DEFAULT_MAX_BYTES, NdjsonFileOutput
from aisoc.outputs.syslog import DEFAULT_MAX_DATAGRAM, SyslogCefOutput
from aisoc.outputs.webhook import WebhookOutput


class _Base(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str | None = None


class FileOutputConfig(_Base):
    type: Literal["file", "ndjson"]
    path: str
    max_bytes: int = Field(DEFAULT_MAX_BYTES, ge=1024)
    backups: int = Field(DEFAULT_BACKUPS, ge=0)
    nested: bool = True


class WebhookOutputConfig(_Base):
    type: Literal["webhook"]
    url: str
    secret_env: str | None = Field(None, description="environment variable holding the HMAC secret")
    headers: dict[str, str] = Field(default_factory=dict)
    header_env: dict[str, str] = Field(default_factory=dict, description="header name -> env var with its value")
    batch: bool = True
    timeout: float = Field(10.0, gt=0)
    max_retries: int = Field(3, ge=0, le=20)
    backoff_seconds: float = Field(0.5, ge=0)
    verify: bool = True
    ca_file: str | None = None


class SyslogOutputConfig(_Base):
    type: Literal["syslog"]
    host: str
    port: int = Field(514, ge=1, le=65535)
    transport: Literal["udp", "tcp", "tls"] = "udp"
    framing: Literal["octet", "lf"] = "octet"
    facility: str = "local0"
    hostname: str | None = None
    app_name: str = "aisoc"
    timeout: float = Field(5.0, gt=0)
    max_retries: int = Field(3, ge=0, le=20)
    backoff_seconds: float = Field(0.5, ge=0)
    max_datagram: int = Field(DEFAULT_MAX_DATAGRAM, ge=480, le=65507)
    verify: bool = True
    ca_file: str | None = None
    cert_file: str | None = None
    key_file: str | None = None
    server_name: str | None = None


OutputConfig = Annotated[FileOutputConfig | WebhookOutputConfig | SyslogOutputConfig, Field(discriminator="type")]


class OutputsConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")
    outputs: list[OutputConfig] = Field(default_factory=list)
    retries: int = Field(2, ge=0, le=20)


def build_output(config: FileOutputConfig | WebhookOutputConfig | SyslogOutputConfig) -> Output:
    """One output from its settings (raises OutputConfigError when it cannot work, e.g. a missing secret)."""
    if isinstance(config, FileOutputConfig):
        return NdjsonFileOutput(config.path, max_bytes=config.max_bytes, backups=config.backups,
                                nested=config.nested, name=config.name)
    if isinstance(config, WebhookOutputConfig):
        return WebhookOutput(config.url, secret_env=config.secret_env, headers=config.headers,
                             header_env=config.header_env, batch=config.batch, timeout=config.timeout,
                             max_retries=config.max_retries, backoff=Backoff(base=config.backoff_seconds),
                             verify=config.verify, ca_file=config.ca_file, name=config.name)
    return SyslogCefOutput(config.host, config.port, transport=config.transport, framing=config.framing,
                           facility=config.facility, hostname=config.hostname, app_name=config.app_name,
                           timeout=config.timeout, max_retries=config.max_retries,
                           backoff=Backoff(base=config.backoff_seconds), max_datagram=config.max_datagram,
                           verify=config.verify, ca_file=config.ca_file, cert_file=config.cert_file,
                           key_file=config.key_file, server_name=config.server_name, name=config.name)


def build_dispatcher(config: OutputsConfig | dict, dead_letters: object | None = None) -> OutputDispatcher:
    """A dispatcher over every configured output."""
    settings = config if isinstance(config, OutputsConfig) else OutputsConfig.model_validate(config)
    return OutputDispatcher([build_output(c) for c in settings.outputs], retries=settings.retries,
                            dead_letters=dead_letters)
