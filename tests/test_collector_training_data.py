"""Training-data collector: landed batches with manifests, object-store access logs, the rules they feed."""

from __future__ import annotations

import gzip
import hashlib
import json
import socket
import time
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from aisoc.collectors.base import CursorStore, MappingError
from aisoc.collectors.training_data import (
    BatchLandingConfig,
    BatchLandingSource,
    ObjectAccessConfig,
    ObjectAccessLogSource,
    count_rows,
    map_minio_audit,
    parse_object_access_log,
    parse_s3_access_log_line,
    read_batch_rows,
)
from aisoc.detect.engine import run_rule
from aisoc.detect.store import EventStore
from aisoc.records import Rejected
from aisoc.rules.loader import load_rules
from aisoc.schema import load_registry

ROOT = Path(__file__).resolve().parents[1]
FIXTURES = ROOT / "tests" / "fixtures" / "training_data"
PENDING = ROOT / "aisoc" / "schema" / "pending" / "supply_data.yml"

RULES, _ = load_rules([ROOT / "rules" / "data"])
HASH_MISMATCH = "1f71d7f1-cf9f-48c9-a099-0b19fe56d8b1"
UNAPPROVED = "b7049996-25a2-4ec2-8f30-4bf4d3cc8e35"
NON_PIPELINE_WRITE = "f263c1a7-81ce-4858-8699-13288d7a2db4"
POISONING_CHAIN = "2fd8763f-8de9-4d1c-82fa-c6788349ac67"  # suspicious batch, then label drift, same dataset


@pytest.fixture(autouse=True)
def no_network(monkeypatch: pytest.MonkeyPatch) -> None:
    """Nothing here may leave the machine: connections to anything but loopback fail."""
    real_connect = socket.socket.connect

    def connect(self: socket.socket, address: Any) -> Any:
        host = address[0] if isinstance(address, tuple) else address
        if isinstance(host, str) and host not in ("127.0.0.1", "::1", "localhost") and self.family != socket.AF_UNIX:
            raise OSError(f"test tried to reach {host}: no network in collector tests")
        return real_connect(self, address)

    monkeypatch.setattr(socket.socket, "connect", connect)


def fired(events: list[Any], correlations: bool = False) -> dict[str, set[str]]:
    """Rule id -> event ids it matched on the embedded engine."""
    store = EventStore()
    try:
        store.insert([e for e in events if isinstance(e, dict)])
        result: dict[str, set[str]] = {}
        for rule in RULES:
            if rule.is_correlation and not correlations:
                continue
            ids = {i for m in run_rule(store, rule) for i in m.event_ids}
            if ids:
                result[rule.rule_id] = ids
        return result
    finally:
        store.close()


def _declared() -> set[str]:
    return set(load_registry().fields) | {f["name"] for f in yaml.safe_load(PENDING.read_text())["fields"]}


# ---- batch landing ----------------------------------------------------------------------------------


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _manifest(batch: Path, **fields: Any) -> Path:
    path = batch.with_name(batch.name + ".manifest.json")
    path.write_text(json.dumps(fields))
    return path


CONFIG = BatchLandingConfig(approved_sources={"txn": ["vendor-a", "vendor-b"], "reviews": ["vendor-*"]},
                            pipeline="ingest-daily")


@pytest.fixture
def landing(tmp_path: Path) -> Path:
    """A landing zone: a clean CSV, an unapproved JSONL (YAML manifest), a tampered Parquet, a bare batch."""
    root = tmp_path / "landing"
    (root / "txn").mkdir(parents=True)
    (root / "reviews").mkdir()
    (root / "sandbox-data").mkdir()
    csv_batch = root / "txn" / "b-772.csv"
    csv_batch.write_text('amount,merchant,label\n12.5,"ACME, Inc.",0\n99.0,"multi\nline",1\n3.2,shop,0\n')
    _manifest(csv_batch, batch_id="b-772", dataset="txn", source="vendor-a", rows=3, sha256=_sha(csv_batch),
              landed_by="svc-ingest", landed_at="2026-01-01T02:00:00Z")
    jsonl = root / "reviews" / "r-9.jsonl"
    jsonl.write_text('{"text": "great", "label": 1}\n\n{"text": "bad", "label": 0}\n')
    (root / "reviews" / "r-9.jsonl.manifest.yaml").write_text(
        f"batch_id: r-9\ndataset: reviews\nsource: scraper-cheapreviews\nrows: 2\nsha256: 'sha256:{_sha(jsonl)}'\n"
        "landed_by: svc-ingest\n")
    parquet = root / "txn" / "b-771.parquet"
    table = pa.table({"amount": [1.0, 2.0, 3.0], "label": [0, 1, 0]})
    pq.write_table(table, parquet)
    manifest_sha = _sha(parquet)
    pq.write_table(pa.concat_tables([table, pa.table({"amount": [9.0], "label": [1]})]), parquet)  # rows injected
    _manifest(parquet, batch_id="b-771", dataset="txn", source="vendor-b", rows=3, sha256=manifest_sha,
              landed_by="svc-ingest")
    (root / "sandbox-data" / "s-1.ndjson").write_text('{"x": 1}\n{"x": 2}\n')
    (root / "txn" / "_SUCCESS").write_text("")
    return root


def _replay(root: Path, cursor: CursorStore | None = None) -> list[Any]:
    return list(BatchLandingSource(CONFIG, cursor).replay(root))


def test_landed_batches_become_events(landing: Path) -> None:
    items = _replay(landing)
    assert not [i for i in items if isinstance(i, Rejected)]
    by_id = {e["aisoc.data.batch.id"]: e for e in items}
    assert set(by_id) == {"b-772", "r-9", "b-771", "s-1"}
    clean = by_id["b-772"]
    assert clean["event.action"] == "data-batch-landed" and clean["event.dataset"] == "aisoc.data"
    assert clean["aisoc.data.batch.rows"] == 3 and clean["aisoc.data.manifest.rows"] == 3
    assert clean["aisoc.data.hash_match"] is True and clean["aisoc.data.source_approved"] is True
    assert clean["user.name"] == "svc-ingest" and clean["file.extension"] == "csv"
    assert clean["file.hash.sha256"] == clean["aisoc.data.manifest.sha256"]
    assert clean["@timestamp"] == "2026-01-01T02:00:00.000Z" and clean["aisoc.pipeline.name"] == "ingest-daily"
    assert by_id["r-9"]["aisoc.data.source_approved"] is False and by_id["r-9"]["aisoc.data.hash_match"] is True
    assert by_id["r-9"]["aisoc.data.batch.rows"] == 2
    tampered = by_id["b-771"]
    assert tampered["aisoc.data.hash_match"] is False and tampered["aisoc.data.batch.rows"] == 4
    bare = by_id["s-1"]
    assert bare["aisoc.data.dataset"] == "sandbox-data" and "aisoc.data.hash_match" not in bare
    assert "aisoc.data.source_approved" not in bare
    hits = fired(items)
    assert hits[HASH_MISMATCH] == {tampered["event.id"]}
    assert hits[UNAPPROVED] == {by_id["r-9"]["event.id"]}
    assert set(hits) == {HASH_MISMATCH, UNAPPROVED}
    declared = _declared()
    for event in items:
        assert set(event) <= declared, set(event) - declared


def test_tampered_batch_then_label_drift_fires_the_poisoning_chain(landing: Path) -> None:
    items = _replay(landing)
    tampered = next(e for e in items if e["aisoc.data.batch.id"] == "b-771")
    later = datetime.fromisoformat(tampered["@timestamp"].replace("Z", "+00:00")) + timedelta(minutes=5)

    def drift(dataset: str) -> dict[str, Any]:
        return {"@timestamp": later.isoformat(), "event.id": f"psi-{dataset}", "event.kind": "metric",
                "aisoc.signal.name": "label_psi", "aisoc.signal.value": 0.5, "aisoc.data.dataset": dataset,
                "aisoc.data.segment": "region=BR", "aisoc.signal.entity": f"{dataset}/region=BR"}

    hits = fired([*items, drift("txn")], correlations=True)
    assert tampered["event.id"] in hits[POISONING_CHAIN] and "psi-txn" in hits[POISONING_CHAIN]
    assert POISONING_CHAIN not in fired([*items, drift("sandbox-data")], correlations=True)


def test_cursor_emits_each_batch_once_across_restarts(landing: Path, tmp_path: Path) -> None:
    db = tmp_path / "cursor.db"
    first = _replay(landing, CursorStore(db))
    assert len(first) == 4
    assert _replay(landing, CursorStore(db)) == []  # a restart: a new store on the same file
    new = landing / "txn" / "b-773.csv"
    new.write_text("amount,label\n1,0\n")
    _manifest(new, batch_id="b-773", dataset="txn", source="vendor-a", rows=1, sha256=_sha(new))
    again = _replay(landing, CursorStore(db))
    assert [e["aisoc.data.batch.id"] for e in again] == ["b-773"]
    # a batch replaced in place is a new landing
    time.sleep(0.01)
    new.write_text("amount,label\n1,0\n666,1\n")
    replaced = _replay(landing, CursorStore(db))
    assert [e["aisoc.data.hash_match"] for e in replaced] == [False]
    # event ids are deterministic: a replay without cursor repeats the same ids
    assert {e["event.id"] for e in _replay(landing) if e["aisoc.data.batch.id"] == "b-772"} == {
        e["event.id"] for e in first if e["aisoc.data.batch.id"] == "b-772"}


def test_bad_manifests_and_unreadable_batches_are_rejected_by_name(landing: Path, tmp_path: Path) -> None:
    bad_json = landing / "txn" / "b-800.csv"
    bad_json.write_text("a\n1\n")
    bad_json.with_name("b-800.csv.manifest.json").write_text('{"rows": 1, "sha256": ')
    wrong = landing / "txn" / "b-801.csv"
    wrong.write_text("a\n1\n")
    _manifest(wrong, rows="ten", sha256="xyz")
    huge = landing / "txn" / "b-802.csv"
    huge.write_text("a\n1\n")
    _manifest(huge, rows=10**30)
    corrupt = landing / "txn" / "b-803.parquet"
    corrupt.write_bytes(b"PAR1 this is not parquet")
    _manifest(corrupt, rows=1)
    latin = landing / "txn" / "b-804.csv"
    latin.write_bytes(b"name\nJos\xe9\n")
    escape = landing / "txn" / "b-805.manifest.json"
    escape.write_text(json.dumps({"file": "../../../etc/passwd"}))
    yaml_alias = landing / "txn" / "b-806.csv.manifest.yaml"
    (landing / "txn" / "b-806.csv").write_text("a\n1\n")
    yaml_alias.write_text("a: &x [1]\nb: *x\n")
    items = _replay(landing)
    rejected = {Path(r.source).name: r.reason for r in items if isinstance(r, Rejected)}
    assert set(rejected) == {"b-800.csv.manifest.json", "b-801.csv.manifest.json", "b-802.csv.manifest.json",
                             "b-803.parquet.manifest.json", "b-804.csv", "b-805.manifest.json",
                             "b-806.csv.manifest.yaml"}
    assert "not valid JSON" in rejected["b-800.csv.manifest.json"]
    assert "'rows' must be a non-negative integer" in rejected["b-801.csv.manifest.json"]
    assert "'rows'" in rejected["b-802.csv.manifest.json"]
    assert "b-803.parquet" in rejected["b-803.parquet.manifest.json"]
    assert "UnicodeDecodeError" in rejected["b-804.csv"]
    assert "outside the landing directory" in rejected["b-805.manifest.json"]
    assert "aliases" in rejected["b-806.csv.manifest.yaml"]
    landed = {i["aisoc.data.batch.id"] for i in items if isinstance(i, dict)}
    assert landed == {"b-772", "r-9", "b-771", "s-1"}  # the good batches still land, the others do not


def test_manifest_waiting_for_its_batch(tmp_path: Path) -> None:
    root = tmp_path / "landing"
    (root / "txn").mkdir(parents=True)
    (root / "txn" / "b-1.csv.manifest.json").write_text(json.dumps({"rows": 1}))
    assert list(BatchLandingSource(CONFIG).replay(root)) == []
    late = BatchLandingSource(CONFIG.model_copy(update={"pending_grace_seconds": 0})).replay(root)
    [rejected] = list(late)
    assert isinstance(rejected, Rejected) and "is missing" in rejected.reason
    young = BatchLandingSource(CONFIG.model_copy(update={"min_age_seconds": 3600}))
    (root / "txn" / "b-2.csv").write_text("a\n1\n")
    assert list(young.replay(root)) == []


def test_row_counting_and_reading(tmp_path: Path) -> None:
    csv_file = tmp_path / "b.csv"
    csv_file.write_text('a,b\n1,"x\ny"\n2,z\n')
    jsonl = tmp_path / "b.jsonl.gz"
    with gzip.open(jsonl, "wt") as fh:
        fh.write("".join(json.dumps({"i": i}) + "\n" for i in range(250)))
    parquet = tmp_path / "b.parquet"
    pq.write_table(pa.table({"i": list(range(5000))}), parquet)
    assert count_rows(csv_file) == 2 and count_rows(jsonl) == 250 and count_rows(parquet) == 5000
    assert list(read_batch_rows(csv_file)) == [{"a": "1", "b": "x\ny"}, {"a": "2", "b": "z"}]
    assert len(list(read_batch_rows(jsonl, limit=100))) == 100
    rows = list(read_batch_rows(parquet, limit=2000))
    assert len(rows) == 2000 and rows[1999] == {"i": 1999}
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"a": 1}\n[1, 2]\n')
    with pytest.raises(MappingError, match="bad.jsonl:2"):
        list(read_batch_rows(bad))
    with pytest.raises(MappingError, match="not a CSV"):
        list(read_batch_rows(tmp_path / "x.txt"))
    empty = tmp_path / "empty.csv"
    empty.write_text("")
    assert count_rows(empty) == 0 and list(read_batch_rows(empty)) == []


# ---- object-store access logs --------------------------------------------------------------------------

ACCESS = ObjectAccessConfig(
    ingestion_paths=["s3://training-landing/txn/", "training-landing/reviews/"],
    pipeline_identities=["arn:aws:sts::123456789012:assumed-role/svc-ingest/*", "svc-ingest"])


def _events(name: str) -> list[dict[str, Any]]:
    items = list(parse_object_access_log((FIXTURES / name).read_bytes(), ACCESS, source=name))
    assert all(isinstance(i, dict) for i in items), [i for i in items if isinstance(i, Rejected)]
    return items


def test_s3_server_access_log() -> None:
    events = _events("s3_access.log")
    pipeline, jdoe, read, listing, scratch, delete, denied = events
    assert pipeline["event.action"] == "object-accessed" and pipeline["event.provider"] == "object_store"
    assert pipeline["aisoc.data.storage.operation"] == "write" and pipeline["aisoc.pipeline.identity_approved"]
    assert pipeline["file.path"] == "txn/2026/01/01/b-771.parquet" and pipeline["source.ip"] == "10.20.0.15"
    assert pipeline["@timestamp"] == "2026-01-01T02:00:01.000Z" and pipeline["cloud.provider"] == "aws"
    assert jdoe["user.name"] == "arn:aws:iam::123456789012:user/jdoe"
    assert jdoe["aisoc.data.storage.ingestion_path"] is True and jdoe["aisoc.pipeline.identity_approved"] is False
    assert read["aisoc.data.storage.operation"] == "read" and listing["aisoc.data.storage.operation"] == "list"
    assert listing["file.path"] == "txn/2026/01/"
    assert [e["aisoc.data.storage.api"] for e in (pipeline, read, listing, delete)] == [
        "REST.PUT.OBJECT", "REST.GET.OBJECT", "REST.GET.BUCKET", "REST.DELETE.OBJECT"]  # the store's own name kept
    assert scratch["aisoc.data.storage.ingestion_path"] is False
    assert delete["aisoc.data.storage.operation"] == "delete" and delete["http.response.status_code"] == 204
    assert denied["event.outcome"] == "failure" and denied["error.type"] == "AccessDenied"
    hits = fired([pipeline, jdoe, read, listing, scratch, delete])
    assert hits == {NON_PIPELINE_WRITE: {jdoe["event.id"], delete["event.id"]}}
    declared = _declared()
    assert all(set(e) <= declared for e in events)


def test_minio_audit_log() -> None:
    events = _events("minio_audit.jsonl")
    assert len(events) == 6  # the multi-object delete is one event per object
    pipeline, contractor, del1, del2, read, listing = events
    assert pipeline["user.name"] == "svc-ingest" and pipeline["aisoc.pipeline.identity_approved"] is True
    assert pipeline["@timestamp"] == "2026-01-01T02:00:01.123Z"
    assert contractor["source.ip"] == "192.168.7.31" and contractor["aisoc.data.storage.operation"] == "write"
    assert {del1["file.path"], del2["file.path"]} == {"reviews/2026/01/01/r-7.jsonl", "reviews/2026/01/01/r-8.jsonl"}
    assert del1["event.id"] != del2["event.id"]
    assert read["aisoc.data.storage.operation"] == "read"
    apis = (del1["aisoc.data.storage.api"], listing["aisoc.data.storage.api"])
    assert apis == ("DeleteMultipleObjects", "ListObjectsV2")
    assert listing["aisoc.data.storage.operation"] == "list" and listing["file.path"] == "reviews/"
    assert fired(events) == {NON_PIPELINE_WRITE: {contractor["event.id"], del1["event.id"], del2["event.id"]}}
    assert all(set(e) <= _declared() for e in events)


def test_bad_lines_are_rejected_with_their_line_number() -> None:
    good = (FIXTURES / "s3_access.log").read_bytes().splitlines()[0]
    lines = [good, good[:80], b"\xff\xfe not utf-8", b'{"api": "PutObject"}', b'{"time": "yesterday", "api": '
             b'{"name": "PutObject"}}', b"{truncated", good.replace(b"10.20.0.15", b"not-an-ip"),
             good.replace(b"[01/Jan/2026:02:00:01 +0000]", b"[31/Feb/2026:99:00:01 +0000]"), b"", good]
    items = list(parse_object_access_log(lines, ACCESS, source="s3.log"))
    rejected = [i for i in items if isinstance(i, Rejected)]
    assert [r.line for r in rejected] == [2, 3, 4, 5, 6, 7, 8]
    assert all(r.source == f"s3.log:{r.line}" for r in rejected)
    assert "not UTF-8" in rejected[1].reason and "no 'api' object" in rejected[2].reason
    assert "not an IP address" in rejected[5].reason
    assert [i["event.id"] for i in items if isinstance(i, dict)] == [items[0]["event.id"]] * 2  # same record


def test_log_source_resumes_from_its_cursor(tmp_path: Path) -> None:
    logs = tmp_path / "logs"
    logs.mkdir()
    lines = (FIXTURES / "s3_access.log").read_text().splitlines(keepends=True)
    live = logs / "access.log"
    live.write_text("".join(lines[:3]) + lines[3][:40])  # the last line is still being written
    with gzip.open(logs / "audit.jsonl.gz", "wb") as fh:
        fh.write((FIXTURES / "minio_audit.jsonl").read_bytes())
    db = tmp_path / "cursor.db"
    first = list(ObjectAccessLogSource(ACCESS, CursorStore(db)).replay(logs))
    assert len(first) == 3 + 6 and all(isinstance(e, dict) for e in first)
    assert list(ObjectAccessLogSource(ACCESS, CursorStore(db)).replay(logs)) == []
    live.write_text("".join(lines))
    rest = list(ObjectAccessLogSource(ACCESS, CursorStore(db)).replay(logs))
    assert [e["aisoc.data.storage.bucket"] for e in rest] == ["training-landing", "team-scratch", "training-landing",
                                                              "training-landing"][:len(lines) - 3]
    live.write_text(lines[0])  # rotated: read again from the start
    assert len(list(ObjectAccessLogSource(ACCESS, CursorStore(db)).replay(logs))) == 1


def test_s3_parser_fields() -> None:
    record = parse_s3_access_log_line((FIXTURES / "s3_access.log").read_text().splitlines()[3])
    assert record["operation"] == "REST.GET.BUCKET" and record["key"] is None
    assert record["request_uri"].startswith("GET /?list-type=2") and record["tls_version"] == "TLSv1.3"


# ---- fuzz -----------------------------------------------------------------------------------------------

json_values = st.recursive(
    st.none() | st.booleans() | st.integers(min_value=-(10**30), max_value=10**30) | st.floats() | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner, max_size=5),
    max_leaves=25)
FUZZ = settings(max_examples=80, deadline=None, database=None,
                suppress_health_check=[HealthCheck.function_scoped_fixture])


def _storable(items: list[Any]) -> None:
    store = EventStore()
    try:
        store.insert([i for i in items if isinstance(i, dict)])
    finally:
        store.close()


@FUZZ
@given(lines=st.lists(st.binary(max_size=200), max_size=5))
def test_arbitrary_log_bytes_never_raise(lines: list[bytes]) -> None:
    _storable(list(parse_object_access_log(lines, ACCESS)))


@FUZZ
@given(value=json_values)
def test_arbitrary_audit_json_never_raises(value: Any) -> None:
    shaped = [value, {"time": "2026-01-01T00:00:00Z", "api": value},
              {"time": value, "api": {"name": "PutObject", "bucket": value, "object": value, "statusCode": value},
               "remotehost": value, "accessKey": value, "requestQuery": value, "requestHeader": value},
              {"time": "2026-01-01T00:00:00Z", "api": {"name": "DeleteMultipleObjects", "objects": [value]}}]
    lines = [json.dumps(v).encode() for v in shaped]
    _storable(list(parse_object_access_log(lines, ACCESS)))
    for record in shaped:
        try:
            _storable(map_minio_audit(record, ACCESS))
        except MappingError:
            pass


@FUZZ
@given(manifest=st.binary(max_size=200) | json_values.map(lambda v: json.dumps(v).encode()),
       batch=st.binary(max_size=200), suffix=st.sampled_from([".csv", ".jsonl", ".parquet"]))
def test_arbitrary_manifest_and_batch_bytes_never_raise(tmp_path_factory: pytest.TempPathFactory, manifest: bytes,
                                                        batch: bytes, suffix: str) -> None:
    root = tmp_path_factory.mktemp("fuzz")
    (root / f"b{suffix}").write_bytes(batch)
    (root / f"b{suffix}.manifest.json").write_bytes(manifest)
    items = list(BatchLandingSource(CONFIG).replay(root))
    assert len(items) == 1
    _storable(items)


def test_a_csv_row_with_more_fields_than_the_header_is_named(tmp_path: Path) -> None:
    batch = tmp_path / "reviews.csv"
    batch.write_text("id,text,label\n1,great,pos\n2,bad, really bad,neg\n")
    rows = read_batch_rows(batch)
    assert next(rows) == {"id": "1", "text": "great", "label": "pos"}
    with pytest.raises(MappingError, match=r"reviews.csv:3: row has 4 fields, the header has 3"):
        next(rows)


def test_operations_that_touch_metadata_or_copy_out_are_not_writes_or_deletes() -> None:
    from aisoc.collectors.training_data import _minio_method, _minio_operation, _s3_operation

    assert _s3_operation("REST.COPY.OBJECT_GET") == "read"  # the source of `aws s3 cp s3://a/x s3://b/`
    assert _s3_operation("REST.COPY.OBJECT") == "write"
    for metadata in ("REST.DELETE.OBJECT_TAGGING", "REST.GET.OBJECT_TAGGING", "REST.GET.ACL", "REST.PUT.ACL"):
        assert _s3_operation(metadata) is None, metadata
    assert _s3_operation("BATCH.DELETE.OBJECT") == "delete" and _s3_operation("S3.EXPIRE.OBJECT") == "delete"
    for metadata in ("DeleteObjectTagging", "GetObjectTagging", "GetObjectAttributes", "PutObjectRetention"):
        assert _minio_operation(metadata) is None, metadata
    assert [_minio_method(n) for n in ("HeadObject", "GetObject", "PutObject", "DeleteObject",
                                       "DeleteMultipleObjects", "ListObjectsV2", "CopyObject")] == [
        "HEAD", "GET", "PUT", "DELETE", "POST", "GET", "PUT"]
