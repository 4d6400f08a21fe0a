"""The simulated AI platform: deterministic, and every native file it writes reads cleanly with the collectors."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from aisoc.collectors.kserve import replay as replay_kserve
from aisoc.collectors.llm_gateway import replay as replay_litellm
from aisoc.collectors.mlflow import MlflowCollector, MlflowConfig
from aisoc.collectors.registry import replay
from aisoc.demo import replay_builds
from aisoc.records import Rejected
from aisoc.simulate import MARKER, Simulation, simulate
from aisoc.simulate.world import get_scale

SEED = 7


@pytest.fixture(scope="module")
def sim(tmp_path_factory: pytest.TempPathFactory) -> Simulation:
    return simulate(tmp_path_factory.mktemp("sim") / "work", "small", SEED)


def _tree(root: Path) -> dict[str, str]:
    return {p.relative_to(root).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file()}


def test_same_seed_writes_identical_files_and_another_seed_does_not(sim: Simulation, tmp_path: Path) -> None:
    again = simulate(tmp_path / "again", "small", SEED)
    assert _tree(again.work_dir) == _tree(sim.work_dir)
    other = simulate(tmp_path / "other", "small", SEED + 1)
    ours, theirs = _tree(sim.native), _tree(other.native)
    assert ours.keys() == theirs.keys()  # same platform, same layout ...
    traffic = [k for k in ours if k.startswith(("litellm/", "kserve/", "training/landing/txn/"))]
    assert traffic and all(ours[k] != theirs[k] for k in traffic)  # ... different traffic


def _replayed(items: object) -> tuple[list[dict], list[Rejected]]:
    events, rejected = [], []
    for item in items:  # type: ignore[attr-defined]
        (rejected if isinstance(item, Rejected) else events).append(item)
    return events, rejected


def test_every_native_file_parses_with_its_collector(sim: Simulation) -> None:
    config = sim.platform_config()["collectors"]
    root = sim.work_dir
    counts: dict[str, int] = {}
    for name, replayer in (("litellm", replay_litellm), ("kserve", replay_kserve)):
        files = sorted((root / config[name]["path"]).glob("*.ndjson"))
        assert len(files) == sim.scale.days
        for file in files:
            events, rejected = _replayed(replayer(file))
            assert rejected == [], (file, rejected[:3])
            counts[name] = counts.get(name, 0) + len(events)
    with MlflowCollector(MlflowConfig(**config["mlflow"]["options"])) as collector:
        events, rejected = _replayed(collector.replay(root / config["mlflow"]["path"]))
    assert rejected == []
    counts["mlflow"] = len(events)
    for name in ("training_batches", "object_access_logs"):
        events, rejected = _replayed(replay(name, root / config[name]["path"], config[name]["options"]))
        assert rejected == [], rejected[:3]
        counts[name] = len(events)
    events, rejected = _replayed(replay_builds(root / config["builds"]["path"],
                                               config["builds"]["options"]["approvals"]))
    assert rejected == [], rejected[:3]
    counts["builds"] = len(events)
    assert all(counts.values()), counts
    assert counts["litellm"] > 5000 and counts["kserve"] > 5000


def test_events_carry_the_platform_time_not_the_wall_clock(sim: Simulation) -> None:
    period = sim.platform_config()["simulation"]
    files = sorted((sim.native / "litellm").glob("*.ndjson"))
    events, _ = _replayed(replay_litellm(files[0]))
    assert all(period["start"][:10] == e["@timestamp"][:10] for e in events)
    config = sim.platform_config()["collectors"]["mlflow"]
    with MlflowCollector(MlflowConfig(**config["options"])) as collector:
        stamps = [e["@timestamp"] for e in collector.replay(sim.work_dir / config["path"]) if isinstance(e, dict)]
    assert max(stamps) < period["end"]


def test_ground_truth_is_kept_apart_from_the_telemetry(sim: Simulation) -> None:
    truth = sim.truth()
    assert {a.id for a in truth.attacks} == {"data-poisoning", "model-extraction", "evasion-probing",
                                             "tampered-artifact", "tampered-package", "unauthorized-promotion"}
    assert {"batch-scoring-job", "new-key-onboarding", "planned-promotion", "dependency-upgrade",
            "seasonal-label-shift"} <= {b.id for b in truth.benign}
    assert not sim.truth_path.is_relative_to(sim.native)
    for path in sim.native.rglob("*"):
        if path.is_file() and path.suffix in (".json", ".ndjson", ".log", ".csv"):
            text = path.read_text(encoding="utf-8").lower()
            assert "red team" not in text and "red-team" not in text and "ground_truth" not in text, path
    for attack in truth.attacks:
        assert attack.start_epoch <= attack.end_epoch and attack.matchers


def test_attack_entities_appear_in_the_native_telemetry(sim: Simulation) -> None:
    truth = {a.id: a for a in sim.truth().attacks}
    gateway = "".join(p.read_text(encoding="utf-8") for p in (sim.native / "litellm").glob("*.ndjson"))
    for matcher in truth["model-extraction"].matchers:
        assert matcher["aisoc.api_key.hash"] in gateway
    inference = "".join(p.read_text(encoding="utf-8") for p in (sim.native / "kserve").glob("*.ndjson"))
    assert truth["evasion-probing"].matchers[0]["aisoc.inference.client_id"] in inference


def test_scale_and_work_directory_are_checked(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="choose one of: small, default"):
        get_scale("huge")
    foreign = tmp_path / "mine"
    foreign.mkdir()
    (foreign / "notes.txt").write_text("keep me")
    with pytest.raises(FileExistsError, match="not made by `aisoc demo`"):
        simulate(foreign, "small", SEED)
    assert (foreign / "notes.txt").read_text() == "keep me" and not (foreign / MARKER).exists()
