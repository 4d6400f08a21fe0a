"""`aisoc metrics`: the article's SOC metrics for AI systems (see :mod:`aisoc.metrics.compute`)."""

from aisoc.metrics.compute import MetricsReport, compute_metrics, metrics_from_files
from aisoc.metrics.inputs import (
    Alert,
    DataIssue,
    Incident,
    MetricsInputError,
    ResponseRecord,
    RuleState,
    load_alerts,
    load_events,
    load_incidents,
    load_responses,
    rule_states,
)
from aisoc.metrics.render import metrics_html, metrics_json, metrics_text

__all__ = [
    "Alert",
    "DataIssue",
    "Incident",
    "MetricsInputError",
    "MetricsReport",
    "ResponseRecord",
    "RuleState",
    "compute_metrics",
    "load_alerts",
    "load_events",
    "load_incidents",
    "load_responses",
    "metrics_from_files",
    "metrics_html",
    "metrics_json",
    "metrics_text",
    "rule_states",
]
