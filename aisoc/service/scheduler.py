"""Pull collectors on their own intervals (with jitter), feeding the same path as pushed events.

`collectors:` in aisoc.yml names each job: `type` is a collector from `aisoc.collectors.registry`
(replaying a watched directory; the collector's cursor skips what was already read) or `mlflow`
(polling the registry's REST API with snapshot diff). A job that fails logs and retries next time;
it never stops the service.
"""

from __future__ import annotations

import random
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import structlog
from pydantic import BaseModel, ConfigDict, Field

from aisoc.collectors.base import CursorStore
from aisoc.records import Rejected

log = structlog.get_logger("aisoc.scheduler")
Deliver = Callable[[str, list[dict[str, Any]], list[Rejected]], None]


class PullJobConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")
    type: str
    path: Path | None = Field(None, description="directory or file to watch (replay-type collectors)")
    interval_seconds: float = Field(60.0, gt=0)
    jitter: float = Field(0.1, ge=0, le=1, description="random extra delay, as a share of the interval")
    options: dict[str, Any] = Field(default_factory=dict, description="the collector's own settings")


def run_job_once(name: str, job: PullJobConfig, cursor: CursorStore, state: dict[str, Any]
                 ) -> tuple[list[dict[str, Any]], list[Rejected]]:
    """One pass of a job: its new events and rejected records."""
    if job.type == "mlflow":
        from aisoc.collectors.mlflow import MlflowCollector, MlflowConfig

        collector = state.get("collector")
        if collector is None:
            collector = state["collector"] = MlflowCollector(MlflowConfig(**job.options), cursor)
        items = collector.poll(cursor)
    else:
        from aisoc.collectors.registry import replay

        if job.path is None:
            raise ValueError(f"collector {name!r} of type {job.type!r} needs a 'path' to watch")
        items = list(replay(job.type, job.path, job.options, cursor))
    events = [i for i in items if isinstance(i, dict)]
    rejected = [i for i in items if isinstance(i, Rejected)]
    return events, rejected


class PullScheduler:
    def __init__(self, jobs: dict[str, dict[str, Any]], cursor: CursorStore, deliver: Deliver) -> None:
        self.jobs = {name: PullJobConfig.model_validate(job) for name, job in jobs.items()}
        self.cursor = cursor
        self.deliver = deliver
        self.stopping = threading.Event()
        self.threads: list[threading.Thread] = []
        self._state: dict[str, dict[str, Any]] = {name: {} for name in self.jobs}

    def _loop(self, name: str, job: PullJobConfig) -> None:
        delay = random.uniform(0, job.interval_seconds * job.jitter)  # noqa: S311 - spreading load, not security
        while not self.stopping.wait(delay):
            try:
                events, rejected = run_job_once(name, job, self.cursor, self._state[name])
                self.deliver(name, events, rejected)
                log.info("collected", collector=name, events=len(events), rejected=len(rejected))
            except Exception as exc:  # noqa: BLE001 - a failing collector retries next interval
                log.error("collector_failed", collector=name, error=f"{type(exc).__name__}: {exc}")
            delay = job.interval_seconds * (1 + random.uniform(0, job.jitter))  # noqa: S311

    def start(self) -> None:
        for name, job in self.jobs.items():
            thread = threading.Thread(target=self._loop, args=(name, job), name=f"collect-{name}", daemon=True)
            thread.start()
            self.threads.append(thread)

    def stop(self, timeout: float = 10.0) -> None:
        self.stopping.set()
        for thread in self.threads:
            thread.join(timeout)
