"""rollback_model_alias and the playbook engine against a REAL `mlflow server` (sqlite backend) on 127.0.0.1."""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from fixtures.respond.signing import SignedModel, make_signed_model

from aisoc.respond import (
    AuditLog,
    MlflowSettings,
    ResponseContext,
    load_playbook,
    load_playbooks,
    respond,
    undo_run,
    verify_audit_log,
)
from aisoc.respond.actions import ActionError, RollbackModelAlias

REPO = Path(__file__).resolve().parents[1]
FIXTURES = REPO / "tests" / "fixtures" / "respond"
ALERTS: dict[str, Any] = json.loads((FIXTURES / "alerts.json").read_text())
API = "/api/2.0/mlflow"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="session")
def mlflow_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A real MLflow tracking server for the session (sqlite backend, loopback only)."""
    exe = Path(sys.executable).parent / "mlflow"
    if not exe.exists():
        found = shutil.which("mlflow")
        if not found:
            pytest.fail("mlflow is not installed: run bash scripts/test.sh (it installs aisoc[test])")
        exe = Path(found)
    work = tmp_path_factory.mktemp("mlflow")
    port = _free_port()
    log = open(work / "server.log", "wb")  # noqa: SIM115 - closed in teardown
    proc = subprocess.Popen(
        [str(exe), "server", "--backend-store-uri", f"sqlite:///{work / 'mlflow.db'}", "--host", "127.0.0.1",
         "--port", str(port), "--workers", "1"],
        cwd=work, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
        env={**os.environ, "MLFLOW_TRACKING_URI": ""},
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120
        while True:
            if proc.poll() is not None:
                pytest.fail(f"mlflow server exited: {(work / 'server.log').read_text()[-2000:]}")
            try:
                if httpx.get(f"{url}/health", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                pytest.fail("mlflow server did not become healthy in 120 s")
            time.sleep(0.5)
        yield url
    finally:
        try:
            os.killpg(proc.pid, signal.SIGTERM)  # the server and the workers it started
        except ProcessLookupError:
            pass
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(10)
        log.close()


class Registry:
    """Set-up and inspection through MLflow's REST API (the same API the action uses)."""

    def __init__(self, url: str) -> None:
        self.http = httpx.Client(base_url=url + API, timeout=15)

    def call(self, method: str, path: str, **kwargs: Any) -> dict[str, Any]:
        response = self.http.request(method, path, **kwargs)
        assert response.status_code == 200, response.text
        return response.json()

    def model(self, versions: int = 3, known_good: tuple[int, ...] = (1, 2), champion: int = 3) -> str:
        name = f"fraud-detector-{uuid.uuid4().hex[:8]}"
        self.call("POST", "/registered-models/create", json={"name": name})
        for v in range(1, versions + 1):
            self.call("POST", "/model-versions/create", json={"name": name, "source": f"s3://models/{name}/{v}"})
        for v in known_good:
            self.call("POST", "/model-versions/set-tag",
                      json={"name": name, "version": str(v), "key": "aisoc.known_good", "value": "true"})
        self.set_alias(name, "champion", str(champion))
        return name

    def alias(self, name: str, alias: str) -> str | None:
        response = self.http.get("/registered-models/alias", params={"name": name, "alias": alias})
        if response.status_code != 200:
            return None
        return response.json()["model_version"]["version"]

    def set_alias(self, name: str, alias: str, version: str) -> None:
        self.call("POST", "/registered-models/alias", json={"name": name, "alias": alias, "version": version})


@pytest.fixture
def registry(mlflow_url: str) -> Iterator[Registry]:
    reg = Registry(mlflow_url)
    yield reg
    reg.http.close()


def alert_for(model: str, version: str = "3", alias: str = "champion") -> dict[str, Any]:
    """The real 'production alias moved by non-pipeline identity' alert, about our test model."""
    alert = dict(ALERTS["production_alias_moved_by_non_pipeline"]["alert"])
    alert.update({"aisoc.model.name": model, "aisoc.model.version": version, "aisoc.model.alias": alias})
    return alert


def context(mlflow_url: str, tmp_path: Path, **vars: Any) -> ResponseContext:
    return ResponseContext(mlflow=MlflowSettings(url=mlflow_url), evidence_dir=tmp_path / "evidence", vars=vars,
                           actor="aisoc-test")


PLAYBOOKS = load_playbooks(REPO / "playbooks")


def test_dry_run_changes_nothing_on_the_server(mlflow_url: str, registry: Registry, tmp_path: Path) -> None:
    model = registry.model()
    audit = tmp_path / "audit.jsonl"
    report = respond(alert_for(model), PLAYBOOKS["rollback-model-alias"], audit_log=audit,
                     context=context(mlflow_url, tmp_path, shadow_alias="challenger"))
    assert report.status == "planned", report.summary()
    step = next(s for s in report.steps if s.action == "rollback_model_alias")
    assert step.target == f"models:/{model}@champion"
    assert step.before == {"champion": "3", "challenger": None}
    assert step.after == {"champion": "2", "challenger": "3"}
    assert registry.alias(model, "champion") == "3"
    assert registry.alias(model, "challenger") is None
    assert not (tmp_path / "evidence").exists(), "a dry run writes no evidence either"
    assert verify_audit_log(audit).ok
    kinds = [r["type"] for r in AuditLog(audit).records()]
    assert kinds == ["run_started", "plan", "run_finished"]


def test_execute_needs_approval(mlflow_url: str, registry: Registry, tmp_path: Path) -> None:
    model = registry.model()
    report = respond(alert_for(model), PLAYBOOKS["rollback-model-alias"], execute=True, audit_log=tmp_path / "a.jsonl",
                     context=context(mlflow_url, tmp_path))
    assert report.status == "approval_required"
    assert registry.alias(model, "champion") == "3"
    assert respond(alert_for(model), PLAYBOOKS["rollback-model-alias"], execute=True, approved_by="  ",
                   audit_log=tmp_path / "a.jsonl", context=context(mlflow_url, tmp_path)).status == "approval_required"


def test_execute_with_approval_then_undo(mlflow_url: str, registry: Registry, tmp_path: Path) -> None:
    model = registry.model()
    audit = tmp_path / "audit.jsonl"
    ctx = context(mlflow_url, tmp_path, shadow_alias="challenger")
    playbook = PLAYBOOKS["rollback-model-alias"]
    report = respond(alert_for(model), playbook, execute=True, approved_by="alice@mlops", audit_log=audit, context=ctx)
    assert report.status == "completed", report.summary()
    assert registry.alias(model, "champion") == "2"
    assert registry.alias(model, "challenger") == "3", "the suspect version stays reachable for shadow validation"
    step_records = [r for r in AuditLog(audit).records() if r["type"] == "step"]
    rollback = next(r for r in step_records if r["action"] == "rollback_model_alias")
    assert rollback["approved_by"] == "alice@mlops" and rollback["approved_at"]
    assert rollback["before"] == {"champion": "3", "challenger": None}
    assert rollback["after"] == {"champion": "2", "challenger": "3"}
    assert rollback["inputs"]["model"] == model

    undone = undo_run(report.run_id, playbook, approved_by="bob@mlops", audit_log=audit, context=ctx)
    assert undone.status == "undone", undone.summary()
    assert registry.alias(model, "champion") == "3"
    assert registry.alias(model, "challenger") is None
    assert verify_audit_log(audit).ok
    assert undo_run(report.run_id, playbook, approved_by="bob", audit_log=audit, context=ctx).steps == [], \
        "a second undo finds nothing left to undo"


def test_failing_second_step_rolls_back_the_first(mlflow_url: str, registry: Registry, tmp_path: Path) -> None:
    model = registry.model()
    signed: SignedModel = make_signed_model(tmp_path / "store", name=model, version="2")
    (signed.model / "model.safetensors").write_bytes(b"tampered weights")
    playbook = load_playbook(FIXTURES / "playbooks" / "rollback-then-reattest.yml")
    audit = tmp_path / "audit.jsonl"
    ctx = context(mlflow_url, tmp_path, model_root=str(tmp_path / "store"),
                  signing_public_key=str(signed.public_key), shadow_alias="challenger")
    report = respond(alert_for(model), playbook, execute=True, approved_by="alice", audit_log=audit, context=ctx)
    assert report.status == "rolled_back", report.summary()
    assert [s.status for s in report.steps] == ["undone", "failed"]
    assert "does NOT verify" in report.steps[1].error
    assert registry.alias(model, "champion") == "3", "alias back where it was"
    assert registry.alias(model, "challenger") is None
    records = list(AuditLog(audit).records())
    assert [r["type"] for r in records] == ["run_started", "plan", "step", "step", "undo", "run_finished"]
    assert records[3]["status"] == "failed" and records[4]["status"] == "ok"
    assert records[-1]["status"] == "rolled_back"
    assert verify_audit_log(audit).ok


def test_rollback_succeeds_when_the_known_good_version_verifies(mlflow_url: str, registry: Registry,
                                                                 tmp_path: Path) -> None:
    model = registry.model()
    signed = make_signed_model(tmp_path / "store", name=model, version="2")
    playbook = load_playbook(FIXTURES / "playbooks" / "rollback-then-reattest.yml")
    ctx = context(mlflow_url, tmp_path, model_root=str(tmp_path / "store"), signing_public_key=str(signed.public_key))
    report = respond(alert_for(model), playbook, execute=True, approved_by="alice", audit_log=tmp_path / "a.jsonl",
                     context=ctx)
    assert report.status == "completed", report.summary()
    assert report.steps[1].status == "done" and report.steps[1].details["files"] == 2
    assert registry.alias(model, "champion") == "2"


def test_undo_refuses_when_someone_moved_the_alias_since(mlflow_url: str, registry: Registry, tmp_path: Path) -> None:
    model = registry.model()
    audit = tmp_path / "audit.jsonl"
    ctx = context(mlflow_url, tmp_path)
    playbook = PLAYBOOKS["rollback-model-alias"]
    report = respond(alert_for(model), playbook, execute=True, approved_by="alice", audit_log=audit, context=ctx)
    assert report.status == "completed"
    registry.set_alias(model, "champion", "1")  # an engineer moved it meanwhile
    undone = undo_run(report.run_id, playbook, approved_by="bob", audit_log=audit, context=ctx)
    assert undone.status == "undo_failed" and "someone moved" in undone.message
    assert registry.alias(model, "champion") == "1", "their change is left alone"


def test_no_known_good_version_plans_a_failure_and_changes_nothing(mlflow_url: str, registry: Registry,
                                                                   tmp_path: Path) -> None:
    model = registry.model(known_good=())
    report = respond(alert_for(model), PLAYBOOKS["rollback-model-alias"], execute=True, approved_by="alice",
                     audit_log=tmp_path / "a.jsonl", context=context(mlflow_url, tmp_path))
    assert report.status == "plan_failed" and "no version below 3 tagged aisoc.known_good=true" in report.message
    assert registry.alias(model, "champion") == "3"


def test_alias_no_longer_on_the_alerted_version_is_left_alone(mlflow_url: str, registry: Registry,
                                                              tmp_path: Path) -> None:
    model = registry.model()
    report = respond(alert_for(model, version="2"), PLAYBOOKS["rollback-model-alias"], execute=True,
                     approved_by="alice", audit_log=tmp_path / "a.jsonl", context=context(mlflow_url, tmp_path))
    assert report.status == "plan_failed" and "points at version 3, not 2" in report.message
    assert registry.alias(model, "champion") == "3"


def test_explicit_version_and_only_lower_known_good_versions(mlflow_url: str, registry: Registry,
                                                             tmp_path: Path) -> None:
    model = registry.model(versions=4, known_good=(1, 4), champion=3)
    action = RollbackModelAlias(context(mlflow_url, tmp_path))
    assert action.plan({"model": model}).after == {"champion": "1"}, "v4 is known-good but newer than the suspect"
    assert action.plan({"model": model, "version": 2}).after == {"champion": "2"}
    with pytest.raises(ActionError, match="no version 9"):
        action.plan({"model": model, "version": "9"})
    with pytest.raises(ActionError, match="is not set"):
        action.plan({"model": model, "alias": "production"})
    with pytest.raises(ActionError, match="invalid parameters"):
        action.plan({"model": model, "colour": "blue"})
    assert registry.alias(model, "champion") == "3"
    action.close()


def test_unreachable_mlflow_fails_the_plan(tmp_path: Path) -> None:
    ctx = ResponseContext(mlflow=MlflowSettings(url=f"http://127.0.0.1:{_free_port()}", timeout=2),
                          evidence_dir=tmp_path / "ev")
    report = respond(alert_for("m"), PLAYBOOKS["rollback-model-alias"], execute=True, approved_by="alice",
                     audit_log=tmp_path / "a.jsonl", context=ctx)
    assert report.status == "plan_failed" and "MLflow unreachable" in report.message


def test_mlflow_token_never_reaches_logs_or_audit(mlflow_url: str, registry: Registry, tmp_path: Path,
                                                  monkeypatch: pytest.MonkeyPatch,
                                                  caplog: pytest.LogCaptureFixture) -> None:
    import logging

    token = "mlflow-pat-5e0c2b9a7d1f4e3c"
    monkeypatch.setenv("AISOC_TEST_MLFLOW_TOKEN", token)
    caplog.set_level(logging.DEBUG)
    model = registry.model()
    audit = tmp_path / "audit.jsonl"
    ctx = ResponseContext(mlflow=MlflowSettings(url=mlflow_url, token_env="AISOC_TEST_MLFLOW_TOKEN"),
                          evidence_dir=tmp_path / "ev")
    report = respond(alert_for(model), PLAYBOOKS["rollback-model-alias"], execute=True, approved_by="alice",
                     audit_log=audit, context=ctx)
    assert report.status == "completed" and registry.alias(model, "champion") == "2"
    bundle = Path(report.steps[0].details["bundle"])
    evidence = "".join(p.read_text() for p in bundle.rglob("*") if p.is_file())
    for text in (caplog.text, audit.read_text(), json.dumps(report.to_dict()), evidence):
        assert token not in text
