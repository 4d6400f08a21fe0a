"""`aisoc.yml`: the service configuration, validated by pydantic, secrets from the environment.

`${VAR}` anywhere in a string value is replaced by the environment variable VAR (an unset variable
is an error, `${VAR:-default}` gives a default), so secrets never need to be written in the file.
With no `elasticsearch` section everything runs on the embedded SQLite store under `data_dir`.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from aisoc.analyzers.settings import AnalyzerSettings, coerce_settings
from aisoc.safeyaml import YamlLoadError, line_of, load_file

_VAR = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")
MAX_CONFIG_BYTES = 256 * 1024


class ConfigError(ValueError):
    def __init__(self, problems: list[str]) -> None:
        self.problems = problems
        super().__init__("\n".join(problems))


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class SourceAuth(Strict):
    """How a push source proves who it is: a bearer token or an HMAC-SHA256 body signature."""

    token: str | None = Field(None, description="bearer token (use ${ENV_VAR})")
    hmac_secret: str | None = Field(None, description="HMAC-SHA256 secret over the body (use ${ENV_VAR})")
    hmac_header: str = "X-Aisoc-Signature"
    allow_query_token: bool = Field(
        False, description="also accept the token as ?token= in the URL, for senders that cannot set headers "
                           "(the KServe logger); use TLS so the URL is not exposed")


class PushSource(Strict):
    kind: Literal["ndjson", "litellm", "kserve", "mlflow_webhook"]
    auth: SourceAuth
    options: dict[str, Any] = Field(default_factory=dict, description="the collector's own settings for this source")
    max_body_bytes: int = Field(10 * 1024 * 1024, gt=0)

    @field_validator("auth")
    @classmethod
    def _has_auth(cls, auth: SourceAuth) -> SourceAuth:
        if not auth.token and not auth.hmac_secret:
            raise ValueError("every receiver source needs auth.token or auth.hmac_secret")
        return auth


class ReceiverConfig(Strict):
    host: str = "127.0.0.1"
    port: int = Field(8787, ge=0, le=65535)
    request_timeout_seconds: float = Field(10.0, gt=0)
    sources: dict[str, PushSource] = Field(default_factory=dict)


class SpoolConfig(Strict):
    max_events: int = Field(1_000_000, gt=0)
    max_bytes: int = Field(1024 * 1024 * 1024, gt=0)


class ElasticsearchConfig(Strict):
    url: str
    api_key: str | None = None
    username: str | None = None
    password: str | None = None
    ca_certs: Path | None = None
    verify_certs: bool = True
    namespace: str = "default"
    batch_size: int = Field(500, gt=0)


class SinksConfig(Strict):
    sqlite: bool = True
    elasticsearch: ElasticsearchConfig | None = None
    file: Path | None = Field(None, description="also append every event to this NDJSON file")


class DetectionConfig(Strict):
    enabled: bool = True
    rules: list[Path] = Field(default_factory=list, description="rule files/dirs (default: the shipped pack)")
    interval_seconds: float = Field(60.0, gt=0)
    lookback_seconds: float = Field(600.0, ge=0)


class RespondConfig(Strict):
    """Response playbooks run by the service for alerts whose playbook's approval policy is `auto`."""

    playbooks: list[Path] = Field(default_factory=list, description="playbook files/dirs (default: shipped)")
    execute: bool = Field(False, description="carry out auto-approved playbooks; false = dry-run, plans audited")
    audit_log: Path | None = Field(None, description="append-only audit log (default: data_dir/audit.jsonl)")
    context: dict[str, Any] = Field(default_factory=dict, description="aisoc.respond.ResponseContext settings")


class AisocConfig(Strict):
    data_dir: Path = Path(".aisoc")
    receiver: ReceiverConfig = Field(default_factory=ReceiverConfig)
    spool: SpoolConfig = Field(default_factory=SpoolConfig)
    sinks: SinksConfig = Field(default_factory=SinksConfig)
    detection: DetectionConfig = Field(default_factory=DetectionConfig)
    alerts_file: Path | None = Field(None, description="alerts NDJSON, always written (default data_dir/alerts.ndjson)")
    outputs: list[dict[str, Any]] = Field(
        default_factory=list, description="more alert outputs: file, webhook, syslog (see aisoc/outputs/config.py)")
    respond: RespondConfig = Field(default_factory=RespondConfig)
    analyzers: AnalyzerSettings = Field(
        default_factory=AnalyzerSettings,
        description="stateful analyzers on received events: datasets, lateness (`true`/`false` still accepted)")
    collectors: dict[str, dict[str, Any]] = Field(
        default_factory=dict, description="pull collectors by name: {type, path, interval_seconds, jitter, options}")

    _analyzers = field_validator("analyzers", mode="before")(coerce_settings)


def substitute_env(value: Any, path: str, missing: list[str]) -> Any:
    if isinstance(value, str):
        def repl(match: re.Match[str]) -> str:
            name, default = match.group(1), match.group(2)
            if name in os.environ:
                return os.environ[name]
            if default is not None:
                return default
            missing.append(f"{path}: environment variable {name} is not set (set it, or write ${{{name}:-default}})")
            return ""
        return _VAR.sub(repl, value)
    if isinstance(value, dict):
        return {k: substitute_env(v, f"{path}.{k}" if path else str(k), missing) for k, v in value.items()}
    if isinstance(value, list):
        return [substitute_env(v, f"{path}[{i}]", missing) for i, v in enumerate(value)]
    return value


def load_config(path: Path | None) -> AisocConfig:
    """Load and validate a config file (None: all defaults). Raises ConfigError listing every problem."""
    if path is None:
        return AisocConfig()
    try:
        docs = load_file(path, MAX_CONFIG_BYTES)
    except YamlLoadError as exc:
        raise ConfigError([str(exc)]) from None
    raw = docs[0] if docs else {}
    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        raise ConfigError([f"{path}: the configuration must be a mapping (key: value)"])
    text = path.read_text(encoding="utf-8")
    missing: list[str] = []
    data = substitute_env(raw, "", missing)
    problems = [f"{path}: {m}" for m in missing]
    try:
        config = AisocConfig.model_validate(data)
    except ValidationError as exc:
        for err in exc.errors():
            loc = ".".join(str(p) for p in err["loc"])
            last_key = next((str(p) for p in reversed(err["loc"]) if isinstance(p, str)), "")
            line = line_of(text, f"{last_key}:") if last_key else None
            where = f"{path}:{line}" if line else str(path)
            problems.append(f"{where}: {loc}: {err['msg']}")
        raise ConfigError(problems) from None
    if problems:
        raise ConfigError(problems)
    if not config.data_dir.is_absolute():
        config.data_dir = (path.parent / config.data_dir).resolve()
    collector_problems = []
    for name, job in config.collectors.items():
        from aisoc.collectors.registry import check_options
        from aisoc.service.scheduler import PullJobConfig

        try:
            parsed = PullJobConfig.model_validate(job)
        except ValidationError as exc:
            collector_problems += [f"{path}: collectors.{name}.{'.'.join(str(p) for p in e['loc'])}: {e['msg']}"
                                   for e in exc.errors()]
            continue
        collector_problems += [f"{path}: collectors.{name}.{problem}" for problem in
                               check_options(parsed.type, parsed.options)]
    if collector_problems:
        raise ConfigError(collector_problems)
    if config.outputs:
        from aisoc.outputs.config import OutputsConfig

        try:
            OutputsConfig.model_validate({"outputs": config.outputs})
        except ValidationError as exc:
            raise ConfigError([f"{path}: outputs.{'.'.join(str(p) for p in e['loc'][1:])}: {e['msg']}"
                               for e in exc.errors()]) from None
    return config
