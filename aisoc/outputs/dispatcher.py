"""Fan alerts out to every configured output; one output's failure never holds up the others.

Each output gets the batch on its own thread. An output that reports undelivered alerts (or
raises, which a well-behaved output does not) is retried for just those alerts, `retries` more
times with backoff; whatever is still undelivered is recorded — in the per-output statistics, in
the returned report and, when a dead-letter store is given, as one dead letter per alert with the
reason — and `dispatch` returns normally. Detection never sees an exception from an output.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from aisoc.outputs.base import Alert, Backoff, Output, OutputResult, alert_label

log = logging.getLogger(__name__)


@dataclass
class OutputStats:
    """Running totals for one output since the dispatcher started."""

    sent: int = 0
    failed: int = 0
    retries: int = 0
    last_error: str = ""
    last_error_at: float | None = None


@dataclass
class DispatchReport:
    """What one `dispatch` did, per output."""

    results: dict[str, OutputResult] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return all(r.ok for r in self.results.values())

    def failed_outputs(self) -> list[str]:
        return [name for name, r in self.results.items() if not r.ok]

    def to_dict(self) -> dict[str, Any]:
        return {"ok": self.ok, "outputs": {name: r.to_dict() for name, r in self.results.items()}}


class OutputDispatcher:
    """Send every alert batch to all outputs concurrently, retrying failures, never raising."""

    def __init__(self, outputs: Iterable[Output], *, retries: int = 2, backoff: Backoff | None = None,
                 dead_letters: Any | None = None) -> None:
        self.outputs = list(outputs)
        names = [o.name for o in self.outputs]
        if len(set(names)) != len(names):
            raise ValueError(f"output names must be unique, got {names}")
        self.retries = max(0, retries)
        self.backoff = backoff or Backoff(base=1.0)
        self.dead_letters = dead_letters  # aisoc.sinks.deadletter.DeadLetterStore or anything with .add()
        self.stats: dict[str, OutputStats] = {name: OutputStats() for name in names}
        self._stats_lock = threading.Lock()
        self._pool = ThreadPoolExecutor(max_workers=max(1, len(self.outputs)), thread_name_prefix="aisoc-output")

    def _call(self, output: Output, alerts: list[Alert]) -> OutputResult:
        try:
            result = output.send(alerts)
        except Exception as exc:  # noqa: BLE001 - an output bug must not reach detection
            log.exception("output %s raised", output.name)
            return OutputResult(output.name, failed=list(alerts), errors=[f"{type(exc).__name__}: {exc}"])
        if not isinstance(result, OutputResult):
            return OutputResult(output.name, failed=list(alerts), errors=["output returned no OutputResult"])
        return result

    def _deliver(self, output: Output, alerts: list[Alert]) -> OutputResult:
        total = OutputResult(output.name, attempts=0)
        pending = list(alerts)
        for attempt in range(self.retries + 1):
            result = self._call(output, pending)
            total.sent += result.sent
            total.attempts += max(result.attempts, 1)
            pending = result.failed
            if not pending and not result.errors:
                total.errors = []
                break
            total.errors = result.errors
            if not pending:
                break  # errors without undelivered alerts: nothing to retry
            if attempt < self.retries:
                with self._stats_lock:
                    self.stats[output.name].retries += 1
                log.info("output %s: %d alert(s) undelivered, retry %d/%d",
                         output.name, len(pending), attempt + 1, self.retries)
                self.backoff.sleep(attempt)
        total.failed = pending
        with self._stats_lock:
            stats = self.stats[output.name]
            stats.sent += total.sent
            stats.failed += len(total.failed)
            if total.errors:
                stats.last_error = "; ".join(total.errors)[:2000]
                stats.last_error_at = time.time()
        if total.failed:
            log.error("output %s: %d alert(s) not delivered: %s", output.name, len(total.failed),
                      "; ".join(total.errors)[:500])
            self._dead_letter(output.name, total)
        return total

    def _dead_letter(self, name: str, result: OutputResult) -> None:
        if self.dead_letters is None:
            return
        reason = "; ".join(result.errors)[:2000] or "not delivered"
        for alert in result.failed:
            try:
                self.dead_letters.add(f"output:{name}", reason,
                                      json.dumps(alert, ensure_ascii=False, sort_keys=True, default=str))
            except Exception:  # noqa: BLE001
                log.exception("cannot dead-letter %s for output %s", alert_label(alert), name)

    def dispatch(self, alerts: list[Alert]) -> DispatchReport:
        """Deliver `alerts` to every output; returns per-output results and never raises."""
        report = DispatchReport()
        if not alerts or not self.outputs:
            return report
        futures = {o.name: self._pool.submit(self._deliver, o, list(alerts)) for o in self.outputs}
        for name, future in futures.items():
            try:
                report.results[name] = future.result()
            except Exception as exc:  # noqa: BLE001
                report.results[name] = OutputResult(name, failed=list(alerts), errors=[str(exc)])
        return report

    def close(self) -> None:
        self._pool.shutdown(wait=True)
        for output in self.outputs:
            try:
                output.close()
            except Exception:  # noqa: BLE001
                log.exception("closing output %s", output.name)

    def __enter__(self) -> OutputDispatcher:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
