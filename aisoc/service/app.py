"""Wire the service together: receiver -> (analyzers) -> spool -> sinks; detection -> alert outputs."""

from __future__ import annotations

import json
import logging
import os
import signal
import threading
from pathlib import Path
from typing import Any

import structlog

from aisoc.config import AisocConfig
from aisoc.detect.store import EventStore
from aisoc.es_client import EsConnection, make_client
from aisoc.paths import data_path
from aisoc.service.delivery import DeliveryWorker, EsSink, FileSink, Sink, SqliteSink
from aisoc.service.detection import DetectionLoop, EmbeddedDetection
from aisoc.service.metrics import ServiceMetrics
from aisoc.service.receiver import Receiver
from aisoc.sinks.deadletter import DeadLetterStore
from aisoc.sinks.elasticsearch import ElasticsearchSink
from aisoc.spool import Spool

log = structlog.get_logger("aisoc.service")
DRAIN_SECONDS = 10.0


def configure_logging() -> None:
    """JSON logs with ECS-style keys (@timestamp, log.level, message)."""
    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.INFO), processors=[
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True, key="@timestamp"),
        structlog.processors.EventRenamer("message"),
        structlog.processors.JSONRenderer(sort_keys=True),
    ])


class AlertFile:
    """Appends alerts as NDJSON (the always-on output); more outputs plug in beside it."""

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path

    def __call__(self, alerts: list[dict[str, Any]]) -> None:
        from aisoc.detect.alerts import unflatten

        with open(self.path, "a", encoding="utf-8") as fh:
            for alert in alerts:
                fh.write(json.dumps(unflatten(alert), sort_keys=True) + "\n")
            fh.flush()
            os.fsync(fh.fileno())


class Responder:
    """Runs the playbooks whose approval policy is `auto` for new alerts: dry-run unless configured to
    execute; every run (planned or executed) goes to the audit log."""

    def __init__(self, config: AisocConfig, store: EventStore) -> None:
        from aisoc.respond import ResponseContext, load_playbooks

        paths = config.respond.playbooks or [data_path("playbooks")]
        self.playbooks = list(load_playbooks(paths).values())
        self.execute = config.respond.execute
        self.audit = config.respond.audit_log or config.data_dir / "audit.jsonl"
        self.context = ResponseContext.model_validate(
            {"evidence_dir": str(config.data_dir / "evidence"), **config.respond.context})
        self.context.event_store = store

    def handle(self, alerts: list[dict[str, Any]]) -> None:
        from aisoc.respond import respond, select_playbooks

        for alert in alerts:
            for playbook in select_playbooks(alert, self.playbooks):
                if playbook.approval != "auto":
                    continue
                try:
                    report = respond(alert, playbook, execute=self.execute, approved_by="policy:auto",
                                     audit_log=self.audit, context=self.context)
                    log.info("playbook_run", playbook=playbook.id, status=report.status, mode=report.mode)
                except Exception as exc:  # noqa: BLE001 - a playbook failure never stops detection
                    log.error("playbook_failed", playbook=playbook.id, error=f"{type(exc).__name__}: {exc}")


class Service:
    def __init__(self, config: AisocConfig) -> None:
        self.config = config
        data = config.data_dir
        data.mkdir(parents=True, exist_ok=True)
        self.metrics = ServiceMetrics()
        self.dead_letters = DeadLetterStore(data / "deadletter.db")
        self.store_lock = threading.Lock()
        self.store: EventStore | None = EventStore(data / "events.db") if config.sinks.sqlite else None
        sinks: list[Sink] = []
        if self.store is not None:
            sinks.append(SqliteSink(self.store, self.dead_letters, self.store_lock))
        es_config = config.sinks.elasticsearch
        if es_config is not None:
            client = make_client(EsConnection(es_config.url, es_config.api_key, es_config.username,
                                              es_config.password, es_config.ca_certs, es_config.verify_certs))
            sinks.append(EsSink(ElasticsearchSink(client, self.dead_letters, namespace=es_config.namespace,
                                                  batch_size=es_config.batch_size, max_retries=1)))
        if config.sinks.file is not None:
            sinks.append(FileSink(config.sinks.file))
        self.spool = Spool(data / "spool.db", [s.name for s in sinks], config.spool.max_events,
                           config.spool.max_bytes)
        self.workers = [DeliveryWorker(self.spool, sink, self.metrics) for sink in sinks]
        self.analyzers = self._analyzer_chain()
        self.receiver = Receiver(config.receiver, self.spool, self.dead_letters, self.metrics,
                                 transform=self.analyzers, state_dir=data / "receiver")
        self._alert_outputs()
        from aisoc.collectors.base import CursorStore
        from aisoc.service.scheduler import PullScheduler

        self.scheduler = PullScheduler(config.collectors, CursorStore(data / "cursors.db"), self._accept_pulled)
        self.detection: DetectionLoop | None = None
        if config.detection.enabled and self.store is not None:
            self.detection = DetectionLoop(self._embedded_detection(), config.detection.interval_seconds)
        self._stopped = threading.Event()

    def _accept_pulled(self, name: str, events: list[dict[str, Any]], rejected: list[Any]) -> None:
        """Pulled events wait for room in the spool: a collector's cursor has already moved past them."""
        while self.receiver.accept(name, events, rejected)[0] == 503 and not self._stopped.wait(1.0):
            rejected = []  # dead-lettered on the first attempt
        if self._stopped.is_set() and events:
            log.warning("pulled_events_not_spooled", collector=name, events=len(events))

    def _alert_outputs(self) -> None:
        from aisoc.outputs.config import build_dispatcher

        self.alert_file = AlertFile(self.config.alerts_file or self.config.data_dir / "alerts.ndjson")
        self.dispatcher = build_dispatcher({"outputs": self.config.outputs}, self.dead_letters) \
            if self.config.outputs else None
        self.responder = Responder(self.config, self.store) if self.store is not None else None

    def _emit_alerts(self, alerts: list[dict[str, Any]]) -> None:
        """Every alert to the alerts file, then to the configured outputs, then to response playbooks."""
        from aisoc.detect.alerts import unflatten

        self.alert_file(alerts)
        if self.dispatcher is not None:
            report = self.dispatcher.dispatch([unflatten(a) for a in alerts])
            log.info("alerts_dispatched", report=str(report)[:500])
        if self.responder is not None:
            self.responder.handle([unflatten(a) for a in alerts])

    def _analyzer_chain(self):  # noqa: ANN202 - AnalyzerChain | None
        """Analyzers run on received events before they are spooled, so their signals are stored too."""
        if not self.config.analyzers.enabled:
            return None
        from aisoc.analyzers.base import StateStore
        from aisoc.analyzers.pipeline import AnalyzerChain
        from aisoc.collectors.training_data import read_batch_rows

        state = StateStore(self.config.data_dir / "analyzers.db")
        settings = self.config.analyzers
        return AnalyzerChain(None, state, factory=lambda: settings.build(state, lambda p: read_batch_rows(Path(p))))

    def _embedded_detection(self) -> EmbeddedDetection:
        from datetime import timedelta

        from aisoc.atlas.catalog import load_catalog
        from aisoc.rules.loader import load_rules
        from aisoc.rules.lock import VersionLock, find_lock

        paths = self.config.detection.rules or [data_path("rules")]
        rules, findings = load_rules(paths)
        for finding in findings:
            if finding.severity == "error":
                log.warning("rule_not_loaded", path=finding.path, problem=finding.message)
        assert self.store is not None
        return EmbeddedDetection(self.store, self.store_lock, rules, load_catalog(), self._emit_alerts, self.metrics,
                                 VersionLock.load(find_lock(paths)),
                                 lookback=timedelta(seconds=self.config.detection.lookback_seconds))

    def start(self) -> None:
        for worker in self.workers:
            worker.start()
        if self.detection is not None:
            self.detection.start()
        self.receiver.start()
        self.scheduler.start()
        log.info("started", port=self.receiver.port, sinks=[w.sink.name for w in self.workers],
                 sources=sorted(self.config.receiver.sources), data_dir=str(self.config.data_dir))

    def stop(self) -> None:
        """Graceful: stop accepting, deliver what is spooled (bounded), persist the rest."""
        if self._stopped.is_set():
            return
        self._stopped.set()
        self.scheduler.stop()
        self.receiver.stop()
        for worker in self.workers:
            worker.stopping.set()
        for worker in self.workers:
            worker.join(timeout=DRAIN_SECONDS)
            worker.drain(DRAIN_SECONDS)
        if self.detection is not None:
            self.detection.stopping.set()
            self.detection.join(timeout=DRAIN_SECONDS)
        log.info("stopped", spool_depth=self.spool.depth())
        self.spool.close()

    def run_forever(self) -> None:
        stop = threading.Event()
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, lambda *_: stop.set())
        self.start()
        print(json.dumps({"ready": True, "port": self.receiver.port}), flush=True)
        stop.wait()
        self.stop()
