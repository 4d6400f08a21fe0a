"""`aisoc demo`: a simulated AI platform under a red-team run, through the whole aisoc pipeline.

The stages, each visible on stderr while it runs:

1. **simulate** - `aisoc.simulate` writes a few days of an AI platform's *native* telemetry into the
   work directory: LiteLLM logging payloads, KServe inference-logger CloudEvents, MLflow registry
   API pages, training batches with manifests, S3 access logs and the serving image's build records
   (pip inspect + RECORD + lock, ModelScan reports, Hugging Face Hub model info, CycloneDX SBOMs).
2. **collect** - the real collectors replay those files, with the configuration in `platform.json`.
   A record a collector rejects is counted and listed, never dropped silently.
3. **analyze** - every event, in time order, goes through the `AnalyzerChain` (every analyzer aisoc
   ships; the training-data checks read each landed batch's rows) into the embedded `EventStore`.
4. **detect** - the rule pack runs over the store and raises ECS alerts.
5. **score** - alerts are grouped into incidents (by shared entities and overlapping time) from the
   alerts alone. Only then is the ground truth read, to say which attack each alert belongs to
   (its triggering events are events of that attack's entities within its time range), which
   attacks were *missed*, how long each took to alert (simulated time), and which alerts fired on
   benign activity.
6. **report** - a text summary on stdout, `report.html`, `alerts.ndjson` and `summary.json`.

Honesty: every detection the report shows comes from the alerts the pipeline raised; the ground
truth is used only for scoring, and a missed attack is reported as MISSED.
"""

from __future__ import annotations

import html
import json
import math
import sys
import time
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol

from aisoc.analyzers.base import StateStore
from aisoc.analyzers.events import event_time
from aisoc.analyzers.pipeline import AnalyzerChain
from aisoc.analyzers.settings import AnalyzerSettings
from aisoc.atlas.catalog import AtlasCatalog, load_catalog
from aisoc.atlas.coverage import CoverageReport, RuleCoverageInput, build_coverage
from aisoc.collectors.builds import replay_builds
from aisoc.detect.alerts import unflatten
from aisoc.detect.runner import DetectResult, detect
from aisoc.detect.store import EventStore, StoreError
from aisoc.metrics.compute import DurationStats
from aisoc.metrics.render import fmt_duration
from aisoc.paths import data_path
from aisoc.records import Rejected
from aisoc.rules.loader import RuleFile, load_rules
from aisoc.simulate import Simulation, simulate
from aisoc.simulate.truth import Activity, GroundTruth
from aisoc.simulate.world import DAY, get_scale

__all__ = ["DemoOptions", "DemoResult", "NullProgress", "RichProgress", "demo_command", "render_html",
           "render_text", "run_demo"]

LAYERS = ("data", "model", "inference", "supply_chain")
LAYER_TITLES = {"data": "Data", "model": "Model", "inference": "Inference", "supply_chain": "Supply chain"}
INCIDENT_GAP = 24 * 3600  # alerts sharing an entity join one incident when their times are this close
ENTITY_KINDS = (  # typed entities that link alerts into incidents (from their triggering events)
    ("aisoc.api_key.hash", "API key"), ("aisoc.inference.client_id", "inference client"),
    ("aisoc.inference.service", "inference service"), ("aisoc.data.dataset", "dataset"),
    ("aisoc.data.batch.id", "batch"), ("user.name", "identity"), ("package.name", "package"),
    ("aisoc.supply_chain.hub.repo_id", "hub repo"),
)
SEVERITY_NAMES = {99: "critical", 73: "high", 47: "medium", 21: "low"}
# api_key_request_rate is emitted for keys with at least this many requests in its 10-minute window
# (the analyzer's `min_count`): the flood rules need 300, and a signal per quiet key per minute would
# be half of everything stored.
REQUEST_RATE_MIN_COUNT = 30


# ---- options and progress ---------------------------------------------------------------------------------


@dataclass
class DemoOptions:
    """What `aisoc demo` runs: the scale, the seed, the work directory, the rule pack."""

    work_dir: Path = Path("aisoc-demo")
    scale: str = "default"
    seed: int = 7
    rules: list[Path] | None = None
    html: Path | None = None  # default: <work_dir>/report.html
    keep_events: bool = False  # keep the embedded store (<work_dir>/events.db, about 1 GB at default scale)

    @property
    def html_path(self) -> Path:
        return self.html or self.work_dir / "report.html"


class Progress(Protocol):
    """Where the demo reports what it is doing."""

    def stage(self, name: str, total: int | None = None) -> None: ...

    def advance(self, detail: str = "", steps: int = 1) -> None: ...

    def finish(self) -> None: ...


class NullProgress:
    """Reports nothing."""

    def stage(self, name: str, total: int | None = None) -> None:
        pass

    def advance(self, detail: str = "", steps: int = 1) -> None:
        pass

    def finish(self) -> None:
        pass


class RichProgress:
    """Progress bars on stderr (rich); one plain line per finished stage when stderr is not a terminal."""

    def __init__(self, console: Any = None) -> None:
        from rich.console import Console
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

        self.console = console or Console(stderr=True)
        self.live = self.console.is_terminal
        self.bars = Progress(SpinnerColumn(), TextColumn("[bold]{task.description}"), BarColumn(),
                             MofNCompleteColumn(), TimeElapsedColumn(), TextColumn("{task.fields[detail]}"),
                             console=self.console, transient=False)
        self.task: Any = None
        self.name = ""
        self.detail = ""
        self.started = 0.0
        self.completed = 0
        self.stopped = False
        if self.live:
            self.bars.start()

    def stage(self, name: str, total: int | None = None) -> None:
        self._close()
        self.name, self.detail, self.started, self.completed = name, "", time.monotonic(), 0
        if self.live:
            self.task = self.bars.add_task(name, total=total, detail="")
        else:
            self.console.print(f"aisoc demo: {name} ...", highlight=False, soft_wrap=True)

    def advance(self, detail: str = "", steps: int = 1) -> None:
        self.detail = detail or self.detail
        self.completed += steps
        if self.live and self.task is not None:
            self.bars.update(self.task, advance=steps, detail=detail)

    def _close(self) -> None:
        if not self.name:
            return
        if self.live and self.task is not None:
            self.bars.update(self.task, total=self.completed or 1, completed=self.completed or 1)
        else:
            took = time.monotonic() - self.started
            self.console.print(f"aisoc demo: {self.name}: done in {took:.1f}s"
                               + (f" ({self.detail})" if self.detail else ""), highlight=False, soft_wrap=True)
        self.name = ""

    def finish(self) -> None:
        self._close()
        if self.live and not self.stopped:
            self.bars.stop()
            self.stopped = True


# ---- results ----------------------------------------------------------------------------------------------


@dataclass
class SourceStats:
    """What one collector replayed."""

    name: str
    description: str
    files: int = 0
    events: int = 0
    rejected: list[Rejected] = field(default_factory=list)
    note: str = ""


@dataclass
class AlertView:
    """An alert with what scoring and the report need: its rule, time, triggering events, owners."""

    doc: dict[str, Any]
    rule: RuleFile | None
    detected_at: float  # simulated time the evidence was complete: first event (+ timespan for correlations)
    last_at: float
    events: list[dict[str, Any]]
    entities: set[tuple[str, str]]
    labels: list[tuple[str, str]] = field(default_factory=list)  # (kind, value) as shown to people
    attacks: list[str] = field(default_factory=list)
    benign: list[str] = field(default_factory=list)
    incident: str = ""

    @property
    def title(self) -> str:
        return str(self.doc.get("rule.name"))

    @property
    def severity(self) -> int:
        return int(self.doc.get("event.severity") or 0)

    @property
    def layer(self) -> str:
        return str(self.doc.get("aisoc.layer") or self.doc.get("rule.category") or "unknown")

    @property
    def techniques(self) -> list[str]:
        return list(dict.fromkeys([*(self.doc.get("threat.technique.id") or []),
                                   *(self.doc.get("threat.technique.subtechnique.id") or [])]))


class _AlertSet:
    """Rules and ATLAS techniques of a group of alerts (an attack's or an incident's)."""

    alerts: list[AlertView]

    @property
    def rules(self) -> list[str]:
        return sorted({a.title for a in self.alerts})

    @property
    def techniques(self) -> list[str]:
        return sorted({t for a in self.alerts for t in a.techniques})


@dataclass
class AttackResult(_AlertSet):
    """How the pipeline did on one injected attack."""

    activity: Activity
    alerts: list[AlertView]

    @property
    def detected(self) -> bool:
        return bool(self.alerts)

    @property
    def detected_at(self) -> float | None:
        return min((a.detected_at for a in self.alerts), default=None)

    @property
    def time_to_alert(self) -> float | None:
        first = self.detected_at
        return None if first is None else max(0.0, first - self.activity.start_epoch)



@dataclass
class Incident(_AlertSet):
    """Alerts that share an entity and overlap in time: one thing for the SOC to work on."""

    id: str
    alerts: list[AlertView]

    @property
    def first(self) -> float:
        return min(a.detected_at for a in self.alerts)

    @property
    def last(self) -> float:
        return max(a.last_at for a in self.alerts)

    @property
    def severity(self) -> int:
        return max(a.severity for a in self.alerts)


    @property
    def playbooks(self) -> list[str]:
        return sorted({p for a in self.alerts for p in a.doc.get("aisoc.alert.playbooks") or []})

    @property
    def owners(self) -> list[str]:
        return sorted({str(a.doc.get("aisoc.owner.team")) for a in self.alerts if a.doc.get("aisoc.owner.team")})

    @property
    def layers(self) -> list[str]:
        return sorted({a.layer for a in self.alerts})

    @property
    def attacks(self) -> list[str]:
        return sorted({x for a in self.alerts for x in a.attacks})


@dataclass
class DemoResult:
    """Everything one demo run produced and measured."""

    options: DemoOptions
    simulation: Simulation
    sources: list[SourceStats]
    signals: Counter[str]
    analyzer_errors: int
    late_events: int
    store_rows: int
    store_rejected: list[Rejected]
    detect: DetectResult
    rules: list[RuleFile]
    alerts: list[AlertView]
    incidents: list[Incident]
    truth: GroundTruth
    attacks: list[AttackResult]
    benign: dict[str, list[AlertView]]
    false_alerts: list[AlertView]
    coverage: CoverageReport
    catalog: AtlasCatalog
    key_aliases: dict[str, str]
    playbook_titles: dict[str, str]
    timings: dict[str, float]
    window: tuple[float, float]
    volume: dict[str, dict[int, int]] = field(default_factory=dict)  # layer -> hour (epoch) -> events

    @property
    def missed(self) -> list[AttackResult]:
        return [a for a in self.attacks if not a.detected]

    @property
    def mtta(self) -> DurationStats:
        return DurationStats.of(a.time_to_alert for a in self.attacks if a.time_to_alert is not None)

    @property
    def exercised(self) -> Counter[str]:
        """ATLAS technique and sub-technique ids of the alerts raised, with how many alerts named each."""
        return Counter(t for a in self.alerts for t in a.techniques)

    @property
    def exercised_covered(self) -> list[str]:
        """The techniques the pack covers that an alert of this run named."""
        return sorted(t for t in self.exercised if (c := self.coverage.techniques.get(t)) is not None and c.covered)

    @property
    def events_collected(self) -> int:
        return sum(s.events for s in self.sources)

    @property
    def rejected(self) -> int:
        return sum(len(s.rejected) for s in self.sources) + len(self.store_rejected)

    @property
    def ok(self) -> bool:
        return not self.missed and not self.false_alerts and not self.detect.rule_errors

    @property
    def exit_code(self) -> int:
        return 0 if self.ok else 1


# ---- collect ------------------------------------------------------------------------------------------------


def _note_item(stats: SourceStats, item: dict[str, Any] | Rejected, out: list[dict[str, Any]]) -> None:
    if isinstance(item, Rejected):
        stats.rejected.append(item)
    else:
        stats.events += 1
        out.append(item)


def _files(path: Path, suffixes: tuple[str, ...]) -> list[Path]:
    return sorted(p for p in path.rglob("*") if p.is_file() and p.name.endswith(suffixes)) if path.is_dir() else []


def collect_side_sources(native: Path, config: dict[str, Any], sources: dict[str, SourceStats]) -> list[dict]:
    """Events of the low-volume sources: MLflow registry, training batches, S3 access logs, builds."""
    from aisoc.collectors.mlflow import MlflowCollector, MlflowConfig
    from aisoc.collectors.registry import replay

    collectors = config["collectors"]
    out: list[dict[str, Any]] = []
    root = native.parent
    mlflow = collectors["mlflow"]
    stats = sources["mlflow"]
    stats.files = len(_files(root / mlflow["path"], (".json",)))
    with MlflowCollector(MlflowConfig(**mlflow["options"])) as collector:
        for item in collector.replay(root / mlflow["path"]):
            _note_item(stats, item, out)
    for name in ("training_batches", "object_access_logs"):
        stats = sources[name]
        entry = collectors[name]
        stats.files = len(_files(root / entry["path"], (".csv", ".log", ".json")))
        for item in replay(name, root / entry["path"], entry.get("options")):
            _note_item(stats, item, out)
    stats = sources["builds"]
    entry = collectors["builds"]
    stats.files = len(list((root / entry["path"]).glob("*/build.json")))
    for item in replay_builds(root / entry["path"], entry.get("options", {}).get("approvals", {})):
        _note_item(stats, item, out)
    if any("SBOM not diffed" in r.reason for r in stats.rejected):
        stats.note = "SBOMs not diffed: cyclonedx-python-lib is not installed"
    return out


def _day_files(root: Path, entry: dict[str, Any]) -> list[Path]:
    return _files(root / entry["path"], (".ndjson", ".json"))


# ---- analyze + store ----------------------------------------------------------------------------------------


def analyzers(state: StateStore, config: dict[str, Any]) -> list[Any]:
    """Every analyzer aisoc ships, built as `aisoc serve` builds them from the platform's `analyzers:`
    settings: its dataset profiles, and the request-rate analyzer with `min_count=REQUEST_RATE_MIN_COUNT`."""
    settings = AnalyzerSettings(datasets=config.get("datasets") or [], request_rate_min_count=REQUEST_RATE_MIN_COUNT)
    return settings.build(state, _row_reader)


def _row_reader(path: str) -> Iterable[dict[str, Any]]:
    from aisoc.collectors.training_data import read_batch_rows

    return read_batch_rows(Path(path))


def _insert(store: EventStore, events: list[dict[str, Any]], dead: list[Rejected]) -> None:
    """Insert a chunk; when the store refuses an event, insert one by one and dead-letter the refused ones."""
    try:
        store.insert(events)
    except StoreError:
        for event in events:
            try:
                store.insert([event])
            except StoreError as exc:
                dead.append(Rejected("store", str(exc), json.dumps(event, default=str)[:4096]))


def _sort_key(event: dict[str, Any]) -> tuple[float, str]:
    when = event_time(event)
    return (when if when is not None else -math.inf, str(event.get("event.id")))


# ---- score ----------------------------------------------------------------------------------------------


def _epoch(value: Any) -> float:
    when = event_time({"@timestamp": value})
    return when if when is not None else math.nan


def _labels(events: list[dict[str, Any]]) -> list[tuple[str, str]]:
    """Typed entities of the triggering events, in a stable order: (kind, value)."""
    out: dict[tuple[str, str], None] = {}
    for event in events:
        for name, kind in ENTITY_KINDS:
            value = event.get(name)
            for v in value if isinstance(value, list) else [value]:
                if isinstance(v, str) and v:
                    out[(kind, v)] = None
        model, version = event.get("aisoc.model.name"), event.get("aisoc.model.version")
        if isinstance(model, str) and model:
            version = str(version) if version else ""
            version = version[:8] + "…" if len(version) > 12 else version
            out[("model", f"{model} v{version}" if version else model)] = None
    return list(out)


def _entities(labels: list[tuple[str, str]]) -> set[tuple[str, str]]:
    return {(kind, value.lower()) for kind, value in labels}


def alert_views(alerts: list[dict[str, Any]], rules: list[RuleFile], store: EventStore) -> list[AlertView]:
    """Each alert with its rule, its simulated detection time and its triggering events."""
    by_id = {r.rule_id: r for r in rules}
    views = []
    for doc in alerts:
        rule = by_id.get(str(doc.get("rule.id")))
        first, last = _epoch(doc.get("aisoc.alert.first_event")), _epoch(doc.get("aisoc.alert.last_event"))
        span = getattr(getattr(rule.primary, "timespan", None), "seconds", 0) if rule and rule.is_correlation else 0
        # a correlation's first_event is its first window's start; the evidence is complete at that window's end
        detected = min(first + span, last) if span else first
        events = store.source_of(doc.get("aisoc.alert.event_ids") or [])
        labels = _labels(events)
        views.append(AlertView(doc, rule, detected, max(last, detected), events, _entities(labels), labels))
    views.sort(key=lambda v: (v.detected_at, v.title))
    return views


def group_incidents(views: list[AlertView]) -> list[Incident]:
    """Connected alerts: sharing a typed entity and within INCIDENT_GAP of each other in time."""
    parent = list(range(len(views)))

    def find(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    for i, a in enumerate(views):
        for j in range(i):
            b = views[j]
            close = a.detected_at - INCIDENT_GAP <= b.last_at and b.detected_at - INCIDENT_GAP <= a.last_at
            if close and a.entities & b.entities:
                parent[find(i)] = find(j)
    groups: dict[int, list[AlertView]] = {}
    for i, view in enumerate(views):
        groups.setdefault(find(i), []).append(view)
    incidents = sorted((Incident("", members) for members in groups.values()), key=lambda inc: inc.first)
    for number, incident in enumerate(incidents, 1):
        incident.id = f"INC-{number:03d}"
        for view in incident.alerts:
            view.incident = incident.id
    return incidents


def score(views: list[AlertView], truth: GroundTruth) -> tuple[list[AttackResult], dict[str, list[AlertView]],
                                                            list[AlertView]]:
    """Attribute alerts to attacks and benign edge cases through their triggering events."""
    for view in views:
        for activity in truth.activities:
            if any(activity.owns(event) for event in view.events):
                (view.attacks if activity.kind == "attack" else view.benign).append(activity.id)
    attacks = [AttackResult(a, [v for v in views if a.id in v.attacks]) for a in truth.attacks]
    benign = {b.id: [v for v in views if b.id in v.benign] for b in truth.benign}
    false_alerts = [v for v in views if not v.attacks]
    return attacks, benign, false_alerts


# ---- the run ------------------------------------------------------------------------------------------------


def run_demo(options: DemoOptions, progress: Progress | None = None) -> DemoResult:
    """Simulate, collect, analyze, detect, score; writes the work directory's outputs and returns the result."""
    progress = progress or NullProgress()
    timings: dict[str, float] = {}
    scale = get_scale(options.scale)
    catalog = load_catalog()
    rules, _ = load_rules(options.rules or [data_path("rules")])

    started = time.monotonic()
    progress.stage(f"simulating {scale.days} days (scale {scale.name}, seed {options.seed})", scale.days * 2 + 3)
    sim = simulate(options.work_dir, scale, options.seed, progress=lambda step, _d, _t: progress.advance(step))
    progress.advance(f"{sim.files} native files, {sim.bytes / 1e6:.0f} MB")
    timings["simulate"] = time.monotonic() - started

    started = time.monotonic()
    config = sim.platform_config()
    root = sim.work_dir
    sources = {
        "litellm": SourceStats("litellm", "LLM gateway (LiteLLM logging payloads)"),
        "kserve": SourceStats("kserve", "KServe inference logger (CloudEvents)"),
        "mlflow": SourceStats("mlflow", "MLflow registry (REST API pages)"),
        "training_batches": SourceStats("training_batches", "training batches + manifests"),
        "object_access_logs": SourceStats("object_access_logs", "S3 server access logs"),
        "builds": SourceStats("builds", "build environment (pip/RECORD/lock, ModelScan, Hub, SBOM)"),
    }
    progress.stage("replaying registry, training data, builds", 1)
    side = collect_side_sources(sim.native, config, sources)
    progress.advance(f"{len(side)} events")
    timings["collect (registry, data, builds)"] = time.monotonic() - started

    started = time.monotonic()
    state = StateStore(":memory:")
    chain = AnalyzerChain(analyzers(state, config), state)
    store_path = root / "events.db"
    for stale in (store_path, Path(f"{store_path}-wal"), Path(f"{store_path}-shm")):
        stale.unlink(missing_ok=True)
    store = EventStore(store_path)
    dead: list[Rejected] = []
    signals: Counter[str] = Counter()
    llm_files = _day_files(root, config["collectors"]["litellm"])
    kserve_files = _day_files(root, config["collectors"]["kserve"])
    sources["litellm"].files, sources["kserve"].files = len(llm_files), len(kserve_files)
    start_epoch, end_epoch = _epoch(config["simulation"]["start"]), _epoch(config["simulation"]["end"])
    buckets: list[list[dict[str, Any]]] = [[] for _ in range(scale.days)]
    for event in side:
        when = event_time(event) or start_epoch
        buckets[min(scale.days - 1, max(0, int((when - start_epoch) // DAY)))].append(event)
    del side
    progress.stage("collecting, analyzing, storing", scale.days)
    from aisoc.collectors.registry import replay

    for day in range(scale.days):
        events = buckets[day]
        buckets[day] = []
        for files, name in ((llm_files, "litellm"), (kserve_files, "kserve")):
            if day < len(files):
                for item in replay(name, files[day], config["collectors"][name].get("options")):
                    _note_item(sources[name], item, events)
        events.sort(key=_sort_key)
        out = chain.process(events)
        signals.update(e.get("aisoc.signal.name") for e in out if e.get("event.kind") == "metric")
        for i in range(0, len(out), 5000):
            _insert(store, out[i:i + 5000], dead)
        progress.advance(f"day {day + 1}: {len(events):,} events, {len(out) - len(events):,} signals")
    tail = chain.advance(end_epoch)
    signals.update(e.get("aisoc.signal.name") for e in tail)
    _insert(store, tail, dead)
    late = sum(getattr(a, "late_events", 0) for a in chain.analyzers)
    timings["collect + analyze + store (gateway, inference)"] = time.monotonic() - started

    started = time.monotonic()
    progress.stage(f"running {len(rules)} rules on {store.count():,} events", len(rules))
    result = DetectResult(events_loaded=store.count())
    for rule in rules:
        detect(store, [rule], catalog, result=result)
        progress.advance(f"{len(result.alerts)} alerts")
    timings["detect"] = time.monotonic() - started

    started = time.monotonic()
    progress.stage("scoring and writing the report", 3)
    views = alert_views(result.alerts, rules, store)
    incidents = group_incidents(views)
    progress.advance("incidents")
    truth = GroundTruth.read(sim.truth_path)  # read here, for scoring only
    attacks, benign, false_alerts = score(views, truth)
    coverage = build_coverage([RuleCoverageInput(r.rule_id, r.title, r.layer or "unknown", r.atlas_tags,
                                                 _tests_pass(r)) for r in rules], catalog)
    progress.advance("scored")
    aliases = {str(h).lower(): str(a) for h, a in store.conn.execute(
        'SELECT DISTINCT "aisoc.api_key.hash", "aisoc.api_key.alias" FROM logs '
        'WHERE "aisoc.api_key.alias" IS NOT NULL AND "aisoc.api_key.hash" IS NOT NULL')}
    demo = DemoResult(options, sim, list(sources.values()), signals, chain.error_count, late, store.count(), dead,
                      result, rules, views, incidents, truth, attacks, benign, false_alerts, coverage, catalog,
                      aliases, _playbook_titles(), timings, (start_epoch, end_epoch), hourly_volume(store))
    store.close()
    if not options.keep_events:
        for path in (store_path, Path(f"{store_path}-wal"), Path(f"{store_path}-shm")):
            path.unlink(missing_ok=True)
    timings["score + report"] = time.monotonic() - started
    write_outputs(demo)
    progress.advance("report written")
    progress.finish()
    return demo


def hourly_volume(store: EventStore) -> dict[str, dict[int, int]]:
    """Events (not signals) per layer per hour, from the store."""
    volume: dict[str, dict[int, int]] = {}
    rows = store.conn.execute(
        'SELECT "aisoc.layer", substr("@timestamp", 1, 13), COUNT(*) FROM logs WHERE _variant = 0 '
        'AND ("event.kind" IS NULL OR "event.kind" != \'metric\') GROUP BY 1, 2')
    for layer, hour, count in rows:
        when = _epoch(f"{hour}:00:00Z")
        if layer and when == when:
            volume.setdefault(str(layer), {})[int(when)] = int(count)
    return volume


def _tests_pass(rule: RuleFile) -> bool:
    from aisoc.detect.ruletest import test_rule_sqlite

    return test_rule_sqlite(rule).passed


def _playbook_titles() -> dict[str, str]:
    try:
        from aisoc.respond.model import load_playbooks

        return {pid: p.title for pid, p in load_playbooks(data_path("playbooks")).items()}
    except Exception:  # noqa: BLE001 - titles are decoration; the ids are shown anyway
        return {}


def write_outputs(result: DemoResult) -> None:
    """alerts.ndjson (ECS alerts), summary.json (the scores) and the HTML report."""
    root = result.options.work_dir
    with open(root / "alerts.ndjson", "w", encoding="utf-8") as fh:
        for view in result.alerts:
            fh.write(json.dumps(unflatten({**view.doc, "aisoc.demo.incident": view.incident}), sort_keys=True,
                                default=str) + "\n")
    (root / "summary.json").write_text(json.dumps(summary_json(result), indent=2, sort_keys=True) + "\n",
                                       encoding="utf-8")
    result.options.html_path.parent.mkdir(parents=True, exist_ok=True)
    result.options.html_path.write_text(render_html(result), encoding="utf-8")


def summary_json(result: DemoResult) -> dict[str, Any]:
    return {
        "seed": result.options.seed, "scale": result.simulation.scale.name,
        "period": [_iso(result.window[0]), _iso(result.window[1])],
        "events": result.store_rows, "alerts": len(result.alerts), "incidents": len(result.incidents),
        "attacks": [{"id": a.activity.id, "name": a.activity.name, "detected": a.detected,
                     "time_to_alert_seconds": a.time_to_alert, "alerts": len(a.alerts), "rules": a.rules,
                     "techniques": a.techniques} for a in result.attacks],
        "missed": [a.activity.id for a in result.missed],
        "false_alerts": [{"rule": v.title, "entity": v.doc.get("aisoc.alert.entity"),
                          "first_event": v.doc.get("aisoc.alert.first_event")} for v in result.false_alerts],
        "benign_edge_cases": {k: len(v) for k, v in result.benign.items()},
        "mtta_seconds": result.mtta.to_dict(),
        "atlas": {"pack_covered": result.coverage.covered, "catalog_total": result.coverage.total,
                  "exercised": dict(sorted(result.exercised.items()))},
        "rejected_records": result.rejected, "rule_errors": result.detect.rule_errors,
        "timings_seconds": {k: round(v, 2) for k, v in result.timings.items()},
    }


def demo_command(options: DemoOptions, *, stdout: Any = None) -> int:
    """What `aisoc demo` does: run with rich progress on stderr, print the summary, return the exit code."""
    progress = RichProgress()
    try:
        result = run_demo(options, progress)
    finally:
        progress.finish()
    out = stdout or sys.stdout
    out.write(render_text(result) + "\n")
    return result.exit_code


# ---- text ---------------------------------------------------------------------------------------------------


def _iso(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, tz=UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _when(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, tz=UTC).strftime("%a %d %b %H:%M")


KIND_ORDER = ("API key", "inference client", "identity", "model", "hub repo", "package", "dataset", "batch",
              "inference service")


def entity_texts(labels: Iterable[tuple[str, str]], aliases: dict[str, str], limit: int = 6) -> list[str]:
    """People-readable entities ("API key support-bot", "package tokenizers"), most telling kinds first."""
    ordered = sorted(dict.fromkeys(labels), key=lambda kv: KIND_ORDER.index(kv[0]) if kv[0] in KIND_ORDER else 99)
    texts = []
    for kind, value in ordered:
        if kind == "API key":
            value = aliases.get(value.lower(), value[:12] + "…")
        texts.append(f"{kind} {value}")
    return texts[:limit] + ([f"+{len(texts) - limit} more"] if len(texts) > limit else [])


def _entity_label(view: AlertView, aliases: dict[str, str]) -> str:
    texts = entity_texts(view.labels, aliases, 3)
    return ", ".join(texts) if texts else str(view.doc.get("aisoc.alert.entity") or "")


def incident_entities(incident: Incident, aliases: dict[str, str], limit: int = 6) -> list[str]:
    return entity_texts([label for a in incident.alerts for label in a.labels], aliases, limit)


def _technique_names(result: DemoResult, ids: Iterable[str]) -> list[str]:
    out = []
    for tid in ids:
        tech = result.catalog.technique(tid)
        out.append(f"{tid} {tech.name}" if tech else tid)
    return out


def render_text(result: DemoResult) -> str:
    """The summary `aisoc demo` prints: incidents, attacks detected or missed, MTTA, coverage, false alerts."""
    sim = result.simulation
    lines = [
        f"aisoc demo - simulated AI platform, {sim.scale.days} days ({_when(result.window[0])} to "
        f"{_when(result.window[1])} UTC), seed {result.options.seed}, scale {sim.scale.name}",
        f"{result.events_collected} events from {sum(s.files for s in result.sources)} native files through the "
        f"collectors; {sum(result.signals.values())} analyzer signals; {result.store_rows} events stored; "
        f"{result.rejected} records rejected",
        f"{len(result.alerts)} alerts from {len(result.rules)} rules, grouped into {len(result.incidents)} incidents",
        "",
        "INCIDENTS (from the alerts alone)",
    ]
    for inc in result.incidents:
        sev = SEVERITY_NAMES.get(inc.severity, str(inc.severity))
        lines.append(f"  {inc.id}  {_when(inc.first)} - {_when(inc.last)}  {sev.upper()}  "
                     f"{len(inc.alerts)} alert(s), layers {', '.join(inc.layers)}")
        for rule in inc.rules:
            count = sum(1 for a in inc.alerts if a.title == rule)
            lines.append(f"      {rule}" + (f" (x{count})" if count > 1 else ""))
        lines.append(f"      entities: {', '.join(incident_entities(inc, result.key_aliases))}")
        lines.append(f"      ATLAS: {', '.join(_technique_names(result, inc.techniques)) or '-'}")
        lines.append(f"      playbooks: {', '.join(inc.playbooks) or '-'}; owners: {', '.join(inc.owners) or '-'}")
    lines += ["", "RED-TEAM RUN, SCORED AGAINST THE GROUND TRUTH"]
    for attack in result.attacks:
        verdict = "DETECTED" if attack.detected else "MISSED"
        tta = f"time to alert {fmt_duration(attack.time_to_alert)}" if attack.detected else "no alert"
        lines.append(f"  {verdict:8}  {attack.activity.name}  (started {_when(attack.activity.start_epoch)}; {tta}; "
                     f"{len(attack.alerts)} alert(s))")
        if attack.detected:
            lines.append(f"            rules: {'; '.join(attack.rules)}")
            lines.append(f"            ATLAS: {', '.join(attack.techniques)}")
    detected = len(result.attacks) - len(result.missed)
    mtta = result.mtta
    lines += [
        "",
        f"attack classes detected: {detected} of {len(result.attacks)}"
        + (f"; MISSED: {', '.join(a.activity.name for a in result.missed)}" if result.missed else ""),
        f"MTTA (attack start to first alert, simulated time): mean {fmt_duration(mtta.mean)}, "
        f"median {fmt_duration(mtta.median)}, worst {fmt_duration(mtta.maximum)}",
        f"alerts on benign activity: {len(result.false_alerts)}",
    ]
    lines += [f"  FALSE ALERT: {v.title} ({_entity_label(v, result.key_aliases)}) at {_when(v.detected_at)}"
              for v in result.false_alerts]
    noisy = {k: v for k, v in result.benign.items() if v}
    lines.append(f"benign edge cases staged: {len(result.benign)}; with an alert: {len(noisy)}")
    names = {a.id: a.name for a in result.truth.benign}
    lines += [f"  ALERTED: {names[k]}: {', '.join(sorted({a.title for a in v}))}" for k, v in noisy.items()]
    cov = result.coverage
    lines += [
        f"ATLAS {result.catalog.version}: the pack covers {cov.covered} of {cov.total} techniques and "
        f"sub-techniques ({cov.percent}%); this run's alerts named {len(result.exercised_covered)} of them: "
        f"{', '.join(result.exercised_covered)}",
    ]
    if result.detect.rule_errors:
        lines.append(f"rules that failed to run: {len(result.detect.rule_errors)}")
        lines += [f"  {rid}: {err}" for rid, err in result.detect.rule_errors.items()]
    for stats in result.sources:
        if stats.rejected:
            lines.append(f"{stats.name}: {len(stats.rejected)} record(s) rejected, e.g. {stats.rejected[0].reason}")
        if stats.note:
            lines.append(f"{stats.name}: {stats.note}")
    lines += ["", f"report: {result.options.html_path}", f"alerts: {result.options.work_dir / 'alerts.ndjson'}",
              f"events: {result.options.work_dir / 'events.db'} (SQLite, table logs)" if result.options.keep_events
              else "events: not kept (keep_events / --keep-events keeps the embedded store, events.db)",
              f"runtime: {sum(result.timings.values()):.0f}s ("
              + ", ".join(f"{k} {v:.0f}s" for k, v in result.timings.items()) + ")"]
    return "\n".join(lines)


# ---- HTML ---------------------------------------------------------------------------------------------------

_CSS = """
*{box-sizing:border-box}
body{font-family:system-ui,-apple-system,"Segoe UI",Roboto,Helvetica,Arial,sans-serif;margin:0;color:#1d2430;
background:#f4f6f9;font-size:14px}
header{background:#14213d;color:#fff;padding:22px 32px 18px}
header h1{margin:0 0 4px;font-size:22px}
header p{margin:0;color:#c9d3e6}
main{padding:18px 32px 40px}
h2{font-size:17px;margin:28px 0 10px;color:#14213d}
.tiles{display:grid;grid-template-columns:repeat(6,1fr);gap:12px;margin-top:4px}
.tile{background:#fff;border-radius:8px;padding:12px 14px;box-shadow:0 1px 2px rgba(0,0,0,.08);
border-top:4px solid #8d99ae}
.tile .v{font-size:26px;font-weight:700;margin:2px 0}
.tile .l{color:#5c677d;font-size:12px;text-transform:uppercase;letter-spacing:.03em}
.tile .s{color:#5c677d;font-size:12px}
.good{border-top-color:#2a9d8f}.bad{border-top-color:#d62828}.info{border-top-color:#457b9d}
.card{background:#fff;border-radius:8px;box-shadow:0 1px 2px rgba(0,0,0,.08);padding:14px 16px}
table{border-collapse:collapse;width:100%;font-size:13px}
table.fixed{table-layout:fixed}
td{overflow-wrap:anywhere}
th{text-align:left;color:#5c677d;font-weight:600;border-bottom:2px solid #e1e5ee;padding:6px 8px}
td{border-bottom:1px solid #eef1f6;padding:6px 8px;vertical-align:top}
.verdict{display:inline-block;font-weight:700;padding:2px 8px;border-radius:10px;font-size:12px;white-space:nowrap}
.det{background:#d8f3dc;color:#1b4332}.miss{background:#ffd6d6;color:#7a0000}
.sev{display:inline-block;padding:1px 7px;border-radius:9px;font-size:11px;font-weight:700;color:#fff}
.sev-critical{background:#7a0019}.sev-high{background:#d62828}.sev-medium{background:#f77f00}
.sev-low{background:#e9c46a;color:#333}
.chip{display:inline-block;background:#eef1f6;border-radius:9px;padding:1px 7px;margin:1px 2px 1px 0;
font-size:12px;white-space:nowrap}
.chip.t{background:#e3ecfa;color:#1d3557}.chip.p{background:#e9f5ec;color:#1b4332}
.muted{color:#5c677d}.small{font-size:12px}
.num{display:inline-block;width:18px;height:18px;border-radius:9px;background:#2a9d8f;color:#fff;font-size:11px;
font-weight:700;text-align:center;line-height:18px;margin-right:6px}
.matrix{display:flex;gap:8px;align-items:flex-start;overflow:hidden}
.tactic{flex:1 1 0;min-width:0}
.tactic h3{font-size:12px;margin:0 0 6px;padding:6px;background:#14213d;color:#fff;border-radius:4px;min-height:44px}
.tactic h3 small{display:block;font-weight:400;color:#c9d3e6;font-size:11px}
.tech{font-size:11.5px;border-radius:4px;padding:5px 6px;margin-bottom:5px;border:1px solid #d0d7e2;
background:#fff;line-height:1.25}
.tech b{display:block;font-size:10.5px;color:inherit;opacity:.8}
.h0{background:#fff;border-color:#9fc9a8}.h1{background:#ffe8cc}.h2{background:#ffc078}
.h3{background:#f76707;color:#fff;border-color:#f76707}.h4{background:#c92a2a;color:#fff;border-color:#c92a2a}
.legend{display:flex;gap:14px;font-size:12px;color:#5c677d;margin:8px 0 0;flex-wrap:wrap}
.legend i{display:inline-block;width:14px;height:14px;border:1px solid #bbb;vertical-align:-3px;margin-right:4px;
border-radius:3px}
.two{display:grid;grid-template-columns:1fr 1fr;gap:14px}
svg text{font-family:system-ui,-apple-system,"Segoe UI",Roboto,Helvetica,Arial,sans-serif}
footer{color:#5c677d;font-size:12px;padding:0 32px 30px}
"""

_SEV_COLORS = {99: "#7a0019", 73: "#d62828", 47: "#f77f00", 21: "#e9c46a"}


def _e(value: Any) -> str:
    return html.escape(str(value), quote=True)


def _sev(severity: int) -> str:
    name = SEVERITY_NAMES.get(severity, "medium")
    return f'<span class="sev sev-{name}">{name}</span>'


def _tile(label: str, value: str, sub: str, cls: str) -> str:
    return (f'<div class="tile {cls}"><div class="l">{_e(label)}</div><div class="v">{_e(value)}</div>'
            f'<div class="s">{_e(sub)}</div></div>')


def _chips(items: Iterable[str], cls: str = "", titles: dict[str, str] | None = None) -> str:
    return "".join(f'<span class="chip {cls}" title="{_e((titles or {}).get(i, i))}">{_e(i)}</span>' for i in items)


def _timeline_svg(result: DemoResult) -> str:
    """Alerts by layer over the simulated period, on each layer's event volume; red-team windows shaded."""
    start, end = result.window
    width, left, right, top, lane = 1300, 118, 16, 34, 66
    height = top + lane * len(LAYERS) + 34
    span = end - start

    def x(epoch: float) -> float:
        return left + (min(max(epoch, start), end) - start) / span * (width - left - right)

    out = [f'<svg xmlns="http://www.w3.org/2000/svg" width="100%" viewBox="0 0 {width} {height}" '
           f'role="img" aria-label="Alerts timeline">',
           f'<rect x="0" y="0" width="{width}" height="{height}" fill="#fff"/>']
    for i, layer in enumerate(LAYERS):
        y0 = top + i * lane
        out.append(f'<rect x="{left}" y="{y0}" width="{width - left - right}" height="{lane - 4}" '
                   f'fill="{"#fafbfd" if i % 2 else "#f3f5fa"}"/>')
        out.append(f'<text x="10" y="{y0 + lane / 2 - 2:.0f}" font-size="13" font-weight="600" '
                   f'fill="#14213d">{_e(LAYER_TITLES[layer])}</text>')
        hourly = result.volume.get(layer, {})
        if hourly:
            peak = max(hourly.values())
            base = y0 + lane - 5
            points = [f"{x(start):.1f},{base}"]
            for hour in range(int(span // 3600)):
                t = start + hour * 3600
                v = hourly.get(int(t), 0)
                h = (lane - 12) * 0.55 * math.sqrt(v / peak)
                points += [f"{x(t):.1f},{base - h:.1f}", f"{x(t + 3600):.1f},{base - h:.1f}"]
            points.append(f"{x(end):.1f},{base}")
            out.append(f'<polygon points="{" ".join(points)}" fill="#c9d3e6" fill-opacity="0.55">'
                       f'<title>{_e(LAYER_TITLES[layer])} events per hour (peak {peak:,})</title></polygon>')
            out.append(f'<text x="10" y="{y0 + lane / 2 + 13:.0f}" font-size="10.5" fill="#8d99ae">'
                       f'{sum(hourly.values()):,} events</text>')
    days = int(round(span / DAY))
    for d in range(days + 1):
        xd = x(start + d * DAY)
        out.append(f'<line x1="{xd:.1f}" y1="{top - 6}" x2="{xd:.1f}" y2="{height - 28}" stroke="#c3cad6"/>')
        if d < days:
            label = datetime.fromtimestamp(start + d * DAY, tz=UTC).strftime("%a %d %b")
            out.append(f'<text x="{xd + 4:.1f}" y="{top - 12}" font-size="12" fill="#5c677d">{_e(label)}</text>')
            for h in (6, 12, 18):
                xh = x(start + d * DAY + h * 3600)
                out.append(f'<line x1="{xh:.1f}" y1="{top}" x2="{xh:.1f}" y2="{height - 28}" stroke="#e6e9f0" '
                           f'stroke-dasharray="2 3"/>')
    for number, attack in enumerate(result.attacks, 1):
        act = attack.activity
        i = LAYERS.index(act.layer) if act.layer in LAYERS else 0
        y0 = top + i * lane
        x0, x1 = x(act.start_epoch), max(x(act.end_epoch), x(act.start_epoch) + 6)
        color = "#2a9d8f" if attack.detected else "#d62828"
        verdict = f"detected, first alert after {fmt_duration(attack.time_to_alert)}" if attack.detected else "MISSED"
        out.append(f'<rect x="{x0:.1f}" y="{y0 + 1}" width="{x1 - x0:.1f}" height="{lane - 6}" fill="{color}" '
                   f'fill-opacity="0.13" stroke="{color}" stroke-opacity="0.8" stroke-dasharray="4 3">'
                   f'<title>{number}. {_e(act.name)} ({verdict})</title></rect>')
        out.append(f'<circle cx="{x0 + 9:.1f}" cy="{y0 + 11}" r="8" fill="{color}"/><text x="{x0 + 9:.1f}" '
                   f'y="{y0 + 15}" font-size="11" font-weight="700" fill="#fff" text-anchor="middle">{number}</text>')
    placed: dict[tuple[int, int], int] = {}
    for view in result.alerts:
        i = LAYERS.index(view.layer) if view.layer in LAYERS else 0
        cx = x(view.detected_at)
        slot = (i, int(cx // 10))
        k = placed.get(slot, 0)
        placed[slot] = k + 1
        cy = top + i * lane + 27 + (k % 4) * 9
        color = _SEV_COLORS.get(view.severity, "#f77f00")
        stroke = ' stroke="#000" stroke-width="2"' if not view.attacks else ' stroke="#fff" stroke-width="1"'
        tip = f"{view.title} - {_when(view.detected_at)} - {_entity_label(view, result.key_aliases)}"
        out.append(f'<circle cx="{cx:.1f}" cy="{cy:.1f}" r="5.5" fill="{color}"{stroke}><title>{_e(tip)}</title>'
                   f'</circle>')
    ly = height - 10
    lx = left
    for color, name in (("#7a0019", "critical"), ("#d62828", "high"), ("#f77f00", "medium"), ("#e9c46a", "low")):
        out.append(f'<circle cx="{lx}" cy="{ly - 4}" r="5" fill="{color}"/><text x="{lx + 9}" y="{ly}" '
                   f'font-size="11" fill="#5c677d">{name} alert</text>')
        lx += 92
    out.append(f'<circle cx="{lx}" cy="{ly - 4}" r="5" fill="#f77f00" stroke="#000" stroke-width="2"/>'
               f'<text x="{lx + 9}" y="{ly}" font-size="11" fill="#5c677d">alert on benign activity</text>')
    lx += 160
    out.append(f'<rect x="{lx}" y="{ly - 10}" width="22" height="11" fill="#2a9d8f" fill-opacity="0.16" '
               f'stroke="#2a9d8f" stroke-dasharray="4 3"/><text x="{lx + 28}" y="{ly}" font-size="11" '
               f'fill="#5c677d">red-team window (ground truth; red if missed)</text>')
    lx += 300
    out.append(f'<rect x="{lx}" y="{ly - 10}" width="22" height="11" fill="#c9d3e6"/><text x="{lx + 28}" '
               f'y="{ly}" font-size="11" fill="#5c677d">events per hour (square-root scale)</text>')
    out.append("</svg>")
    return "\n".join(out)


def _heat_class(count: int) -> str:
    return "h0" if count == 0 else "h1" if count < 3 else "h2" if count < 10 else "h3" if count < 30 else "h4"


def _matrix_html(result: DemoResult) -> str:
    """The ATLAS tactics that the pack covers, each technique shaded by how many of this run's alerts named it."""
    cov, catalog, hits = result.coverage, result.catalog, result.exercised
    columns = []
    for tactic in catalog.tactics:
        cells = []
        for tech in catalog.techniques_for_tactic(tactic.id, subtechniques=True):
            tc = cov.techniques.get(tech.id)
            if tc is None or not tc.covered:
                continue
            count = hits.get(tech.id, 0)
            rules = "; ".join(cov.rule_titles.get(r, r) for r in tc.rules)
            tip = f"{tech.id} {tech.name}\n{count} alert(s) in this run\nrules: {rules}"
            cells.append(f'<div class="tech {_heat_class(count)}" title="{_e(tip)}"><b>{_e(tech.id)}'
                         f'{" · " + str(count) if count else ""}</b>{_e(tech.name)}</div>')
        if cells:
            columns.append(f'<div class="tactic"><h3>{_e(tactic.name)}<small>{_e(tactic.id)}</small></h3>'
                           + "".join(cells) + "</div>")
    legend = ('<div class="legend"><span><i class="h0" style="background:#fff;border-color:#9fc9a8"></i>covered by '
              'the pack, no alert this run</span><span><i style="background:#ffe8cc"></i>1-2 alerts</span>'
              '<span><i style="background:#ffc078"></i>3-9</span><span><i style="background:#f76707"></i>10-29'
              '</span><span><i style="background:#c92a2a"></i>30+</span></div>')
    return f'<div class="matrix">{"".join(columns)}</div>{legend}'


def render_html(result: DemoResult) -> str:
    """A self-contained page (inline CSS and SVG, no script, no external asset)."""
    sim = result.simulation
    detected = len(result.attacks) - len(result.missed)
    mtta = result.mtta
    cov = result.coverage
    titles = {t: n for t, n in ((tid, f"{tid} {tech.name}") for tid, tech in result.catalog.techniques.items())}
    tiles = [
        _tile("Attack classes detected", f"{detected} / {len(result.attacks)}",
              "all detected" if not result.missed else f"missed: {len(result.missed)}",
              "good" if not result.missed else "bad"),
        _tile("Alerts on benign activity", str(len(result.false_alerts)),
              f"{sum(1 for v in result.benign.values() if not v)} of {len(result.benign)} edge cases quiet",
              "good" if not result.false_alerts else "bad"),
        _tile("Incidents", str(len(result.incidents)), f"from {len(result.alerts)} alerts", "info"),
        _tile("MTTA (median)", fmt_duration(mtta.median), f"mean {fmt_duration(mtta.mean)}, worst "
              f"{fmt_duration(mtta.maximum)}", "info"),
        _tile("ATLAS techniques alerted", f"{len(result.exercised_covered)} / {cov.covered}",
              f"of the pack's covered techniques ({cov.percent}% of ATLAS {result.catalog.version})", "info"),
        _tile("Events", f"{result.store_rows:,}", f"{sum(result.signals.values()):,} analyzer signals, "
              f"{result.rejected} rejected", "info"),
    ]
    attack_rows = []
    for number, a in enumerate(result.attacks, 1):
        verdict = ('<span class="verdict det">DETECTED</span>' if a.detected
                   else '<span class="verdict miss">MISSED</span>')
        incidents = sorted({v.incident for v in a.alerts})
        attack_rows.append(
            f"<tr><td><span class='num'>{number}</span><b>{_e(a.activity.name)}</b>"
            f"<div class='muted small'>{_e(a.activity.description)}</div></td>"
            f"<td class='small'>{_e(_when(a.activity.start_epoch))}<br>to {_e(_when(a.activity.end_epoch))}</td>"
            f"<td>{verdict}</td><td>{_e(fmt_duration(a.time_to_alert)) if a.detected else '-'}</td>"
            f"<td>{len(a.alerts)}<div class='muted small'>{_e(', '.join(incidents))}</div></td>"
            f"<td class='small'>{'<br>'.join(_e(r) for r in a.rules) or '-'}</td>"
            f"<td>{_chips(a.techniques, 't', titles)}</td></tr>")
    incident_rows = []
    for inc in result.incidents:
        entities = incident_entities(inc, result.key_aliases, 8)
        names = {x.id: x.name for x in result.truth.attacks}
        truth_cell = (", ".join(names.get(x, x) for x in inc.attacks) if inc.attacks
                      else "<b style='color:#d62828'>no injected attack: false alert</b>")
        rules = "<br>".join(_e(r) + (f" <span class='muted'>x{n}</span>" if (n := sum(
            1 for a in inc.alerts if a.title == r)) > 1 else "") for r in inc.rules)
        incident_rows.append(
            f"<tr><td><b>{inc.id}</b><br>{_sev(inc.severity)}</td>"
            f"<td class='small'>{_e(_when(inc.first))}<br>to {_e(_when(inc.last))}</td>"
            f"<td class='small'>{rules}<div class='muted'>{len(inc.alerts)} alert(s); "
            f"{_e(', '.join(LAYER_TITLES.get(x, x) for x in inc.layers))}</div></td>"
            f"<td class='small'>{'<br>'.join(_e(x) for x in entities)}</td>"
            f"<td>{_chips(inc.techniques, 't', titles)}</td>"
            f"<td>{_chips(inc.playbooks, 'p', result.playbook_titles)}<div class='muted small'>"
            f"{_e(', '.join(inc.owners))}</div></td><td class='small'>{truth_cell}</td></tr>")
    benign_rows = []
    for act in result.truth.benign:
        hits = result.benign.get(act.id, [])
        verdict = ('<span class="verdict det">quiet</span>' if not hits
                   else f'<span class="verdict miss">{len(hits)} alert(s)</span>')
        benign_rows.append(f"<tr><td><b>{_e(act.name)}</b><div class='muted small'>{_e(act.description)}</div></td>"
                           f"<td>{_e(LAYER_TITLES.get(act.layer, act.layer))}</td><td>{verdict}</td>"
                           f"<td class='small'>{'<br>'.join(_e(v.title) for v in hits) or '-'}</td></tr>")
    false_rows = "".join(
        f"<tr><td>{_e(v.title)}</td><td class='small'>{_e(_entity_label(v, result.key_aliases))}</td>"
        f"<td class='small'>{_e(_when(v.detected_at))}</td><td>{_sev(v.severity)}</td></tr>"
        for v in result.false_alerts)
    source_rows = "".join(
        f"<tr><td><b>{_e(s.name)}</b><div class='muted small'>{_e(s.description)}</div></td><td>{s.files}</td>"
        f"<td>{s.events:,}</td><td>{len(s.rejected)}</td><td class='small'>{_e(s.note)}</td></tr>"
        for s in result.sources)
    signal_rows = "".join(f"<tr><td>{_e(name)}</td><td>{count:,}</td></tr>"
                          for name, count in sorted(result.signals.items()))
    mtta_rows = "".join(
        f"<tr><td>{_e(a.activity.name)}</td><td>{_e(fmt_duration(a.time_to_alert)) if a.detected else 'MISSED'}"
        f"</td><td class='small'>{_e(_when(a.detected_at)) if a.detected_at else '-'}</td></tr>"
        for a in result.attacks)
    timing_rows = "".join(f"<tr><td>{_e(k)}</td><td>{v:.1f} s</td></tr>" for k, v in result.timings.items())
    rule_errors = "".join(f"<li>{_e(k)}: {_e(v)}</li>" for k, v in result.detect.rule_errors.items())
    period = f"{_when(result.window[0])} to {_when(result.window[1])} UTC"
    body = [
        "<!DOCTYPE html>", '<html lang="en"><head><meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        "<title>aisoc demo report: red-team run on a simulated AI platform</title>",
        f"<style>{_CSS}</style></head><body>",
        "<header><h1>aisoc demo: red-team run on a simulated AI platform</h1>",
        f"<p>{sim.scale.days} simulated days ({_e(period)}) of an LLM gateway, a KServe classifier with a canary, "
        f"an MLflow registry, a training-data landing zone and a build environment; seed {result.options.seed}, "
        f"scale {_e(sim.scale.name)}. Native telemetry replayed through aisoc's collectors, analyzers, embedded "
        f"store and {len(result.rules)} rules.</p></header><main>",
        f'<div class="tiles">{"".join(tiles)}</div>',
        "<h2>Red-team run: what the pipeline detected</h2>",
        '<div class="card"><table class="fixed"><colgroup><col style="width:30%"><col style="width:10%">'
        '<col style="width:9%"><col style="width:7%"><col style="width:7%"><col style="width:22%">'
        '<col style="width:15%"></colgroup><tr><th>Attack (ground truth)</th><th>Window</th>'
        "<th>Verdict</th><th>Time to alert</th><th>Alerts</th><th>Rules that fired</th><th>ATLAS</th></tr>"
        + "".join(attack_rows) + "</table><p class='muted small'>Verdicts come from the alerts: an attack counts "
        "as detected only if an alert's triggering events are events of that attack's entities within its time "
        "range. Time to alert is simulated time from the attack's first step to the moment the first such alert's "
        "evidence was complete.</p></div>",
        "<h2>Alerts timeline</h2>", f'<div class="card">{_timeline_svg(result)}</div>',
        f"<h2>Incidents ({len(result.incidents)}, from {len(result.alerts)} alerts)</h2>",
        '<div class="card"><table class="fixed"><colgroup><col style="width:8%"><col style="width:10%">'
        '<col style="width:27%"><col style="width:19%"><col style="width:13%"><col style="width:13%">'
        '<col style="width:10%"></colgroup><tr><th>Incident</th><th>When</th><th>Rules</th><th>Entities</th>'
        "<th>ATLAS techniques</th><th>Suggested playbooks / owner</th><th>Red-team attack</th></tr>"
        + "".join(incident_rows) + "</table><p class='muted small'>Incidents are grouped from the alerts alone "
        "(a shared entity, times within a day of each other); the last column is scoring.</p></div>",
        "<h2>Benign edge cases (look-alikes staged in the benign traffic)</h2>",
        '<div class="card"><table><tr><th style="width:50%">Edge case</th><th>Layer</th><th>Alerts</th>'
        "<th>Rules</th></tr>" + "".join(benign_rows) + "</table>"
        + (f"<h3>Alerts on benign activity</h3><table><tr><th>Rule</th><th>Entity</th><th>When</th>"
           f"<th>Severity</th></tr>{false_rows}</table>" if false_rows else
           "<p class='muted small'>No alert fired on benign activity.</p>") + "</div>",
        f"<h2>MITRE ATLAS {_e(result.catalog.version)}: techniques the pack covers, shaded by this run's alerts</h2>",
        f'<div class="card">{_matrix_html(result)}<p class="muted small">The pack covers {cov.covered} of '
        f"{cov.total} ATLAS techniques and sub-techniques ({cov.percent}%) with rules whose test events pass; "
        f"{len(result.exercised_covered)} of them were named by an alert in this run.</p></div>",
        "<h2>Metrics</h2>", '<div class="two"><div class="card"><h3>Time to alert per attack</h3>'
        f"<table><tr><th>Attack</th><th>Time to alert</th><th>First alert</th></tr>{mtta_rows}</table>"
        f"<p class='small'>MTTA: mean <b>{_e(fmt_duration(mtta.mean))}</b>, median "
        f"<b>{_e(fmt_duration(mtta.median))}</b> over {mtta.count} detected attack(s).</p></div>"
        f'<div class="card"><h3>Pipeline</h3><table><tr><th>Collector</th><th>Files</th><th>Events</th>'
        f"<th>Rejected</th><th></th></tr>{source_rows}</table><p class='small'>{result.store_rows:,} events "
        f"stored; {result.analyzer_errors} analyzer errors; {result.late_events} late events dropped by windowed "
        f"analyzers; {len(result.store_rejected)} events refused by the store; "
        f"{len(result.detect.rule_errors)} rules failed to run. Analyzers: every one aisoc ships, with "
        f"api_key_request_rate emitted for keys with at least {REQUEST_RATE_MIN_COUNT} requests in its "
        f"window (min_count).</p>"
        + (f"<ul class='small'>{rule_errors}</ul>" if rule_errors else "") + "</div>"
        f'<div class="card"><h3>Analyzer signals</h3><table><tr><th>Signal</th><th>Events</th></tr>'
        f"{signal_rows}</table></div>"
        f'<div class="card"><h3>Run time (wall clock)</h3><table>{timing_rows}</table></div></div>',
        "</main><footer>Generated by <code>aisoc demo --scale "
        f"{_e(sim.scale.name)} --seed {result.options.seed}</code>. The native telemetry, the platform "
        "configuration and the ground truth are in the work directory; MITRE ATLAS&trade; data &copy; MITRE, "
        "Apache-2.0.</footer></body></html>",
    ]
    return "\n".join(body) + "\n"

