"""MLflow collector against a real `mlflow server`: poll, restart, webhooks, replay, rules, bad input.

One server per module (sqlite backend, local artifact root, loopback). Its webhooks are delivered
to a receiver this module runs on 127.0.0.1; that needs three documented MLflow settings: a shared
`MLFLOW_WEBHOOK_SECRET_ENCRYPTION_KEY` (webhook secrets are Fernet-encrypted in the database; without
a key each server process makes its own and cannot read the others'), `MLFLOW_WEBHOOK_ALLOW_PRIVATE_IPS`
(deliveries to loopback are blocked as SSRF otherwise) and `MLFLOW_WEBHOOK_ALLOWED_SCHEMES=http`.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import warnings
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from aisoc.collectors.base import CursorStore, event_id
from aisoc.collectors.mlflow import MlflowCollector, MlflowConfig, verify_webhook, webhook_signature_problem
from aisoc.detect.engine import run_rule
from aisoc.detect.store import EventStore
from aisoc.records import Rejected
from aisoc.rules.loader import load_rules
from aisoc.schema import load_registry

ROOT = Path(__file__).resolve().parents[1]
FIXTURES = ROOT / "tests" / "fixtures" / "mlflow" / "replay"
PENDING = ROOT / "aisoc" / "schema" / "pending" / "mlflow.yml"
RULES, _FINDINGS = load_rules([ROOT / "rules" / "model"])
PIPELINE = "svc-train-pipeline"
HUMAN = "jdoe"
SECRET = "test-webhook-secret-0123456789"
SECRET_ENV = "AISOC_TEST_MLFLOW_WEBHOOK_SECRET"
FIXTURE_SECRET = "fixture-webhook-secret"
MODEL = "fraud-detector"
NO_LINEAGE = "model_version_without_lineage"
ALIAS_MOVED = "production_alias_moved_by_non_pipeline"
STAGE = "production_stage_transition_without_approval"
RETRAIN = "retraining_outside_pipeline"
PROMOTED = "unlineaged_version_promoted"
HASH = "model_artifact_hash_mismatch"


# ---- the real server and a webhook receiver --------------------------------------------------


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _mlflow_bin() -> str:
    here = Path(sys.executable).with_name("mlflow")
    return str(here) if here.exists() else (shutil.which("mlflow") or "mlflow")


@pytest.fixture(scope="module")
def server() -> Iterator[dict[str, Any]]:
    """`mlflow server` on a free loopback port; yields its URI and directories; killed at the end."""
    from cryptography.fernet import Fernet

    tmp = Path(tempfile.mkdtemp(prefix="aisoc-mlflow-"))
    port = _free_port()
    env = {**os.environ, "NO_PROXY": "127.0.0.1,localhost", "no_proxy": "127.0.0.1,localhost",
           "MLFLOW_WEBHOOK_SECRET_ENCRYPTION_KEY": Fernet.generate_key().decode(),
           "MLFLOW_WEBHOOK_ALLOW_PRIVATE_IPS": "true", "MLFLOW_WEBHOOK_ALLOWED_SCHEMES": "http",
           "MLFLOW_WEBHOOK_CACHE_TTL": "1",
           "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"}  # GenAI background jobs: not needed by the registry
    log = (tmp / "server.log").open("wb")
    proc = subprocess.Popen(
        [_mlflow_bin(), "server", "--backend-store-uri", f"sqlite:///{tmp}/mlflow.db", "--default-artifact-root",
         str(tmp / "artifacts"), "--host", "127.0.0.1", "--port", str(port), "--workers", "1"],
        stdout=log, stderr=subprocess.STDOUT, env=env, start_new_session=True)
    uri = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 180
        while True:
            if proc.poll() is not None:
                pytest.fail(f"mlflow server exited: {(tmp / 'server.log').read_text()[-3000:]}")
            try:
                if httpx.get(f"{uri}/health", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                pytest.fail(f"mlflow server not ready: {(tmp / 'server.log').read_text()[-3000:]}")
            time.sleep(0.3)
        yield {"uri": uri, "tmp": tmp}
    finally:
        # The server and its workers are one process group, started here: stop it, then make sure.
        for sig, wait in ((signal.SIGTERM, 3), (signal.SIGKILL, 5)):
            try:
                os.killpg(proc.pid, sig)
                proc.wait(timeout=wait)
            except (ProcessLookupError, subprocess.TimeoutExpired):
                pass
        log.close()
        shutil.rmtree(tmp, ignore_errors=True)


class Receiver:
    """A webhook endpoint on 127.0.0.1 that verifies and parses what MLflow delivers."""

    def __init__(self, collector: MlflowCollector) -> None:
        self.collector = collector
        self.deliveries: list[dict[str, Any]] = []
        self.cond = threading.Condition()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 (http.server API)
                length = int(self.headers.get("Content-Length") or 0)
                if length > receiver.collector.config.max_body_bytes:
                    self.send_response(413)
                    self.end_headers()
                    return
                body = self.rfile.read(length)
                headers = dict(self.headers.items())
                ok = verify_webhook(headers, body, SECRET)
                results = receiver.collector.parse_webhook(headers, body) if ok else []
                with receiver.cond:
                    receiver.deliveries.append({"headers": headers, "body": body, "verified": ok, "results": results})
                    receiver.cond.notify_all()
                self.send_response(200 if ok else 401)
                self.end_headers()

            def log_message(self, *args: object) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/mlflow-hook"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def wait(self, count: int, timeout: float = 30) -> list[dict[str, Any]]:
        with self.cond:
            assert self.cond.wait_for(lambda: len(self.deliveries) >= count, timeout), (
                f"expected {count} deliveries, got {len(self.deliveries)}")
            return list(self.deliveries)

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


def _config(uri: str, **extra: Any) -> MlflowConfig:
    settings: dict[str, Any] = {"pipeline_identities": [PIPELINE], "watched_experiments": {"fraud-training": MODEL}}
    return MlflowConfig(tracking_uri=uri, **(settings | extra))


def _rest(uri: str, method: str, path: str, **body: Any) -> dict[str, Any]:
    """The registry as a human with a stolen token would drive it: raw REST, no client, no user."""
    resp = httpx.request(method, f"{uri}/api/2.0/mlflow/{path}", json=body if method != "GET" else None,
                         params=body if method == "GET" else None, timeout=10)
    assert resp.status_code == 200, resp.text
    return resp.json()


@pytest.fixture(scope="module")
def world(server: dict[str, Any]) -> Iterator[dict[str, Any]]:
    """The scenario: a pipeline trains and registers with lineage; a human registers without a run,
    points `champion` at it and pushes it to Production; a dangling run id; a human retrain. The
    collector polls once after the registrations and once after the promotions."""
    from mlflow import MlflowClient

    uri, tmp = server["uri"], server["tmp"]
    hook = Receiver(MlflowCollector(_config(uri), CursorStore(tmp / "hook-cursor.db")))
    client = MlflowClient(tracking_uri=uri)
    client.create_webhook("aisoc", hook.url, events=[
        "model_version.created", "model_version_tag.set", "model_version_tag.deleted",
        "model_version_alias.created", "model_version_alias.deleted"], secret=SECRET)
    exp = client.create_experiment("fraud-training")
    pipeline_run = client.create_run(exp, tags={"mlflow.user": PIPELINE, "aisoc.pipeline.name": "fraud-weekly"})
    model_dir = tmp / "model-src"
    model_dir.mkdir()
    (model_dir / "model.pkl").write_bytes(b"\x80\x04weights-v1" * 64)
    (model_dir / "MLmodel").write_text("flavors: {python_function: {loader_module: model}}\n")
    client.log_artifacts(pipeline_run.info.run_id, str(model_dir), "model")
    client.set_terminated(pipeline_run.info.run_id)
    human_run = client.create_run(exp, tags={"mlflow.user": HUMAN})

    client.create_registered_model(MODEL)
    rid = pipeline_run.info.run_id
    client.create_model_version(MODEL, f"runs:/{rid}/model", run_id=rid,
                                tags={"mlflow.user": PIPELINE, "aisoc.change.ticket": "CHG-1182"})
    hook.wait(1)
    _rest(uri, "POST", "model-versions/create", name=MODEL, source="s3://scratch/tmp/model.pkl")
    hook.wait(2)
    _rest(uri, "POST", "model-versions/create", name=MODEL, source="s3://scratch/tmp/m3.pkl", run_id="0badc0de0badc0de")
    hook.wait(3)

    cursor_path = tmp / "poll-cursor.db"
    collector = MlflowCollector(_config(uri), CursorStore(cursor_path))
    first = collector.poll()

    _rest(uri, "POST", "registered-models/alias", name=MODEL, alias="champion", version="2")
    hook.wait(4)
    _rest(uri, "POST", "model-versions/transition-stage", name=MODEL, version="2", stage="Production",
          archive_existing_versions=False)
    with warnings.catch_warnings():  # stages are deprecated in MLflow, but registries still use them
        warnings.simplefilter("ignore", FutureWarning)
        client.transition_model_version_stage(MODEL, "1", "Production")
    client.set_model_version_tag(MODEL, "1", "validation_status", "passed")
    hook.wait(5)
    second = collector.poll()
    yield {"uri": uri, "tmp": tmp, "hook": hook, "client": client, "first": first, "second": second,
           "cursor_path": cursor_path, "collector": collector, "pipeline_run": pipeline_run,
           "human_run": human_run, "experiment_id": exp}
    hook.close()
    collector.close()


# ---- helpers -----------------------------------------------------------------------------------


def events_only(items: list[Any]) -> list[dict[str, Any]]:
    assert all(isinstance(i, dict) for i in items), [i for i in items if isinstance(i, Rejected)]
    return items


def of_model(items: list[Any], name: str = MODEL) -> list[dict[str, Any]]:
    return [i for i in items if isinstance(i, dict) and i.get("aisoc.model.name") == name]


def find(events: list[dict[str, Any]], action: str, **fields: Any) -> dict[str, Any]:
    hits = [e for e in events if e["event.action"] == action and all(e.get(k) == v for k, v in fields.items())]
    assert len(hits) == 1, (action, fields, [(e["event.action"], e.get("aisoc.model.version")) for e in events])
    return hits[0]


def fired(events: list[Any]) -> dict[str, set[str]]:
    """Rule file stem -> event ids it matched, on the embedded engine."""
    store = EventStore()
    try:
        store.insert([e for e in events if isinstance(e, dict)])
        result: dict[str, set[str]] = {}
        for rule in RULES:
            ids = {i for m in run_rule(store, rule) for i in m.event_ids}
            if ids:
                result[rule.path.stem] = ids
        return result
    finally:
        store.close()


def ids_of(events: list[dict[str, Any]], action: str, **fields: Any) -> set[str]:
    return {e["event.id"] for e in events if e["event.action"] == action
            and all(e.get(k) == v for k, v in fields.items())}


def test_model_rules_load() -> None:
    assert not [f for f in _FINDINGS if f.severity == "error"], _FINDINGS
    assert {NO_LINEAGE, ALIAS_MOVED, STAGE, RETRAIN, PROMOTED, HASH} <= {r.path.stem for r in RULES}


# ---- poll ----------------------------------------------------------------------------------------


def test_first_poll_maps_registrations_lineage_and_runs(world: dict[str, Any]) -> None:
    events = events_only(world["first"])
    rid = world["pipeline_run"].info.run_id
    v1 = find(events, "model-version-registered", **{"aisoc.model.version": "1"})
    assert v1["user.name"] == PIPELINE and v1["aisoc.pipeline.identity_approved"] is True
    assert v1["aisoc.model.lineage.run_id"] == rid and v1["aisoc.model.lineage.present"] is True
    assert v1["aisoc.model.lineage.experiment_id"] == world["experiment_id"]
    assert v1["aisoc.model.source"] == f"runs:/{rid}/model"
    assert v1["aisoc.change.approved"] is True and v1["aisoc.change.ticket"] == "CHG-1182"
    assert v1["event.id"] == event_id("mlflow", "model-version-registered", MODEL, "1", 0)
    assert v1["event.dataset"] == "aisoc.model" and v1["event.provider"] == "mlflow"
    assert v1["event.reference"].endswith(f"/#/models/{MODEL}/versions/1")

    v2 = find(events, "model-version-registered", **{"aisoc.model.version": "2"})
    # Open-source MLflow records no user on a model version registered over REST (user_id is empty)
    # and no tag names one: the actor is unknown, which is not an approved pipeline identity.
    assert "user.name" not in v2 and v2["aisoc.pipeline.identity_approved"] is False
    assert v2["aisoc.model.lineage.present"] is False and "aisoc.model.lineage.run_id" not in v2
    assert v2["aisoc.model.source"] == "s3://scratch/tmp/model.pkl" and "aisoc.change.approved" not in v2

    v3 = find(events, "model-version-registered", **{"aisoc.model.version": "3"})
    assert v3["aisoc.model.lineage.run_id"] == "0badc0de0badc0de" and v3["aisoc.model.lineage.present"] is False

    started = find(events, "training-run-started", **{"user.name": HUMAN})
    assert started["aisoc.pipeline.identity_approved"] is False and started["aisoc.model.name"] == MODEL
    assert started["aisoc.model.run.status"] == "RUNNING"
    assert started["aisoc.model.lineage.run_id"] == world["human_run"].info.run_id
    pipe = find(events, "training-run-started", **{"user.name": PIPELINE})
    assert pipe["aisoc.pipeline.identity_approved"] is True and pipe["aisoc.pipeline.name"] == "fraud-weekly"
    find(events, "training-run-finished", **{"user.name": PIPELINE, "aisoc.model.run.status": "FINISHED"})
    assert not [e for e in events if e["event.action"] in ("model-alias-changed", "model-stage-changed")]


def test_second_poll_sees_alias_stage_and_tag_changes(world: dict[str, Any]) -> None:
    events = of_model(world["second"])
    assert len(events) == len(world["second"]), world["second"]
    alias = find(events, "model-alias-changed")
    assert alias["aisoc.model.alias"] == "champion" and alias["aisoc.model.version"] == "2"
    assert "aisoc.model.previous_version" not in alias  # a new alias
    assert alias["aisoc.pipeline.identity_approved"] is False and alias["aisoc.model.lineage.present"] is False
    assert alias["event.id"] == event_id("mlflow", "model-alias-changed", MODEL, "champion", 1, "2")

    human = find(events, "model-stage-changed", **{"aisoc.model.version": "2"})
    assert human["aisoc.model.stage"] == "Production" and human["aisoc.model.previous_stage"] == "None"
    assert human["aisoc.pipeline.identity_approved"] is False and "aisoc.change.approved" not in human
    piped = find(events, "model-stage-changed", **{"aisoc.model.version": "1"})
    assert piped["aisoc.change.approved"] is True and piped["aisoc.change.ticket"] == "CHG-1182"

    tag = find(events, "model-version-tag-set", **{"aisoc.model.version": "1"})
    assert tag["aisoc.model.tag.key"] == "validation_status" and tag["aisoc.model.tag.value"] == "passed"
    assert {e["event.action"] for e in events} == {"model-alias-changed", "model-stage-changed",
                                                   "model-version-tag-set"}


def test_second_poll_and_restart_emit_nothing_new(world: dict[str, Any]) -> None:
    assert of_model(world["collector"].poll()) == []
    restarted = MlflowCollector(_config(world["uri"]), CursorStore(world["cursor_path"]))
    try:
        assert of_model(restarted.poll()) == []
    finally:
        restarted.close()


def test_rule_pack_fires_on_the_human_changes_and_not_on_the_pipeline(world: dict[str, Any]) -> None:
    events = events_only(world["first"] + world["second"])
    hits = fired(events)
    by_id = {e["event.id"]: e for e in events}

    def versions(rule: str) -> set[tuple[str, str | None]]:
        return {(by_id[i]["event.action"], by_id[i].get("aisoc.model.version")) for i in hits.get(rule, set())}

    assert versions(NO_LINEAGE) == {("model-version-registered", "2"), ("model-version-registered", "3")}
    assert versions(ALIAS_MOVED) == {("model-alias-changed", "2")}
    assert versions(STAGE) == {("model-stage-changed", "2")}
    assert {by_id[i]["user.name"] for i in hits[RETRAIN]} == {HUMAN}
    promoted = versions(PROMOTED)
    assert ("model-version-registered", "2") in promoted and ("model-alias-changed", "2") in promoted
    assert all(v == "2" for _, v in promoted)  # never the pipeline's version 1, never v3 (not promoted)
    assert HASH not in hits
    pipeline_ids = {e["event.id"] for e in events if e.get("aisoc.model.version") == "1"
                    or e.get("user.name") == PIPELINE}
    assert not pipeline_ids & set().union(*hits.values())


# ---- webhooks: a real MLflow delivering to our receiver ---------------------------------------


def test_real_deliveries_verify_and_map_to_the_poll_event_ids(world: dict[str, Any]) -> None:
    deliveries = world["hook"].wait(5)
    assert all(d["verified"] for d in deliveries)
    assert {d["headers"].get("X-MLflow-Signature", "")[:3] for d in deliveries} == {"v1,"}
    pushed = [r for d in deliveries for r in d["results"]]
    pushed_events = events_only(of_model(pushed) + [r for r in pushed if isinstance(r, Rejected)])
    polled = events_only(world["first"] + world["second"])
    for version in ("1", "2", "3"):
        push = find(pushed_events, "model-version-registered", **{"aisoc.model.version": version})
        poll = find(polled, "model-version-registered", **{"aisoc.model.version": version})
        assert push["event.id"] == poll["event.id"]
        for name in ("user.name", "aisoc.model.lineage.present", "aisoc.model.lineage.run_id",
                     "aisoc.pipeline.identity_approved", "@timestamp"):
            assert push.get(name) == poll.get(name), name  # enriched from the registry like the poll
        assert push["labels.mlflow_delivery_id"]
    assert ids_of(pushed_events, "model-alias-changed") == ids_of(polled, "model-alias-changed")
    assert ids_of(pushed_events, "model-version-tag-set") == ids_of(polled, "model-version-tag-set")
    assert not [e for e in pushed_events if e["event.action"] == "model-stage-changed"]  # MLflow has no such webhook


def test_forged_wrong_secret_and_stale_deliveries_are_refused(world: dict[str, Any]) -> None:
    from mlflow.webhooks.delivery import _generate_hmac_signature

    real = world["hook"].wait(1)[0]
    headers, body = real["headers"], real["body"]
    sent = int(headers["X-MLflow-Timestamp"])
    assert verify_webhook(headers, body, SECRET, now=sent + 1)
    assert not verify_webhook(headers, body.replace(b'"1"', b'"9"'), SECRET, now=sent + 1)  # forged body
    assert not verify_webhook(headers, body, "another-secret", now=sent + 1)
    assert not verify_webhook({**headers, "X-MLflow-Delivery-Id": "replayed-id"}, body, SECRET, now=sent + 1)
    assert webhook_signature_problem(headers, body, SECRET, now=sent + 301).startswith("stale delivery")
    assert not verify_webhook(headers, body, SECRET, now=sent + 3600)

    # MLflow's own signing code: a fresh signature verifies, the same one dated 6 minutes ago does not.
    payload = body.decode()
    now = int(time.time())
    for stamp, expected in ((now, True), (now - 360, False), (now + 3600, False)):
        signed = {**headers, "X-MLflow-Timestamp": str(stamp),
                  "X-MLflow-Signature": _generate_hmac_signature(SECRET, headers["X-MLflow-Delivery-Id"], str(stamp),
                                                                 payload)}
        assert verify_webhook(signed, body, SECRET) is expected, stamp

    # The receiver answers a forged POST with 401 and parses nothing.
    count = len(world["hook"].deliveries)
    forged = {k: v for k, v in headers.items() if k.lower().startswith("x-mlflow") or k == "Content-Type"}
    forged["X-MLflow-Timestamp"] = str(max(now, sent + 1))  # fresh, but not the time the signature covers
    resp = httpx.post(world["hook"].url, content=body, headers=forged, timeout=10)
    assert resp.status_code == 401
    assert world["hook"].wait(count + 1)[-1]["results"] == []


def test_receive_webhook_checks_secret_size_and_signature(world: dict[str, Any], monkeypatch: pytest.MonkeyPatch,
                                                          tmp_path: Path) -> None:
    real = world["hook"].wait(1)[0]
    now = int(time.time())
    from mlflow.webhooks.delivery import _generate_hmac_signature

    headers = {**real["headers"], "X-MLflow-Timestamp": str(now), "X-MLflow-Signature": _generate_hmac_signature(
        SECRET, real["headers"]["X-MLflow-Delivery-Id"], str(now), real["body"].decode())}
    collector = MlflowCollector(_config(world["uri"], webhook_secret_env=SECRET_ENV, max_body_bytes=4096),
                                CursorStore(tmp_path / "c.db"))
    monkeypatch.delenv(SECRET_ENV, raising=False)
    [no_secret] = collector.receive_webhook(headers, real["body"])
    assert isinstance(no_secret, Rejected) and "no webhook secret" in no_secret.reason
    monkeypatch.setenv(SECRET_ENV, SECRET)
    events = events_only(collector.receive_webhook(headers, real["body"]))
    # first sight of version 1, which is in Production by now: registered, then the stage it is in
    assert [e["event.action"] for e in events] == ["model-version-registered", "model-stage-changed"]
    assert collector.receive_webhook(headers, real["body"]) == []  # a redelivery adds nothing
    [stale] = collector.receive_webhook(real["headers"] | {"X-MLflow-Timestamp": str(now - 400)}, real["body"])
    assert isinstance(stale, Rejected) and "stale" in stale.reason
    [big] = collector.receive_webhook(headers, b"{" + b" " * 5000 + b"}")
    assert isinstance(big, Rejected) and "max_body_bytes" in big.reason
    assert SECRET not in repr(collector.config) and SECRET not in big.reason
    collector.close()


def test_mlflow_test_delivery_for_a_model_that_does_not_exist_is_rejected(world: dict[str, Any]) -> None:
    count = len(world["hook"].deliveries)
    hook_id = next(w.webhook_id for w in world["client"].list_webhooks() if w.name == "aisoc")
    result = world["client"].test_webhook(hook_id)
    assert result.success, result
    [delivery] = world["hook"].wait(count + 1)[count:]
    assert delivery["verified"]
    [rejected] = delivery["results"]
    assert isinstance(rejected, Rejected) and "does not exist in the registry" in rejected.reason


def test_push_and_poll_share_one_snapshot_and_never_report_a_change_twice(world: dict[str, Any],
                                                                         tmp_path: Path) -> None:
    uri, client, name = world["uri"], world["client"], "ranker"
    collector = MlflowCollector(_config(uri), CursorStore(tmp_path / "shared.db"))
    collector.poll()  # baseline of everything registered so far
    receiver = Receiver(collector)
    hook = client.create_webhook("shared", receiver.url, events=["model_version.created",
                                                                 "model_version_alias.created"], secret=SECRET)
    try:
        time.sleep(1.5)  # MLflow caches the webhook list per event for MLFLOW_WEBHOOK_CACHE_TTL (1 s here)
        _rest(uri, "POST", "registered-models/create", name=name)
        _rest(uri, "POST", "model-versions/create", name=name, source="s3://scratch/ranker")
        receiver.wait(1)
        _rest(uri, "POST", "registered-models/alias", name=name, alias="champion", version="1")
        deliveries = receiver.wait(2)
        pushed = events_only([r for d in deliveries for r in d["results"]])
        assert [e["event.action"] for e in pushed] == ["model-version-registered", "model-alias-changed"]
        assert of_model(collector.poll(), name) == []  # the poll finds nothing the push did not report
        _rest(uri, "POST", "model-versions/transition-stage", name=name, version="1", stage="Staging",
              archive_existing_versions=False)
        staged = find(of_model(collector.poll(), name), "model-stage-changed")  # stages: poll only
        assert (staged["aisoc.model.previous_stage"], staged["aisoc.model.stage"]) == ("None", "Staging")
    finally:
        client.delete_webhook(hook.webhook_id)
        receiver.close()
        collector.close()


# ---- more registry history: alias back-and-forth, tags, deletion, re-created model ---------------


def test_alias_moves_tags_deletions_and_recreated_model(server: dict[str, Any], tmp_path: Path) -> None:
    uri, name = server["uri"], "churn"
    collector = MlflowCollector(_config(uri, watched_experiments={}), CursorStore(tmp_path / "cursor.db"))
    _rest(uri, "POST", "registered-models/create", name=name)
    for n in (1, 2):
        _rest(uri, "POST", "model-versions/create", name=name, source=f"s3://models/churn/{n}")
    assert {e["aisoc.model.version"] for e in of_model(collector.poll(), name)} == {"1", "2"}

    _rest(uri, "POST", "model-versions/set-tag", name=name, version="2", key="aisoc.change.ticket", value="CHG-7")
    _rest(uri, "POST", "registered-models/alias", name=name, alias="champion", version="1")
    ids = []
    events = of_model(collector.poll(), name)
    assert {e["event.action"] for e in events} == {"model-version-tag-set", "model-alias-changed"}
    ids.append(find(events, "model-alias-changed")["event.id"])
    for version, previous in (("2", "1"), ("1", "2"), ("2", "1")):
        _rest(uri, "POST", "registered-models/alias", name=name, alias="champion", version=version)
        moved = find(of_model(collector.poll(), name), "model-alias-changed")
        assert (moved["aisoc.model.version"], moved["aisoc.model.previous_version"]) == (version, previous)
        assert moved.get("aisoc.change.approved") is (True if version == "2" else None)
        ids.append(moved["event.id"])
    assert len(set(ids)) == 4  # moving back and forth is four changes, not two

    assert of_model(collector.poll(), name) == []
    _rest(uri, "DELETE", "model-versions/delete-tag", name=name, version="2", key="aisoc.change.ticket")
    _rest(uri, "DELETE", "model-versions/delete", name=name, version="1")
    events = of_model(collector.poll(), name)
    assert {e["event.action"] for e in events} == {"model-version-tag-deleted", "model-version-deleted"}
    _rest(uri, "DELETE", "registered-models/alias", name=name, alias="champion")
    gone = find(of_model(collector.poll(), name), "model-alias-deleted")
    assert gone["aisoc.model.previous_version"] == "2"

    first_v2 = event_id("mlflow", "model-version-registered", name, "2", 0)
    _rest(uri, "DELETE", "registered-models/delete", name=name)
    _rest(uri, "POST", "registered-models/create", name=name)
    _rest(uri, "POST", "model-versions/create", name=name, source="s3://scratch/churn-evil")
    events = of_model(collector.poll(), name)
    deleted = find(events, "model-version-deleted")
    assert deleted["aisoc.model.version"] == "2"
    again = find(events, "model-version-registered")
    assert again["aisoc.model.version"] == "1" and again["event.id"] == event_id(
        "mlflow", "model-version-registered", name, "1", 1)  # a new generation: not a duplicate of the old v1
    assert again["event.id"] != first_v2
    assert of_model(collector.poll(), name) == []
    collector.close()


def test_artifact_tampering_fires_the_hash_rule_and_restoring_clears_it(world: dict[str, Any],
                                                                         tmp_path: Path) -> None:
    collector = MlflowCollector(_config(world["uri"], verify_artifacts=True, artifact_verify_interval_seconds=0),
                                CursorStore(tmp_path / "artifacts.db"))
    baseline = of_model(collector.poll())
    assert not [e for e in baseline if e["event.action"] == "model-artifact-verified"]
    weights = Path(world["pipeline_run"].info.artifact_uri) / "model" / "model.pkl"
    original = weights.read_bytes()
    try:
        weights.write_bytes(original + b"backdoor")
        events = events_only(of_model(collector.poll()))
        bad = find(events, "model-artifact-verified")
        assert bad["file.path"] == "model/model.pkl" and bad["aisoc.model.version"] == "1"
        assert bad["aisoc.model.artifact.hash_match"] is False and bad["event.outcome"] == "failure"
        assert bad["aisoc.model.artifact.expected_sha256"] != bad["aisoc.model.artifact.sha256"]
        assert fired(events).get(HASH) == {bad["event.id"]}
        assert of_model(collector.poll()) == []  # the same tampering is reported once
    finally:
        weights.write_bytes(original)
    restored = find(of_model(collector.poll()), "model-artifact-verified")
    assert restored["aisoc.model.artifact.hash_match"] is True and HASH not in fired([restored])
    collector.close()


# ---- server errors -------------------------------------------------------------------------------


def test_server_errors_become_rejected_and_leave_the_snapshot_alone(world: dict[str, Any], tmp_path: Path) -> None:
    cursor = CursorStore(tmp_path / "c.db")
    wrong = MlflowCollector(_config(world["uri"] + "/not-mlflow"), cursor)
    [rejected, runs] = wrong.poll()
    assert isinstance(rejected, Rejected) and "HTTP 404" in rejected.reason and "snapshot unchanged" in rejected.reason
    assert isinstance(runs, Rejected) and "fraud-training" in runs.reason
    assert cursor.get("mlflow:snapshot")["versions"] == {}

    bad_page = MlflowCollector(_config(world["uri"]).model_copy(update={"page_size": 10**7}), cursor)
    [too_big, *_] = bad_page.poll()
    assert isinstance(too_big, Rejected) and "INVALID_PARAMETER_VALUE" in too_big.reason

    unknown = MlflowCollector(_config(world["uri"], watched_experiments={"no-such-experiment": "x"}),
                              CursorStore(tmp_path / "d.db"))
    rejected_runs = [r for r in unknown.poll() if isinstance(r, Rejected)]
    assert len(rejected_runs) == 1 and "RESOURCE_DOES_NOT_EXIST" in rejected_runs[0].reason

    down = MlflowCollector(_config(f"http://127.0.0.1:{_free_port()}"), CursorStore(tmp_path / "e.db"))
    assert all(isinstance(r, Rejected) and "cannot reach MLflow" in r.reason for r in down.poll())
    for c in (wrong, bad_page, unknown, down):
        c.close()


def test_a_proxy_answering_html_or_truncated_json_is_rejected(tmp_path: Path) -> None:
    """Not MLflow: an SSO proxy in front of it answering 200 with a login page, then cut-off JSON."""
    bodies = iter([b"<html>Sign in</html>", b'{"registered_models": [{"name": "x"', b"[1, 2]"] * 2)

    class Proxy(BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802
            body = next(bodies)
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Proxy)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    try:
        collector = MlflowCollector(MlflowConfig(tracking_uri=f"http://127.0.0.1:{httpd.server_address[1]}"),
                                    CursorStore(tmp_path / "c.db"))
        reasons = [r.reason for _ in range(3) for r in collector.poll()]
        assert len(reasons) == 3 and all(isinstance(r, str) for r in reasons)
        assert "not JSON" in reasons[0] and "not JSON" in reasons[1] and "JSON list, not an object" in reasons[2]
        collector.close()
    finally:
        httpd.shutdown()
        httpd.server_close()


# ---- replay ----------------------------------------------------------------------------------


def test_replay_of_saved_pages_and_deliveries_from_the_real_server(world: dict[str, Any], tmp_path: Path) -> None:
    uri = world["uri"]
    pages, token = [], None
    while True:
        params = {"max_results": 2, "filter": f"name='{MODEL}'", **({"page_token": token} if token else {})}
        page = httpx.get(f"{uri}/api/2.0/mlflow/model-versions/search", params=params, timeout=10).json()
        pages.append(page)
        token = page.get("next_page_token")
        if not token:
            break
    assert len(pages) >= 2
    for i, page in enumerate(pages):
        (tmp_path / f"{i:02d}_versions.json").write_text(json.dumps(page))
    (tmp_path / "99_models.json").write_text(json.dumps(_rest(uri, "GET", "registered-models/search")))
    lines = [json.dumps({"headers": d["headers"], "body": d["body"].decode()}) for d in world["hook"].deliveries]
    (tmp_path / "deliveries.ndjson").write_text("\n".join(lines) + "\n")

    collector = MlflowCollector(_config(uri))
    replayed = list(collector.replay(tmp_path))
    events = of_model(replayed)
    polled = events_only(world["first"] + world["second"])
    assert ids_of(events, "model-version-registered") == ids_of(polled, "model-version-registered")
    assert ids_of(events, "model-alias-changed") == ids_of(polled, "model-alias-changed")
    # Offline: an empty run id is known to be no lineage; a run id cannot be checked.
    v2 = find(events, "model-version-registered", **{"aisoc.model.version": "2"})
    assert v2["aisoc.model.lineage.present"] is False
    v3 = find(events, "model-version-registered", **{"aisoc.model.version": "3"})
    assert "aisoc.model.lineage.present" not in v3
    again = list(collector.replay(tmp_path))  # deterministic: the same ids in the same order
    assert [e["event.id"] for e in of_model(again)] == [e["event.id"] for e in events]


def test_replay_fixtures_reconstruct_the_incident(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(SECRET_ENV, FIXTURE_SECRET)
    collector = MlflowCollector(MlflowConfig(tracking_uri="https://mlflow.example.internal",
                                             pipeline_identities=[PIPELINE], webhook_secret_env=SECRET_ENV))
    out = list(collector.replay(FIXTURES))
    rejected = [r for r in out if isinstance(r, Rejected)]
    deliveries = FIXTURES / "03_webhook_deliveries.ndjson"
    assert {(r.source, r.line) for r in rejected} == {(f"{deliveries}:{n}", n) for n in (3, 4, 5, 6)}
    reasons = {r.line: r.reason for r in rejected}
    assert "not valid JSON" in reasons[3] and "signature does not match" in reasons[4]
    assert "raw JSON string" in reasons[5] and "not a version number" in reasons[6]

    events = [e for e in out if isinstance(e, dict)]
    v31 = find(events, "model-version-registered", **{"aisoc.model.version": "31"})
    assert v31["aisoc.model.lineage.present"] is False and v31["@timestamp"] == "2026-01-01T00:10:00.000Z"
    prod = find(events, "model-alias-changed", **{"aisoc.model.alias": "prod"})
    assert prod["aisoc.model.version"] == "31" and prod["@timestamp"] == "2026-01-01T00:30:00.000Z"
    ocr = find(events, "model-version-registered", **{"aisoc.model.name": "vendor-ocr"})
    assert ocr["aisoc.change.approved"] is True and ocr["user.name"] == "mlops-lead"
    find(events, "model-version-tag-set", **{"aisoc.model.tag.key": "validation_status"})

    hits = fired(events)
    by_id = {e["event.id"]: e for e in events}
    names = {rule: {(by_id[i]["aisoc.model.name"], by_id[i]["aisoc.model.version"]) for i in ids}
             for rule, ids in hits.items()}
    assert names[NO_LINEAGE] == {("credit-risk", "31")}  # vendor-ocr v4 carries its change ticket
    assert names[ALIAS_MOVED] == {("credit-risk", "31")}
    assert ("credit-risk", "31") in names[PROMOTED] and ("vendor-ocr", "4") not in names[PROMOTED]


# ---- schema and bad input ------------------------------------------------------------------------


def test_every_emitted_field_is_declared(world: dict[str, Any]) -> None:
    registry = load_registry()
    pending = {f["name"] for f in yaml.safe_load(PENDING.read_text())["fields"]}
    collected = world["first"] + world["second"] + [r for d in world["hook"].deliveries for r in d["results"]]
    collected += list(MlflowCollector(MlflowConfig(tracking_uri="https://x")).replay(FIXTURES))
    for event in [e for e in collected if isinstance(e, dict)]:
        unknown = {f for f in event if not registry.is_known(f) and f not in pending}
        assert not unknown, unknown


def _offline() -> MlflowCollector:
    return MlflowCollector(MlflowConfig(tracking_uri="http://127.0.0.1:9", enrich_webhooks=False,
                                        pipeline_identities=[PIPELINE], max_body_bytes=64 * 1024))


def _storable(items: list[Any]) -> None:
    assert isinstance(items, list)
    assert all(isinstance(i, dict | Rejected) for i in items)
    store = EventStore()
    try:
        store.insert([i for i in items if isinstance(i, dict)])
    finally:
        store.close()


json_values = st.recursive(
    st.none() | st.booleans() | st.integers(min_value=-(10**30), max_value=10**30) | st.floats() | st.text(max_size=30),
    lambda inner: st.lists(inner, max_size=5) | st.dictionaries(st.text(max_size=12), inner, max_size=6),
    max_leaves=30)
FUZZ = settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
ENTITIES = st.sampled_from(["model_version", "MODEL_VERSION", "model_version_alias", "model_version_tag",
                            "registered_model", "prompt", "nonsense"])
ACTIONS = st.sampled_from(["created", "CREATED", "set", "deleted", "updated", "exceeded"])


@FUZZ
@given(st.binary(max_size=2048), st.dictionaries(st.text(max_size=30), st.text(max_size=60), max_size=4))
def test_parse_and_verify_never_raise_on_arbitrary_bytes(body: bytes, headers: dict[str, str]) -> None:
    _storable(_offline().parse_webhook(headers, body))
    assert verify_webhook(headers, body, SECRET) in (True, False)


@FUZZ
@given(ENTITIES, ACTIONS, json_values, st.dictionaries(st.sampled_from(
    ["name", "version", "alias", "key", "value", "run_id", "source", "tags"]), json_values, max_size=8))
def test_parse_never_raises_on_arbitrary_json_shapes(entity: str, action: str, stamp: Any, data: Any) -> None:
    collector = _offline()
    for payload in ({"entity": entity, "action": action, "timestamp": stamp, "data": data}, data, [data], stamp):
        try:
            body = json.dumps(payload).encode()
        except ValueError:
            continue
        _storable(collector.parse_webhook({}, body))


@FUZZ
@given(st.binary(max_size=2048), st.sampled_from([".json", ".ndjson"]))
def test_replay_never_raises_on_arbitrary_files(data: bytes, suffix: str) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / f"records{suffix}"
        path.write_bytes(data)
        out = list(_offline().replay(path))
        _storable(out)
        assert all(r.source.startswith(str(path)) for r in out if isinstance(r, Rejected))


@FUZZ
@given(json_values)
def test_replay_never_raises_on_arbitrary_json_records(value: Any) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "records.ndjson"
        records = [value, {"model_versions": value}, {"registered_models": [value]}, {"runs": [value]},
                   {"headers": value, "body": json.dumps(value)}, {"model_version": value}]
        path.write_text("\n".join(json.dumps(r) for r in records) + "\n")
        _storable(list(_offline().replay(path)))


def _delivery(data: Any, entity: str = "model_version", action: str = "created") -> bytes:
    return json.dumps({"entity": entity, "action": action, "timestamp": "2026-01-01T00:00:00+00:00",
                       "data": data}).encode()


@pytest.mark.parametrize(("body", "reason"), [
    (b'{"entity": "model_version", "action": "created", "data": {"name": "m", "vers', "not valid JSON"),
    (b"\xff\xfe{}", "not valid UTF-8"),
    (b"[" * 100_000 + b"]" * 100_000, "max_body_bytes"),
    (b"[" * 30_000 + b"]" * 30_000, "nested too deeply"),
    (_delivery({"name": "m", "version": ["1"]}), "version must be a string"),
    (_delivery({"name": "m", "version": "1", "tags": "x=y"}), "tags must be a list or an object"),
    (_delivery({"version": "1"}), "data.name is missing"),
    (_delivery({"name": "m", "version": "1e3"}), "not a version number"),
    (_delivery({"name": "m" * 20_000, "version": "1"}), "too long"),
    (_delivery({"name": "m", "version": "9" * 400}), "too long"),
    (_delivery({"name": "m", "alias": None, "version": "1"}, "model_version_alias"), "data.alias is missing"),
    (_delivery({"name": "m"}, "model_version", "updated"), "unsupported webhook event"),
    (json.dumps({"entity": "model_version", "action": "created", "data": 42}).encode(), "must be a JSON object"),
    (b'"just a string"', "must be a JSON object"),
])
def test_bad_deliveries_are_rejected_with_a_reason(body: bytes, reason: str) -> None:
    [rejected] = _offline().parse_webhook({"X-MLflow-Delivery-Id": "d-1"}, body)
    assert isinstance(rejected, Rejected) and reason in rejected.reason, rejected.reason
    assert rejected.source == "mlflow-webhook:d-1" and len(rejected.raw) <= 64 * 1024


def test_huge_and_odd_values_in_saved_pages(tmp_path: Path) -> None:
    page = {"model_versions": [
        {"name": "m", "version": "1", "creation_timestamp": 10**30},
        {"name": "m", "version": "2", "creation_timestamp": "yesterday"},
        {"name": "m", "version": "3", "creation_timestamp": True},
        {"name": "m", "version": "4", "tags": [{"key": "k"}, {"value": "no key"}]},
        {"name": "m", "version": "5", "creation_timestamp": 1767225600000, "tags": {"aisoc.change.approved": "false"}},
    ]}
    path = tmp_path / "page.json"
    path.write_text(json.dumps(page))
    out = list(_offline().replay(path))
    rejected = [r for r in out if isinstance(r, Rejected)]
    assert len(rejected) == 4 and all(r.line == 1 and r.source.startswith(f"{path}:1") for r in rejected)
    [event] = [e for e in out if isinstance(e, dict)]
    assert event["aisoc.model.version"] == "5" and event["aisoc.change.approved"] is False


def test_config_refuses_credentials_in_the_uri_and_other_schemes() -> None:
    for uri in ("http://admin:hunter2@mlflow.internal", "file:///tmp/mlruns", "mlflow.internal:5000"):
        with pytest.raises(ValueError, match="tracking_uri"):
            MlflowConfig(tracking_uri=uri)
    assert MlflowConfig(tracking_uri="https://h/mlflow/").tracking_uri == "https://h/mlflow"
