"""API-key actions (throttle, block, rotate) over real HTTP against a local server that answers as
LiteLLM's key-management API documents (the real proxy needs Postgres for these endpoints)."""

from __future__ import annotations

import json
import logging
import os
import stat
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fixtures.respond.litellm_fake import FakeLiteLLM, token_of

from aisoc.respond import (
    AuditLog,
    LiteLLMSettings,
    ResponseContext,
    load_playbook,
    load_playbooks,
    respond,
    undo_run,
    verify_audit_log,
)

REPO = Path(__file__).resolve().parents[1]
FIXTURES = REPO / "tests" / "fixtures" / "respond"
ALERTS: dict[str, Any] = json.loads((FIXTURES / "alerts.json").read_text())
PLAYBOOKS = load_playbooks(REPO / "playbooks")
MASTER = "sk-master-3c1f0b7e9d2a4c6b8e0f1a2b3c4d5e6f"
ENV = "AISOC_TEST_LITELLM_MASTER_KEY"


@pytest.fixture
def proxy(monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeLiteLLM]:
    monkeypatch.setenv(ENV, MASTER)
    server = FakeLiteLLM(MASTER)
    yield server
    server.close()


def ctx(proxy: FakeLiteLLM, tmp_path: Path, **kwargs: Any) -> ResponseContext:
    return ResponseContext(litellm=LiteLLMSettings(url=proxy.url, master_key_env=ENV, timeout=5),
                           evidence_dir=tmp_path / "evidence", secrets_dir=tmp_path / "secrets", actor="aisoc-test",
                           **kwargs)


def flood_alert() -> dict[str, Any]:
    return dict(ALERTS["api_key_request_flood"]["alert"])  # entity aisoc.signal.entity=31337abc


def extraction_alert() -> dict[str, Any]:
    return dict(ALERTS["llm_templated_extraction_with_token_spike"]["alert"])  # entity e7a9b1f0, high


def no_secrets(*texts: str, extra: list[str] | None = None) -> None:
    for text in texts:
        assert MASTER not in text
        for secret in extra or []:
            assert secret not in text


def test_throttle_dry_run_only_reads(proxy: FakeLiteLLM, tmp_path: Path) -> None:
    proxy.add_key("31337abc", key_alias="batch-client", rpm_limit=None, tpm_limit=None)
    report = respond(flood_alert(), PLAYBOOKS["throttle-api-key"], audit_log=tmp_path / "a.jsonl",
                     context=ctx(proxy, tmp_path))
    assert report.status == "planned"
    throttle = report.steps[1]
    assert throttle.before == {"rpm_limit": None, "tpm_limit": None}
    assert throttle.after == {"rpm_limit": 10, "tpm_limit": 10000}
    assert proxy.writes() == []
    assert [r["path"] for r in proxy.requests] == ["/key/info"]


def test_throttle_executes_without_approval_and_undo_restores(proxy: FakeLiteLLM, tmp_path: Path,
                                                              caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    proxy.add_key("31337abc", key_alias="batch-client", rpm_limit=None, tpm_limit=200000)
    audit = tmp_path / "audit.jsonl"
    context = ctx(proxy, tmp_path)
    report = respond(flood_alert(), PLAYBOOKS["throttle-api-key"], execute=True, audit_log=audit, context=context)
    assert report.status == "completed", report.summary()
    (update,) = proxy.writes()
    assert update["path"] == "/key/update"
    assert update["json"] == {"key": "31337abc", "rpm_limit": 10, "tpm_limit": 10000}
    assert update["headers"]["authorization"] == f"Bearer {MASTER}"
    assert update["headers"]["litellm-changed-by"] == "aisoc-test"
    assert proxy.keys["31337abc"]["rpm_limit"] == 10

    undone = undo_run(report.run_id, PLAYBOOKS["throttle-api-key"], audit_log=audit, context=context)
    assert undone.status == "undone", undone.summary()
    assert proxy.writes()[-1]["json"] == {"key": "31337abc", "rpm_limit": None, "tpm_limit": 200000}
    assert proxy.keys["31337abc"]["rpm_limit"] is None and proxy.keys["31337abc"]["tpm_limit"] == 200000
    assert verify_audit_log(audit).ok
    no_secrets(caplog.text, audit.read_text(), json.dumps(report.to_dict()))


def test_throttle_never_loosens_a_stricter_limit(proxy: FakeLiteLLM, tmp_path: Path) -> None:
    proxy.add_key("31337abc", rpm_limit=5, tpm_limit=None)
    report = respond(flood_alert(), PLAYBOOKS["throttle-api-key"], audit_log=tmp_path / "a.jsonl",
                     context=ctx(proxy, tmp_path))
    assert report.steps[1].after == {"rpm_limit": 5, "tpm_limit": 10000}


def test_failed_block_rolls_the_throttle_back(proxy: FakeLiteLLM, tmp_path: Path) -> None:
    proxy.add_key("31337abc", rpm_limit=600, tpm_limit=None, blocked=False)
    proxy.fail["/key/block"] = 500
    before = dict(proxy.keys["31337abc"])
    playbook = load_playbook(FIXTURES / "playbooks" / "throttle-then-block.yml")
    audit = tmp_path / "audit.jsonl"
    report = respond(flood_alert(), playbook, execute=True, audit_log=audit, context=ctx(proxy, tmp_path))
    assert report.status == "rolled_back", report.summary()
    assert [s.status for s in report.steps] == ["undone", "failed"]
    assert "HTTP 500" in report.steps[1].error
    assert proxy.keys["31337abc"] == before, "the key is exactly as it was"
    paths = [r["path"] for r in proxy.writes()]
    assert paths == ["/key/update", "/key/block", "/key/update"]
    assert proxy.writes()[-1]["json"] == {"key": "31337abc", "rpm_limit": 600, "tpm_limit": None}
    types = [(r["type"], r.get("status")) for r in AuditLog(audit).records()]
    assert ("undo", "ok") in types and types[-1] == ("run_finished", "rolled_back")


def test_block_needs_approval_then_blocks_and_undo_unblocks(proxy: FakeLiteLLM, tmp_path: Path) -> None:
    proxy.add_key("e7a9b1f0", blocked=None)
    audit = tmp_path / "audit.jsonl"
    context = ctx(proxy, tmp_path)
    playbook = PLAYBOOKS["block-api-key"]
    assert respond(extraction_alert(), playbook, execute=True, audit_log=audit,
                   context=context).status == "approval_required"
    assert proxy.writes() == []
    report = respond(extraction_alert(), playbook, execute=True, approved_by="soc-lead", audit_log=audit,
                     context=context)
    assert report.status == "completed" and proxy.keys["e7a9b1f0"]["blocked"] is True
    assert proxy.writes()[0]["headers"]["litellm-changed-by"] == "soc-lead"
    assert undo_run(report.run_id, playbook, approved_by="soc-lead", audit_log=audit,
                    context=context).status == "undone"
    assert proxy.keys["e7a9b1f0"]["blocked"] is False


def test_rotate_regenerates_writes_the_new_key_0600_and_records_only_its_hash(
        proxy: FakeLiteLLM, tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    proxy.add_key("e7a9b1f0", key_alias="partner-app", models=["gpt-4o"], rpm_limit=100)
    audit = tmp_path / "audit.jsonl"
    report = respond(extraction_alert(), PLAYBOOKS["rotate-api-key"], execute=True, approved_by="soc-lead",
                     audit_log=audit, context=ctx(proxy, tmp_path))
    assert report.status == "completed", report.summary()
    (regenerate,) = proxy.writes()
    assert regenerate["path"] == "/key/e7a9b1f0/regenerate"
    (new_key,) = proxy.issued
    assert "e7a9b1f0" not in proxy.keys and token_of(new_key) in proxy.keys
    key_file = Path(report.steps[1].details["new_key_file"])
    assert key_file.read_text().strip() == new_key
    assert stat.S_IMODE(os.stat(key_file).st_mode) == 0o600
    assert report.steps[1].details["new_key_hash"] == token_of(new_key)
    assert token_of(new_key) in audit.read_text()
    no_secrets(caplog.text, audit.read_text(), json.dumps(report.to_dict()), extra=[new_key])


def test_rotate_replace_mode_generates_then_deletes(proxy: FakeLiteLLM, tmp_path: Path) -> None:
    proxy.add_key("e7a9b1f0", key_alias="partner-app", models=["gpt-4o"], team_id="team-a", rpm_limit=100,
                  metadata={"owner": "partner"})
    context = ctx(proxy, tmp_path, vars={"litellm_rotate_mode": "replace"})
    report = respond(extraction_alert(), PLAYBOOKS["rotate-api-key"], execute=True, approved_by="soc-lead",
                     audit_log=tmp_path / "a.jsonl", context=context)
    assert report.status == "completed", report.summary()
    assert [r["path"] for r in proxy.writes()] == ["/key/generate", "/key/delete", "/key/update"]
    (new_key,) = proxy.issued
    assert list(proxy.keys) == [token_of(new_key)]
    new = proxy.keys[token_of(new_key)]
    assert new["models"] == ["gpt-4o"] and new["team_id"] == "team-a" and new["rpm_limit"] == 100
    assert new["key_alias"] == "partner-app" and new["metadata"]["rotated_from"] == "e7a9b1f0"


def test_rotate_without_a_secrets_dir_changes_nothing(proxy: FakeLiteLLM, tmp_path: Path) -> None:
    proxy.add_key("e7a9b1f0")
    context = ResponseContext(litellm=LiteLLMSettings(url=proxy.url, master_key_env=ENV),
                              evidence_dir=tmp_path / "ev")
    report = respond(extraction_alert(), PLAYBOOKS["rotate-api-key"], execute=True, approved_by="x",
                     audit_log=tmp_path / "a.jsonl", context=context)
    assert report.status == "plan_failed" and "secrets_dir" in report.message
    assert proxy.writes() == []


def test_wrong_master_key_fails_the_plan_without_echoing_it(proxy: FakeLiteLLM, tmp_path: Path,
                                                            monkeypatch: pytest.MonkeyPatch,
                                                            caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    wrong = "sk-wrong-master-99999999"
    monkeypatch.setenv(ENV, wrong)
    proxy.add_key("31337abc")
    audit = tmp_path / "a.jsonl"
    report = respond(flood_alert(), PLAYBOOKS["throttle-api-key"], execute=True, audit_log=audit,
                     context=ctx(proxy, tmp_path))
    assert report.status == "plan_failed" and "HTTP 401" in report.message
    no_secrets(caplog.text, audit.read_text(), json.dumps(report.to_dict()), extra=[wrong])


def test_missing_master_key_env(proxy: FakeLiteLLM, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(ENV)
    proxy.add_key("31337abc")
    report = respond(flood_alert(), PLAYBOOKS["throttle-api-key"], audit_log=tmp_path / "a.jsonl",
                     context=ctx(proxy, tmp_path))
    assert report.status == "plan_failed" and f"{ENV} is not set" in report.message


def test_unknown_key_fails_the_plan(proxy: FakeLiteLLM, tmp_path: Path) -> None:
    report = respond(flood_alert(), PLAYBOOKS["throttle-api-key"], execute=True, audit_log=tmp_path / "a.jsonl",
                     context=ctx(proxy, tmp_path))
    assert report.status == "plan_failed" and "HTTP 404" in report.message
    assert proxy.writes() == []
