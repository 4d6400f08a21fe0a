"""Local response actions on real files: quarantine list, model-signature re-attestation (real
model_signing signatures), evidence bundles from NDJSON files and the embedded event store."""

from __future__ import annotations

import json
import os
import threading
from pathlib import Path
from typing import Any

import pytest
import yaml
from fixtures.respond.signing import make_signed_model, write_ec_key

from aisoc.respond import ResponseContext, load_playbooks, respond, verify_audit_log
from aisoc.respond.actions import (
    ActionError,
    QuarantineDataSource,
    ReattestModelArtifacts,
    RunInfo,
    SnapshotEvidence,
    is_quarantined,
    load_quarantine,
    verify_bundle,
)
from aisoc.respond.audit import AuditLog

REPO = Path(__file__).resolve().parents[1]
FIXTURES = REPO / "tests" / "fixtures" / "respond"
ALERTS: dict[str, Any] = json.loads((FIXTURES / "alerts.json").read_text())
PLAYBOOKS = load_playbooks(REPO / "playbooks")


def case(name: str) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    return dict(ALERTS[name]["alert"]), list(ALERTS[name]["events"])


# ------------------------------------------------------------------------------------------ quarantine

@pytest.mark.parametrize("suffix", [".json", ".yml"])
def test_quarantine_playbook_lists_and_undo_unlists(tmp_path: Path, suffix: str) -> None:
    alert, _ = case("unapproved_data_source_batch")
    qfile = tmp_path / f"quarantine{suffix}"
    context = ResponseContext(quarantine_file=qfile, evidence_dir=tmp_path / "ev")
    playbook = PLAYBOOKS["quarantine-data-source"]
    dry = respond(alert, playbook, audit_log=tmp_path / "a.jsonl", context=context)
    assert dry.status == "planned" and not qfile.exists()
    report = respond(alert, playbook, execute=True, approved_by="ds-lead", audit_log=tmp_path / "a.jsonl",
                     context=context)
    assert report.status == "completed", report.summary()
    assert is_quarantined("scraper-cheapreviews", qfile)
    entry = load_quarantine(qfile)["sources"][0]
    assert entry["by"] == "ds-lead" and entry["dataset"] == "product-reviews" and entry["rule_id"] == alert["rule.id"]
    assert entry["reason"] == alert["rule.name"]
    parsed = yaml.safe_load(qfile.read_text()) if suffix == ".yml" else json.loads(qfile.read_text())
    assert parsed["sources"][0]["source"] == "scraper-cheapreviews"

    from aisoc.respond import undo_run

    assert undo_run(report.run_id, playbook, approved_by="ds-lead", audit_log=tmp_path / "a.jsonl",
                    context=context).status == "undone"
    assert not is_quarantined("scraper-cheapreviews", qfile)


def test_quarantine_keeps_other_entries_and_does_not_undo_what_it_did_not_add(tmp_path: Path) -> None:
    qfile = tmp_path / "q.json"
    qfile.write_text(json.dumps({"version": 1, "sources": [{"source": "already", "reason": "earlier incident"}]}))
    action = QuarantineDataSource(ResponseContext(quarantine_file=qfile), RunInfo(run_id="r1"))
    same = action.apply({"source": "already"})
    assert not same.changed
    action.undo(same)
    assert is_quarantined("already", qfile)
    new = action.apply({"source": "vendor-9", "reason": "poisoning suspected"})
    assert new.changed and is_quarantined("vendor-9", qfile) and is_quarantined("already", qfile)
    action.undo(new)
    assert [e["source"] for e in load_quarantine(qfile)["sources"]] == ["already"]
    with pytest.raises(ActionError, match="nothing to undo"):
        action.undo(new)


def test_quarantine_concurrent_writers_lose_nothing(tmp_path: Path) -> None:
    qfile = tmp_path / "q.json"
    context = ResponseContext(quarantine_file=qfile)

    def add(i: int) -> None:
        QuarantineDataSource(context, RunInfo(run_id=f"r{i}")).apply({"source": f"src-{i}"})

    threads = [threading.Thread(target=add, args=(i,)) for i in range(20)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(e["source"] for e in load_quarantine(qfile)["sources"]) == sorted(f"src-{i}" for i in range(20))
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".q.json")] == [], "no temp files left"


def test_quarantine_refuses_a_corrupt_list(tmp_path: Path) -> None:
    qfile = tmp_path / "q.yml"
    qfile.write_text("sources: &a [1]\nother: *a\n")
    with pytest.raises(ActionError, match="unreadable"):
        QuarantineDataSource(ResponseContext(quarantine_file=qfile)).plan({"source": "x"})


# ------------------------------------------------------------------------------------------- reattest

def test_reattest_passes_a_real_signature(tmp_path: Path) -> None:
    signed = make_signed_model(tmp_path)
    action = ReattestModelArtifacts(ResponseContext())
    params = {"model_path": str(signed.model), "signature_path": str(signed.signature),
              "public_key": str(signed.public_key)}
    assert action.plan(params).after == {"attested": "must verify"}
    result = action.apply(params)
    assert result.after == {"attested": "verified"} and result.details["files"] == 2


@pytest.mark.parametrize("tamper", ["modify", "add", "remove", "other-key"])
def test_reattest_fails_on_any_mismatch(tmp_path: Path, tamper: str) -> None:
    signed = make_signed_model(tmp_path)
    public = signed.public_key
    if tamper == "modify":
        (signed.model / "model.safetensors").write_bytes(b"\x00" * 10)
    elif tamper == "add":
        (signed.model / "backdoor.pkl").write_bytes(b"cos\nsystem\n")
    elif tamper == "remove":
        (signed.model / "config.json").unlink()
    else:
        _, public = write_ec_key(tmp_path, "attacker")
    action = ReattestModelArtifacts(ResponseContext())
    with pytest.raises(ActionError, match="does NOT verify"):
        action.apply({"model_path": str(signed.model), "signature_path": str(signed.signature),
                      "public_key": str(public)})


def test_reattest_playbook_from_the_alert(tmp_path: Path) -> None:
    alert, _ = case("model_artifact_hash_mismatch")  # fraud-detector version 15
    signed = make_signed_model(tmp_path / "store", name="fraud-detector", version="15")
    context = ResponseContext(evidence_dir=tmp_path / "ev", vars={"model_root": str(tmp_path / "store"),
                                                                  "signing_public_key": str(signed.public_key)})
    ok = respond(alert, PLAYBOOKS["reattest-model-artifacts"], execute=True, audit_log=tmp_path / "a.jsonl",
                 context=context)
    assert ok.status == "completed", ok.summary()
    (signed.model / "model.safetensors").write_bytes(b"swapped")
    bad = respond(alert, PLAYBOOKS["reattest-model-artifacts"], execute=True, audit_log=tmp_path / "a.jsonl",
                  context=context)
    assert bad.status == "rolled_back" and bad.steps[1].status == "failed"
    assert "does NOT verify" in bad.steps[1].error and "model.safetensors" in bad.steps[1].error


def test_hostile_model_name_cannot_walk_out_of_the_model_root(tmp_path: Path) -> None:
    alert, _ = case("model_artifact_hash_mismatch")
    alert["aisoc.model.name"] = "../../etc"
    context = ResponseContext(evidence_dir=tmp_path / "ev", vars={"model_root": str(tmp_path / "store"),
                                                                  "signing_public_key": "k.pem"})
    report = respond(alert, PLAYBOOKS["reattest-model-artifacts"], execute=True, audit_log=tmp_path / "a.jsonl",
                     context=context)
    assert report.status == "plan_failed" and "path separator" in report.message


def test_reattest_respects_allowed_roots(tmp_path: Path) -> None:
    signed = make_signed_model(tmp_path / "store")
    action = ReattestModelArtifacts(ResponseContext(allowed_roots=[tmp_path / "elsewhere"]))
    with pytest.raises(ActionError, match="outside the allowed roots"):
        action.plan({"model_path": str(signed.model), "signature_path": str(signed.signature),
                     "public_key": str(signed.public_key)})


def test_reattest_missing_signature_fails_the_plan(tmp_path: Path) -> None:
    signed = make_signed_model(tmp_path)
    with pytest.raises(ActionError, match="signature .* does not exist"):
        ReattestModelArtifacts(ResponseContext()).plan({"model_path": str(signed.model),
                                                        "signature_path": str(tmp_path / "nope.sig"),
                                                        "public_key": str(signed.public_key)})


# ------------------------------------------------------------------------------------------- evidence

def test_snapshot_from_ndjson_events_with_files_and_manifest(tmp_path: Path) -> None:
    alert, events = case("llm_repeated_prompt_injection")
    events_file = tmp_path / "events.ndjson"
    noise = [{"event.id": f"other-{i}", "message": "unrelated"} for i in range(50)]
    events_file.write_text("\n".join(json.dumps(e) for e in noise[:25] + events + noise[25:]) + "\nnot json\n")
    registry_state = tmp_path / "registry-state.json"
    registry_state.write_text('{"champion": "14"}\n')
    logs = tmp_path / "pipeline-logs"
    logs.mkdir()
    (logs / "train.log").write_text("epoch 1\n")
    (logs / "sub").mkdir()
    (logs / "sub" / "eval.log").write_text("auc 0.91\n")
    context = ResponseContext(evidence_dir=tmp_path / "evidence", events_files=[events_file],
                              vars={"evidence_files": [str(registry_state), str(logs), str(tmp_path / "gone.log")]})
    audit = tmp_path / "audit.jsonl"
    report = respond(alert, PLAYBOOKS["snapshot-evidence"], execute=True, audit_log=audit, context=context)
    assert report.status == "completed", report.summary()
    details = report.steps[0].details
    bundle = Path(details["bundle"])
    manifest = json.loads((bundle / "manifest.json").read_text())
    paths = sorted(e["path"] for e in manifest["files"])
    assert paths == ["alert.json", "events.ndjson", "files/pipeline-logs/sub/eval.log",
                     "files/pipeline-logs/train.log", "files/registry-state.json"]
    copied = [json.loads(line) for line in (bundle / "events.ndjson").read_text().splitlines()]
    assert sorted(e["event.id"] for e in copied) == sorted(alert["aisoc.alert.event_ids"])
    assert manifest["missing"] == {"event_ids": [], "files": [str(tmp_path / "gone.log")]}
    assert json.loads((bundle / "alert.json").read_text())["event.id"] == alert["event.id"]
    assert verify_bundle(bundle, details["manifest_sha256"]) == []
    step = next(r for r in AuditLog(audit).records() if r["type"] == "step")
    assert step["details"]["manifest_sha256"] == details["manifest_sha256"]

    target = bundle / "files" / "registry-state.json"
    os.chmod(target, 0o644)
    target.write_text('{"champion": "3"}\n')
    (bundle / "files" / "planted.txt").write_text("x")
    problems = verify_bundle(bundle)
    assert any("registry-state.json: sha256 mismatch" in p for p in problems)
    assert any("planted.txt: not in the manifest" in p for p in problems)


def test_snapshot_from_the_embedded_event_store(tmp_path: Path) -> None:
    from aisoc.detect.store import EventStore

    alert, events = case("api_key_request_flood")
    store = EventStore(":memory:")
    store.insert(events)
    action = SnapshotEvidence(ResponseContext(evidence_dir=tmp_path / "ev", event_store=store),
                              RunInfo(run_id="abc12345", playbook="snapshot-evidence", alert_id=alert["event.id"],
                                      alert=alert))
    result = action.apply({})
    bundle = Path(result.details["bundle"])
    copied = [json.loads(line) for line in (bundle / "events.ndjson").read_text().splitlines()]
    assert [e["event"]["id"] if "event" in e else e["event.id"] for e in copied] == alert["aisoc.alert.event_ids"]
    manifest = json.loads((bundle / "manifest.json").read_text())
    assert manifest["files"][1]["source"] == "event store" and manifest["missing"]["event_ids"] == []
    assert verify_bundle(bundle) == []
    store.close()


def test_snapshot_records_event_ids_it_could_not_find(tmp_path: Path) -> None:
    alert, _ = case("api_key_request_flood")
    result = SnapshotEvidence(ResponseContext(evidence_dir=tmp_path / "ev"), RunInfo(alert=alert)).apply({})
    manifest = json.loads((Path(result.details["bundle"]) / "manifest.json").read_text())
    assert manifest["missing"]["event_ids"] == alert["aisoc.alert.event_ids"]


def test_snapshot_refuses_required_files_that_are_missing(tmp_path: Path) -> None:
    action = SnapshotEvidence(ResponseContext(evidence_dir=tmp_path / "ev"))
    with pytest.raises(ActionError, match="missing"):
        action.plan({"files": [str(tmp_path / "nope")], "require_files": True})
    assert not (tmp_path / "ev").exists()


def test_every_run_is_in_a_valid_audit_chain(tmp_path: Path) -> None:
    alert, _ = case("unapproved_data_source_batch")
    audit = tmp_path / "audit.jsonl"
    context = ResponseContext(quarantine_file=tmp_path / "q.json", evidence_dir=tmp_path / "ev")
    for approver in (None, "a", None, "b"):
        respond(alert, PLAYBOOKS["quarantine-data-source"], execute=True, approved_by=approver, audit_log=audit,
                context=context)
    check = verify_audit_log(audit)
    assert check.ok and check.records > 10
