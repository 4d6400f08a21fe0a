"""`aisoc demo --scenarios`: the rule pack's own test cases, replayed as one timeline.

Every test case of every rule becomes a scenario in its own two-day slot of a single event stream.
The stream goes through the embedded store and the *whole* pack at once, and the demo reports what
the engine actually raised: which attack scenarios were detected (and by which rules), which were
missed, and which benign look-alikes raised any alert in the pack — a cross-rule false-positive
check the per-rule tests cannot make.

(`aisoc demo` without `--scenarios` runs the simulated platform instead: see `aisoc.demo`.)
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from aisoc.atlas.catalog import AtlasCatalog
from aisoc.detect.ruletest import lay_out_scenarios
from aisoc.detect.runner import DetectResult, detect
from aisoc.detect.store import EventStore
from aisoc.rules.loader import RuleFile


@dataclass
class Scenario:
    """One test case of one rule, in its own slot of the timeline."""

    rule: RuleFile
    name: str
    attack: bool
    event_ids: set[str]
    raised_by: set[str] = field(default_factory=set)  # titles of rules whose alerts include its events


@dataclass
class ScenarioReport:
    """What the engine raised over the laid-out scenarios."""

    scenarios: list[Scenario]
    result: DetectResult

    @property
    def attacks(self) -> list[Scenario]:
        return [s for s in self.scenarios if s.attack]

    @property
    def missed(self) -> list[Scenario]:
        return [s for s in self.attacks if s.rule.title not in s.raised_by]

    @property
    def false_positives(self) -> list[Scenario]:
        """Benign look-alikes that raised the very rule they were written to fool."""
        return [s for s in self.scenarios if not s.attack and s.rule.title in s.raised_by]

    @property
    def noisy_lookalikes(self) -> list[Scenario]:
        """Benign look-alikes of one rule that another rule alerted on (e.g. one stage of a correlation)."""
        return [s for s in self.scenarios if not s.attack and s.raised_by - {s.rule.title}]


def replay_rule_scenarios(
    rules: list[RuleFile],
    catalog: AtlasCatalog,
    progress: Callable[[str], None] = lambda _msg: None,
) -> ScenarioReport:
    """Lay every test case of every rule out on one timeline, run the whole pack, attribute the alerts."""
    store = EventStore(":memory:")
    scenarios: list[Scenario] = []
    for rule, index, events in lay_out_scenarios(rules):
        case = rule.meta.tests[index]
        store.insert(events)
        scenarios.append(Scenario(rule, case.name, case.expect == "match", {e["event.id"] for e in events}))
    progress(f"{store.count()} events from {len(scenarios)} scenarios loaded; running {len(rules)} rules")
    result = detect(store, rules, catalog)
    owner_of = {eid: s for s in scenarios for eid in s.event_ids}
    for alert in result.alerts:
        for eid in alert["aisoc.alert.event_ids"]:
            if eid in owner_of:
                owner_of[eid].raised_by.add(alert["rule.name"])
    store.close()
    return ScenarioReport(scenarios, result)


def render_text(report: ScenarioReport) -> str:
    """The scenario replay's summary, as `aisoc demo --scenarios` prints it."""
    alerts = report.result.alerts
    lines = [f"{len(alerts)} alert(s) raised over {len(report.scenarios)} scenarios "
             f"({len(report.attacks)} attacks, {len(report.scenarios) - len(report.attacks)} benign look-alikes)", ""]
    by_rule: dict[str, list[dict[str, Any]]] = {}
    for alert in alerts:
        by_rule.setdefault(alert["rule.name"], []).append(alert)
    for title, group in sorted(by_rule.items()):
        first = group[0]
        techniques = first.get("threat.technique.subtechnique.id") or first.get("threat.technique.id") or []
        lines.append(f"  {title}  [{', '.join(techniques)}]  {len(group)} alert(s), "
                     f"{sum(a['aisoc.alert.count'] for a in group)} event(s)")
        lines.append(f"      owner {first['aisoc.owner.team']}; playbooks: "
                     f"{', '.join(first['aisoc.alert.playbooks']) or '-'}")
    detected = len(report.attacks) - len(report.missed)
    lines += ["", f"attacks detected by their rule: {detected} of {len(report.attacks)}"]
    lines += [f"  MISSED: {s.rule.title}: {s.name}" for s in report.missed]
    lines.append(f"benign look-alikes that raised their own rule: {len(report.false_positives)}")
    lines += [f"  FALSE POSITIVE: {s.rule.title}: {s.name}" for s in report.false_positives]
    lines.append(f"benign look-alikes of one rule that another rule alerted on: {len(report.noisy_lookalikes)}")
    lines += [f"  {s.rule.title}: {s.name} -> {', '.join(sorted(s.raised_by - {s.rule.title}))}"
              for s in report.noisy_lookalikes]
    return "\n".join(lines)
