"""The MLflow model registry, as a poller saves it: REST API 2.0 responses, one set per change.

Each time the registry changes, the poll's responses are written as
`poll-<n>-1-model-versions.json` (`model-versions/search`), `poll-<n>-2-registered-models.json`
(`registered-models/search`) and `poll-<n>-3-runs.json` (`runs/search` on the training
experiment), the shapes `MlflowCollector.replay` reads. Alias changes and tag changes bump no
registry timestamp in MLflow; the poller records when it saw them, which the saved pages carry as
`last_updated_timestamp` (so replay dates each change when it happened).

Benign: the training pipeline (`svc-train-pipeline`) retrains `txn-risk` every night at 03:00,
registers the version from its run and points the `challenger` alias at it; once, an approver
tags that day's version with a change ticket and promotes it (`champion` alias and stage
Production), archiving the previous one. Red team: `unauthorized_promotion`.
"""

from __future__ import annotations

import copy
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from aisoc.simulate.world import (
    DAY,
    EXPERIMENT_ID,
    MODEL_NAME,
    PIPELINE_IDENTITY,
    START_EPOCH,
    Scale,
    at,
    det_hex,
    stream,
)

ROGUE_IDENTITY = "dsw-notebook-17"
APPROVER = "m.rossi"


def _ms(epoch: float) -> int:
    return int(round(epoch * 1000))


@dataclass
class Registry:
    """The registry state the simulator mutates; `snapshot` writes what a poll would return."""

    created: float
    versions: dict[int, dict[str, Any]] = field(default_factory=dict)
    aliases: dict[str, int] = field(default_factory=dict)
    runs: dict[str, dict[str, Any]] = field(default_factory=dict)
    updated: float = 0.0
    polls: int = 0

    def version(self, number: int, when: float, *, run_id: str, source: str, user: str,
                tags: dict[str, str] | None = None, stage: str = "None") -> None:
        self.versions[number] = {
            "name": MODEL_NAME, "version": str(number), "creation_timestamp": _ms(when),
            "last_updated_timestamp": _ms(when), "current_stage": stage, "description": "", "source": source,
            "run_id": run_id, "status": "READY", "run_link": "", "user_id": "",
            "tags": [{"key": "mlflow.user", "value": user}] + [{"key": k, "value": v} for k, v in (tags or {}).items()],
        }
        self.updated = when

    def tag(self, number: int, when: float, key: str, value: str) -> None:
        entry = self.versions[number]
        entry["tags"] = [t for t in entry["tags"] if t["key"] != key] + [{"key": key, "value": value}]
        entry["last_updated_timestamp"] = _ms(when)

    def stage(self, number: int, when: float, stage: str) -> None:
        self.versions[number]["current_stage"] = stage
        self.versions[number]["last_updated_timestamp"] = _ms(when)

    def alias(self, name: str, number: int, when: float) -> None:
        self.aliases[name] = number
        self.updated = when

    def run(self, run_id: str, start: float, user: str, status: str = "RUNNING", end: float | None = None) -> None:
        self.runs[run_id] = {
            "info": {"run_id": run_id, "run_uuid": run_id, "run_name": f"nightly-{run_id[:6]}",
                     "experiment_id": EXPERIMENT_ID, "user_id": user, "status": status,
                     "start_time": _ms(start), "end_time": _ms(end) if end else None,
                     "artifact_uri": f"mlflow-artifacts:/{EXPERIMENT_ID}/{run_id}/artifacts",
                     "lifecycle_stage": "active"},
            "data": {"tags": [{"key": "mlflow.user", "value": user},
                              {"key": "aisoc.pipeline.name", "value": "txn-risk-nightly"}],
                     "metrics": [], "params": []},
        }

    def snapshot(self, out: Path, when: float) -> None:
        """Write one poll's three responses."""
        self.polls += 1
        prefix = out / f"poll-{self.polls:04d}"
        versions = [copy.deepcopy(self.versions[n]) for n in sorted(self.versions)]
        latest = versions[-1:]
        model = {"name": MODEL_NAME, "creation_timestamp": _ms(self.created),
                 "last_updated_timestamp": _ms(max(self.updated, self.created)),
                 "latest_versions": latest, "aliases": [{"alias": a, "version": str(v)}
                                                        for a, v in sorted(self.aliases.items())]}
        runs = [copy.deepcopy(r) for _, r in sorted(self.runs.items(), key=lambda kv: kv[1]["info"]["start_time"])]
        for suffix, body in (("1-model-versions", {"model_versions": versions, "next_page_token": ""}),
                             ("2-registered-models", {"registered_models": [model]}),
                             ("3-runs", {"runs": runs, "next_page_token": ""})):
            Path(f"{prefix}-{suffix}.json").write_text(json.dumps(body, indent=1, sort_keys=True), encoding="utf-8")


@dataclass
class Timeline:
    """Which model version each KServe predictor serves when (champion -> default, challenger -> canary)."""

    champion: list[tuple[float, str]]
    challenger: list[tuple[float, str]]

    def version_at(self, when: float, endpoint: str) -> str:
        changes = self.champion if endpoint == "default" else self.challenger
        current = changes[0][1]
        for since, version in changes:
            if since <= when:
                current = version
        return current


@dataclass
class PromotionFacts:
    """The planned (benign) and the rogue promotion, for the ground truth and the build's SBOM."""

    planned_version: int = 0
    planned_at: float = 0.0
    planned_day: int = 0
    planned_ticket: str = ""
    rogue_version: int = 0
    rogue_registered: float = 0.0
    rogue_promoted: float = 0.0


def promotion_day(scale: Scale) -> int:
    return max(0, scale.days - 3)


def generate(out: Path, scale: Scale, seed: int) -> tuple[Timeline, PromotionFacts]:
    """Write the registry polls of the whole simulation; returns who served what and the promotion facts."""
    out.mkdir(parents=True, exist_ok=True)
    rng = stream(seed, "mlflow")
    reg = Registry(created=START_EPOCH - 40 * DAY)
    run_5, run_6 = det_hex(rng, 32), det_hex(rng, 32)
    reg.version(5, START_EPOCH - 9 * DAY, run_id=run_5, source=f"runs:/{run_5}/model", user=PIPELINE_IDENTITY,
                tags={"aisoc.change.ticket": "CHG-4977"}, stage="Archived")
    reg.version(6, START_EPOCH - 5 * DAY, run_id=run_6, source=f"runs:/{run_6}/model", user=PIPELINE_IDENTITY,
                tags={"aisoc.change.ticket": "CHG-5031", "aisoc.change.approver": APPROVER}, stage="Production")
    reg.alias("champion", 6, START_EPOCH - 5 * DAY + 3600)
    reg.alias("challenger", 6, START_EPOCH - 5 * DAY + 3600)
    reg.snapshot(out, START_EPOCH)
    champion = [(START_EPOCH - DAY, "6")]
    challenger = [(START_EPOCH - DAY, "6")]
    planned_day = promotion_day(scale)
    facts = PromotionFacts()
    for day in range(scale.days):
        number = 7 + day
        run_id = det_hex(rng, 32)
        reg.run(run_id, at(day, 3), PIPELINE_IDENTITY)
        reg.snapshot(out, at(day, 3))
        reg.run(run_id, at(day, 3), PIPELINE_IDENTITY, status="FINISHED", end=at(day, 3.66))
        reg.version(number, at(day, 3.75), run_id=run_id, source=f"runs:/{run_id}/model", user=PIPELINE_IDENTITY)
        reg.snapshot(out, at(day, 3.75))
        reg.alias("challenger", number, at(day, 3.83))
        reg.snapshot(out, at(day, 3.83))
        challenger.append((at(day, 3.83), str(number)))
        if day == planned_day:
            ticket = f"CHG-{5100 + day}"
            reg.tag(number, at(day, 11), "aisoc.change.ticket", ticket)
            reg.tag(number, at(day, 11), "aisoc.change.approver", APPROVER)
            reg.snapshot(out, at(day, 11))
            previous = reg.aliases["champion"]
            reg.alias("champion", number, at(day, 11.08))
            reg.stage(number, at(day, 11.08), "Production")
            reg.stage(previous, at(day, 11.08), "Archived")
            reg.snapshot(out, at(day, 11.08))
            champion.append((at(day, 11.08), str(number)))
            facts.planned_version, facts.planned_at, facts.planned_day = number, at(day, 11), day
            facts.planned_ticket = ticket
    rogue = 7 + scale.days
    day = scale.days - 1
    reg.version(rogue, at(day, 18.5), run_id="", source="s3://ml-scratch/hotfix/txn-risk/model.pkl",
                user=ROGUE_IDENTITY)
    reg.snapshot(out, at(day, 18.5))
    previous = reg.aliases["champion"]
    reg.alias("champion", rogue, at(day, 18.92))
    reg.stage(rogue, at(day, 18.92), "Production")
    reg.stage(previous, at(day, 18.92), "Archived")
    reg.snapshot(out, at(day, 18.92))
    champion.append((at(day, 18.92), str(rogue)))
    facts.rogue_version, facts.rogue_registered, facts.rogue_promoted = rogue, at(day, 18.5), at(day, 18.92)
    return Timeline(champion, challenger), facts
