"""A seeded simulation of a small AI platform, writing the platforms' own (native) telemetry.

    from aisoc.simulate import simulate
    sim = simulate(Path("work"), scale="small", seed=7)   # -> Simulation

The platform: an LLM gateway (LiteLLM) with a few dozen API keys, the `txn-risk` classifier on
KServe with a shadow canary, its MLflow registry fed by a nightly training pipeline, the
`txn-train` training-data landing zone and its S3 bucket, and the build environment of the serving
image. A few simulated days of benign activity (including the benign edge cases the rules'
look-alikes describe) are followed by a red-team run of the attacks in the AI-SOC article: slow
data poisoning, model extraction through the API, evasion probing, a tampered artifact, a tampered
package and an unauthorized model promotion.

Layout of the work directory:

    native/            the telemetry, in each platform's own format (what the collectors replay)
    platform.json      the collector configuration an operator would write (aisoc.yml's part)
    ground_truth.json  what the red team did and the staged edge cases - for scoring only

Everything is a function of (seed, scale): two runs write identical files.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from aisoc.simulate import data, kserve, llm, mlflow, supply_chain
from aisoc.simulate.truth import Activity, GroundTruth
from aisoc.simulate.world import (
    DATASET,
    DAY,
    EMBEDDINGS_REPO,
    EXPERIMENT_ID,
    HOUR,
    INGEST_ROLE,
    KSERVE_SERVICE,
    LANDING_BUCKET,
    LANDING_PREFIX,
    MODEL_NAME,
    PIPELINE_IDENTITY,
    SCALES,
    Scale,
    at,
    day_name,
    get_scale,
    iso,
)

__all__ = ["MARKER", "SCALES", "Scale", "Simulation", "simulate"]

MARKER = ".aisoc-demo-workdir"
Progress = Callable[[str, int, int], None]


@dataclass
class Simulation:
    """Where a simulation wrote its files."""

    work_dir: Path
    native: Path
    platform: Path
    truth_path: Path
    scale: Scale
    seed: int
    files: int
    bytes: int

    def truth(self) -> GroundTruth:
        return GroundTruth.read(self.truth_path)

    def platform_config(self) -> dict[str, Any]:
        return json.loads(self.platform.read_text(encoding="utf-8"))


def _prepare(work_dir: Path) -> Path:
    """Empty the simulation's own outputs in `work_dir` (refusing a non-empty directory that is not ours)."""
    work_dir.mkdir(parents=True, exist_ok=True)
    marker = work_dir / MARKER
    if any(work_dir.iterdir()) and not marker.exists():
        raise FileExistsError(f"{work_dir} is not empty and was not made by `aisoc demo`; choose another directory")
    marker.write_text("made by aisoc demo; its native/, platform.json and ground_truth.json are rewritten\n",
                      encoding="utf-8")
    native = work_dir / "native"
    if native.exists():
        shutil.rmtree(native)
    native.mkdir()
    return native


def simulate(work_dir: Path, scale: str | Scale = "default", seed: int = 7, *, red_team: bool = True,
             progress: Progress | None = None) -> Simulation:
    """Write the native telemetry, the platform configuration and the ground truth into `work_dir`."""
    scale = get_scale(scale)
    if scale.days < 3:
        raise ValueError("a simulation needs at least 3 days (baselines, then the red-team run)")
    report = progress or (lambda _step, _done, _total: None)
    native = _prepare(Path(work_dir))
    steps = scale.days * 2 + 3
    done = 0

    def step(name: str) -> None:
        nonlocal done
        done += 1
        report(name, done, steps)

    timeline, promotion = mlflow.generate(native / "mlflow", scale, seed)
    step("model registry")
    attack_day = scale.days - 2
    keys = llm.roster(scale, seed)
    extraction: dict[str, Any] = {}
    evasion: dict[str, Any] = {}
    (native / "litellm").mkdir()
    (native / "kserve").mkdir()
    for day in range(scale.days):
        records = llm.benign_day(keys, scale, seed, day)
        if red_team and day == attack_day:
            attack, extraction = llm.extraction_campaign(keys, seed, day)
            records = sorted(records + attack, key=lambda item: item[0])
        with open(native / "litellm" / f"spend-logs-{day_name(day)}.ndjson", "w", encoding="utf-8") as fh:
            fh.writelines(json.dumps(p, separators=(",", ":")) + "\n" for _, p in records)
        step(f"LLM gateway, day {day + 1}")
        lines = kserve.benign_day(scale, seed, day, timeline.version_at)
        if red_team and day == attack_day:
            attack_lines, evasion = kserve.evasion_campaign(seed, day, timeline.version_at)
            lines = sorted(lines + attack_lines, key=lambda item: item[0])
        with open(native / "kserve" / f"inference-logger-{day_name(day)}.ndjson", "w", encoding="utf-8") as fh:
            fh.writelines(line + "\n" for _, line in lines)
        step(f"KServe inference logger, day {day + 1}")
    landing = data.generate(native / "training", scale, seed, red_team=red_team)
    data.write_access_log(landing, native / "object_store")
    step("training data")
    tickets = _tickets(promotion)
    builds = supply_chain.generate(native / "supply_chain" / "builds", scale, seed,
                                   lambda when: timeline.version_at(when, "default"),
                                   lambda version: tickets.get(version), red_team=red_team)
    step("build environment")

    platform = Path(work_dir) / "platform.json"
    platform.write_text(json.dumps(platform_config(scale, seed), indent=2, sort_keys=True) + "\n", encoding="utf-8")
    truth = ground_truth(scale, seed, keys, landing, promotion, builds, extraction, evasion, red_team)
    truth_path = Path(work_dir) / "ground_truth.json"
    truth.write(truth_path)
    files = [p for p in native.rglob("*") if p.is_file()]
    return Simulation(Path(work_dir), native, platform, truth_path, scale, seed, len(files),
                      sum(p.stat().st_size for p in files))


def _tickets(promotion: mlflow.PromotionFacts) -> dict[str, str]:
    """Change tickets of the versions that were promoted with one (what the build copies into the SBOM)."""
    tickets = {"6": "CHG-5031"}
    if promotion.planned_version:
        tickets[str(promotion.planned_version)] = promotion.planned_ticket
    return tickets


def platform_config(scale: Scale, seed: int) -> dict[str, Any]:
    """The collector configuration of the simulated platform (what its operator puts in aisoc.yml)."""
    return {
        "simulation": {"seed": seed, "scale": scale.name, "start": iso(at(0)), "end": iso(at(scale.days))},
        "collectors": {
            "litellm": {"path": "native/litellm"},
            "kserve": {"path": "native/kserve", "options": {}},
            "mlflow": {"path": "native/mlflow", "options": {
                "tracking_uri": "https://mlflow.internal", "pipeline_identities": [PIPELINE_IDENTITY],
                "watched_experiments": {EXPERIMENT_ID: MODEL_NAME}}},
            "training_batches": {"path": "native/training/landing", "options": {
                "approved_sources": {DATASET: ["core-banking", "card-processor", "chargeback-feed"]},
                "pipeline": "txn-ingest"}},
            "object_access_logs": {"path": "native/object_store", "options": {
                "ingestion_paths": [{"prefix": f"{LANDING_BUCKET}/{LANDING_PREFIX}",
                                     "identities": [INGEST_ROLE.rsplit("/", 1)[0] + "/*"]}]}},
            "builds": {"path": "native/supply_chain/builds", "options": {
                "approvals": dict(supply_chain.UNLOCKED_APPROVALS)}},
        },
        "datasets": [{"dataset": DATASET, "label_field": "label", "segment_fields": ["region"],
                      "feature_fields": ["merchant_category", "channel"],
                      "ignore_fields": ["row_id", "loaded_at", "event_time"]}],
    }


def ground_truth(scale: Scale, seed: int, keys: list[llm.ApiKey], landing: data.Landing,
                 promotion: mlflow.PromotionFacts, builds: dict[str, Any], extraction: dict[str, Any],
                 evasion: dict[str, Any], red_team: bool) -> GroundTruth:
    """The attack manifest and the benign edge cases, with what identifies their events."""
    start, end = at(0), at(scale.days)
    by_alias = {k.alias: k for k in keys}
    acts: list[Activity] = []
    if red_team:
        facts = landing.facts
        acts += [
            Activity("data-poisoning", "attack", "Slow data poisoning", data.POISONING_STORY,
                     iso(facts["start"]), iso(facts["end"]),
                     [{"aisoc.data.batch.id": facts["tampered_batch"]}, {"aisoc.data.batch.id": facts["vendor_batch"]},
                      {"user.name": data.ATTACKER_IDENTITY}, {"aisoc.data.source": data.VENDOR},
                      {"aisoc.signal.name": "source_mix_shift", "aisoc.data.dataset": DATASET}],
                     "data", grace_seconds=DAY + HOUR, atlas=["AML.T0020", "AML.T0010.002"],
                     steps=[f"{iso(facts['start'])} the card processor's batch {facts['tampered_batch']} lands",
                            f"{iso(facts['tamper_at'])} the attacker appends poisoned rows to it",
                            f"{iso(facts['end'])} batch {facts['vendor_batch']} from unapproved source {data.VENDOR}"]),
            Activity("model-extraction", "attack", "Model extraction through the LLM API",
                     f"A fresh trial key ({extraction['fresh_key'].alias}) fires ~420 templated sentiment-labelling "
                     "calls in 12 minutes, each asking for the top-5 logprobs of a one-token answer (a distillation "
                     "data set); then the stolen reporting-etl service key runs 720 templated translations with long "
                     "outputs in an hour, from the same address.",
                     iso(extraction["start"]), iso(extraction["end"]),
                     [{"aisoc.api_key.hash": extraction["fresh_key"].hash},
                      {"aisoc.api_key.hash": extraction["stolen_key"].hash}],
                     "inference", grace_seconds=HOUR + 300, atlas=["AML.T0024.002", "AML.T0040"],
                     steps=[f"new key {extraction['fresh_key'].alias}: ~420 templated calls with top-5 logprobs",
                            "stolen key reporting-etl: 720 templated long generations"]),
            Activity("evasion-probing", "attack", "Evasion probing of the txn-risk classifier",
                     f"A partner account ({kserve.ATTACKER_CLIENT}) searches for the smallest change that flips "
                     "transactions the model flags as fraud to legitimate: walks from the fraud record through the "
                     "point where every class is equally likely and bisections towards the boundary, then "
                     "sub-rounding nudges of three boundary points, reading how the confidence moves.",
                     iso(evasion["start"]), iso(evasion["end"]),
                     [{"aisoc.inference.client_id": kserve.ATTACKER_CLIENT},
                      {"aisoc.signal.name": "canary_disagreement_rate", "aisoc.inference.service": KSERVE_SERVICE}],
                     "inference", grace_seconds=HOUR + 300, atlas=["AML.T0043", "AML.T0015"],
                     steps=[f"client {kserve.ATTACKER_CLIENT}: boundary walks, then sub-rounding refinements"]),
            Activity("tampered-artifact", "attack", "Backdoored pretrained model from a compromised hub repo",
                     f"From the {day_name(scale.days - 2)} night build on, {EMBEDDINGS_REPO} is pulled at the "
                     "movable revision `main`, where a compromised maintainer account pushed weights whose pickle "
                     "runs posix.system on load; the SBOM shows the model's hash changed at the same version.",
                     iso(builds["artifact_start"]), iso(end),
                     [{"aisoc.supply_chain.hub.repo_id": EMBEDDINGS_REPO}, {"package.name": EMBEDDINGS_REPO},
                      {"aisoc.model.name": EMBEDDINGS_REPO}],
                     "supply_chain", grace_seconds=HOUR, atlas=["AML.T0010.003", "AML.T0011.000"],
                     steps=[f"{iso(builds['artifact_start'])} build pulls {EMBEDDINGS_REPO}@main (trojaned)"]),
            Activity("tampered-package", "attack", "Tampered Python package in the serving image",
                     "A hotfix build installs a tokenizers 0.20.3 wheel that is not the one the lock pins, from a "
                     "poisoned package mirror, and its files differ from its RECORD; the SBOM shows the library's "
                     "hash changed at the same version.",
                     iso(builds["package_start"]), iso(end), [{"package.name": supply_chain.TAMPERED_PACKAGE}],
                     "supply_chain", grace_seconds=HOUR, atlas=["AML.T0010.001"],
                     steps=[f"{iso(builds['package_start'])} hotfix build installs a tampered tokenizers wheel"]),
            Activity("unauthorized-promotion", "attack", "Unauthorized model promotion",
                     f"A compromised notebook identity ({mlflow.ROGUE_IDENTITY}) registers {MODEL_NAME} version "
                     f"{promotion.rogue_version} from a scratch bucket, with no training run, and 25 minutes later "
                     "points the champion alias at it and moves it to Production, with no change ticket; the "
                     "night build bakes it into the serving image.",
                     iso(promotion.rogue_registered), iso(promotion.rogue_promoted),
                     [{"aisoc.model.name": MODEL_NAME, "aisoc.model.version": str(promotion.rogue_version)},
                      {"user.name": mlflow.ROGUE_IDENTITY}],
                     "model", grace_seconds=2 * HOUR, atlas=["AML.T0018", "AML.T0010.003"],
                     steps=[f"{iso(promotion.rogue_registered)} version {promotion.rogue_version} registered",
                            f"{iso(promotion.rogue_promoted)} champion alias and Production stage moved"]),
        ]
    edges = llm.edge_times(scale)
    onboarding = by_alias["claims-assistant"]
    upgrade = builds.get("upgrade_build")
    acts += [
        Activity("batch-scoring-job", "benign", "Nightly batch-scoring job: high volume, diverse inputs",
                 "An LLM key sends one request every 2.3 s for hours each night (just under the request-rate "
                 "threshold), every prompt a different catalogue listing.", iso(start), iso(end),
                 [{"aisoc.api_key.hash": by_alias["batch-scoring"].hash}], "inference"),
        Activity("new-key-onboarding", "benign", "Newly onboarded API key with modest use",
                 "A new team's key, first seen on the last days, ramps up to about 30 calls an hour.",
                 iso(edges.onboarding_start), iso(end), [{"aisoc.api_key.hash": onboarding.hash}], "inference"),
        Activity("planned-promotion", "benign", "Planned model promotion by an approver",
                 f"An approver tags {MODEL_NAME} version {promotion.planned_version} with a change ticket and "
                 "promotes it (champion alias, Production stage); the night build ships it with the ticket.",
                 iso(promotion.planned_at), iso(at(promotion.planned_day, 20)),
                 [{"aisoc.model.name": MODEL_NAME, "aisoc.model.version": str(promotion.planned_version)}], "model"),
        Activity("dependency-upgrade", "benign", "Reviewed dependency upgrade in lock and SBOM",
                 f"numpy {supply_chain.PACKAGES[0][1]} -> {supply_chain.UPGRADE[1]}, pinned with its hash in the "
                 "lock before the build that installs it.",
                 iso(upgrade[1] if upgrade else start), iso((upgrade[1] if upgrade else start) + HOUR),
                 [{"package.name": "numpy"}], "supply_chain"),
        Activity("seasonal-label-shift", "benign", "Small seasonal label shift",
                 "From the second-to-last day the fraud share of every source rises from 10% to 15%.",
                 iso(at(data.seasonal_day(scale))), iso(end),
                 [{"aisoc.data.batch.id": b} for b in landing.batch_ids.get("seasonal", [])], "data",
                 grace_seconds=DAY),
        Activity("calibration-logprobs", "benign", "Evaluation harness reading top-2 logprobs on half its calls",
                 "A calibration job asks for logprobs on about half of its calls, two alternatives each.",
                 iso(start), iso(end), [{"aisoc.api_key.hash": by_alias["eval-harness"].hash}], "inference"),
        Activity("developer-logprobs", "benign", "Developer trying wide logprobs on a dozen calls",
                 "Twelve calls with top_logprobs=10 from a developer's key in one afternoon.",
                 iso(at(edges.dev_logprobs_day)), iso(at(edges.dev_logprobs_day + 1)),
                 [{"aisoc.api_key.hash": by_alias["dev-laptop"].hash}], "inference"),
        Activity("fiction-writer", "benign", "Fiction writer tripping the jailbreak guardrail three times",
                 "Three blocked heist scenes in one afternoon.", iso(at(edges.writer_day)),
                 iso(at(edges.writer_day + 1)), [{"aisoc.api_key.hash": by_alias["story-writer"].hash}], "inference"),
    ]
    acts += [Activity(f"client-{name}", "benign", description[0].upper() + description[1:],
                      f"KServe client id {name}.", iso(start), iso(end),
                      [{"aisoc.inference.client_id": name}], "inference")
             for name, description in kserve.EDGE_CLIENTS.items()]
    acts += [
        Activity("scientist-reads", "benign", "Data scientist reading and listing the landing prefix",
                 "GET and list requests on the ingestion path by a person (reads, not writes).", iso(start),
                 iso(end), [{"user.name": data.SCIENTIST}], "data"),
        Activity("retention-expiry", "benign", "Ingestion role expiring old batches",
                 "The pipeline's retention job deletes a dozen old objects every morning.", iso(start), iso(end),
                 [{"user.name": f"{INGEST_ROLE}-expiry"}], "data"),
        Activity("scratch-writes", "benign", "Engineer writing to a scratch prefix outside the ingestion path",
                 "A person uploads samples under scratch/ in the landing bucket.", iso(start), iso(end),
                 [{"user.name": data.ENGINEER}], "data"),
    ]
    return GroundTruth(seed=seed, scale=scale.name, start=iso(start), end=iso(end), activities=acts)
