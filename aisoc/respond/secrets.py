"""Secrets for response actions: read from the environment, remembered, scrubbed from every record.

Actions read credentials (LiteLLM master key, MLflow token) through `SecretRegistry.from_env`, and
every secret they handle (a rotated API key, say) is registered. The audit log and run reports pass
through `scrub`, which replaces any registered value, and anything shaped like a LiteLLM key
(`sk-...`), before a byte is written; keys named like credentials are masked whatever their value.
"""

from __future__ import annotations

import os
import re
import threading
from collections.abc import Mapping
from typing import Any

REDACTED = "[REDACTED]"
_API_KEY = re.compile(r"\bsk-[A-Za-z0-9_\-]{6,}")
_SECRET_NAMES = re.compile(r"(?i)^(authorization|password|passwd|secret|client_secret|master_key|api_key|"
                           r"private_key|new_key|raw_key|bearer)$")


class MissingSecret(RuntimeError):
    """The environment variable that should hold a credential is not set."""


class SecretRegistry:
    """The secret values this process has handled, so they can be scrubbed from output."""

    def __init__(self) -> None:
        self._values: set[str] = set()
        self._lock = threading.Lock()

    def register(self, value: str | None) -> None:
        if value and len(value) >= 4:
            with self._lock:
                self._values.add(value)

    def from_env(self, name: str, what: str = "credential") -> str:
        value = os.environ.get(name)
        if not value:
            raise MissingSecret(f"{what}: environment variable {name} is not set")
        self.register(value)
        return value

    def scrub(self, obj: Any) -> Any:
        """A copy of `obj` with every registered secret, `sk-...` key and credential-named field masked."""
        if isinstance(obj, str):
            text = obj
            with self._lock:
                values = sorted(self._values, key=len, reverse=True)
            for value in values:
                if value in text:
                    text = text.replace(value, REDACTED)
            return _API_KEY.sub(lambda m: "sk-..." + m.group(0)[-4:], text)
        if isinstance(obj, Mapping):
            return {k: (REDACTED if isinstance(k, str) and _SECRET_NAMES.match(k) and isinstance(v, str) and v
                        else self.scrub(v)) for k, v in obj.items()}
        if isinstance(obj, list | tuple):
            return [self.scrub(v) for v in obj]
        return obj
