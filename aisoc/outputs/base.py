"""The one interface every alert output implements, and the result it reports.

An output takes a batch of ECS alert documents (flat dotted keys, as `aisoc.detect.alerts.alert_document`
builds them, or nested) and delivers them somewhere. It never raises for a delivery problem: it
reports what went and what did not in an `OutputResult`, so the dispatcher can retry the rest and
record the failure without stopping the other outputs.
"""

from __future__ import annotations

import random
import time
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

Alert = dict[str, Any]


class OutputConfigError(ValueError):
    """An output is configured in a way it cannot work (missing secret, bad address, ...)."""


@dataclass
class OutputResult:
    """What one `send` achieved: alerts delivered, alerts not delivered (to retry), and why."""

    output: str
    sent: int = 0
    failed: list[Alert] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    attempts: int = 1

    @property
    def ok(self) -> bool:
        return not self.failed and not self.errors

    def to_dict(self) -> dict[str, Any]:
        return {"output": self.output, "ok": self.ok, "sent": self.sent, "failed": len(self.failed),
                "errors": list(self.errors), "attempts": self.attempts}


@runtime_checkable
class Output(Protocol):
    """An alert destination: `send` delivers what it can and reports the rest; it does not raise."""

    name: str

    def send(self, alerts: list[Alert]) -> OutputResult: ...

    def close(self) -> None: ...


@dataclass(frozen=True)
class Backoff:
    """Exponential backoff with full jitter: attempt n waits up to `base * factor**n`, capped."""

    base: float = 0.5
    factor: float = 2.0
    cap: float = 30.0
    jitter: bool = True

    def delay(self, attempt: int) -> float:
        ceiling = min(self.cap, self.base * self.factor ** max(attempt, 0))
        return random.uniform(ceiling / 2, ceiling) if self.jitter else ceiling

    def sleep(self, attempt: int, minimum: float = 0.0) -> None:
        time.sleep(max(self.delay(attempt), min(minimum, self.cap)))


def flatten(alert: Alert, prefix: str = "") -> Alert:
    """Nested or dotted alert -> dotted keys (`{"rule": {"id": 1}}` -> `{"rule.id": 1}`)."""
    out: Alert = {}
    for key, value in alert.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict) and value:
            out.update(flatten(value, f"{name}."))
        else:
            out[name] = value
    return out


def alert_label(alert: Alert) -> str:
    """A short, secret-free description of an alert for log lines: rule id and alert id."""
    flat = flatten(alert)
    return f"rule={flat.get('rule.id')} alert={flat.get('event.id')}"


def unflatten(alert: Alert) -> Alert:
    """Dotted keys -> nested objects (ECS JSON as SIEMs expect it); a key that would clash stays dotted."""
    out: Alert = {}
    for key, value in flatten(alert).items():
        if key.startswith("@") or "." not in key:
            out[key] = value
            continue
        parts = key.split(".")
        node: Any = out
        for part in parts[:-1]:
            child = node.get(part)
            if child is None:
                child = node[part] = {}
            if not isinstance(child, dict):
                node = None
                break
            node = child
        if node is None or parts[-1] in node:
            out[key] = value
        else:
            node[parts[-1]] = value
    return out
