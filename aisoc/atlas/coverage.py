"""ATLAS coverage of the rule pack: which techniques have a rule whose test events pass.

Counting rules (one definition everywhere: totals, tactics, layers, Navigator, HTML):

* Every catalog entry (technique or sub-technique) is one item. It is *covered* when at least one
  rule whose tests pass tags it directly (``atlas.aml.t0051``, ``atlas.aml.t0024.002``).
* A rule whose tests fail never covers anything; it is listed under ``failing_rules``.
* Covering a sub-technique does not cover its parent (nor the reverse); the HTML matrix marks a
  parent whose sub-techniques are covered.
* A tactic's total is every item in that tactic (sub-techniques inherit the parent's tactics).
  Tactic tags (``atlas.exfiltration``) are recorded per tactic but cover no technique.
* ``atlas.*`` tags the catalog does not know are reported as unknown; other namespaces are ignored.
"""

from __future__ import annotations

import html
from dataclasses import dataclass, field
from typing import Any

from aisoc.atlas.catalog import AtlasCatalog, Tactic, Technique

__all__ = [
    "LAYERS",
    "CoverageReport",
    "LayerCoverage",
    "RuleCoverageInput",
    "TacticCoverage",
    "TechniqueCoverage",
    "UnknownTag",
    "build_coverage",
    "coverage_html",
    "coverage_json",
    "coverage_text",
    "navigator_layer",
]

LAYERS: tuple[str, ...] = ("data", "model", "inference", "supply_chain")
NAVIGATOR_VERSIONS = {"layer": "4.3", "navigator": "4.6.4"}
NAVIGATOR_DOMAIN = "atlas-atlas"

# colour by number of covering rules: 0, 1, 2, 3+
_BUCKET_COLORS = ("#ffffff", "#c7e9c0", "#74c476", "#238b45")
_BUCKET_LABELS = ("no rule", "1 rule", "2 rules", "3+ rules")
_FAILING_COLOR = "#fdae6b"


@dataclass
class RuleCoverageInput:
    """What coverage needs to know about one rule."""

    rule_id: str
    title: str
    layer: str
    tags: list[str]
    tests_passed: bool


@dataclass
class TechniqueCoverage:
    """Rules mapped to one technique or sub-technique."""

    technique_id: str
    name: str
    tactics: tuple[str, ...]
    parent: str | None
    rules: list[str] = field(default_factory=list)  # passing rules: these cover
    failing_rules: list[str] = field(default_factory=list)  # tests failing: these do not

    @property
    def covered(self) -> bool:
        """At least one rule with passing tests maps here."""
        return bool(self.rules)

    @property
    def score(self) -> int:
        """Number of covering rules."""
        return len(self.rules)


@dataclass
class TacticCoverage:
    """Covered/total items (techniques and sub-techniques) of one tactic."""

    tactic_id: str
    name: str
    short_name: str
    covered: int
    total: int
    covered_techniques: list[str] = field(default_factory=list)
    tagged_rules: list[str] = field(default_factory=list)  # passing rules tagging the tactic itself

    @property
    def percent(self) -> float:
        """Share covered, in percent (one decimal)."""
        return _pct(self.covered, self.total)


@dataclass
class LayerCoverage:
    """What the rules of one layer (data, model, inference, supply_chain) cover."""

    layer: str
    rules: list[str] = field(default_factory=list)
    failing_rules: list[str] = field(default_factory=list)
    techniques: list[str] = field(default_factory=list)  # covered by this layer's passing rules


@dataclass(frozen=True)
class UnknownTag:
    """An ``atlas.*`` tag that names nothing in the catalog."""

    rule_id: str
    tag: str


@dataclass
class CoverageReport:
    """Coverage of one catalog by a set of rules."""

    catalog_version: str
    techniques: dict[str, TechniqueCoverage]  # every catalog item, matrix order
    tactics: list[TacticCoverage]  # matrix order
    layers: dict[str, LayerCoverage]
    rule_titles: dict[str, str]
    failing_rules: list[str]
    unknown_tags: list[UnknownTag]
    rules_without_atlas: list[str]  # rules naming no known ATLAS tactic or technique

    @property
    def total(self) -> int:
        """Techniques plus sub-techniques in the catalog."""
        return len(self.techniques)

    @property
    def covered(self) -> int:
        """Techniques plus sub-techniques covered."""
        return sum(1 for t in self.techniques.values() if t.covered)

    @property
    def percent(self) -> float:
        """Covered share of all items, in percent."""
        return _pct(self.covered, self.total)

    def _count(self, sub: bool, covered_only: bool) -> int:
        return sum(
            1
            for t in self.techniques.values()
            if (t.parent is not None) == sub and (t.covered or not covered_only)
        )

    @property
    def techniques_total(self) -> int:
        """Top-level techniques in the catalog."""
        return self._count(False, False)

    @property
    def techniques_covered(self) -> int:
        """Top-level techniques covered."""
        return self._count(False, True)

    @property
    def subtechniques_total(self) -> int:
        """Sub-techniques in the catalog."""
        return self._count(True, False)

    @property
    def subtechniques_covered(self) -> int:
        """Sub-techniques covered."""
        return self._count(True, True)

    def covered_ids(self) -> list[str]:
        """IDs of covered items, matrix order."""
        return [tid for tid, t in self.techniques.items() if t.covered]


def _pct(part: int, whole: int) -> float:
    return round(100.0 * part / whole, 1) if whole else 0.0


def _norm_layer(layer: str) -> str:
    return str(layer or "").strip().lower().replace("-", "_") or "unknown"


def _append_once(items: list[str], value: str) -> None:
    if value not in items:
        items.append(value)


def build_coverage(rules: list[RuleCoverageInput], catalog: AtlasCatalog) -> CoverageReport:
    """Map rules to catalog items through their ``atlas.*`` tags."""
    techniques = {
        t.id: TechniqueCoverage(t.id, t.name, t.tactics, t.parent) for t in catalog.techniques.values()
    }
    layers: dict[str, LayerCoverage] = {name: LayerCoverage(name) for name in LAYERS}
    tactic_tags: dict[str, list[str]] = {t.id: [] for t in catalog.tactics}
    rule_titles: dict[str, str] = {}
    failing: list[str] = []
    unknown: list[UnknownTag] = []
    without_atlas: list[str] = []

    for rule in rules:
        rid = str(rule.rule_id)
        rule_titles.setdefault(rid, str(rule.title))
        layer = layers.setdefault(_norm_layer(rule.layer), LayerCoverage(_norm_layer(rule.layer)))
        if rule.tests_passed:
            _append_once(layer.rules, rid)
        else:
            _append_once(layer.failing_rules, rid)
            _append_once(failing, rid)
        mapped = False
        for tag in rule.tags or []:
            if not isinstance(tag, str) or not tag.lower().startswith("atlas."):
                continue
            found = catalog.resolve_tag(tag)
            if found is None:
                if UnknownTag(rid, tag) not in unknown:
                    unknown.append(UnknownTag(rid, tag))
                continue
            mapped = True
            if isinstance(found, Tactic):
                if rule.tests_passed:
                    _append_once(tactic_tags[found.id], rid)
                continue
            cov = techniques[found.id]
            if rule.tests_passed:
                _append_once(cov.rules, rid)
                _append_once(layer.techniques, found.id)
            else:
                _append_once(cov.failing_rules, rid)
        if not mapped:
            _append_once(without_atlas, rid)

    order = {tid: i for i, tid in enumerate(techniques)}
    for layer in layers.values():
        layer.techniques.sort(key=order.__getitem__)

    tactics: list[TacticCoverage] = []
    for tac in catalog.tactics:
        members = [t for t in techniques.values() if tac.id in t.tactics]
        covered = [t.technique_id for t in members if t.covered]
        tactics.append(
            TacticCoverage(
                tac.id, tac.name, tac.short_name, len(covered), len(members), covered, tactic_tags[tac.id]
            )
        )
    return CoverageReport(
        catalog_version=catalog.version,
        techniques=techniques,
        tactics=tactics,
        layers=layers,
        rule_titles=rule_titles,
        failing_rules=failing,
        unknown_tags=unknown,
        rules_without_atlas=without_atlas,
    )


def _bucket(score: int) -> int:
    return min(score, len(_BUCKET_COLORS) - 1)


# ---------------------------------------------------------------- Navigator


def navigator_layer(
    report: CoverageReport,
    catalog: AtlasCatalog,
    *,
    name: str | None = None,
    description: str | None = None,
) -> dict[str, Any]:
    """An ATLAS Navigator layer (format 4.3, domain ``atlas-atlas``) of the covered techniques.

    One scored entry per (covered item, tactic); a parent that is not covered itself but has
    covered sub-techniques gets an unscored entry that only expands its sub-techniques.
    """
    entries: list[dict[str, Any]] = []
    covered_parents = {t.parent for t in report.techniques.values() if t.covered and t.parent}
    for tech in catalog.techniques.values():
        cov = report.techniques.get(tech.id)
        if cov is None:
            continue
        expand = tech.id in covered_parents
        for tactic_id in tech.tactics:
            tactic = catalog.tactic(tactic_id)
            if tactic is None:
                continue
            if cov.covered:
                titles = [report.rule_titles.get(r, r) for r in cov.rules]
                entry: dict[str, Any] = {
                    "techniqueID": tech.id,
                    "tactic": tactic.short_name,
                    "score": cov.score,
                    "color": _BUCKET_COLORS[_bucket(cov.score)],
                    "comment": "; ".join(titles),
                    "enabled": True,
                    "metadata": [
                        {"name": "rule", "value": f"{r}: {t}"} for r, t in zip(cov.rules, titles, strict=True)
                    ],
                    "links": [{"label": f"ATLAS {tech.id}", "url": catalog.technique_url(tech)}],
                }
                if expand:
                    entry["showSubtechniques"] = True
                entries.append(entry)
            elif expand:
                entries.append(
                    {"techniqueID": tech.id, "tactic": tactic.short_name, "showSubtechniques": True}
                )
    top = max((t.score for t in report.techniques.values()), default=0)
    return {
        "name": name or f"aisoc detection coverage (ATLAS {catalog.version})",
        "versions": dict(NAVIGATOR_VERSIONS),
        "domain": NAVIGATOR_DOMAIN,
        "description": description
        or (
            f"ATLAS techniques with at least one aisoc rule whose test events pass: "
            f"{report.covered} of {report.total} techniques and sub-techniques. Score = number of rules."
        ),
        "sorting": 0,
        "layout": {
            "layout": "side",
            "showID": True,
            "showName": True,
            "showAggregateScores": False,
            "countUnscored": False,
            "aggregateFunction": "average",
        },
        "hideDisabled": False,
        "techniques": entries,
        "gradient": {
            "colors": list(_BUCKET_COLORS),
            "minValue": 0,
            "maxValue": max(len(_BUCKET_COLORS) - 1, top),
        },
        "legendItems": [
            {"label": label, "color": color}
            for label, color in zip(_BUCKET_LABELS[1:], _BUCKET_COLORS[1:], strict=True)
        ],
        "showTacticRowBackground": False,
        "tacticRowBackground": "#dddddd",
        "selectTechniquesAcrossTactics": True,
        "selectSubtechniquesWithParent": False,
        "metadata": [
            {"name": "atlas_data_version", "value": catalog.version},
            {"name": "generated_by", "value": "aisoc coverage"},
            {"name": "covered", "value": f"{report.covered}/{report.total}"},
        ],
    }


# --------------------------------------------------------------------- JSON


def coverage_json(report: CoverageReport) -> dict[str, Any]:
    """The report as JSON data."""
    return {
        "atlas_version": report.catalog_version,
        "totals": {
            "covered": report.covered,
            "total": report.total,
            "percent": report.percent,
            "techniques_covered": report.techniques_covered,
            "techniques_total": report.techniques_total,
            "subtechniques_covered": report.subtechniques_covered,
            "subtechniques_total": report.subtechniques_total,
            "rules": len(report.rule_titles),
            "rules_failing_tests": len(report.failing_rules),
        },
        "tactics": [
            {
                "id": t.tactic_id,
                "name": t.name,
                "short_name": t.short_name,
                "covered": t.covered,
                "total": t.total,
                "percent": t.percent,
                "covered_techniques": list(t.covered_techniques),
                "tagged_rules": list(t.tagged_rules),
            }
            for t in report.tactics
        ],
        "layers": {
            name: {
                "rules": list(layer.rules),
                "failing_rules": list(layer.failing_rules),
                "techniques_covered": len(layer.techniques),
                "techniques": list(layer.techniques),
            }
            for name, layer in report.layers.items()
        },
        "techniques": [
            {
                "id": t.technique_id,
                "name": t.name,
                "parent": t.parent,
                "tactics": list(t.tactics),
                "covered": t.covered,
                "rules": list(t.rules),
                "failing_rules": list(t.failing_rules),
            }
            for t in report.techniques.values()
        ],
        "failing_rules": list(report.failing_rules),
        "unknown_tags": [{"rule_id": u.rule_id, "tag": u.tag} for u in report.unknown_tags],
        "rules_without_atlas": list(report.rules_without_atlas),
    }


# --------------------------------------------------------------------- text


def coverage_text(report: CoverageReport) -> str:
    """A compact human summary."""
    lines = [
        f"ATLAS {report.catalog_version} coverage: {report.covered} of {report.total} techniques "
        f"and sub-techniques ({report.percent}%) - {report.techniques_covered}/{report.techniques_total} "
        f"techniques, {report.subtechniques_covered}/{report.subtechniques_total} sub-techniques",
        f"Rules: {len(report.rule_titles)} ({len(report.failing_rules)} failing tests, not counted)",
        "",
        "By tactic:",
    ]
    width = max((len(t.name) for t in report.tactics), default=10)
    for t in report.tactics:
        lines.append(f"  {t.name:<{width}}  {t.covered:>3}/{t.total:<3} {t.percent:5.1f}%")
    lines += ["", "By layer:"]
    for name, layer in report.layers.items():
        extra = f", {len(layer.failing_rules)} failing" if layer.failing_rules else ""
        n_rules = len(layer.rules)
        rules = f"{n_rules} rule" + ("" if n_rules == 1 else "s")
        lines.append(f"  {name:<13} {len(layer.techniques):>3} covered  ({rules}{extra})")
    if report.failing_rules:
        lines += ["", "Rules failing tests: " + ", ".join(report.failing_rules)]
    if report.unknown_tags:
        lines += [
            "",
            "Unknown ATLAS tags: " + ", ".join(f"{u.rule_id}: {u.tag}" for u in report.unknown_tags),
        ]
    if report.rules_without_atlas:
        lines += ["", "Rules without an ATLAS technique or tactic: " + ", ".join(report.rules_without_atlas)]
    return "\n".join(lines) + "\n"


# --------------------------------------------------------------------- HTML

_CSS = """
body{font-family:system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;margin:1.5rem;color:#222}
h1{font-size:1.4rem;margin:0 0 .3rem}
h2{font-size:1.1rem;margin:1.4rem 0 .5rem}
.summary{font-size:1rem;margin:.3rem 0}
table.layers{border-collapse:collapse;font-size:.85rem}
table.layers th,table.layers td{border:1px solid #ccc;padding:.25rem .6rem;text-align:left}
.legend{display:flex;gap:1rem;flex-wrap:wrap;font-size:.8rem;margin:.5rem 0 1rem}
.legend span{display:inline-flex;align-items:center;gap:.3rem}
.sw{display:inline-block;width:1rem;height:1rem;border:1px solid #999}
.matrix{display:flex;gap:4px;overflow-x:auto;align-items:flex-start;padding-bottom:.5rem}
.tactic{flex:0 0 9.5rem;min-width:9.5rem}
.tactic h3{font-size:.78rem;margin:0 0 4px;padding:.35rem;background:#dddddd;min-height:3.2rem}
.tactic h3 small{display:block;font-weight:normal;color:#555}
.cell{font-size:.72rem;border:1px solid #bbb;padding:.25rem .3rem;margin-bottom:3px;line-height:1.2}
.cell .id{display:block;color:#555;font-size:.65rem}
.c3 .id{color:#e8f5e9}
.sub{margin-left:.8rem}
.c0{background:#ffffff}.c1{background:#c7e9c0}.c2{background:#74c476}.c3{background:#238b45;color:#fff}
.failing{border:2px dashed #e6550d}
.partial{border-left:4px solid #74c476}
ul.plain{font-size:.85rem}
"""


def _cell(tech: Technique, cov: TechniqueCoverage, report: CoverageReport, partial: tuple[int, int]) -> str:
    esc = html.escape
    classes = ["cell", f"c{_bucket(cov.score)}"]
    if tech.is_subtechnique:
        classes.append("sub")
    if cov.failing_rules and not cov.covered:
        classes.append("failing")
    tip = [f"{tech.id} {tech.name}"]
    if cov.rules:
        tip.append("Rules:")
        tip += [f"- {r}: {report.rule_titles.get(r, r)}" for r in cov.rules]
    else:
        tip.append("No rule with passing tests")
    if cov.failing_rules:
        tip.append("Failing tests (not counted):")
        tip += [f"- {r}: {report.rule_titles.get(r, r)}" for r in cov.failing_rules]
    subs_covered, subs_total = partial
    note = ""
    if subs_total:
        tip.append(f"Sub-techniques covered: {subs_covered}/{subs_total}")
        if subs_covered:
            if not cov.covered:
                classes.append("partial")
            note = f" <small>({subs_covered}/{subs_total} sub)</small>"
    count = f" <b>[{cov.score}]</b>" if cov.score else ""
    return (
        f'<div class="{" ".join(classes)}" title="{esc(chr(10).join(tip), quote=True)}">'
        f'<span class="id">{esc(tech.id)}</span>{esc(tech.name)}{count}{note}</div>'
    )


def coverage_html(report: CoverageReport, catalog: AtlasCatalog) -> str:
    """A self-contained HTML page: the ATLAS matrix coloured by covering rules, with a summary."""
    esc = html.escape
    out: list[str] = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        f"<title>aisoc ATLAS coverage ({esc(catalog.version)})</title>",
        f"<style>{_CSS}</style></head><body>",
        f"<h1>aisoc detection coverage of MITRE ATLAS {esc(catalog.version)}</h1>",
        f'<p class="summary"><b>{report.covered} of {report.total}</b> techniques and sub-techniques '
        f"covered ({report.percent}%): {report.techniques_covered} of {report.techniques_total} techniques, "
        f"{report.subtechniques_covered} of {report.subtechniques_total} sub-techniques. "
        f"Only rules whose test events pass count; {len(report.failing_rules)} of "
        f"{len(report.rule_titles)} rules fail their tests.</p>",
        '<div class="legend">',
    ]
    for label, color in zip(_BUCKET_LABELS, _BUCKET_COLORS, strict=True):
        out.append(f'<span><i class="sw" style="background:{color}"></i>{esc(label)}</span>')
    out.append(
        '<span><i class="sw" style="border:2px dashed #e6550d"></i>only rules failing tests</span>'
        '<span><i class="sw" style="border-left:4px solid #74c476"></i>sub-technique(s) covered</span>'
        "</div>"
    )

    out.append('<div class="matrix">')
    tac_cov = {t.tactic_id: t for t in report.tactics}
    for tactic in catalog.tactics:
        tc = tac_cov.get(tactic.id)
        head = f"{tc.covered}/{tc.total} covered" if tc else ""
        out.append(
            f'<div class="tactic"><h3 title="{esc(tactic.id)} {esc(tactic.short_name)}">{esc(tactic.name)}'
            f"<small>{esc(tactic.id)} &middot; {esc(head)}</small></h3>"
        )
        for tech in catalog.techniques_for_tactic(tactic.id):
            subs = catalog.subtechniques(tech.id)
            sub_cov = [report.techniques[s.id] for s in subs if s.id in report.techniques]
            partial = (sum(1 for s in sub_cov if s.covered), len(subs))
            out.append(_cell(tech, report.techniques[tech.id], report, partial))
            for sub in subs:
                if sub.id in report.techniques:
                    out.append(_cell(sub, report.techniques[sub.id], report, (0, 0)))
        out.append("</div>")
    out.append("</div>")

    out.append("<h2>By layer</h2>")
    out.append(
        '<table class="layers"><tr><th>layer</th><th>techniques covered</th>'
        "<th>rules passing</th><th>rules failing tests</th></tr>"
    )
    for name, layer in report.layers.items():
        out.append(
            f"<tr><td>{esc(name)}</td><td>{len(layer.techniques)}</td>"
            f"<td>{len(layer.rules)}</td><td>{len(layer.failing_rules)}</td></tr>"
        )
    out.append("</table>")

    out.append("<h2>By tactic</h2>")
    out.append(
        '<table class="layers"><tr><th>tactic</th><th>id</th><th>covered</th><th>total</th><th>%</th></tr>'
    )
    for t in report.tactics:
        out.append(
            f"<tr><td>{esc(t.name)}</td><td>{esc(t.tactic_id)}</td><td>{t.covered}</td>"
            f"<td>{t.total}</td><td>{t.percent}</td></tr>"
        )
    out.append("</table>")

    if report.failing_rules:
        out.append('<h2>Rules failing their tests (not counted)</h2><ul class="plain">')
        out += [f"<li>{esc(r)}: {esc(report.rule_titles.get(r, r))}</li>" for r in report.failing_rules]
        out.append("</ul>")
    if report.unknown_tags:
        out.append('<h2>Unknown ATLAS tags</h2><ul class="plain">')
        out += [f"<li>{esc(u.rule_id)}: <code>{esc(u.tag)}</code></li>" for u in report.unknown_tags]
        out.append("</ul>")
    if report.rules_without_atlas:
        out.append('<h2>Rules without an ATLAS tactic or technique</h2><ul class="plain">')
        out += [f"<li>{esc(r)}: {esc(report.rule_titles.get(r, r))}</li>" for r in report.rules_without_atlas]
        out.append("</ul>")
    out.append(
        f'<p class="summary"><small>MITRE ATLAS&trade; data {esc(catalog.version)} '
        f"&copy; MITRE, Apache-2.0. Generated by aisoc.</small></p>"
    )
    out.append("</body></html>")
    return "\n".join(out) + "\n"
