"""Native records -> events through the real collector mappings (`aisoc.collectors.native`).

Every kind maps one record taken from (or built like) the collector's own fixtures, and the key
fields the rules match on are checked. The last tests prove the point of native test cases: a
collector mapping that stops emitting a field a rule needs makes that rule's own tests fail.
"""

from __future__ import annotations

import base64
import copy
import hashlib
import json
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from aisoc.collectors.native import MAPPERS, map_native
from aisoc.detect.ruletest import test_rule_sqlite as run_rule_tests
from aisoc.rules.loader import load_rules

ROOT = Path(__file__).resolve().parents[1]
FIXTURES = ROOT / "tests" / "fixtures"


def mapped(kind: str, record: dict[str, Any], options: dict[str, Any] | None = None) -> list[dict[str, Any]]:
    events = map_native(kind, record, options)
    assert events and all(isinstance(e, dict) for e in events)
    for event in events:
        assert event["event.id"] and event["@timestamp"] and event["event.module"] == "aisoc"
    return events


def one(kind: str, record: dict[str, Any], options: dict[str, Any] | None = None) -> dict[str, Any]:
    events = mapped(kind, record, options)
    assert len(events) == 1, events
    return events[0]


def ndjson(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


# ---- inference -----------------------------------------------------------------------------------


def test_litellm_payload_maps_the_guardrail_decision() -> None:
    payload = ndjson(FIXTURES / "llm_gateway" / "guardrail_attacks.ndjson")[0]
    keys = json.loads((FIXTURES / "llm_gateway" / "keys.json").read_text())
    event = one("litellm", payload)
    assert event["event.action"] == "llm-request" and event["event.provider"] == "litellm"
    assert event["event.outcome"] == "failure" and "denied" in event["event.type"]
    assert event["aisoc.llm.guardrail.outcome"] == "blocked"
    assert event["aisoc.llm.guardrail.name"] == "prompt-injection-filter"
    assert event["aisoc.llm.guardrail.mode"] == "pre_call"
    assert event["aisoc.api_key.hash"] == keys["redteam-x"] and event["aisoc.api_key.alias"] == "redteam-x"
    assert event["gen_ai.request.model"] == "gpt-4o-mini" and event["source.ip"] == "198.51.100.23"
    assert event["@timestamp"] == "2026-01-01T11:00:00.000Z"


def test_openai_exchange_maps_a_refused_model() -> None:
    key_hash = hashlib.sha256(b"sk-partner-5eed").hexdigest()
    event = one("openai_exchange", {
        "request": {"model": "m-alpha", "messages": [{"role": "user", "content": "Say OK."}], "max_tokens": 1},
        "response": {"error": {"message": "The model `m-alpha` does not exist or you do not have access to it.",
                               "type": "invalid_request_error", "param": None, "code": "model_not_found"}},
        "meta": {"timestamp": "2026-01-01T10:00:00Z", "status_code": 404, "request_id": "req-1",
                 "api_key_hash": key_hash, "source_ip": "198.51.100.140"}},
        {"provider": "envoy_ai_gateway"})
    assert event["event.action"] == "llm-request" and event["event.provider"] == "envoy_ai_gateway"
    assert event["event.outcome"] == "failure" and event["gen_ai.request.model"] == "m-alpha"
    assert event["aisoc.api_key.hash"] == key_hash and event["http.response.status_code"] == 404
    assert event["error.type"] == "invalid_request_error"


def test_kserve_request_and_response_are_joined() -> None:
    cloud_events = ndjson(FIXTURES / "kserve" / "structured_events.ndjson")[:2]
    event = one("kserve", {"events": cloud_events})
    assert event["event.action"] == "inference-request" and event["event.outcome"] == "success"
    assert event["aisoc.inference.service"] == "sklearn-iris" and event["aisoc.inference.client_id"] == "notebook-17"
    assert event["aisoc.inference.predicted_class"] == "1" and event["event.duration"] == 6_000_000
    alone = one("kserve", {"events": cloud_events[:1]})  # a request whose response never came is flushed
    assert alone["event.outcome"] == "unknown"
    late = {**cloud_events[1], "time": "2026-01-01T13:10:00Z"}  # ten minutes later, past the 300 s TTL
    apart = map_native("kserve", {"events": [cloud_events[0], late]})
    assert [e["event.outcome"] for e in apart] == ["unknown", "success"]  # the TTL runs in CloudEvent time
    assert "request-not-logged" in apart[1]["tags"]


# ---- data ----------------------------------------------------------------------------------------

ACCESS = {"ingestion_paths": ["s3://training-landing/txn/", "training-landing/reviews/"],
          "pipeline_identities": ["arn:aws:sts::123456789012:assumed-role/svc-ingest/*", "svc-ingest"]}


def test_s3_access_log_line_maps_a_foreign_write_to_the_ingestion_path() -> None:
    lines = (FIXTURES / "training_data" / "s3_access.log").read_text().splitlines()
    event = one("s3_access_log", {"line": lines[1]}, ACCESS)
    assert event["event.action"] == "object-accessed" and event["aisoc.data.storage.operation"] == "write"
    assert event["aisoc.data.storage.ingestion_path"] is True and event["aisoc.pipeline.identity_approved"] is False
    assert event["user.name"] == "arn:aws:iam::123456789012:user/jdoe"
    assert event["file.path"] == "txn/2026/01/01/extra.parquet" and event["cloud.provider"] == "aws"
    pipeline = one("s3_access_log", {"line": lines[0]}, ACCESS)
    assert pipeline["aisoc.pipeline.identity_approved"] is True


def test_minio_multi_delete_maps_one_event_per_object() -> None:
    record = ndjson(FIXTURES / "training_data" / "minio_audit.jsonl")[2]
    events = mapped("minio_audit", record, ACCESS)
    assert [e["file.path"] for e in events] == ["reviews/2026/01/01/r-7.jsonl", "reviews/2026/01/01/r-8.jsonl"]
    assert {e["aisoc.data.storage.operation"] for e in events} == {"delete"}
    assert {e["user.name"] for e in events} == {"contractor-7"}
    assert {e["aisoc.pipeline.identity_approved"] for e in events} == {False}


def test_data_batch_compares_rows_hash_and_source() -> None:
    original = "txn_id,amount,label\nt1,12.5,legit\nt2,310.0,fraud\n"
    landed = original + "t9,4999.0,legit\n"
    manifest = {"batch_id": "b-771", "dataset": "txn", "source": "scraper-x", "rows": 2,
                "sha256": hashlib.sha256(original.encode()).hexdigest(), "landed_by": "svc-ingest",
                "landed_at": "2026-01-01T02:00:00Z"}
    event = one("data_batch", {"file": "b-771.csv", "content": landed, "manifest": manifest},
                {"approved_sources": {"txn": ["vendor-a"]}})
    assert event["event.action"] == "data-batch-landed" and event["@timestamp"] == "2026-01-01T02:00:00.000Z"
    assert event["aisoc.data.hash_match"] is False and event["event.outcome"] == "failure"
    assert (event["aisoc.data.batch.rows"], event["aisoc.data.manifest.rows"]) == (3, 2)
    assert event["aisoc.data.source_approved"] is False and event["user.name"] == "svc-ingest"
    alone = one("data_batch", {"file": "sandbox-data/s-1.csv", "content": original, "mtime": "2026-01-01T03:00:00Z"})
    assert alone["aisoc.data.dataset"] == "sandbox-data" and "aisoc.data.hash_match" not in alone
    assert alone["@timestamp"] == "2026-01-01T03:00:00.000Z"


# ---- model ---------------------------------------------------------------------------------------


def test_mlflow_replay_of_pages_and_deliveries_shares_one_snapshot() -> None:
    replay = FIXTURES / "mlflow" / "replay"
    deliveries = [json.loads(line) for line in (replay / "03_webhook_deliveries.ndjson").read_text().splitlines()[:2]]
    events = mapped("mlflow", {"records": [json.loads((replay / "01_model_versions_page.json").read_text()),
                                           json.loads((replay / "02_registered_models_page.json").read_text()),
                                           *deliveries]}, {"pipeline_identities": ["svc-train-pipeline"]})
    by = {(e["event.action"], e["aisoc.model.name"], e["aisoc.model.version"]): e for e in events}
    hand = by[("model-version-registered", "credit-risk", "31")]
    assert hand["aisoc.model.lineage.present"] is False and "aisoc.model.lineage.run_id" not in hand
    assert by[("model-version-registered", "credit-risk", "30")]["aisoc.pipeline.identity_approved"] is True
    prod = by[("model-alias-changed", "credit-risk", "31")]
    assert prod["aisoc.model.alias"] == "prod" and prod["aisoc.model.lineage.present"] is False
    assert prod["aisoc.pipeline.identity_approved"] is False and prod["@timestamp"] == "2026-01-01T00:30:00.000Z"
    champion = by[("model-alias-changed", "vendor-ocr", "4")]  # approval known from the earlier delivery
    assert champion["aisoc.change.approved"] is True and champion["aisoc.change.ticket"] == "CHG-21004"


def _version(version: str, run_id: str, **extra: Any) -> dict[str, Any]:
    return {"name": "fraud-detector", "version": version, "creation_timestamp": 1767225600000,
            "last_updated_timestamp": 1767225600000, "current_stage": "None", "source": f"runs:/{run_id}/model",
            "run_id": run_id, "status": "READY",
            "tags": [{"key": "mlflow.user", "value": "svc-train-pipeline"}]} | extra


def test_mlflow_poll_resolves_lineage_and_verifies_artifacts() -> None:
    run = {"info": {"run_id": "r15", "experiment_id": "12", "user_id": "svc-train-pipeline", "status": "FINISHED",
                    "start_time": 1767220000000, "lifecycle_stage": "active"}, "data": {"tags": []}}
    first = {"registered_models": [{"name": "fraud-detector", "creation_timestamp": 1767000000000,
                                    "last_updated_timestamp": 1767225600000,
                                    "aliases": [{"alias": "champion", "version": "15"}]}],
             "model_versions": [_version("15", "r15"), _version("16", "0badc0de", source="s3://scratch/tmp/m3.pkl")],
             "runs": [run],
             "artifacts": {"r15": {"model/MLmodel": "flavors: {}\n",
                                   "model/model.pkl": {"base64": base64.b64encode(b"\x80\x04weights").decode()}}}}
    second = copy.deepcopy(first)
    second["artifacts"]["r15"]["model/model.pkl"] = {"base64": base64.b64encode(b"\x80\x04backdoor").decode()}
    events = mapped("mlflow_poll", {"polls": [first, second]}, {"pipeline_identities": ["svc-train-pipeline"]})
    registered = {e["aisoc.model.version"]: e for e in events if e["event.action"] == "model-version-registered"}
    assert registered["15"]["aisoc.model.lineage.present"] is True
    assert registered["16"]["aisoc.model.lineage.present"] is False  # runs/get answered 404: a dangling run
    [verified] = [e for e in events if e["event.action"] == "model-artifact-verified"]
    assert verified["aisoc.model.artifact.hash_match"] is False and verified["file.path"] == "model/model.pkl"
    assert verified["aisoc.model.artifact.sha256"] == hashlib.sha256(b"\x80\x04backdoor").hexdigest()
    assert verified["aisoc.model.artifact.expected_sha256"] == hashlib.sha256(b"\x80\x04weights").hexdigest()


# ---- supply chain --------------------------------------------------------------------------------

MODELSCAN_REPORT = {  # `modelscan -p model.pkl -r json` (0.8.8) on a pickle that calls os.system
    "summary": {"total_issues_by_severity": {"LOW": 0, "MEDIUM": 0, "HIGH": 0, "CRITICAL": 1}, "total_issues": 1,
                "input_path": "model.pkl", "absolute_path": "/models/fraud-detector/15", "modelscan_version": "0.8.8",
                "timestamp": "2026-01-01T08:00:00.114312",
                "scanned": {"total_scanned": 1, "scanned_files": ["model.pkl"]}},
    "issues": [{"description": "Use of unsafe operator 'system' from module 'posix'", "operator": "system",
                "module": "posix", "source": "model.pkl", "scanner": "modelscan.scanners.PickleUnsafeOpScan",
                "severity": "CRITICAL"}],
    "errors": []}


def test_modelscan_report_maps_severity_and_operators() -> None:
    event = one("modelscan", {"report": MODELSCAN_REPORT, "path": "/models/fraud-detector/15/model.pkl"},
                {"model_name": "fraud-detector", "model_version": "15", "host": "build-agent-2"})
    assert event["event.action"] == "model-scan-completed" and event["event.outcome"] == "success"
    assert event["aisoc.supply_chain.scan.max_severity"] == "critical"
    assert event["aisoc.supply_chain.scan.operator"] == ["system"]
    assert event["aisoc.supply_chain.scan.module"] == ["posix"]
    assert event["aisoc.model.name"] == "fraud-detector" and event["host.name"] == "build-agent-2"
    assert event["@timestamp"] == "2026-01-01T08:00:00.114Z"
    broken = copy.deepcopy(MODELSCAN_REPORT)
    broken.update(issues=[], errors=[{"category": "PICKLE_GENOPS", "source": "model.pkl",
                                      "description": "Parsing error: pickle exhausted before seeing STOP"}])
    broken["summary"]["scanned"] = {"total_scanned": 0}
    failed = one("modelscan", {"report": broken, "path": "/models/fraud-detector/15/model.pkl"})
    assert failed["event.outcome"] == "failure" and failed["error.type"] == "PICKLE_GENOPS"


def test_hub_model_info_flags_a_movable_revision() -> None:
    info = json.loads((FIXTURES / "supply_chain" / "hub_someuser_helpful_llm.json").read_text())
    event = one("hub_model_info", {"info": info, "requested_revision": "main", "observed_at": "2026-01-01T09:00:00Z"},
                {"host": "build-agent-2"})
    assert event["event.action"] == "hub-model-resolved" and event["aisoc.supply_chain.hub.revision_pinned"] is False
    assert event["aisoc.supply_chain.hub.repo_id"] == "someuser/helpful-llm" and event["host.name"] == "build-agent-2"
    distil = json.loads((FIXTURES / "supply_chain" / "hub_distilbert_base_uncased.json").read_text())
    pinned = one("hub_model_info", {"info": distil, "requested_revision": distil["sha"],
                                    "observed_at": "2026-01-01T09:00:00Z"},
                 {"endpoint": "https://hf-mirror.internal.example"})
    assert pinned["aisoc.supply_chain.hub.revision_pinned"] is True and pinned["aisoc.supply_chain.hash_match"] is True
    assert pinned["url.full"].startswith("https://hf-mirror.internal.example/api/models/distilbert/")


def test_sbom_diff_reports_a_rehashed_component() -> None:
    old = json.loads((FIXTURES / "supply_chain" / "sbom_build_1041.cdx.json").read_text())
    new = json.loads((FIXTURES / "supply_chain" / "sbom_build_1043_tampered.cdx.json").read_text())
    events = mapped("sbom_diff", {"old": old, "new": new})
    changes = {(e["package.name"], e["aisoc.supply_chain.sbom.change"]) for e in events}
    assert ("torch", "hash_changed") in changes
    torch = next(e for e in events if e["package.name"] == "torch")
    assert torch["event.action"] == "sbom-component-changed" and torch["package.type"] == "library"
    assert torch["aisoc.supply_chain.build.id"] == "build-1043"


def _record_hash(text: str) -> str:
    return "sha256=" + base64.urlsafe_b64encode(hashlib.sha256(text.encode()).digest()).rstrip(b"=").decode()


def test_pip_environment_checks_lock_hashes_and_records() -> None:
    good, bad = hashlib.sha256(b"torch wheel").hexdigest(), hashlib.sha256(b"rebuilt").hexdigest()
    original, patched = "def load(f):\n    return f.read()\n", "import os\nos.system('id')\n"
    record = {
        "inspect": {"version": "1", "installed": [
            {"metadata": {"name": "torch", "version": "2.5.1"},
             "metadata_location": "/opt/venv/lib/python3.11/site-packages/torch-2.5.1.dist-info"},
            {"metadata": {"name": "transfomers", "version": "4.46.0"},
             "metadata_location": "/opt/venv/lib/python3.11/site-packages/transfomers-4.46.0.dist-info"}]},
        "lock": f"torch==2.5.1 \\\n    --hash=sha256:{good}\n",
        "install_report": {"version": "1", "install": [
            {"metadata": {"name": "torch", "version": "2.5.1"},
             "download_info": {"url": "https://files.pythonhosted.org/torch-2.5.1.whl",
                               "archive_info": {"hashes": {"sha256": bad}}}}]},
        "site_packages": {
            "torch/serialization.py": patched,
            "torch-2.5.1.dist-info/RECORD": f"torch/serialization.py,{_record_hash(original)},{len(original)}\n"
                                            "torch-2.5.1.dist-info/RECORD,,\n"},
        "observed_at": "2026-01-01T07:00:00Z"}
    events = {e["package.name"]: e for e in mapped("pip_environment", record, {"host": "gpu-node-2"})}
    torch = events["torch"]
    assert torch["event.action"] == "package-verified" and torch["aisoc.supply_chain.lock.pinned"] is True
    assert torch["aisoc.supply_chain.hash_match"] is False and torch["aisoc.supply_chain.record.mismatched_files"] == 1
    assert torch["host.name"] == "gpu-node-2" and torch["event.outcome"] == "failure"
    assert events["transfomers"]["aisoc.supply_chain.lock.pinned"] is False


def test_model_signature_verifies_offline_and_reports_missing_signatures(tmp_path: Path) -> None:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from model_signing import signing

    key = ec.generate_private_key(ec.SECP256R1())
    private = tmp_path / "signer.key"
    private.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                          serialization.NoEncryption()))
    public = key.public_key().public_bytes(serialization.Encoding.PEM,
                                           serialization.PublicFormat.SubjectPublicKeyInfo).decode()
    files = {"config.json": '{"hidden_size": 64}\n', "tokenizer/vocab.txt": "[PAD]\n[UNK]\n"}
    model = tmp_path / "fraud-detector"
    for name, text in files.items():
        (model / name).parent.mkdir(parents=True, exist_ok=True)
        (model / name).write_text(text)
    signing.Config().use_elliptic_key_signer(private_key=private).sign(model, tmp_path / "model.sig")
    bundle = json.loads((tmp_path / "model.sig").read_text())
    policy = {"public_keys": {"ml-pipeline": public}, "model_name": "fraud-detector", "model_version": "15"}

    ok = one("model_signature", {"model": "fraud-detector", "files": files, "signature": bundle,
                                 "observed_at": "2026-01-01T06:00:00Z"}, policy)
    assert ok["event.action"] == "model-signature-verified" and ok["file.code_signature.status"] == "verified"
    assert (ok["file.code_signature.valid"], ok["file.code_signature.trusted"]) == (True, True)
    assert ok["file.code_signature.subject_name"] == "ml-pipeline" and ok["aisoc.model.name"] == "fraud-detector"
    changed = one("model_signature", {"model": "fraud-detector", "signature": bundle,
                                      "files": {**files, "config.json": '{"hidden_size": 65}\n'}}, policy)
    assert changed["file.code_signature.status"] == "digest mismatch" and changed["file.code_signature.valid"] is False
    unsigned = one("model_signature", {"model": "fraud-detector", "files": files}, policy)
    assert unsigned["file.code_signature.exists"] is False and unsigned["event.outcome"] == "failure"


# ---- errors, coverage --------------------------------------------------------------------------------


def test_bad_records_raise_value_errors_naming_the_problem() -> None:
    with pytest.raises(ValueError, match="unknown native record kind 'splunk'"):
        map_native("splunk", {})
    with pytest.raises(ValueError, match="s3_access_log record is missing 'line'"):
        map_native("s3_access_log", {})
    with pytest.raises(ValueError, match="minio_audit mapping rejected the record|no 'api' object"):
        map_native("minio_audit", {"time": "2026-01-01T00:00:00Z"})
    with pytest.raises(ValueError, match="outside"):
        map_native("model_signature", {"model": "m", "files": {"../escape.txt": "x"}})


def test_every_native_kind_is_mapped_by_a_test_here() -> None:
    source = Path(__file__).read_text()
    untested = {kind for kind in MAPPERS if f'one("{kind}"' not in source and f'mapped("{kind}"' not in source}
    assert untested == set()


# ---- the point of native test cases ---------------------------------------------------------------------


def _rule(name: str) -> Any:
    rules, findings = load_rules([ROOT / "rules" / "inference" / name])
    assert rules, findings
    return rules[0]


def test_a_mapping_that_drops_the_guardrail_outcome_breaks_the_guardrail_rule(monkeypatch: pytest.MonkeyPatch) -> None:
    from aisoc.collectors import llm_gateway

    rule = _rule("llm_repeated_prompt_injection.yml")
    assert any(getattr(item, "native", None) == "litellm" for case in rule.meta.tests for item in case.events)
    assert run_rule_tests(rule).passed

    real = llm_gateway.map_litellm_payload

    def broken(payload: dict[str, Any]) -> list[dict[str, Any]]:
        return [{k: v for k, v in event.items() if k != "aisoc.llm.guardrail.outcome"} for event in real(payload)]

    monkeypatch.setattr(llm_gateway, "map_litellm_payload", broken)
    result = run_rule_tests(rule)
    assert not result.passed
    failed = {c.name for c in result.cases if not c.passed}
    matches = {c.name for c in rule.meta.tests if c.expect == "match"}
    assert matches and matches <= failed, result.failures()  # every attack goes unseen
    assert all(c.passed for c in result.cases if c.expect == "no_match")


def test_native_test_events_have_pack_unique_event_ids() -> None:
    """`aisoc demo` loads every case into one store, where a repeated event.id would be dropped."""
    rules, _ = load_rules([ROOT / "rules"])
    seen: Counter[str] = Counter()
    for rule in rules:
        for index, case in enumerate(rule.meta.tests):
            seen.update(e["event.id"] for e in case.expanded_events(rule.rule_id, index))
    assert [i for i, n in seen.items() if n > 1] == []


def _registry_state(polled_at: str, alias_version: str, versions: list[tuple[str, int]]) -> dict[str, Any]:
    """A registry with versions (number, registered at epoch seconds) and the `champion` alias."""
    return {"polled_at": polled_at,
            "registered_models": [{"name": "churn", "creation_timestamp": 1_700_000_000_000,
                                   "last_updated_timestamp": 1_700_000_000_000,
                                   "aliases": [{"alias": "champion", "version": alias_version}]}],
            "model_versions": [{"name": "churn", "version": number, "creation_timestamp": at * 1000,
                                "last_updated_timestamp": at * 1000, "current_stage": "None",
                                "source": "s3://models/churn/" + number, "status": "READY",
                                "tags": [{"key": "mlflow.user", "value": "alice"}]}
                               for number, at in versions]}


def test_first_live_poll_records_old_state_as_baseline_and_reports_what_is_recent() -> None:
    now = 1_767_225_600  # 2026-01-01T00:00:00Z
    first = _registry_state("2026-01-01T00:00:00Z", "1", [("1", now - 30 * 86400), ("2", now - 3600)])
    second = _registry_state("2026-01-01T00:10:00Z", "2", [("1", now - 30 * 86400), ("2", now - 3600)])
    events = map_native("mlflow_poll", {"polls": [first, second]}, {"verify_artifacts": False})
    seen = [(e["event.action"], e.get("aisoc.model.version")) for e in events]
    # version 1 and the alias found on the first poll are the baseline; version 2 (an hour old) is news,
    # and the alias moving on the second poll is a change seen happening
    assert seen == [("model-version-registered", "2"), ("model-alias-changed", "2")], seen
    everything = map_native("mlflow_poll", {"polls": [first]},
                            {"verify_artifacts": False, "first_poll_lookback_seconds": None})
    assert sorted((e["event.action"], e.get("aisoc.model.version")) for e in everything) == [
        ("model-alias-changed", "1"), ("model-version-registered", "1"), ("model-version-registered", "2")]


@given(st.text(), st.lists(st.one_of(st.text(), st.integers(), st.none()), max_size=6))
def test_event_ids_are_those_of_earlier_releases(source: str, identity: list[Any]) -> None:
    """event.id is a hash of the JSON text of [source, *identity]: the faster construction must give the very
    same ids, or a replay after an upgrade would store every event a second time."""
    import hashlib
    import json

    from aisoc.collectors.base import event_id

    key = json.dumps([source, *[str(part) for part in identity]], ensure_ascii=False)
    assert event_id(source, *identity) == hashlib.sha256(key.encode("utf-8")).hexdigest()[:40]


def test_repeated_native_records_shift_in_time_vary_and_get_their_own_ids() -> None:
    from aisoc.rules.model import TestCase

    record = {"id": "chatcmpl-r1", "call_type": "acompletion", "status": "success", "startTime": 1767225600.0,
              "endTime": 1767225600.5, "model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}],
              "metadata": {"user_api_key_hash": "a" * 64}}
    case = TestCase.model_validate({"name": "n", "expect": "match", "events": [
        {"repeat": 3, "every": "90s", "native": "litellm", "record": record,
         "vary": {"metadata.user_api_key_hash": ["a" * 64, "b" * 64]}}]})
    events = case.expanded_events("rule", 0)
    assert [e["@timestamp"] for e in events] == ["2026-01-01T00:00:00.000Z", "2026-01-01T00:01:30.000Z",
                                                 "2026-01-01T00:03:00.000Z"]
    assert [e["aisoc.api_key.hash"] for e in events] == ["a" * 64, "b" * 64, "a" * 64]
    assert len({e["event.id"] for e in events}) == 3
    bad = TestCase.model_validate({"name": "n", "expect": "match", "events": [
        {"repeat": 2, "native": "litellm", "record": record, "vary": {"model.name": ["x"]}}]})
    with pytest.raises(ValueError, match="vary path 'model.name' goes through a value"):
        bad.expanded_events("rule", 0)
