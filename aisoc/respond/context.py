"""What response actions need to reach the systems they act on, and where they may write.

Build one `ResponseContext` per deployment (from `aisoc.yml`'s `respond:` block, say) and pass it
to `respond`. Credentials are never in it: it names the environment variables that hold them.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, PrivateAttr

from aisoc.respond.secrets import SecretRegistry


class MlflowSettings(BaseModel):
    """The MLflow tracking server (REST API 2.0)."""

    model_config = ConfigDict(extra="forbid")
    url: str = Field(description="e.g. https://mlflow.internal:5000")
    token_env: str | None = Field(None, description="env var holding a bearer token (MLFLOW_TRACKING_TOKEN)")
    username_env: str | None = None
    password_env: str | None = None
    verify: bool = True
    ca_file: str | None = None
    timeout: float = Field(15.0, gt=0)
    known_good_tag: str = Field("aisoc.known_good", description="model-version tag that marks a known-good version")
    known_good_value: str = "true"


class LiteLLMSettings(BaseModel):
    """The LiteLLM proxy's key-management API (needs the proxy's database)."""

    model_config = ConfigDict(extra="forbid")
    url: str = Field(description="e.g. https://llm-gateway.internal:4000")
    master_key_env: str = "LITELLM_MASTER_KEY"
    verify: bool = True
    ca_file: str | None = None
    timeout: float = Field(15.0, gt=0)


class ResponseContext(BaseModel):
    """Endpoints, files and variables for response actions; secrets come from the environment."""

    model_config = ConfigDict(extra="forbid", arbitrary_types_allowed=True)
    mlflow: MlflowSettings | None = None
    litellm: LiteLLMSettings | None = None
    quarantine_file: Path | None = Field(None, description="data-source quarantine list the collector consults")
    evidence_dir: Path | None = Field(None, description="where snapshot_evidence writes bundles")
    secrets_dir: Path | None = Field(None, description="where rotate_api_key writes new keys (mode 0600)")
    events_files: list[Path] = Field(default_factory=list, description="NDJSON event files to take evidence from")
    event_store: Any = Field(None, exclude=True, description="aisoc.detect.store.EventStore (has source_of)")
    allowed_roots: list[Path] | None = Field(
        None, description="if set, actions read and verify files only under these directories")
    vars: dict[str, Any] = Field(default_factory=dict, description="deployment variables for ${vars.name}")
    actor: str = Field("aisoc", description="identity the actions run as (recorded with every change)")
    _secrets: SecretRegistry = PrivateAttr(default_factory=SecretRegistry)

    @property
    def secrets(self) -> SecretRegistry:
        return self._secrets

    def readable(self, path: Path) -> Path:
        """Resolve a path an action is about to read; refuse it outside `allowed_roots` when those are set."""
        resolved = Path(path).expanduser().resolve()
        if self.allowed_roots is not None:
            roots = [Path(r).expanduser().resolve() for r in self.allowed_roots]
            if not any(resolved == r or resolved.is_relative_to(r) for r in roots):
                raise PermissionError(f"{path} is outside the allowed roots ({', '.join(str(r) for r in roots)})")
        return resolved
