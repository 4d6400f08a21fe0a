"""The response audit log: hash chain, tamper detection, concurrency, secret scrubbing."""

from __future__ import annotations

import json
import threading
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from aisoc.respond.audit import GENESIS, AuditError, AuditLog, record_hash, verify_audit_log
from aisoc.respond.secrets import REDACTED, SecretRegistry


def write(path: Path, n: int = 5) -> AuditLog:
    log = AuditLog(path)
    for i in range(n):
        log.append({"type": "step", "step": f"s{i}", "approved_by": "alice", "inputs": {"n": i, "ünï": "çødé"}})
    return log


def lines(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().split("\n") if line]


def save(path: Path, records: list[dict]) -> None:
    path.write_text("".join(json.dumps(r, sort_keys=True, separators=(",", ":"), ensure_ascii=False) + "\n"
                            for r in records))


def test_chain_links_every_record(tmp_path: Path) -> None:
    path = tmp_path / "audit.jsonl"
    log = write(path)
    records = lines(path)
    assert [r["seq"] for r in records] == [1, 2, 3, 4, 5]
    assert records[0]["prev"] == GENESIS
    for before, after in zip(records, records[1:], strict=False):
        assert after["prev"] == before["hash"]
    assert all(record_hash(r) == r["hash"] for r in records)
    check = verify_audit_log(path, expected_head=log.head())
    assert check.ok and check.records == 5 and check.head == records[-1]["hash"]


def test_a_modified_record_is_detected(tmp_path: Path) -> None:
    path = tmp_path / "audit.jsonl"
    write(path)
    records = lines(path)
    records[2]["approved_by"] = "mallory"
    save(path, records)
    check = verify_audit_log(path)
    assert not check.ok
    assert any(":3: hash mismatch" in p for p in check.problems)


def test_a_modified_record_with_recomputed_hash_breaks_the_next_link(tmp_path: Path) -> None:
    path = tmp_path / "audit.jsonl"
    write(path)
    records = lines(path)
    records[1]["inputs"] = {"n": 999}
    records[1]["hash"] = record_hash(records[1])
    save(path, records)
    check = verify_audit_log(path)
    assert any(":3: prev does not match" in p for p in check.problems)


def test_deleted_and_reordered_records_are_detected(tmp_path: Path) -> None:
    path = tmp_path / "audit.jsonl"
    write(path)
    records = lines(path)
    save(path, records[:2] + records[3:])
    assert any("seq is 4, expected 3" in p for p in verify_audit_log(path).problems)
    save(path, [records[1], records[0], *records[2:]])
    assert not verify_audit_log(path).ok


def test_truncation_is_detected_against_an_anchored_head(tmp_path: Path) -> None:
    path = tmp_path / "audit.jsonl"
    head = write(path).head()
    records = lines(path)
    save(path, records[:-1])
    assert verify_audit_log(path).ok, "a shorter chain is still a valid chain"
    check = verify_audit_log(path, expected_head=head)
    assert not check.ok and "cut off" in check.problems[0]


def test_garbage_line_is_reported_and_appending_refuses(tmp_path: Path) -> None:
    path = tmp_path / "audit.jsonl"
    write(path, 2)
    with open(path, "a") as handle:
        handle.write("{not json\n")
    assert any(":3: not JSON" in p for p in verify_audit_log(path).problems)
    with pytest.raises(AuditError):
        AuditLog(path).append({"type": "x"})


def test_concurrent_appends_keep_one_chain(tmp_path: Path) -> None:
    path = tmp_path / "audit.jsonl"

    def worker(n: int) -> None:
        log = AuditLog(path)  # separate objects, as separate processes would have
        for i in range(25):
            log.append({"type": "step", "worker": n, "i": i})

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    check = verify_audit_log(path)
    assert check.ok, check.problems[:3]
    assert check.records == 200


def test_secrets_are_scrubbed_before_writing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AISOC_TEST_TOKEN", "mlflow-token-0123456789")
    secrets = SecretRegistry()
    token = secrets.from_env("AISOC_TEST_TOKEN")
    path = tmp_path / "audit.jsonl"
    AuditLog(path, secrets.scrub).append({
        "type": "step", "error": f"401 for Bearer {token}", "details": {"password": "hunter22", "new_key": "sk-abc"},
        "message": "issued sk-LiveKey1234567890abcd", "aisoc": {"api_key": {"hash": "9f2c4e71"}},
    })
    text = path.read_text()
    assert token not in text and "hunter22" not in text and "sk-LiveKey1234567890abcd" not in text
    record = lines(path)[0]
    assert record["error"] == f"401 for Bearer {REDACTED}"
    assert record["details"]["password"] == REDACTED and record["message"] == "issued sk-...abcd"
    assert record["aisoc"]["api_key"]["hash"] == "9f2c4e71", "hashes are not secrets"
    assert verify_audit_log(path).ok


@settings(max_examples=50, deadline=None)
@given(st.lists(st.dictionaries(st.text(min_size=1, max_size=8),
                                st.one_of(st.text(max_size=20), st.integers(), st.booleans(), st.none()),
                                max_size=4), min_size=1, max_size=6),
       st.data())
def test_any_single_field_change_is_detected(tmp_path_factory: pytest.TempPathFactory, payloads: list[dict],
                                             data: st.DataObject) -> None:
    path = tmp_path_factory.mktemp("audit") / "audit.jsonl"
    log = AuditLog(path)
    for payload in payloads:
        log.append({"type": "x", "payload": payload})
    records = lines(path)
    index = data.draw(st.integers(0, len(records) - 1))
    records[index]["payload"] = {"__tampered__": True, **records[index]["payload"]}  # keys are <= 8 chars
    save(path, records)
    assert not verify_audit_log(path).ok
