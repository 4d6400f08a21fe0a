"""Collectors by name, for `aisoc collect NAME --replay PATH` and the service's pull scheduler.

Each entry replays the platform's native files into events (bad records come back as Rejected),
with the collector's own config section (`collectors.<name>` in aisoc.yml) and a cursor, so a
replay interrupted and run again continues where it stopped.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from aisoc.collectors.base import CursorStore
from aisoc.records import Rejected

Replayer = Callable[[Path, dict[str, Any], CursorStore | None], Iterator[dict[str, Any] | Rejected]]


def _litellm(path: Path, options: dict[str, Any], cursor: CursorStore | None) -> Iterator[dict[str, Any] | Rejected]:
    """Saved LiteLLM StandardLoggingPayloads (JSON array, NDJSON or one object per file)."""
    from aisoc.collectors.llm_gateway import replay

    return replay(path)


def _kserve(path: Path, options: dict[str, Any], cursor: CursorStore | None) -> Iterator[dict[str, Any] | Rejected]:
    """Structured-mode CloudEvents of the KServe/Seldon inference logger, joined in event time."""
    from aisoc.collectors.kserve import KServeConfig, replay

    return replay(path, KServeConfig(**options) if options else None)


def _batches(path: Path, options: dict[str, Any], cursor: CursorStore | None) -> Iterator[dict[str, Any] | Rejected]:
    from aisoc.collectors.training_data import BatchLandingConfig, BatchLandingSource

    return BatchLandingSource(BatchLandingConfig(**options), cursor).replay(path)


def _object_logs(path: Path, options: dict[str, Any], cursor: CursorStore | None
                 ) -> Iterator[dict[str, Any] | Rejected]:
    from aisoc.collectors.training_data import ObjectAccessConfig, ObjectAccessLogSource

    return ObjectAccessLogSource(ObjectAccessConfig(**options), cursor).replay(path)


def _json_files(path: Path) -> Iterator[tuple[Path, Any] | Rejected]:
    files = sorted(path.rglob("*.json")) if path.is_dir() else [path]
    for file in files:
        try:
            yield file, json.loads(file.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
            yield Rejected(str(file), f"cannot read JSON: {exc}", file.read_bytes()[:4096] if file.exists() else b"")


def _modelscan(path: Path, options: dict[str, Any], cursor: CursorStore | None
               ) -> Iterator[dict[str, Any] | Rejected]:
    """ModelScan JSON reports (`modelscan -r json -o report.json`), one file or a directory of them."""
    from aisoc.collectors.supply_chain import map_modelscan_report

    for item in _json_files(path):
        if isinstance(item, Rejected):
            yield item
        else:
            yield map_modelscan_report(item[1], str(item[0]), **options)


def _hub(path: Path, options: dict[str, Any], cursor: CursorStore | None) -> Iterator[dict[str, Any] | Rejected]:
    """Saved Hugging Face Hub model-info JSON; `options.revisions` maps repo id -> the revision asked for."""
    from aisoc.collectors.supply_chain import map_hub_model_info

    revisions = options.get("revisions", {})
    for item in _json_files(path):
        if isinstance(item, Rejected):
            yield item
            continue
        info = item[1]
        repo = info.get("id") if isinstance(info, dict) else None
        observed = datetime.fromtimestamp(item[0].stat().st_mtime, tz=UTC)  # when the info was saved
        yield map_hub_model_info(info, revisions.get(repo, "main"), observed_at=observed)


def _mlflow(path: Path, options: dict[str, Any], cursor: CursorStore | None) -> Iterator[dict[str, Any] | Rejected]:
    """Saved REST pages (`model-versions/search`, `registered-models/search`) and webhook deliveries."""
    from aisoc.collectors.mlflow import MlflowCollector, MlflowConfig

    settings = {"tracking_uri": "http://mlflow.invalid", **options}
    return MlflowCollector(MlflowConfig(**settings), cursor).replay(path)


def _sboms(path: Path, options: dict[str, Any], cursor: CursorStore | None) -> Iterator[dict[str, Any] | Rejected]:
    """CycloneDX SBOMs of successive builds in a directory, each diffed against the previous; `options.approvals`."""
    from aisoc.collectors.builds import SbomReplayConfig, replay_sboms

    return replay_sboms(path, approvals=SbomReplayConfig(**options).approvals)


def _environment(path: Path, options: dict[str, Any], cursor: CursorStore | None
                 ) -> Iterator[dict[str, Any] | Rejected]:
    """A directory with `pip inspect` output and the hash-pinned lock (names and site-packages in options)."""
    from aisoc.collectors.builds import EnvironmentReplayConfig, replay_environment

    return replay_environment(path, **EnvironmentReplayConfig(**options).model_dump())


def _signatures(path: Path, options: dict[str, Any], cursor: CursorStore | None
                ) -> Iterator[dict[str, Any] | Rejected]:
    """Model directories with `<model>.sig` beside them; options: `policy` (ModelSigningPolicy), `host`."""
    from aisoc.collectors.builds import SignatureReplayConfig, replay_model_signatures

    settings = SignatureReplayConfig(**options)
    return replay_model_signatures(path, settings.policy, host=settings.host)


def _builds(path: Path, options: dict[str, Any], cursor: CursorStore | None) -> Iterator[dict[str, Any] | Rejected]:
    """Build records `<build>/build.json` (see aisoc.collectors.builds.BUILD_RECORD); `options.approvals`."""
    from aisoc.collectors.builds import replay_builds

    return replay_builds(path, options.get("approvals"))


REPLAYERS: dict[str, Replayer] = {
    "mlflow": _mlflow,
    "litellm": _litellm,
    "kserve": _kserve,
    "training_batches": _batches,
    "object_access_logs": _object_logs,
    "modelscan": _modelscan,
    "huggingface": _hub,
    "sbom": _sboms,
    "pip_environment": _environment,
    "model_signatures": _signatures,
    "builds": _builds,
}


def option_models() -> dict[str, type[Any]]:
    """The settings model of each collector type that has one (`collectors.<name>.options`)."""
    from aisoc.collectors.builds import EnvironmentReplayConfig, SbomReplayConfig, SignatureReplayConfig
    from aisoc.collectors.kserve import KServeConfig
    from aisoc.collectors.mlflow import MlflowConfig
    from aisoc.collectors.training_data import BatchLandingConfig, ObjectAccessConfig

    return {"kserve": KServeConfig, "training_batches": BatchLandingConfig, "object_access_logs": ObjectAccessConfig,
            "mlflow": MlflowConfig, "sbom": SbomReplayConfig, "pip_environment": EnvironmentReplayConfig,
            "model_signatures": SignatureReplayConfig, "builds": SbomReplayConfig}


def check_options(name: str, options: dict[str, Any]) -> list[str]:
    """Problems with a collector's settings, as `key: message` lines ([] when they are valid)."""
    from pydantic import ValidationError

    if name not in REPLAYERS:
        return [f"type: unknown collector {name!r}; choose one of: {', '.join(sorted(REPLAYERS))}"]
    model = option_models().get(name)
    if model is None:
        return []
    try:
        model.model_validate({"tracking_uri": "http://mlflow.invalid", **options} if name == "mlflow" else options)
    except ValidationError as exc:
        return [f"options.{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in exc.errors()]
    return []


def replay(name: str, path: Path, options: dict[str, Any] | None = None,
           cursor: CursorStore | None = None) -> Iterator[dict[str, Any] | Rejected]:
    if name not in REPLAYERS:
        raise ValueError(f"unknown collector {name!r}; choose one of: {', '.join(sorted(REPLAYERS))}")
    return REPLAYERS[name](path, options or {}, cursor)
