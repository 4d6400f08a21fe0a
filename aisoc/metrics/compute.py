"""The article's six SOC metrics for AI systems, computed from files a SOC already keeps.

Definitions (one place; JSON, text and HTML all say the same):

**Asset visibility.** Per inventoried system: *owner* documented = a team and a person are named;
*lineage* documented = every listed model has ``lineage_documented: true`` (not applicable when the
system lists no model); *provenance* documented = every listed data source has a ``provenance``
(not applicable without data sources). Owner % is over all systems, lineage % over systems with
models, provenance % over systems with data sources. The headline is the share of all systems
with all three (a not-applicable part counts as documented).

**Coverage.** The applicable techniques of a system are its ``atlas`` ids the catalog knows. A
technique is covered when an *active* rule (Sigma status not ``deprecated``/``unsupported``) whose
test events pass tags exactly that id: a rule tagging ``AML.T0024.002`` covers ``AML.T0024.002``
only, never its parent ``AML.T0024``, and a rule tagging the parent covers no sub-technique (the
same rule as ``aisoc coverage``). Per system: covered / applicable. Overall: covered (system,
technique) pairs / all pairs, so a technique that applies to three systems weighs three times.
Systems mapped to no known technique are left out of the overall figure and listed.

**MTTA** (time to alert). Per alert: ``event.created`` (when detection raised it) minus
``aisoc.alert.first_event`` (the first adversarial signal). Mean and median per rule and overall.
An alert raised before its first event, or missing either time, is a data error: reported, not
averaged in.

**MTTR** (time to contain). Per alert: the first response-history record for that alert whose
result is ``applied`` and whose action is containment (throttle, rollback, quarantine, revoke; see
:func:`aisoc.metrics.inputs.containment_type`), minus the alert's ``event.created``. The action's
time is ``finished``, else ``at``, else ``started``. Overall uses the first containment of any
type; per action type uses, for each alert, the first applied action of that type. Alerts with no
applied containment are counted as not contained; an action recorded before its alert is a data
error.

**Integrity SLA.** See :func:`integrity_sla`.

**Escape rate.** Incidents whose ``detected_by`` is ``business`` / all incidents.

Every percentage is in [0, 100]; a metric with nothing to measure is ``None`` ("n/a"), never 0 or
a division by zero. When a period is given, alerts count if raised in it (``event.created``, else
``aisoc.alert.first_event``), incidents if opened in it, and integrity events if they fall in it.
"""

from __future__ import annotations

import statistics
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

from aisoc.atlas.catalog import AtlasCatalog, load_catalog
from aisoc.atlas.coverage import RuleCoverageInput, build_coverage
from aisoc.inventory import Inventory, applicable_techniques, load_inventory
from aisoc.metrics.inputs import (
    Alert,
    DataIssue,
    Incident,
    ResponseRecord,
    RuleState,
    load_alerts,
    load_events,
    load_incidents,
    load_responses,
    parse_time,
    rule_states,
)

__all__ = [
    "AssetRow",
    "CoverageMetric",
    "DurationStats",
    "EscapeMetric",
    "IntegrityDay",
    "IntegrityFailure",
    "IntegrityMetric",
    "MetricsReport",
    "MttaMetric",
    "MttrMetric",
    "VisibilityMetric",
    "asset_rows",
    "compute_metrics",
    "escape_rate",
    "integrity_sla",
    "metrics_from_files",
    "mtta",
    "mttr",
    "pct",
]


def pct(part: int, whole: int) -> float | None:
    """``part / whole`` in percent, one decimal; None when ``whole`` is 0."""
    if whole <= 0:
        return None
    return round(100.0 * min(max(part, 0), whole) / whole, 1)


@dataclass(frozen=True)
class DurationStats:
    """Count, mean and median of durations in seconds; mean/median None when there are none."""

    count: int
    mean: float | None
    median: float | None
    minimum: float | None = None
    maximum: float | None = None

    @classmethod
    def of(cls, seconds: Iterable[float]) -> DurationStats:
        values = sorted(seconds)
        if not values:
            return cls(0, None, None)
        return cls(len(values), statistics.fmean(values), float(statistics.median(values)), values[0], values[-1])

    def to_dict(self) -> dict[str, Any]:
        return {"count": self.count, "mean_seconds": self.mean, "median_seconds": self.median,
                "min_seconds": self.minimum, "max_seconds": self.maximum}


# ------------------------------------------------------------ visibility + coverage


@dataclass
class AssetRow:
    """One inventoried system: documentation and ATLAS coverage."""

    system_id: str
    name: str
    criticality: str
    owner_team: str | None
    owner_person: str | None
    owner: bool
    lineage: bool | None
    provenance: bool | None
    applicable: list[str] = field(default_factory=list)
    covered: list[str] = field(default_factory=list)
    unknown_atlas: list[str] = field(default_factory=list)

    @property
    def documented(self) -> bool:
        """Owner, lineage and provenance documented (not-applicable parts count as documented)."""
        return self.owner and self.lineage is not False and self.provenance is not False

    @property
    def uncovered(self) -> list[str]:
        return [t for t in self.applicable if t not in self.covered]

    @property
    def coverage_percent(self) -> float | None:
        return pct(len(self.covered), len(self.applicable))


@dataclass
class VisibilityMetric:
    """Asset visibility: owner, lineage, provenance documented."""

    systems: int
    with_owner: int
    with_lineage: int
    lineage_applicable: int
    with_provenance: int
    provenance_applicable: int
    documented: int

    @property
    def percent(self) -> float | None:
        return pct(self.documented, self.systems)

    @property
    def owner_percent(self) -> float | None:
        return pct(self.with_owner, self.systems)

    @property
    def lineage_percent(self) -> float | None:
        return pct(self.with_lineage, self.lineage_applicable)

    @property
    def provenance_percent(self) -> float | None:
        return pct(self.with_provenance, self.provenance_applicable)


@dataclass
class CoverageMetric:
    """ATLAS coverage of inventoried assets by active rules whose tests pass."""

    pairs: int
    covered_pairs: int
    techniques: list[str]  # distinct applicable techniques, in first-seen order
    covered_techniques: list[str]
    rules_counted: int
    rules_total: int
    rules_by_technique: dict[str, list[str]]
    unmapped_systems: list[str]

    @property
    def percent(self) -> float | None:
        return pct(self.covered_pairs, self.pairs)

    @property
    def technique_percent(self) -> float | None:
        return pct(len(self.covered_techniques), len(self.techniques))


def asset_rows(inv: Inventory, rules: list[RuleState], catalog: AtlasCatalog) -> tuple[
        list[AssetRow], VisibilityMetric, CoverageMetric]:
    """Per-system rows, the visibility metric and the coverage metric."""
    counted = [r for r in rules if r.counts]
    report = build_coverage(
        [RuleCoverageInput(r.rule_id, r.title, "unknown", list(r.atlas_tags), True) for r in counted], catalog
    )
    rows: list[AssetRow] = []
    for system in inv.systems:
        applicable = applicable_techniques(system, catalog)
        rows.append(AssetRow(
            system_id=system.id,
            name=system.name,
            criticality=system.criticality,
            owner_team=system.owner.team if system.owner else None,
            owner_person=system.owner.person if system.owner else None,
            owner=system.owner_documented,
            lineage=system.lineage_documented,
            provenance=system.provenance_documented,
            applicable=applicable,
            covered=[t for t in applicable if report.techniques[t].covered],
            unknown_atlas=[str(t) for t in system.atlas if catalog.technique(t) is None],
        ))
    visibility = VisibilityMetric(
        systems=len(rows),
        with_owner=sum(r.owner for r in rows),
        with_lineage=sum(r.lineage is True for r in rows),
        lineage_applicable=sum(r.lineage is not None for r in rows),
        with_provenance=sum(r.provenance is True for r in rows),
        provenance_applicable=sum(r.provenance is not None for r in rows),
        documented=sum(r.documented for r in rows),
    )
    techniques = list(dict.fromkeys(t for r in rows for t in r.applicable))
    coverage = CoverageMetric(
        pairs=sum(len(r.applicable) for r in rows),
        covered_pairs=sum(len(r.covered) for r in rows),
        techniques=techniques,
        covered_techniques=[t for t in techniques if report.techniques[t].covered],
        rules_counted=len(counted),
        rules_total=len(rules),
        rules_by_technique={t: list(report.techniques[t].rules) for t in techniques},
        unmapped_systems=[r.system_id for r in rows if not r.applicable],
    )
    return rows, visibility, coverage


# ------------------------------------------------------------------------ MTTA


@dataclass
class RuleTiming:
    """MTTA of one rule."""

    rule_id: str
    rule_name: str
    stats: DurationStats


@dataclass
class MttaMetric:
    """Time from first adversarial signal to alert."""

    overall: DurationStats
    per_rule: list[RuleTiming]
    alerts: int
    errors: int


def mtta(alerts: list[Alert], issues: list[DataIssue]) -> MttaMetric:
    """MTTA overall and per rule; alerts with missing or inverted times become data issues."""
    per_rule: dict[str, list[float]] = {}
    names: dict[str, str] = {}
    values: list[float] = []
    errors = 0
    for alert in alerts:
        names.setdefault(alert.rule_id, alert.rule_name)
        label = alert.alert_id or f"rule {alert.rule_id}"
        if alert.first_event is None or alert.created is None:
            missing = "aisoc.alert.first_event" if alert.first_event is None else "event.created"
            issues.append(DataIssue(alert.source, f"alert {label} has no usable {missing}; left out of MTTA",
                                    alert.line, "mtta"))
            errors += 1
            continue
        delta = (alert.created - alert.first_event).total_seconds()
        if delta < 0:
            issues.append(DataIssue(
                alert.source,
                f"alert {label} was raised ({_iso(alert.created)}) before its first event "
                f"({_iso(alert.first_event)}); clock skew or a wrong field - left out of MTTA",
                alert.line, "mtta-negative"))
            errors += 1
            continue
        values.append(delta)
        per_rule.setdefault(alert.rule_id, []).append(delta)
    timings = [RuleTiming(rid, names[rid], DurationStats.of(v)) for rid, v in per_rule.items()]
    timings.sort(key=lambda t: (-(t.stats.mean or 0.0), t.rule_id))
    return MttaMetric(DurationStats.of(values), timings, len(alerts), errors)


# ------------------------------------------------------------------------ MTTR


@dataclass
class MttrMetric:
    """Time from alert to first applied containment action."""

    overall: DurationStats
    per_action: dict[str, DurationStats]
    alerts: int
    contained: int
    not_contained: list[str]
    errors: int


def mttr(alerts: list[Alert], responses: list[ResponseRecord], issues: list[DataIssue],
         source: str = "responses") -> MttrMetric:
    """MTTR overall and per containment type (see the module docstring)."""
    applied: dict[str, list[ResponseRecord]] = {}
    for rec in responses:
        if rec.result == "applied" and rec.containment:
            applied.setdefault(rec.alert_id, []).append(rec)
    known = {a.alert_id for a in alerts if a.alert_id}
    for alert_id in sorted(set(applied) - known):
        issues.append(DataIssue(source, f"containment for alert {alert_id}, which is not in the alerts file; "
                                        "left out of MTTR", None, "mttr-orphan"))
    overall: list[float] = []
    per_type: dict[str, list[float]] = {}
    not_contained: list[str] = []
    errors = 0
    considered = 0
    for alert in alerts:
        if not alert.alert_id:
            continue
        considered += 1
        records = sorted(applied.get(alert.alert_id, []), key=lambda r: r.when)
        if not records:
            not_contained.append(alert.alert_id)
            continue
        if alert.created is None:
            issues.append(DataIssue(alert.source, f"alert {alert.alert_id} has no usable event.created; "
                                                  "left out of MTTR", alert.line, "mttr"))
            errors += 1
            continue
        early = [r for r in records if r.when < alert.created]
        if early:
            issues.append(DataIssue(
                source, f"{early[0].action} for alert {alert.alert_id} is recorded at {_iso(early[0].when)}, "
                        f"before the alert was raised ({_iso(alert.created)}); left out of MTTR",
                None, "mttr-negative"))
            errors += 1
            records = [r for r in records if r.when >= alert.created]
            if not records:
                continue
        overall.append((records[0].when - alert.created).total_seconds())
        seen: set[str] = set()
        for rec in records:
            kind = rec.containment or "other"
            if kind not in seen:
                seen.add(kind)
                per_type.setdefault(kind, []).append((rec.when - alert.created).total_seconds())
    return MttrMetric(
        overall=DurationStats.of(overall),
        per_action={k: DurationStats.of(v) for k, v in sorted(per_type.items())},
        alerts=considered,
        contained=len(overall),
        not_contained=not_contained,
        errors=errors,
    )


# ------------------------------------------------------------------- integrity

MODEL_ACTIONS = ("model-signature-verified", "model-artifact-verified")
DATA_ACTIONS = ("data-batch-landed",)
DIMENSIONS = ("model", "data")


def _false(value: Any) -> bool:
    value = value[0] if isinstance(value, list) and value else value
    return value is False or (isinstance(value, str) and value.strip().lower() == "false")


def _check(event: dict[str, Any]) -> tuple[str, bool, tuple[Any, ...]] | None:
    """(dimension, failed, subject) of an integrity event; None for any other event."""
    action = str(event.get("event.action") or "").strip().lower()
    outcome_failed = str(event.get("event.outcome") or "").strip().lower() == "failure"
    if action == "model-signature-verified":
        failed = outcome_failed or any(_false(event.get(f"file.code_signature.{k}"))
                                       for k in ("exists", "valid", "trusted"))
    elif action == "model-artifact-verified":
        failed = outcome_failed or _false(event.get("aisoc.model.artifact.hash_match"))
    elif action == "data-batch-landed":
        failed = (outcome_failed or _false(event.get("aisoc.data.hash_match"))
                  or _false(event.get("aisoc.data.source_approved")))
        subject = (action, event.get("aisoc.data.dataset"), event.get("aisoc.data.batch.id"))
        return "data", failed, subject
    else:
        return None
    subject = (action, event.get("aisoc.model.name"), event.get("aisoc.model.version"), event.get("file.path"))
    return "model", failed, subject


@dataclass
class IntegrityFailure:
    """A failed integrity check and whether it was remediated the same day."""

    day: date
    at: datetime
    dimension: str
    action: str
    subject: str
    event_id: str | None
    remediated_by: str | None  # "re-check passed" or "<action> (alert <id>)"; None = not remediated


@dataclass
class IntegrityDay:
    """Compliance of one UTC day: per dimension ``ok``, ``out`` or ``none`` (no checks that day)."""

    day: date
    model: str
    data: str
    checks: int
    failures: int
    unremediated: int

    @property
    def compliant(self) -> bool:
        return self.model != "out" and self.data != "out"


@dataclass
class IntegrityMetric:
    """Days in compliance over a period."""

    start: date | None
    end: date | None
    days: list[IntegrityDay]
    failures: list[IntegrityFailure]

    @property
    def period_days(self) -> int:
        return len(self.days)

    def compliant_days(self, dimension: str | None = None) -> int:
        if dimension is None:
            return sum(d.compliant for d in self.days)
        return sum(getattr(d, dimension) != "out" for d in self.days)

    def percent(self, dimension: str | None = None) -> float | None:
        return pct(self.compliant_days(dimension), self.period_days)

    @property
    def days_without_checks(self) -> int:
        return sum(d.checks == 0 for d in self.days)


def integrity_sla(events: Iterable[tuple[int, dict[str, Any]]], alerts: list[Alert],
                  responses: list[ResponseRecord], issues: list[DataIssue], *,
                  start: date | None = None, end: date | None = None, source: str = "events") -> IntegrityMetric:
    """Integrity SLA: days in compliance for model hash/signing and approved data sources.

    * Days are UTC calendar days from ``start`` to ``end`` inclusive (default: the first and last
      day holding an integrity event; no events and no period -> no days, "n/a").
    * Integrity checks are events whose ``event.action`` (any case) is
      ``model-signature-verified`` or ``model-artifact-verified`` (dimension *model*) or
      ``data-batch-landed`` (dimension *data*). A check *fails* when ``event.outcome`` is
      ``failure`` or: signature -- ``file.code_signature.exists``/``valid``/``trusted`` is false;
      artifact -- ``aisoc.model.artifact.hash_match`` is false; batch --
      ``aisoc.data.hash_match`` or ``aisoc.data.source_approved`` is false.
    * A failure is *remediated the same day* when, at or after it and before the next UTC
      midnight, (a) a passing check of the same subject arrives (same action and model name,
      version and ``file.path``; or same action, dataset and batch id), or (b) the response history
      records an ``applied`` containment action for an alert whose ``aisoc.alert.event_ids``
      holds the failure's ``event.id``.
    * A day is *out of compliance* in a dimension when it has a failure of that dimension not
      remediated that day; otherwise it is in compliance (a day with no check at all counts as
      in compliance and is marked ``none``). Overall, a day is in compliance when both dimensions are.
    * SLA % = days in compliance / days in the period.
    """
    alert_of_event: dict[str, list[Alert]] = {}
    for alert in alerts:
        for eid in alert.event_ids:
            alert_of_event.setdefault(eid, []).append(alert)
    applied: dict[str, list[ResponseRecord]] = {}
    for rec in responses:
        if rec.result == "applied" and rec.containment:
            applied.setdefault(rec.alert_id, []).append(rec)

    checks: list[tuple[datetime, str, bool, tuple[Any, ...], dict[str, Any]]] = []
    for line, event in events:
        found = _check(event)
        if found is None:
            continue
        when = parse_time(event.get("@timestamp"))
        if when is None:
            issues.append(DataIssue(source, f"{event.get('event.action')} event has no usable @timestamp; "
                                            "left out of the integrity SLA", line, "integrity"))
            continue
        checks.append((when, *found, event))
    checks.sort(key=lambda c: c[0])
    if checks:
        start = start or checks[0][0].date()
        end = end or checks[-1][0].date()
    if start is None or end is None or end < start:
        return IntegrityMetric(start, end, [], [])
    checks = [c for c in checks if start <= c[0].date() <= end]

    failures: list[IntegrityFailure] = []
    for index, (when, dimension, failed, subject, event) in enumerate(checks):
        if not failed:
            continue
        midnight = datetime.combine(when.date() + timedelta(days=1), datetime.min.time(), tzinfo=UTC)
        by: str | None = None
        for later, _dim, later_failed, later_subject, _ev in checks[index + 1:]:
            if later >= midnight:
                break
            if later_subject == subject and not later_failed:
                by = f"re-check passed at {_iso(later)}"
                break
        eid = event.get("event.id")
        eid = str(eid) if eid not in (None, "") else None
        if by is None and eid:
            for alert in alert_of_event.get(eid, []):
                recs = [r for r in applied.get(alert.alert_id or "", []) if when <= r.when < midnight]
                if recs:
                    first = min(recs, key=lambda r: r.when)
                    by = f"{first.action} at {_iso(first.when)} (alert {alert.alert_id})"
                    break
        failures.append(IntegrityFailure(when.date(), when, dimension, subject[0],
                                         ", ".join(str(s) for s in subject[1:] if s not in (None, "")),
                                         eid, by))

    days: list[IntegrityDay] = []
    day = start
    while day <= end:
        todays = [c for c in checks if c[0].date() == day]
        fails = [f for f in failures if f.day == day]
        status = {}
        for dim in DIMENSIONS:
            if any(f.dimension == dim and f.remediated_by is None for f in fails):
                status[dim] = "out"
            elif any(c[1] == dim for c in todays):
                status[dim] = "ok"
            else:
                status[dim] = "none"
        days.append(IntegrityDay(day, status["model"], status["data"], len(todays), len(fails),
                                 sum(f.remediated_by is None for f in fails)))
        day += timedelta(days=1)
    return IntegrityMetric(start, end, days, failures)


# -------------------------------------------------------------------- escape


@dataclass
class EscapeMetric:
    """Share of incidents the business found before the SOC."""

    incidents: int
    by_business: int
    business_ids: list[str]

    @property
    def percent(self) -> float | None:
        return pct(self.by_business, self.incidents)


def escape_rate(incidents: list[Incident]) -> EscapeMetric:
    """Incidents first detected by the business / all incidents."""
    business = [i.id for i in incidents if i.detected_by == "business"]
    return EscapeMetric(len(incidents), len(business), business)


# -------------------------------------------------------------------- report


@dataclass
class MetricsReport:
    """Everything `aisoc metrics` shows."""

    generated_at: datetime
    period_start: date | None
    period_end: date | None
    assets: list[AssetRow] | None
    visibility: VisibilityMetric | None
    coverage: CoverageMetric | None
    mtta: MttaMetric | None
    mttr: MttrMetric | None
    integrity: IntegrityMetric | None
    escape: EscapeMetric | None
    issues: list[DataIssue] = field(default_factory=list)
    atlas_version: str = ""
    sources: dict[str, str] = field(default_factory=dict)
    technique_names: dict[str, str] = field(default_factory=dict)


def _iso(when: datetime) -> str:
    return when.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _in_period(when: datetime | None, start: date | None, end: date | None) -> bool:
    if when is None:  # kept, so the metric reports it as a data error instead of dropping it
        return True
    return (start is None or when.date() >= start) and (end is None or when.date() <= end)


def compute_metrics(
    *,
    inventory: Inventory | None = None,
    rules: list[RuleState] | None = None,
    alerts: list[Alert] | None = None,
    responses: list[ResponseRecord] | None = None,
    incidents: list[Incident] | None = None,
    events: Iterable[tuple[int, dict[str, Any]]] | None = None,
    catalog: AtlasCatalog | None = None,
    period_start: date | None = None,
    period_end: date | None = None,
    issues: list[DataIssue] | None = None,
    generated_at: datetime | None = None,
    sources: dict[str, str] | None = None,
) -> MetricsReport:
    """All six metrics from already-loaded inputs. A missing input leaves its metrics ``None`` (n/a)."""
    catalog = catalog or load_catalog()
    issues = list(issues or [])
    sources = dict(sources or {})
    assets = visibility = coverage = None
    if inventory is not None:
        assets, visibility, coverage = asset_rows(inventory, list(rules or []), catalog)
    alerts_in = None
    if alerts is not None:
        alerts_in = [a for a in alerts if _in_period(a.created or a.first_event, period_start, period_end)]
    mtta_m = mtta(alerts_in, issues) if alerts_in is not None else None
    mttr_m = None
    if alerts_in is not None and responses is not None:
        mttr_m = mttr(alerts_in, responses, issues, sources.get("responses", "responses"))
    integrity = None
    if events is not None:
        integrity = integrity_sla(events, alerts or [], responses or [], issues, start=period_start,
                                  end=period_end, source=sources.get("events", "events"))
    escape = None
    if incidents is not None:
        escape = escape_rate([i for i in incidents if _in_period(i.opened, period_start, period_end)])
    return MetricsReport(
        generated_at=generated_at or datetime.now(UTC),
        period_start=period_start if integrity is None else (integrity.start or period_start),
        period_end=period_end if integrity is None else (integrity.end or period_end),
        assets=assets,
        visibility=visibility,
        coverage=coverage,
        mtta=mtta_m,
        mttr=mttr_m,
        integrity=integrity,
        escape=escape,
        issues=issues,
        atlas_version=catalog.version,
        sources=sources,
        technique_names={t.id: t.name for t in catalog.techniques.values()},
    )


def metrics_from_files(
    *,
    inventory: Path | None = None,
    rules: list[Path] | None = None,
    alerts: Path | None = None,
    responses: Path | None = None,
    incidents: Path | None = None,
    events: Path | None = None,
    period_start: date | None = None,
    period_end: date | None = None,
    catalog: AtlasCatalog | None = None,
    generated_at: datetime | None = None,
) -> MetricsReport:
    """Load the files given and compute the metrics (what ``aisoc metrics`` calls).

    Raises :class:`aisoc.inventory.InventoryError` or :class:`aisoc.metrics.inputs.MetricsInputError`
    for a file that cannot be read at all; bad records inside readable files become data issues.
    ``rules`` are rule files or directories whose test events are run (only with an inventory); None
    means the shipped rule pack, ``[]`` no rules at all (coverage 0%).
    """
    issues: list[DataIssue] = []
    sources: dict[str, str] = {}
    inv = None
    if inventory is not None:
        inv = load_inventory(inventory)
        sources["inventory"] = str(inventory)
    states: list[RuleState] = []
    if inv is not None and rules is None:
        from aisoc.paths import data_path

        rules = [data_path("rules")]
    if inv is not None and rules:
        states, findings = rule_states(rules)
        sources["rules"] = ", ".join(str(p) for p in rules)
        for f in findings:
            if f.severity == "error":
                issues.append(DataIssue(f.path, f"rule not loaded: {f.message}", f.line, "rules"))
    loaded_alerts = None
    if alerts is not None:
        loaded_alerts = load_alerts(alerts, issues)
        sources["alerts"] = str(alerts)
    loaded_responses = None
    if responses is not None:
        loaded_responses = load_responses(responses, issues)
        sources["responses"] = str(responses)
    loaded_incidents = None
    if incidents is not None:
        loaded_incidents = load_incidents(incidents, issues)
        sources["incidents"] = str(incidents)
    loaded_events = None
    if events is not None:
        loaded_events = load_events(events, issues)
        sources["events"] = str(events)
    return compute_metrics(
        inventory=inv, rules=states, alerts=loaded_alerts, responses=loaded_responses,
        incidents=loaded_incidents, events=loaded_events, catalog=catalog, period_start=period_start,
        period_end=period_end, issues=issues, generated_at=generated_at, sources=sources,
    )
