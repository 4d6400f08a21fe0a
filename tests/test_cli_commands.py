"""The CLI commands a SOC engineer and CI touch: test, detect, demo, coverage outputs."""

from __future__ import annotations

import json
from pathlib import Path

from tests.conftest import REPO, SINGLE_RULE


def test_test_command_json_reports_every_rule_and_case(cli, rule_tree: Path) -> None:
    code, out, _ = cli("test", rule_tree, "--format", "json")
    assert code == 0
    results = json.loads(out)["rules"]
    assert {r["rule_id"] for r in results} == {
        "0b7f3a52-2f1e-4b7a-9a57-3f1f4c0f9e01", "0b7f3a52-2f1e-4b7a-9a57-3f1f4c0f9e03"}
    for r in results:
        assert r["engine"] == "sqlite" and r["passed"] and r["positives"] >= 3 and r["negatives"] >= 3


def test_test_command_fails_and_names_the_offending_event(cli, rule_tree: Path) -> None:
    path = rule_tree / "inference" / SINGLE_RULE.name
    path.write_text(path.read_text().replace("    aisoc.signal.sample_size|gte: 50\n", ""))
    code, out, _ = cli("test", rule_tree, "--format", "json")
    assert code == 1
    broken = next(r for r in json.loads(out)["rules"] if r["path"] == str(path))
    assert not broken["passed"]
    bad_case = next(c for c in broken["cases"] if not c["passed"])
    assert bad_case["name"] == "too small a sample"
    assert bad_case["offending_event"]["aisoc.signal.sample_size"] == 12
    code, out, _ = cli("test", rule_tree)
    assert code == 1 and "FAIL" in out and "1 passed, 1 failed" in out


def test_shipped_pack_passes_its_tests(cli) -> None:
    code, out, _ = cli("test", REPO / "rules", "--format", "json")
    results = json.loads(out)["rules"]
    assert code == 0, [r["failures"] for r in results if not r["passed"]]
    assert len(results) >= 15


def test_detect_prints_ndjson_alerts(cli, tmp_path: Path) -> None:
    events = tmp_path / "events.ndjson"
    events.write_text(json.dumps({
        "event": {"id": "e1", "kind": "metric"}, "@timestamp": "2026-03-01T10:00:00Z",
        "aisoc": {"signal": {"name": "api_key_logprobs_share", "value": 0.97, "sample_size": 400,
                             "entity": "key-9"}}}) + "\n")
    code, out, err = cli("detect", events, "--rules", REPO / "tests" / "fixtures" / "rules", "--format", "json")
    assert code == 0, err
    alerts = [json.loads(line) for line in out.splitlines()]
    assert len(alerts) == 1
    alert = alerts[0]
    assert alert["event"]["kind"] == "alert"
    assert alert["rule"]["name"] == "Fixture - API key asks for logprobs on most requests"
    assert alert["aisoc"]["alert"]["event_ids"] == ["e1"]
    assert alert["threat"]["framework"] == "MITRE ATLAS"


def test_demo_on_fixture_rules_detects_every_attack_and_no_lookalike(cli) -> None:
    code, out, _ = cli("demo", "--scenarios", "--rules", REPO / "tests" / "fixtures" / "rules")
    assert code == 0, out
    assert "attacks detected by their rule: 6 of 6" in out
    assert "benign look-alikes that raised their own rule: 0" in out
    assert "benign look-alikes of one rule that another rule alerted on: 0" in out


def test_demo_reports_a_missed_attack(cli, rule_tree: Path) -> None:
    path = rule_tree / "inference" / SINGLE_RULE.name
    path.write_text(path.read_text().replace("aisoc.signal.value|gte: 0.8", "aisoc.signal.value|gte: 0.95"))
    code, out, _ = cli("demo", "--scenarios", "--rules", rule_tree)
    assert code == 1
    assert "MISSED: Fixture - API key asks for logprobs on most requests" in out


def test_coverage_writes_navigator_layer_and_html(cli, tmp_path: Path) -> None:
    layer, html = tmp_path / "layer.json", tmp_path / "coverage.html"
    code, out, _ = cli("coverage", REPO / "tests" / "fixtures" / "rules", "--format", "json",
                       "--navigator", layer, "--html", html)
    assert code == 0
    data = json.loads(layer.read_text())
    assert data["domain"] == "atlas-atlas"
    assert {"AML.T0024.002", "AML.T0051.000"} <= {t["techniqueID"] for t in data["techniques"] if t.get("score")}
    assert "Exfiltration" in html.read_text()
    assert json.loads(out)


def test_compile_unknown_target_is_a_usage_error(cli) -> None:
    code, _, err = cli("compile", "--target", "nope", REPO / "tests" / "fixtures" / "rules")
    assert code == 2
    assert "unknown target 'nope'" in err and "lucene" in err


def test_compile_lucene_says_which_rules_it_cannot_express(cli) -> None:
    code, out, err = cli("compile", "--target", "lucene", REPO / "tests" / "fixtures" / "rules")
    assert code == 0
    assert "aisoc.signal.name:api_key_logprobs_share" in out
    assert "injection_burst_fixture.yml: [0b7f3a52-2f1e-4b7a-9a57-3f1f4c0f9e03] not expressible in lucene" in err
    assert "1 of 2 rule(s) compiled to lucene; 1 cannot be expressed in it" in err


def test_inventory_check_flags_the_example_gaps(cli) -> None:
    code, out, _ = cli("inventory", "check", REPO / "examples" / "inventory.yml")
    assert code == 1
    assert "doc-ocr" in out and "6 AI system(s) checked: 6 error(s)" in out


def test_metrics_html_from_the_example_inventory(cli, tmp_path: Path) -> None:
    page = tmp_path / "metrics.html"
    code, _, _ = cli("metrics", "--inventory", REPO / "examples" / "inventory.yml", "--format", "html", "-o", page)
    assert code == 0
    html = page.read_text()
    assert "Asset visibility" in html and "33.3%" in html


def test_collect_replays_native_files_and_dead_letters_bad_records(cli, tmp_path: Path) -> None:
    native = tmp_path / "payloads.ndjson"
    good = (REPO / "tests" / "fixtures" / "llm_gateway" / "guardrail_attacks.ndjson").read_text().splitlines()[:3]
    native.write_text("\n".join([*good, "{truncated", '"not an object"']) + "\n")
    config = tmp_path / "aisoc.yml"
    config.write_text("data_dir: state\n")
    out = tmp_path / "events.ndjson"
    code, _, err = cli("collect", "litellm", "--replay", native, "-c", config, "-o", out)
    assert code == 0, err
    events = [json.loads(line) for line in out.read_text().splitlines()]
    assert len(events) == 3 and {e["event.action"] for e in events} == {"llm-request"}
    assert "2 rejected" in err
    code, out_text, _ = cli("deadletter", "list", "-c", config)
    assert "2 dead letter(s)" in out_text


def test_collect_unknown_collector_is_a_usage_error(cli, tmp_path: Path) -> None:
    code, _, err = cli("collect", "nope", "--replay", tmp_path)
    assert code == 2 and "unknown collector 'nope'" in err


def test_respond_is_a_dry_run_by_default_and_audited(cli, tmp_path: Path) -> None:
    events = tmp_path / "events.ndjson"
    events.write_text(json.dumps({
        "event": {"id": "e1", "kind": "metric"}, "@timestamp": "2026-03-01T10:00:00Z",
        "aisoc": {"signal": {"name": "api_key_logprobs_share", "value": 0.97, "sample_size": 400,
                             "entity": "key-9"}, "api_key": {"hash": "ab" * 32}}}) + "\n")
    alerts = tmp_path / "alerts.ndjson"
    code, _, _ = cli("detect", events, "--rules", REPO / "tests" / "fixtures" / "rules", "--format", "json",
                     "-o", alerts)
    assert code == 0
    alert_id = json.loads(alerts.read_text().splitlines()[0])["event"]["id"]
    config = tmp_path / "aisoc.yml"
    config.write_text(f"data_dir: {tmp_path / 'state'}\n")
    code, out, err = cli("respond", alert_id, "--alerts", alerts, "-c", config, "--playbook", "snapshot-evidence",
                         "--force")
    assert code == 0, out + err
    assert "dry_run" in out and "planned" in out
    audit = (tmp_path / "state" / "audit.jsonl").read_text()
    assert alert_id in audit and '"mode":"dry_run"' in audit
    assert not (tmp_path / "state" / "evidence").exists() or not any((tmp_path / "state" / "evidence").iterdir())


def test_validate_checks_the_shipped_playbooks(cli) -> None:
    code, out, _ = cli("validate", "--no-lock")
    assert "playbook-unknown" not in out


def test_config_check_names_bad_collector_settings(cli, tmp_path: Path) -> None:
    config = tmp_path / "aisoc.yml"
    config.write_text("collectors:\n  logs:\n    type: object_access_logs\n    path: /tmp\n"
                      "    options: {ingestion_paths: [{bucket: x}]}\n  other:\n    type: nope\n")
    code, _, err = cli("config", "check", config)
    assert code == 2
    assert "collectors.logs.options.ingestion_paths.0.prefix: Field required" in err
    assert "collectors.other.type: unknown collector 'nope'" in err


def test_config_check_refuses_unauthenticated_sources_and_unset_secrets(cli, tmp_path: Path, monkeypatch) -> None:
    monkeypatch.delenv("AISOC_NOT_SET", raising=False)
    config = tmp_path / "aisoc.yml"
    config.write_text("receiver:\n  sources:\n    open: {kind: ndjson, auth: {}}\n"
                      "    secret: {kind: ndjson, auth: {token: '${AISOC_NOT_SET}'}}\n")
    code, _, err = cli("config", "check", config)
    assert code == 2
    assert "environment variable AISOC_NOT_SET is not set" in err
    assert "receiver.sources.open.auth: Value error, every receiver source needs auth.token or auth.hmac_secret" in err
