"""Compile a rule file to one target query language.

Targets map to pySigma backends; `kibana` builds Kibana detection rules on top of them (see
`aisoc.compile.kibana`). Any other installed pySigma backend can be named too. A target that cannot
express a rule (e.g. correlations in plain Lucene) yields a `Compiled` with `error` set, so callers
can say exactly which rules a target cannot express.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from sigma.backends.elasticsearch import EqlBackend, ESQLBackend, LuceneBackend
from sigma.backends.sqlite import sqliteBackend
from sigma.collection import SigmaCollection
from sigma.conversion.base import Backend
from sigma.exceptions import SigmaError, SigmaRuleLocation
from sigma.rule import SigmaRule

from aisoc.compile.pipeline import elasticsearch_pipeline
from aisoc.rules.loader import RuleFile
from aisoc.safeyaml import YamlLoadError, load_all

SQLITE_OPTIONS = {"table": "logs", "timestamp_field": "@timestamp", "event_id_field": "event.id"}


@dataclass(frozen=True)
class Target:
    name: str
    description: str
    make_backend: Callable[[], Backend]
    output_format: str = "default"


BUILTIN_TARGETS: dict[str, Target] = {
    "lucene": Target("lucene", "Elasticsearch Lucene query string (single-event rules)",
                     lambda: LuceneBackend(elasticsearch_pipeline())),
    "dsl": Target("dsl", "Elasticsearch Query DSL (single-event rules)",
                  lambda: LuceneBackend(elasticsearch_pipeline()), "dsl_lucene"),
    "esql": Target("esql", "ES|QL (single-event rules and correlations)",
                   lambda: ESQLBackend(elasticsearch_pipeline())),
    "eql": Target("eql", "EQL (single-event rules and temporal sequences)",
                  lambda: EqlBackend(elasticsearch_pipeline())),
    "sqlite": Target("sqlite", "SQLite SQL for the embedded engine (incl. correlations)",
                     lambda: sqliteBackend(**SQLITE_OPTIONS)),
}
KIBANA = "kibana"


class UnknownTargetError(ValueError):
    pass


@dataclass(frozen=True)
class Compiled:
    rule_id: str
    title: str
    path: str
    target: str
    query: Any = None
    error: str | None = None

    @property
    def ok(self) -> bool:
        return self.error is None


@functools.lru_cache(maxsize=1)
def installed_backends() -> dict[str, type[Backend]]:
    """Every pySigma backend installed as a plugin, by its plugin name."""
    from sigma.plugins import InstalledSigmaPlugins

    return dict(InstalledSigmaPlugins.autodiscover().backends)


def available_targets() -> list[str]:
    return sorted({*BUILTIN_TARGETS, KIBANA, *installed_backends()})


def resolve_target(name: str) -> Target:
    if name in BUILTIN_TARGETS:
        return BUILTIN_TARGETS[name]
    backends = installed_backends()
    if name in backends:
        backend_class = backends[name]
        return Target(name, f"pySigma backend {backend_class.__name__}", backend_class)
    raise UnknownTargetError(
        f"unknown target {name!r}; choose one of: {', '.join(available_targets())}"
    )


def compile_with(rule: RuleFile, target: Target, output_format: str | None = None) -> Compiled:
    """Convert one rule file with a fresh backend. Never raises for an inexpressible rule."""
    fmt = output_format or target.output_format
    base = {"rule_id": rule.rule_id, "title": rule.title, "path": str(rule.path), "target": target.name}
    try:
        queries = target.make_backend().convert(rule.collection, fmt)
    except NotImplementedError as exc:
        return Compiled(**base, error=f"{target.name} cannot express this rule: {exc}")
    except SigmaError as exc:
        return Compiled(**base, error=f"{target.name} cannot express this rule: {exc}")
    if len(queries) != 1:
        return Compiled(**base, error=f"{target.name} produced {len(queries)} queries, expected one")
    return Compiled(**base, query=queries[0])


def base_rule_file(rule: RuleFile, base: SigmaRule) -> RuleFile:
    """A base rule of a correlation as a rule file of its own, so it converts alone.

    pySigma emits nothing for a base rule converted inside its correlation's collection, so the
    base rule's document is re-read from the file's text. Raises ValueError if it cannot be.
    """
    try:
        docs = [d for d in load_all(rule.text, rule.path) if isinstance(d, dict)]
    except YamlLoadError as exc:
        raise ValueError(exc.message) from None
    keys = {str(base.id)} if base.id else {str(base.name)}
    doc = next(
        (d for d in docs if "correlation" not in d and str(d.get("id") or d.get("name")) in keys), None
    )
    if doc is None:
        raise ValueError(f"base rule {base.title!r} not found in {rule.path}")
    try:
        collection = SigmaCollection.from_dicts([doc], source=SigmaRuleLocation(rule.path))
    except SigmaError as exc:
        raise ValueError(f"base rule {base.title!r}: {exc}") from None
    return RuleFile(rule.path, rule.text, collection, collection.rules[0], [], rule.meta)


def sqlite_query(rule: RuleFile) -> str:
    """The embedded engine's SQL for a rule (raises ValueError if SQLite cannot express it)."""
    compiled = compile_with(rule, BUILTIN_TARGETS["sqlite"])
    if compiled.error:
        raise ValueError(compiled.error)
    return str(compiled.query)
