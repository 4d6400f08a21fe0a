"""The service's Prometheus metrics (one registry per service instance)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram


class ServiceMetrics:
    def __init__(self) -> None:
        r = self.registry = CollectorRegistry()
        self.requests = Counter("aisoc_http_requests", "Receiver requests by source and status",
                                ["source", "status"], registry=r)
        self.events_in = Counter("aisoc_events_received", "Events accepted into the spool", ["source"], registry=r)
        self.events_out = Counter("aisoc_events_delivered", "Events stored by a sink", ["sink"], registry=r)
        self.duplicates = Counter("aisoc_events_duplicate", "Redelivered events a sink already had", ["sink"],
                                  registry=r)
        self.dead_letters = Counter("aisoc_dead_letters", "Records sent to the dead-letter store", ["source"],
                                    registry=r)
        self.auth_failures = Counter("aisoc_auth_failures", "Requests refused for bad credentials", ["source"],
                                     registry=r)
        self.backpressure = Counter("aisoc_backpressure", "Requests refused because the spool was full",
                                    ["source"], registry=r)
        self.spool_depth = Gauge("aisoc_spool_depth", "Events in the spool not yet delivered to every sink",
                                 registry=r)
        self.delivery_latency = Histogram("aisoc_delivery_seconds", "Time to deliver one batch to a sink", ["sink"],
                                          registry=r)
        self.rule_seconds = Histogram("aisoc_detection_run_seconds", "Duration of one detection pass", registry=r)
        self.alerts = Counter("aisoc_alerts", "Alerts raised or updated", ["rule"], registry=r)
