"""`aisoc metrics` output: JSON data, a text summary, and a self-contained HTML page.

Values that cannot be measured (no alerts, no incidents, no inventory) are ``null`` in JSON and
"n/a" in text and HTML. The HTML page has inline CSS only: no script, no external asset; every
text from the inputs is escaped.
"""

from __future__ import annotations

import html
import math
from datetime import date
from typing import Any

from aisoc.metrics.compute import (
    AssetRow,
    DurationStats,
    IntegrityDay,
    IntegrityMetric,
    MetricsReport,
)

__all__ = ["BANDS", "fmt_duration", "fmt_pct", "metrics_html", "metrics_json", "metrics_text"]

NA = "n/a"
# Colour bands of the headline tiles: (good at or above, warn at or above); escape rate is inverted.
BANDS: dict[str, tuple[float, float]] = {
    "asset_visibility": (90.0, 70.0),
    "coverage": (80.0, 50.0),
    "integrity_sla": (99.0, 95.0),
    "escape_rate": (10.0, 25.0),  # good at or below 10, warn at or below 25
}
MAX_ISSUES_SHOWN = 50


def fmt_pct(value: float | None) -> str:
    """``62.5%``, or ``n/a``."""
    if value is None:
        return NA
    return f"{value:.0f}%" if value == int(value) else f"{value:.1f}%"


def fmt_duration(seconds: float | None) -> str:
    """A duration for people: ``45s``, ``4m 30s``, ``2h 05m``, ``1d 3h``; ``n/a`` for None."""
    if seconds is None:
        return NA
    s = int(round(seconds))
    if s < 60:
        return f"{s}s"
    if s < 3600:
        m, r = divmod(s, 60)
        return f"{m}m" if r == 0 else f"{m}m {r:02d}s"
    if s < 86400:
        h, r = divmod(s, 3600)
        return f"{h}h {r // 60:02d}m"
    d, r = divmod(s, 86400)
    return f"{d}d {r // 3600}h"


def _band(key: str, value: float | None) -> str:
    if value is None:
        return "na"
    good, warn = BANDS[key]
    if key == "escape_rate":
        return "good" if value <= good else "warn" if value <= warn else "bad"
    return "good" if value >= good else "warn" if value >= warn else "bad"


# ------------------------------------------------------------------ headline


def _headline(report: MetricsReport) -> list[dict[str, Any]]:
    """The six tiles: key, label, value, display, detail, band."""
    tiles: list[dict[str, Any]] = []
    v = report.visibility
    value = v.percent if v else None
    tiles.append({
        "key": "asset_visibility", "label": "Asset visibility", "value": value, "unit": "%",
        "display": fmt_pct(value),
        "detail": (f"{v.documented} of {v.systems} AI systems with owner, lineage and provenance" if v
                   else "no inventory given"),
        "band": _band("asset_visibility", value),
    })
    c = report.coverage
    value = c.percent if c else None
    detail = "no inventory given"
    if c:
        detail = (f"{c.covered_pairs} of {c.pairs} applicable ATLAS techniques have an active, tested rule"
                  if c.pairs else "no system is mapped to an ATLAS technique")
    tiles.append({"key": "coverage", "label": "ATLAS coverage", "value": value, "unit": "%",
                  "display": fmt_pct(value), "detail": detail, "band": _band("coverage", value)})
    m = report.mtta
    value = m.overall.mean if m else None
    detail = "no alerts given"
    if m:
        detail = (f"median {fmt_duration(m.overall.median)} over {m.overall.count} alert(s)" if m.overall.count
                  else "no alert with usable times")
    tiles.append({"key": "mtta", "label": "MTTA (signal to alert)", "value": value, "unit": "s",
                  "display": fmt_duration(value), "detail": detail, "band": "info" if value is not None else "na"})
    r = report.mttr
    value = r.overall.mean if r else None
    detail = "no alerts or response history given"
    if r:
        detail = (f"median {fmt_duration(r.overall.median)}; {r.contained} of {r.alerts} alert(s) contained"
                  if r.overall.count else f"no applied containment; {r.alerts} alert(s)")
    tiles.append({"key": "mttr", "label": "MTTR (alert to containment)", "value": value, "unit": "s",
                  "display": fmt_duration(value), "detail": detail, "band": "info" if value is not None else "na"})
    i = report.integrity
    value = i.percent() if i else None
    detail = "no integrity events given"
    if i:
        detail = (f"{i.compliant_days()} of {i.period_days} days in compliance" if i.period_days
                  else "no integrity checks in the period")
    tiles.append({"key": "integrity_sla", "label": "Integrity SLA", "value": value, "unit": "%",
                  "display": fmt_pct(value), "detail": detail, "band": _band("integrity_sla", value)})
    e = report.escape
    value = e.percent if e else None
    detail = "no incident records given"
    if e:
        detail = (f"{e.by_business} of {e.incidents} incident(s) first found by the business" if e.incidents
                  else "no incidents in the period")
    tiles.append({"key": "escape_rate", "label": "Escape rate", "value": value, "unit": "%",
                  "display": fmt_pct(value), "detail": detail, "band": _band("escape_rate", value)})
    return tiles


# ---------------------------------------------------------------------- JSON


def _day(d: date | None) -> str | None:
    return d.isoformat() if d else None


def _asset_json(row: AssetRow, names: dict[str, str]) -> dict[str, Any]:
    return {
        "id": row.system_id, "name": row.name, "criticality": row.criticality,
        "owner": {"team": row.owner_team, "person": row.owner_person, "documented": row.owner},
        "lineage_documented": row.lineage, "provenance_documented": row.provenance,
        "documented": row.documented,
        "coverage": {"percent": row.coverage_percent, "covered": len(row.covered), "applicable": len(row.applicable),
                     "covered_techniques": row.covered,
                     "uncovered_techniques": [{"id": t, "name": names.get(t, "")} for t in row.uncovered],
                     "unknown_atlas_ids": row.unknown_atlas},
    }


def _integrity_json(i: IntegrityMetric) -> dict[str, Any]:
    return {
        "start": _day(i.start), "end": _day(i.end), "period_days": i.period_days,
        "compliant_days": i.compliant_days(), "percent": i.percent(),
        "model": {"compliant_days": i.compliant_days("model"), "percent": i.percent("model")},
        "data": {"compliant_days": i.compliant_days("data"), "percent": i.percent("data")},
        "days_without_checks": i.days_without_checks,
        "days": [{"date": d.day.isoformat(), "compliant": d.compliant, "model": d.model, "data": d.data,
                  "checks": d.checks, "failures": d.failures, "unremediated": d.unremediated} for d in i.days],
        "failures": [{"date": f.day.isoformat(), "at": f.at.isoformat().replace("+00:00", "Z"),
                      "dimension": f.dimension, "action": f.action, "subject": f.subject, "event_id": f.event_id,
                      "remediated": f.remediated_by is not None, "remediated_by": f.remediated_by}
                     for f in i.failures],
    }


def metrics_json(report: MetricsReport) -> dict[str, Any]:
    """The report as JSON data (``null`` where a metric has nothing to measure)."""
    names = report.technique_names
    out: dict[str, Any] = {
        "generated_at": report.generated_at.isoformat().replace("+00:00", "Z"),
        "period": {"start": _day(report.period_start), "end": _day(report.period_end)},
        "atlas_version": report.atlas_version,
        "sources": dict(report.sources),
        "headline": {t["key"]: {k: t[k] for k in ("label", "value", "unit", "display", "detail")}
                     for t in _headline(report)},
    }
    v = report.visibility
    out["asset_visibility"] = None if v is None else {
        "percent": v.percent, "systems": v.systems, "documented": v.documented,
        "owner": {"percent": v.owner_percent, "count": v.with_owner, "of": v.systems},
        "lineage": {"percent": v.lineage_percent, "count": v.with_lineage, "of": v.lineage_applicable},
        "provenance": {"percent": v.provenance_percent, "count": v.with_provenance, "of": v.provenance_applicable},
    }
    c = report.coverage
    out["coverage"] = None if c is None else {
        "percent": c.percent, "covered_pairs": c.covered_pairs, "pairs": c.pairs,
        "technique_percent": c.technique_percent, "techniques_covered": len(c.covered_techniques),
        "techniques": len(c.techniques), "rules_counted": c.rules_counted, "rules_total": c.rules_total,
        "rules_by_technique": c.rules_by_technique, "unmapped_systems": c.unmapped_systems,
    }
    out["assets"] = None if report.assets is None else [_asset_json(r, names) for r in report.assets]
    m = report.mtta
    out["mtta"] = None if m is None else {
        "overall": m.overall.to_dict(), "alerts": m.alerts, "data_errors": m.errors,
        "per_rule": [{"rule_id": t.rule_id, "rule_name": t.rule_name, **t.stats.to_dict()} for t in m.per_rule],
    }
    r = report.mttr
    out["mttr"] = None if r is None else {
        "overall": r.overall.to_dict(), "alerts": r.alerts, "contained": r.contained,
        "not_contained": r.not_contained, "data_errors": r.errors,
        "per_action": {k: s.to_dict() for k, s in r.per_action.items()},
    }
    out["integrity_sla"] = None if report.integrity is None else _integrity_json(report.integrity)
    e = report.escape
    out["escape_rate"] = None if e is None else {
        "percent": e.percent, "incidents": e.incidents, "by_business": e.by_business,
        "by_soc": e.incidents - e.by_business, "business_incidents": e.business_ids,
    }
    out["data_issues"] = [i.to_dict() for i in report.issues]
    return out


# ---------------------------------------------------------------------- text


def _stats_text(s: DurationStats) -> str:
    return f"mean {fmt_duration(s.mean)}, median {fmt_duration(s.median)} ({s.count})"


def _yn(value: bool | None) -> str:
    return "n/a" if value is None else ("yes" if value else "NO")


def metrics_text(report: MetricsReport) -> str:
    """A compact summary for a terminal or a ticket."""
    period = ""
    if report.period_start or report.period_end:
        period = f" ({_day(report.period_start) or '...'} to {_day(report.period_end) or '...'})"
    lines = [f"AI-SOC metrics{period}", ""]
    tiles = _headline(report)
    width = max(len(t["label"]) for t in tiles)
    for t in tiles:
        lines.append(f"  {t['label']:<{width}}  {t['display']:>8}  {t['detail']}")
    v = report.visibility
    if v:
        lines += ["", f"Asset visibility: owner {fmt_pct(v.owner_percent)} ({v.with_owner}/{v.systems}), "
                      f"lineage {fmt_pct(v.lineage_percent)} ({v.with_lineage}/{v.lineage_applicable}), "
                      f"provenance {fmt_pct(v.provenance_percent)} ({v.with_provenance}/{v.provenance_applicable})"]
    if report.assets:
        lines += ["", "Assets:"]
        w = max(len(r.system_id) for r in report.assets)
        for r in report.assets:
            owner = " / ".join(x for x in (r.owner_team, r.owner_person) if x) or "MISSING"
            lines.append(
                f"  {r.system_id:<{w}}  owner: {owner}; lineage: {_yn(r.lineage)}; provenance: {_yn(r.provenance)}; "
                f"coverage {fmt_pct(r.coverage_percent)} ({len(r.covered)}/{len(r.applicable)})"
                + (f"; uncovered: {', '.join(r.uncovered)}" if r.uncovered else "")
            )
    c = report.coverage
    if c:
        lines.append(f"  rules counted for coverage: {c.rules_counted} of {c.rules_total} "
                     "(active, test events pass)")
    m = report.mtta
    if m:
        lines += ["", f"MTTA overall: {_stats_text(m.overall)}"]
        lines += [f"  {t.rule_name} [{t.rule_id}]: {_stats_text(t.stats)}" for t in m.per_rule]
        if m.errors:
            lines.append(f"  {m.errors} alert(s) left out: data errors (see below)")
    r = report.mttr
    if r:
        lines += ["", f"MTTR overall: {_stats_text(r.overall)}; {r.contained} of {r.alerts} alert(s) contained"]
        lines += [f"  {kind}: {_stats_text(s)}" for kind, s in r.per_action.items()]
        if r.not_contained:
            lines.append(f"  not contained: {', '.join(r.not_contained)}")
    i = report.integrity
    if i and i.period_days:
        lines += ["", f"Integrity SLA {_day(i.start)} to {_day(i.end)}: {i.compliant_days()}/{i.period_days} days "
                      f"({fmt_pct(i.percent())}); model hash/signing {fmt_pct(i.percent('model'))}, "
                      f"approved data sources {fmt_pct(i.percent('data'))}; {i.days_without_checks} day(s) "
                      "without checks"]
        strip = "".join("#" if not d.compliant else ("." if d.checks == 0 else "o") for d in i.days)
        lines.append(f"  [{strip}]  (o compliant, . no checks, # out of compliance)")
        for f in i.failures:
            if f.remediated_by is None:
                lines.append(f"  out {f.day.isoformat()}: {f.action} {f.subject} (event {f.event_id or '?'}) "
                             "not remediated that day")
    e = report.escape
    if e and e.business_ids:
        lines += ["", f"Found by the business: {', '.join(e.business_ids)}"]
    if report.issues:
        lines += ["", f"Data issues ({len(report.issues)}):"]
        lines += [f"  {x.location()}: {x.message}" for x in report.issues]
    return "\n".join(lines) + "\n"


# ---------------------------------------------------------------------- HTML

_CSS = """
*{box-sizing:border-box}
body{font-family:system-ui,-apple-system,"Segoe UI",Roboto,Helvetica,Arial,sans-serif;margin:0;background:#f3f5f8;
color:#1f2933;font-size:14px;line-height:1.4}
main{max-width:1200px;margin:0 auto;padding:24px 28px 40px}
header h1{font-size:22px;margin:0}
header p{margin:4px 0 0;color:#52606d}
h2{font-size:16px;margin:28px 0 10px}
.tiles{display:grid;grid-template-columns:repeat(3,1fr);gap:14px;margin-top:18px}
.tile{background:#fff;border-radius:8px;padding:14px 16px 14px 18px;border-left:6px solid #9aa5b1;
box-shadow:0 1px 2px rgba(0,0,0,.08);display:flex;flex-direction:column}
.tile .label{font-size:12px;text-transform:uppercase;letter-spacing:.04em;color:#52606d;font-weight:600}
.tile .value{font-size:34px;font-weight:700;margin:4px 0 2px;font-variant-numeric:tabular-nums}
.tile .detail{font-size:13px;color:#3e4c59;margin-bottom:8px}
.tile .meter{height:6px;background:#e4e7eb;border-radius:3px;margin-top:auto;overflow:hidden}
.tile .sub+.meter,.tile .detail+.meter{margin-top:auto}
.tile .spacer{margin-top:auto}
.tile .meter i{display:block;height:100%}
.good{border-left-color:#2f9e44}.good .value{color:#2b8a3e}.good .meter i{background:#2f9e44}
.warn{border-left-color:#f08c00}.warn .value{color:#d9480f}.warn .meter i{background:#f08c00}
.bad{border-left-color:#e03131}.bad .value{color:#c92a2a}.bad .meter i{background:#e03131}
.info{border-left-color:#1c7ed6}.info .value{color:#1864ab}
.na .value{color:#9aa5b1}
.sub{display:flex;gap:10px;margin:6px 0 8px;font-size:12px;color:#52606d;flex-wrap:wrap}
.sub b{color:#1f2933}
.card{background:#fff;border-radius:8px;padding:6px 0;box-shadow:0 1px 2px rgba(0,0,0,.08);overflow-x:auto}
table{border-collapse:collapse;width:100%;font-size:13px}
th{font-size:11px;text-transform:uppercase;letter-spacing:.04em;color:#52606d;text-align:left;
padding:8px 12px;border-bottom:1px solid #e4e7eb;background:#fff}
td{padding:7px 12px;border-bottom:1px solid #f0f2f5;vertical-align:middle}
tr:last-child td{border-bottom:none}
td.num{text-align:right;font-variant-numeric:tabular-nums;white-space:nowrap}
.id{color:#7b8794;font-size:11px;font-family:ui-monospace,SFMono-Regular,Menlo,Consolas,monospace}
.chip{display:inline-block;padding:1px 8px;border-radius:10px;font-size:12px;font-weight:600;white-space:nowrap}
.yes{background:#d3f9d8;color:#2b8a3e}.no{background:#ffe3e3;color:#c92a2a}.nap{background:#f1f3f5;color:#868e96}
.crit-critical{background:#ffe3e3;color:#c92a2a}.crit-high{background:#fff4e6;color:#d9480f}
.crit-medium{background:#fff9db;color:#e67700}.crit-low{background:#f1f3f5;color:#495057}
.bar{display:flex;align-items:center;gap:8px;min-width:170px}
.bar .track{flex:1;height:10px;background:#e4e7eb;border-radius:5px;overflow:hidden}
.bar .track i{display:block;height:100%;background:#1c7ed6}
.bar .track i.good{background:#2f9e44}.bar .track i.warn{background:#f08c00}.bar .track i.bad{background:#e03131}
.bar span{font-variant-numeric:tabular-nums;white-space:nowrap;font-size:12px;color:#3e4c59;min-width:78px}
.tech{display:inline-block;font-family:ui-monospace,SFMono-Regular,Menlo,Consolas,monospace;font-size:11px;
background:#fff5f5;color:#c92a2a;border:1px solid #ffc9c9;border-radius:4px;padding:0 4px;margin:1px 2px 1px 0}
.two{display:grid;grid-template-columns:1fr 1fr;gap:14px}
.muted{color:#7b8794}
.cal{padding:14px 16px}
.calrow{display:flex;align-items:center;gap:10px;margin:4px 0}
.calrow .name{width:150px;font-size:12px;color:#52606d;flex:none}
.days{display:grid;gap:3px;flex:1}
.d{height:22px;border-radius:3px;background:#b2f2bb}
.d.ok{background:#40c057}.d.out{background:#e03131}.d.none{background:#d8f5dc}
.axis .d{background:none;height:auto;font-size:10px;color:#7b8794;text-align:center;white-space:nowrap;overflow:visible}
.axis .d.tick{text-align:left}
.legend{display:flex;gap:16px;font-size:12px;color:#52606d;margin-top:10px;flex-wrap:wrap}
.legend i{display:inline-block;width:12px;height:12px;border-radius:3px;vertical-align:-2px;margin-right:5px}
ul.fail{margin:10px 0 0;padding-left:18px;font-size:13px}
.issues td{font-size:12px}
dl.defs{background:#fff;border-radius:8px;padding:12px 18px;box-shadow:0 1px 2px rgba(0,0,0,.08);font-size:12px;
color:#3e4c59;margin:0}
dl.defs dt{font-weight:600;color:#1f2933;margin-top:6px}
dl.defs dd{margin:0 0 0 0}
footer{margin-top:18px;font-size:11px;color:#9aa5b1}
"""

_DEFS = [
    ("Asset visibility", "Share of inventoried AI systems with an owner (team and person), documented lineage for "
     "every model and provenance for every data source (a system without models or data sources is not "
     "judged on them)."),
    ("ATLAS coverage", "Applicable (system, technique) pairs whose technique is tagged, by exact id, by an active "
     "rule whose test events pass. A sub-technique rule does not cover its parent, nor the reverse."),
    ("MTTA", "Alert raised (event.created) minus first adversarial signal (aisoc.alert.first_event). Alerts raised "
     "before their first event are data errors, left out."),
    ("MTTR", "First applied containment action (throttle, rollback, quarantine, revoke) in the response history "
     "minus the alert's event.created; per action type, the first action of that type."),
    ("Integrity SLA", "UTC days in the period with no failed model signature/hash check or data-batch "
     "hash/approval check left unremediated that day (a passing re-check of the same subject, or an applied "
     "containment for the alert on it)."),
    ("Escape rate", "Incidents first detected by the business rather than the SOC, over all incidents."),
]


def _e(value: Any) -> str:
    return html.escape(str(value), quote=True)


def _chip(value: bool | None, yes: str = "yes", no: str = "missing") -> str:
    if value is None:
        return '<span class="chip nap">n/a</span>'
    return f'<span class="chip yes">{_e(yes)}</span>' if value else f'<span class="chip no">{_e(no)}</span>'


def _bar(fraction: float | None, label: str, cls: str = "") -> str:
    width = 0.0 if fraction is None else max(0.0, min(1.0, fraction)) * 100
    return (f'<div class="bar"><div class="track"><i class="{_e(cls)}" style="width:{width:.1f}%"></i></div>'
            f"<span>{_e(label)}</span></div>")


def _tiles_html(report: MetricsReport) -> list[str]:
    out = ['<section class="tiles">']
    v = report.visibility
    for t in _headline(report):
        meter = ""
        if t["unit"] == "%" and t["value"] is not None:
            meter = f'<div class="meter"><i style="width:{max(0.0, min(100.0, t["value"])):.1f}%"></i></div>'
        sub = ""
        if t["key"] == "asset_visibility" and v is not None:
            sub = ('<div class="sub">'
                   f"<span>owner <b>{_e(fmt_pct(v.owner_percent))}</b></span>"
                   f"<span>lineage <b>{_e(fmt_pct(v.lineage_percent))}</b></span>"
                   f"<span>provenance <b>{_e(fmt_pct(v.provenance_percent))}</b></span></div>")
        if t["key"] == "integrity_sla" and report.integrity is not None and report.integrity.period_days:
            i = report.integrity
            sub = ('<div class="sub">'
                   f"<span>model hash/signing <b>{_e(fmt_pct(i.percent('model')))}</b></span>"
                   f"<span>data sources <b>{_e(fmt_pct(i.percent('data')))}</b></span></div>")
        if t["key"] == "coverage" and report.coverage is not None and report.coverage.techniques:
            c = report.coverage
            sub = ('<div class="sub">'
                   f"<span>distinct techniques <b>{len(c.covered_techniques)}/{len(c.techniques)}</b></span>"
                   f"<span>rules counted <b>{c.rules_counted}/{c.rules_total}</b></span></div>")
        out.append(
            f'<div class="tile {_e(t["band"])}"><div class="label">{_e(t["label"])}</div>'
            f'<div class="value">{_e(t["display"])}</div><div class="detail">{_e(t["detail"])}</div>'
            f"{sub}{meter}</div>"
        )
    out.append("</section>")
    return out


_NONE = '<span class="muted">none</span>'


def _assets_html(report: MetricsReport) -> list[str]:
    if report.assets is None:
        return []
    names = report.technique_names
    out = ["<h2>AI assets</h2>", '<div class="card"><table>',
           "<tr><th>System</th><th>Criticality</th><th>Owner</th><th>Lineage</th><th>Provenance</th>"
           "<th>ATLAS coverage</th><th>Techniques without a detection</th></tr>"]
    if not report.assets:
        out.append('<tr><td colspan="7" class="muted">The inventory lists no AI system.</td></tr>')
    for r in report.assets:
        if r.owner:
            owner = f'{_e(r.owner_team)}<br><span class="id">{_e(r.owner_person)}</span>'
        elif r.owner_team or r.owner_person:
            missing = "person" if r.owner_team else "team"
            owner = (f"{_e(r.owner_team or r.owner_person)} "
                     f'<span class="chip no">no {missing}</span>')
        else:
            owner = '<span class="chip no">no owner</span>'
        percent = r.coverage_percent
        band = "na" if percent is None else _band("coverage", percent)
        cov = (_bar(None if percent is None else percent / 100, f"{len(r.covered)}/{len(r.applicable)} · "
                    f"{fmt_pct(percent)}", band) if r.applicable else '<span class="chip nap">not mapped</span>')
        gaps = "".join(f'<span class="tech" title="{_e(names.get(t, ""))}">{_e(t)}</span>' for t in r.uncovered)
        gaps += "".join(f'<span class="tech" title="not in the ATLAS catalog">{_e(t)}?</span>'
                        for t in r.unknown_atlas)
        out.append(
            f"<tr><td><b>{_e(r.name)}</b><br><span class=\"id\">{_e(r.system_id)}</span></td>"
            f'<td><span class="chip crit-{_e(r.criticality)}">{_e(r.criticality)}</span></td>'
            f"<td>{owner}</td><td>{_chip(r.lineage, 'documented')}</td><td>{_chip(r.provenance, 'documented')}</td>"
            f"<td>{cov}</td><td>{gaps or _NONE}</td></tr>"
        )
    out.append("</table></div>")
    return out


def _short_id(rule_id: str) -> str:
    """First block of a UUID rule id (the full id is in the JSON output)."""
    head = rule_id.split("-", 1)[0]
    return head if len(rule_id) == 36 and len(head) == 8 else rule_id


def _timing_table(title: str, head: str, rows: list[tuple[str, str, DurationStats]], empty: str) -> list[str]:
    out = [f'<div><h2>{_e(title)}</h2><div class="card"><table>',
           f"<tr><th>{_e(head)}</th><th>Alerts</th><th>Mean</th><th>Median</th></tr>"]
    top = max((s.mean or 0.0 for _, _, s in rows), default=0.0)
    if not rows:
        out.append(f'<tr><td colspan="4" class="muted">{_e(empty)}</td></tr>')
    for name, ident, stats in rows:
        fraction = (stats.mean or 0.0) / top if top else 0.0
        label = f"<b>{_e(name)}</b>" + (f'<br><span class="id">{_e(ident)}</span>' if ident else "")
        out.append(f"<tr><td>{label}</td><td class=\"num\">{stats.count}</td>"
                   f"<td>{_bar(fraction, fmt_duration(stats.mean))}</td>"
                   f'<td class="num">{_e(fmt_duration(stats.median))}</td></tr>')
    out.append("</table></div></div>")
    return out


def _timings_html(report: MetricsReport) -> list[str]:
    parts: list[list[str]] = []
    if report.mtta is not None:
        rows = [(t.rule_name, _short_id(t.rule_id), t.stats) for t in report.mtta.per_rule]
        parts.append(_timing_table("MTTA per rule", "Rule", rows, "No alert with usable times."))
    if report.mttr is not None:
        rows = [(kind, "", s) for kind, s in report.mttr.per_action.items()]
        if rows:
            rows.append(("any containment (overall)", "first action of any type", report.mttr.overall))
        parts.append(_timing_table("MTTR per action type", "Action", rows, "No applied containment action."))
    if not parts:
        return []
    out = [f'<section class="{"two" if len(parts) == 2 else "one"}">']
    for part in parts:
        out += part
    out.append("</section>")
    return out


def _day_title(d: IntegrityDay, status: str) -> str:
    words = {"ok": "in compliance", "out": "OUT of compliance", "none": "no checks"}
    return f"{d.day.isoformat()}: {words[status]} ({d.checks} check(s), {d.failures} failure(s), " \
           f"{d.unremediated} unremediated)"


def _integrity_html(report: MetricsReport) -> list[str]:
    i = report.integrity
    if i is None:
        return []
    out = ["<h2>Integrity calendar</h2>", '<div class="card cal">']
    if not i.period_days:
        out.append('<p class="muted">No integrity checks in the period.</p></div>')
        return out
    n = i.period_days
    cell = min(40.0, 960.0 / n)
    cols = f"grid-template-columns:repeat({n},minmax(2px,1fr));max-width:{n * (cell + 3):.0f}px"
    rows = [("overall", None), ("model hash / signing", "model"), ("approved data sources", "data")]
    for label, dim in rows:
        cells = []
        for d in i.days:
            status = ("ok" if d.compliant else "out") if dim is None else getattr(d, dim)
            if dim is None and d.compliant and d.checks == 0:
                status = "none"
            cells.append(f'<div class="d {status}" title="{_e(_day_title(d, status))}"></div>')
        out.append(f'<div class="calrow"><div class="name">{_e(label)}</div>'
                   f'<div class="days" style="{cols}">{"".join(cells)}</div></div>')
    if n <= 31:  # day numbers under each cell, the month(s) on the left
        months = " – ".join(dict.fromkeys(d.day.strftime("%b %Y") for d in i.days))
        axis = "".join(f'<div class="d">{d.day.day}</div>' for d in i.days)
    else:  # a dated tick every `step` days, far enough apart not to overlap
        months = ""
        step = max(7, math.ceil(52 / (cell + 3)))
        axis = "".join(
            f'<div class="d tick">{_e(d.day.strftime("%d %b")) if index % step == 0 else ""}</div>'
            for index, d in enumerate(i.days)
        )
    out.append(f'<div class="calrow axis"><div class="name">{_e(months)}</div><div class="days" style="{cols}">'
               f"{axis}</div></div>")
    out.append('<div class="legend"><span><i style="background:#40c057"></i>in compliance</span>'
               '<span><i style="background:#d8f5dc"></i>no checks that day (counts as in compliance)</span>'
               '<span><i style="background:#e03131"></i>failure not remediated the same day</span></div>')
    open_failures = [f for f in i.failures if f.remediated_by is None]
    fixed = len(i.failures) - len(open_failures)
    out.append(f'<p class="muted" style="margin:10px 0 0">{len(i.failures)} failed check(s) in the period, '
               f"{fixed} remediated the same day.</p>")
    if open_failures:
        out.append('<ul class="fail">')
        for f in open_failures[:MAX_ISSUES_SHOWN]:
            out.append(f"<li><b>{_e(f.day.isoformat())}</b> {_e(f.action)} "
                       f"<span class=\"id\">{_e(f.subject)}</span>"
                       + (f' <span class="id">event {_e(f.event_id)}</span>' if f.event_id else "") + "</li>")
        out.append("</ul>")
    out.append("</div>")
    return out


def _issues_html(report: MetricsReport) -> list[str]:
    if not report.issues:
        return []
    out = [f"<h2>Data issues ({len(report.issues)})</h2>", '<div class="card issues"><table>',
           "<tr><th>Where</th><th>Problem</th></tr>"]
    for issue in report.issues[:MAX_ISSUES_SHOWN]:
        out.append(f'<tr><td class="id">{_e(issue.location())}</td><td>{_e(issue.message)}</td></tr>')
    if len(report.issues) > MAX_ISSUES_SHOWN:
        out.append(f'<tr><td></td><td class="muted">and {len(report.issues) - MAX_ISSUES_SHOWN} more '
                   "(see the JSON output)</td></tr>")
    out.append("</table></div>")
    return out


def metrics_html(report: MetricsReport) -> str:
    """A self-contained page: headline tiles, assets, MTTA/MTTR tables, integrity calendar, data issues."""
    period = "all data"
    if report.period_start or report.period_end:
        period = f"{_day(report.period_start) or '…'} to {_day(report.period_end) or '…'}"
    generated = report.generated_at.strftime("%Y-%m-%d %H:%M UTC")
    out = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<title>AI-SOC metrics · {_e(period)}</title>",
        f"<style>{_CSS}</style></head><body><main>",
        f"<header><h1>AI-SOC metrics</h1><p>Period: <b>{_e(period)}</b> · generated {_e(generated)} · "
        f"MITRE ATLAS {_e(report.atlas_version)}</p></header>",
    ]
    out += _tiles_html(report)
    out += _assets_html(report)
    out += _timings_html(report)
    out += _integrity_html(report)
    out += _issues_html(report)
    out.append("<h2>Definitions</h2><dl class=\"defs\">")
    for term, text in _DEFS:
        out.append(f"<dt>{_e(term)}</dt><dd>{_e(text)}</dd>")
    out.append("</dl>")
    bands = "; ".join(
        f"{k.replace('_', ' ')}: green {'≤' if k == 'escape_rate' else '≥'} {g:g}%, amber "
        f"{'≤' if k == 'escape_rate' else '≥'} {w:g}%" for k, (g, w) in BANDS.items())
    sources = " · ".join(f"{k}: {v}" for k, v in report.sources.items())
    out.append(f"<footer>Colour bands: {_e(bands)}.<br>{_e(sources)}<br>Generated by aisoc.</footer>")
    out.append("</main></body></html>")
    return "\n".join(out) + "\n"
