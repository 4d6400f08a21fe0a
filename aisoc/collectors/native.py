"""Native platform records -> events through the real collector mappings, by name.

Rule test cases can give a platform's own record instead of a hand-written ECS event
(`{native: litellm, record: {...}}`), so a change in a collector's mapping that breaks a rule
breaks that rule's test. `aisoc collect --replay` uses the same names.
"""

from __future__ import annotations

import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

from aisoc.records import Rejected

Mapper = Callable[[dict[str, Any], dict[str, Any]], list[dict[str, Any] | Rejected]]


def _litellm(record: dict[str, Any], options: dict[str, Any]) -> list[dict[str, Any] | Rejected]:
    from aisoc.collectors.llm_gateway import map_litellm_payload

    return list(map_litellm_payload(record))


def _kserve(record: dict[str, Any], options: dict[str, Any]) -> list[dict[str, Any] | Rejected]:
    """`record: {events: [structured CloudEvent, ...]}` — a request and its response, joined."""
    from aisoc.collectors.kserve import KServeConfig, RequestResponseJoiner, parse_structured

    joiner = RequestResponseJoiner(KServeConfig(**options)) if options else RequestResponseJoiner()
    out: list[dict[str, Any] | Rejected] = []
    for cloud_event in record.get("events", []):
        out.extend(parse_structured(cloud_event, joiner))
    flush = getattr(joiner, "flush", None)
    if callable(flush):
        out.extend(flush())
    return out


def _s3_access_log(record: dict[str, Any], options: dict[str, Any]) -> list[dict[str, Any] | Rejected]:
    from aisoc.collectors.training_data import ObjectAccessConfig, map_s3_access_log_line

    return [map_s3_access_log_line(record["line"], ObjectAccessConfig(**options))]


def _minio_audit(record: dict[str, Any], options: dict[str, Any]) -> list[dict[str, Any] | Rejected]:
    from aisoc.collectors.training_data import ObjectAccessConfig, map_minio_audit

    return list(map_minio_audit(record, ObjectAccessConfig(**options)))


def _modelscan(record: dict[str, Any], options: dict[str, Any]) -> list[dict[str, Any] | Rejected]:
    from aisoc.collectors.supply_chain import map_modelscan_report

    return [map_modelscan_report(record["report"], record.get("path"), observed_at=record.get("observed_at"),
                                 **options)]


def _hub(record: dict[str, Any], options: dict[str, Any]) -> list[dict[str, Any] | Rejected]:
    from aisoc.collectors.supply_chain import map_hub_model_info

    return [map_hub_model_info(record["info"], record["requested_revision"],
                               expected_hashes=record.get("expected_hashes"), observed_at=record.get("observed_at"))]


def _sbom_diff(record: dict[str, Any], options: dict[str, Any]) -> list[dict[str, Any] | Rejected]:
    from aisoc.collectors.supply_chain import diff_sboms

    return list(diff_sboms(record["old"], record["new"], approvals=options.get("approvals"),
                           observed_at=record.get("observed_at")))


def _batch(record: dict[str, Any], options: dict[str, Any]) -> list[dict[str, Any] | Rejected]:
    """`record: {file: name, content: text, manifest: {...}}` — a landed batch and its manifest."""
    import json

    from aisoc.collectors.training_data import BatchLandingConfig, BatchLandingSource

    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        (root / record["file"]).write_text(record["content"], encoding="utf-8")
        (root / f"{record['file']}.manifest.json").write_text(json.dumps(record["manifest"]), encoding="utf-8")
        return list(BatchLandingSource(BatchLandingConfig(**options)).replay(root))


MAPPERS: dict[str, Mapper] = {
    "litellm": _litellm,
    "kserve": _kserve,
    "s3_access_log": _s3_access_log,
    "minio_audit": _minio_audit,
    "modelscan": _modelscan,
    "hub_model_info": _hub,
    "sbom_diff": _sbom_diff,
    "data_batch": _batch,
}


def map_native(kind: str, record: dict[str, Any], options: dict[str, Any] | None = None) -> list[dict[str, Any]]:
    """Events for one native record; raises ValueError naming what is wrong (unknown kind, rejected record)."""
    mapper = MAPPERS.get(kind)
    if mapper is None:
        raise ValueError(f"unknown native record kind {kind!r}; known: {', '.join(sorted(MAPPERS))}")
    try:
        results = mapper(record, options or {})
    except (KeyError, TypeError) as exc:
        raise ValueError(f"{kind} record is missing {exc}") from None
    rejected = [r for r in results if isinstance(r, Rejected)]
    if rejected:
        raise ValueError(f"{kind} mapping rejected the record: {rejected[0].reason}")
    return [r for r in results if isinstance(r, dict)]
