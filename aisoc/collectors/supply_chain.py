"""Supply-chain collector: Python environments, SBOMs, model signatures, model scans, hub models.

Every mapper is a pure function from the platform's native record to ECS events; bad input never
raises, it comes back as a `Rejected` naming what was wrong.

| function | native input | event.action |
|---|---|---|
| `verify_environment` | `pip inspect` JSON, each dist's `.dist-info/RECORD`, a hash-pinned lock | `package-verified` |
| `diff_sboms` | two CycloneDX (1.4-1.6) JSON SBOMs | `sbom-component-changed` |
| `verify_model_signature` | a model directory and its OpenSSF `model_signing` bundle | `model-signature-verified` |
| `map_modelscan_report` | a ModelScan JSON report | `model-scan-completed` |
| `map_hub_model_info` | Hugging Face Hub `/api/models/{repo}[/revision/{rev}]` JSON | `hub-model-resolved` |

Approvals of SBOM changes come from component properties (CycloneDX `properties[]`):
`aisoc:approved` (`true`/`false`), `aisoc:change-ticket` (a ticket id; a ticket counts as approval
unless `aisoc:approved` says `false`) and `aisoc:approver`; or from the caller's `approvals` mapping
(`name`, `name@version` or `name==version` -> ticket), e.g. exported from the change-management
system. The SBOM's `metadata.properties` may carry `aisoc:build-id`.

Model signatures are verified offline: `model_signing` key-based (`use_elliptic_key_verifier`) and
certificate-based (`use_certificate_verifier`) bundles need no Sigstore service. Sigstore keyless
bundles (Fulcio certificate + Rekor entry) need Sigstore's trust root and are reported as
`unsupported signature type` (trusted false) rather than fetched.
"""

from __future__ import annotations

import base64
import csv
import fnmatch
import hashlib
import io
import json
import math
import re
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict

from aisoc.collectors.base import MappingError, make_event
from aisoc.records import Rejected
from aisoc.rules.model import normalize_timestamp

MAX_JSON_BYTES = 64 * 1024 * 1024
MAX_LOCK_BYTES = 16 * 1024 * 1024
MAX_SIGNATURE_BYTES = 16 * 1024 * 1024
MAX_RECORD_BYTES = 32 * 1024 * 1024
MAX_LISTED_PATHS = 50
MAX_TEXT = 4096
LONG_MAX = 2**63 - 1
FULL_SHA_RE = re.compile(r"[0-9a-fA-F]{40}")
SHA256_RE = re.compile(r"[0-9a-fA-F]{64}")
SEVERITIES = ("low", "medium", "high", "critical")
_MAPPING_ERRORS = (MappingError, ValueError, TypeError, KeyError, IndexError, AttributeError, RecursionError,
                   OverflowError)


# ---- small shared helpers -------------------------------------------------------------------------


def _raw(value: Any) -> bytes | str:
    """The raw record for a `Rejected`, capped."""
    if isinstance(value, bytes):
        return value[:MAX_TEXT * 4]
    if isinstance(value, str):
        return value[:MAX_TEXT * 4]
    try:
        return json.dumps(value, ensure_ascii=False, sort_keys=True, default=str)[:MAX_TEXT * 4]
    except (ValueError, TypeError, RecursionError):
        return repr(value)[:MAX_TEXT * 4]


def _reject(source: str, reason: str, raw: Any) -> Rejected:
    return Rejected(source=source, reason=reason[:MAX_TEXT], raw=_raw(raw))


def load_json(data: Any, what: str) -> Any:
    """`data` as parsed JSON: dicts and lists pass through, bytes/str are parsed (size-capped)."""
    if isinstance(data, dict | list):
        return data
    if isinstance(data, bytes | bytearray | str):
        if len(data) > MAX_JSON_BYTES:
            raise MappingError(f"{what} is {len(data)} bytes, over the {MAX_JSON_BYTES} byte limit")
        try:
            return json.loads(data)
        except UnicodeDecodeError as exc:
            raise MappingError(f"{what} is not UTF-8 (byte {exc.start})") from None
        except json.JSONDecodeError as exc:
            raise MappingError(f"{what} is not valid JSON: {exc.msg} at line {exc.lineno} column {exc.colno}") from None
        except RecursionError:
            raise MappingError(f"{what} nests too deeply") from None
    raise MappingError(f"{what} must be a JSON object, got {type(data).__name__}")


def _obj(value: Any, what: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise MappingError(f"{what} must be an object, got {type(value).__name__}")
    return value


def _list(value: Any, what: str, *, required: bool = True) -> list[Any]:
    if value is None and not required:
        return []
    if not isinstance(value, list):
        raise MappingError(f"{what} must be a list, got {type(value).__name__}")
    return value


def _text(value: Any, what: str, *, required: bool = False, max_len: int = MAX_TEXT) -> str | None:
    if value is None or value == "":
        if required:
            raise MappingError(f"{what} is missing")
        return None
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        raise MappingError(f"{what} must be a string, got {type(value).__name__}")
    text = str(value)
    if len(text) > max_len:
        raise MappingError(f"{what} is {len(text)} characters, over the {max_len} limit")
    return text


def _long(value: Any, what: str) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float) or (isinstance(value, float) and (
            not math.isfinite(value) or not value.is_integer())):
        raise MappingError(f"{what} must be an integer, got {value!r:.80}")
    number = int(value)
    if not -LONG_MAX - 1 <= number <= LONG_MAX:
        raise MappingError(f"{what} {number:.3g} is out of range")
    return number


def _when(value: Any, what: str = "timestamp") -> str:
    """Any accepted time (ISO-8601 text, datetime; None = now) -> the normalized UTC form."""
    if value is None:
        value = datetime.now(UTC)
    if isinstance(value, str) and len(value) > 64:
        raise MappingError(f"{what} is too long to be a time")
    if not isinstance(value, str | datetime):
        raise MappingError(f"{what} must be an ISO-8601 time, got {type(value).__name__}")
    try:
        text = value
        if isinstance(value, str):  # RFC 3339 with nanoseconds: keep microseconds
            text = re.sub(r"(\.\d{6})\d+", r"\1", value.strip())
        when = normalize_timestamp(text)
    except (ValueError, OverflowError):
        raise MappingError(f"{what} {str(value)[:64]!r} is not an ISO-8601 time") from None
    if when is None:
        raise MappingError(f"{what} is missing")
    return when


def _norm_name(name: str) -> str:
    """PEP 503 normalized project name."""
    return re.sub(r"[-_.]+", "-", name).lower()


def _versions_equal(a: str | None, b: str | None) -> bool:
    if a is None or b is None:
        return False
    if a == b:
        return True
    try:
        from packaging.version import InvalidVersion, Version
    except ImportError:  # pragma: no cover - packaging ships with pip/pytest
        return False
    try:
        return Version(a) == Version(b)
    except InvalidVersion:
        return False


def _approval(name: str, version: str | None, approvals: Mapping[str, str] | None) -> str | None:
    """The change ticket approving `name` (at `version`), from a caller-supplied mapping."""
    if not approvals:
        return None
    norm = _norm_name(name)
    for key, ticket in approvals.items():
        key_name, *rest = re.split(r"==|@", str(key), maxsplit=1)
        key_version = rest[0].strip() if rest else ""
        if _norm_name(key_name.strip()) == norm and (not key_version or key_version == version):
            return str(ticket) or "approved"
    return None


# ---- 1. Python environment vs. hash-pinned lock ----------------------------------------------------


@dataclass(frozen=True)
class LockEntry:
    """One requirement of a hash-pinned lock (`pkg==v --hash=sha256:...`)."""

    name: str
    version: str | None
    sha256: tuple[str, ...]
    line: int


_REQ_RE = re.compile(
    r"^\s*(?P<name>[A-Za-z0-9](?:[A-Za-z0-9._-]*[A-Za-z0-9])?)\s*(?:\[[^\]]*\])?\s*"
    r"(?:(?P<op>===|==|~=|!=|<=|>=|<|>|@)\s*(?P<spec>[^\s;\\]+))?")
_HASH_RE = re.compile(r"--hash[=\s]+(?P<alg>[A-Za-z0-9]+):(?P<hex>[0-9A-Fa-f]+)")


def parse_lock(lock_text: str) -> tuple[dict[str, LockEntry], list[Rejected]]:
    """Parse a pip-compile / `pip freeze --require-hashes` style lock; keys are normalized names."""
    entries: dict[str, LockEntry] = {}
    rejected: list[Rejected] = []
    logical: list[tuple[int, str]] = []
    buffer, start = "", 0
    for number, line in enumerate(lock_text.splitlines(), start=1):
        if not buffer:
            start = number
        stripped = line.rstrip()
        if stripped.endswith("\\"):
            buffer += stripped[:-1] + " "
            continue
        logical.append((start, buffer + line))
        buffer = ""
    if buffer:
        logical.append((start, buffer))
    for number, line in logical:
        text = re.sub(r"(^|\s)#.*$", "", line).strip()
        if not text or text.startswith("-"):
            continue  # comments, options (-r, --index-url, -e ...)
        match = _REQ_RE.match(text)
        if not match:
            rejected.append(_reject(f"lock:{number}", f"line {number}: not a requirement", line))
            continue
        version = match["spec"] if match["op"] in ("==", "===") else None
        hashes = tuple(m["hex"].lower() for m in _HASH_RE.finditer(text) if m["alg"].lower() == "sha256")
        entries[_norm_name(match["name"])] = LockEntry(match["name"], version, hashes, number)
    return entries, rejected


def _record_hash(data_hash: bytes) -> str:
    return base64.urlsafe_b64encode(data_hash).rstrip(b"=").decode("ascii")


def _file_digest(path: Path) -> bytes:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1024 * 1024), b""):
            digest.update(chunk)
    return digest.digest()


@dataclass
class RecordCheck:
    """Result of checking installed files against a dist-info RECORD."""

    checked: int = 0
    mismatched: list[str] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)
    error: str | None = None

    @property
    def bad(self) -> list[str]:
        return self.mismatched + self.missing


def verify_record(dist_info: Path) -> RecordCheck:
    """Recompute the sha256 of every file the RECORD lists with a hash (`path,sha256=<b64>,size`).

    A missing file counts as a mismatch, except one outside site-packages (`../../../bin/x`):
    console scripts do not travel with a copied site-packages. When present they are checked.
    """
    result = RecordCheck()
    record = dist_info / "RECORD"
    try:
        if record.stat().st_size > MAX_RECORD_BYTES:
            result.error = f"RECORD is over {MAX_RECORD_BYTES} bytes"
            return result
        text = record.read_text(encoding="utf-8")
    except FileNotFoundError:
        result.error = "no RECORD in the dist-info"
        return result
    except (OSError, UnicodeDecodeError) as exc:
        result.error = f"cannot read RECORD: {exc}"
        return result
    root = dist_info.parent
    for row in csv.reader(io.StringIO(text)):
        if len(row) < 2 or not row[1]:
            continue  # RECORD itself, .pyc files: listed without a hash
        path, hash_spec = row[0], row[1]
        algorithm, _, expected = hash_spec.partition("=")
        if algorithm.lower() != "sha256":
            continue
        target = root / path
        outside = path.startswith(("../", "..\\", "/"))  # console scripts in bin/: may not travel with a copy
        try:
            if not target.is_file():
                if not outside:
                    result.checked += 1
                    result.missing.append(path)
                continue
            result.checked += 1
            if len(row) > 2 and row[2].isdigit() and target.stat().st_size != int(row[2]):
                result.mismatched.append(path)
                continue
            if _record_hash(_file_digest(target)) != expected:
                result.mismatched.append(path)
        except OSError:
            result.missing.append(path)
    return result


def _observed_wheel_hashes(install_report: Any) -> dict[str, str]:
    """name -> sha256 of the archive pip installed, from `pip install --report` JSON."""
    hashes: dict[str, str] = {}
    if install_report is None:
        return hashes
    report = _obj(load_json(install_report, "pip install report"), "pip install report")
    for item in _list(report.get("install"), "pip install report 'install'", required=False):
        if not isinstance(item, dict):
            continue
        name = (item.get("metadata") or {}).get("name") if isinstance(item.get("metadata"), dict) else None
        digest = _archive_sha256(item.get("download_info"))
        if isinstance(name, str) and digest:
            hashes[_norm_name(name)] = digest
    return hashes


def _archive_sha256(info: Any) -> str | None:
    """sha256 from a PEP 610 direct_url / download_info `archive_info`."""
    if not isinstance(info, dict) or not isinstance(info.get("archive_info"), dict):
        return None
    archive = info["archive_info"]
    hashes = archive.get("hashes")
    if isinstance(hashes, dict) and isinstance(hashes.get("sha256"), str) and SHA256_RE.fullmatch(hashes["sha256"]):
        return hashes["sha256"].lower()
    legacy = archive.get("hash")
    if isinstance(legacy, str) and legacy.startswith("sha256="):
        value = legacy.partition("=")[2]
        return value.lower() if SHA256_RE.fullmatch(value) else None
    return None


def verify_environment(
    pip_inspect: Any,
    site_packages: Path | None,
    lock_text: str,
    *,
    install_report: Any = None,
    approvals: Mapping[str, str] | None = None,
    host: str | None = None,
    observed_at: datetime | str | None = None,
    collector: str | None = None,
) -> list[dict[str, Any] | Rejected]:
    """One `package-verified` event per installed distribution.

    `pip_inspect`: `pip inspect` JSON (dict, or its bytes). `site_packages`: where the dist-infos
    are now (overrides the directory of `metadata_location`, for inspections taken elsewhere; None =
    use `metadata_location` as is). `lock_text`: the hash-pinned lock. The observed wheel hash comes
    from the inspect entry's `direct_url.archive_info` or from `install_report` (`pip install
    --report` JSON). `approvals`: `name` / `name==version` -> change ticket for packages allowed
    outside the lock (e.g. `pip`, `setuptools` in a fresh venv).
    """
    out: list[dict[str, Any] | Rejected] = []
    try:
        inspect = _obj(load_json(pip_inspect, "pip inspect output"), "pip inspect output")
        installed = _list(inspect.get("installed"), "pip inspect 'installed'")
        if not isinstance(lock_text, str):
            raise MappingError(f"lock must be text, got {type(lock_text).__name__}")
        if len(lock_text) > MAX_LOCK_BYTES:
            raise MappingError(f"lock is over {MAX_LOCK_BYTES} bytes")
        lock, lock_rejected = parse_lock(lock_text)
        out.extend(lock_rejected)
        wheel_hashes = _observed_wheel_hashes(install_report)
        when = _when(observed_at, "observed_at")
    except _MAPPING_ERRORS as exc:
        return [_reject("pip-inspect", str(exc), pip_inspect)]
    for index, item in enumerate(installed):
        try:
            out.append(_package_event(item, site_packages, lock, wheel_hashes, approvals, host, when, collector))
        except _MAPPING_ERRORS as exc:
            out.append(_reject(f"pip-inspect:installed[{index}]", str(exc), item))
    return out


def _package_event(
    item: Any,
    site_packages: Path | None,
    lock: dict[str, LockEntry],
    wheel_hashes: dict[str, str],
    approvals: Mapping[str, str] | None,
    host: str | None,
    when: str,
    collector: str | None,
) -> dict[str, Any]:
    entry = _obj(item, "installed entry")
    metadata = _obj(entry.get("metadata"), "installed entry 'metadata'")
    name = _text(metadata.get("name"), "metadata.name", required=True, max_len=256)
    version = _text(metadata.get("version"), "metadata.version", required=True, max_len=256)
    assert name is not None and version is not None
    location = _text(entry.get("metadata_location"), "metadata_location")
    dist_info: Path | None = None
    if location:
        dist_info = Path(site_packages) / Path(location).name if site_packages is not None else Path(location)
    observed = _archive_sha256(entry.get("direct_url")) or wheel_hashes.get(_norm_name(name))

    pinned_entry = lock.get(_norm_name(name))
    pinned = pinned_entry is not None and _versions_equal(pinned_entry.version, version)
    expected = pinned_entry.sha256 if pinned_entry is not None else ()
    hash_match: bool | None = None
    if pinned and expected and observed:
        hash_match = observed in expected

    record: RecordCheck | None = None
    if dist_info is not None and dist_info.name.endswith(".dist-info") and dist_info.is_dir():
        record = verify_record(dist_info)
    ticket = None if pinned else _approval(name, version, approvals)

    notes = [f"{name} {version}"]
    if pinned_entry is None:
        notes.append("not in the lock")
    elif not pinned:
        notes.append(f"lock pins {pinned_entry.version or 'no exact version'}")
    else:
        notes.append("pinned")
    if hash_match is True:
        notes.append("wheel hash allowed by the lock")
    elif hash_match is False:
        notes.append(f"wheel sha256:{observed} not among the {len(expected)} hash(es) the lock allows")
    elif pinned and not observed:
        notes.append("installed wheel hash unknown (no direct_url / install report)")
    if record is not None:
        if record.error:
            notes.append(record.error)
        elif record.bad:
            notes.append(f"{len(record.bad)} of {record.checked} RECORD files differ: "
                         + ", ".join(record.bad[:5]) + (" ..." if len(record.bad) > 5 else ""))
        else:
            notes.append(f"{record.checked} RECORD files intact")
    if ticket:
        notes.append(f"approved outside the lock ({ticket})")
    mismatched = None if record is None or record.error else len(record.bad)
    failed = hash_match is False or bool(mismatched)
    fields = {
        "event.category": ["package"],
        "event.type": ["info"],
        "message": "; ".join(notes),
        "package.name": name,
        "package.version": version,
        "package.type": "python",
        "package.path": str(dist_info.parent) if dist_info is not None else None,
        "package.checksum": f"sha256:{observed}" if observed else None,
        "aisoc.supply_chain.lock.pinned": pinned,
        "aisoc.supply_chain.lock.expected_sha256": " ".join(f"sha256:{h}" for h in expected) or None,
        "aisoc.supply_chain.hash_match": hash_match,
        "aisoc.supply_chain.record.mismatched_files": mismatched,
        "aisoc.supply_chain.record.mismatched_paths": (record.bad[:MAX_LISTED_PATHS] or None) if record else None,
        "aisoc.change.approved": True if ticket else None,
        "aisoc.change.ticket": ticket,
        "host.name": host,
        "related.hash": [observed] if observed else None,
    }
    return make_event(
        layer="supply_chain", provider="pip", action="package-verified",
        record_id=(host or "", location or name, version, observed or "", mismatched, when),
        timestamp=when, fields=fields,
        original={k: entry.get(k) for k in ("metadata_location", "direct_url", "installer", "requested")}
        | {"metadata": {"name": name, "version": version}},
        outcome="failure" if failed else "success", collector=collector,
    )


def pip_inspect(python: Path | str) -> dict[str, Any]:
    """Live mode: run `<python> -m pip inspect` for an environment and return its JSON."""
    import subprocess

    proc = subprocess.run([str(python), "-m", "pip", "inspect", "--disable-pip-version-check"],
                          capture_output=True, check=True, timeout=300)
    return json.loads(proc.stdout)


# ---- 2. CycloneDX SBOM diff ------------------------------------------------------------------------


_SCHEMA_VERSIONS = {"1.4": "V1_4", "1.5": "V1_5", "1.6": "V1_6"}


def validate_sbom(sbom: dict[str, Any]) -> str | None:
    """cyclonedx-python-lib's strict JSON-schema validation; the validator's message, or None if valid."""
    try:
        from cyclonedx.schema import SchemaVersion
        from cyclonedx.validation.json import JsonStrictValidator
    except ImportError:
        return "cannot validate the SBOM: cyclonedx-python-lib is not installed (pip install 'aisoc[supply-chain]')"

    spec = sbom.get("specVersion")
    if sbom.get("bomFormat") != "CycloneDX":
        return "not a CycloneDX SBOM (bomFormat is not 'CycloneDX')"
    if spec not in _SCHEMA_VERSIONS:
        return f"unsupported CycloneDX specVersion {str(spec)[:20]!r} (supported: 1.4, 1.5, 1.6)"
    try:
        validator = _validator(_SCHEMA_VERSIONS[spec], SchemaVersion, JsonStrictValidator)
        error = validator.validate_str(json.dumps(sbom, ensure_ascii=False))
    except Exception as exc:  # noqa: BLE001 - e.g. MissingOptionalDependencyException: say so, never crash
        if type(exc).__name__ != "MissingOptionalDependencyException":
            raise
        return ("cannot validate the SBOM: install cyclonedx-python-lib with its json-validation extra "
                "(pip install 'aisoc[supply-chain]')")
    if error is None:
        return None
    detail = getattr(error, "data", None)
    where = "/".join(str(p) for p in getattr(detail, "absolute_path", []) or [])
    message = getattr(detail, "message", None) or str(error)
    return f"invalid CycloneDX {spec}: {message}" + (f" (at /{where})" if where else "")


_VALIDATORS: dict[str, Any] = {}


def _validator(version: str, schema_version: Any, cls: Any) -> Any:
    if version not in _VALIDATORS:
        _VALIDATORS[version] = cls(getattr(schema_version, version))
    return _VALIDATORS[version]


@dataclass(frozen=True)
class _Component:
    key: str
    name: str
    version: str | None
    type: str
    hashes: dict[str, str]
    purl: str | None
    properties: dict[str, str]


def _components(sbom: dict[str, Any]) -> dict[str, list[_Component]]:
    """Every component (nested ones too), keyed by `group/name` (lower case)."""
    found: dict[str, list[_Component]] = {}
    stack = list(sbom.get("components") or [])
    seen = 0
    while stack:
        raw = stack.pop()
        seen += 1
        if seen > 200_000:
            raise MappingError("SBOM has more than 200000 components")
        if not isinstance(raw, dict):
            continue
        stack.extend(raw.get("components") or [])
        group = raw.get("group")
        name = f"{group}/{raw['name']}" if group else str(raw["name"])
        hashes = {str(h.get("alg", "")).upper(): str(h.get("content", "")).lower()
                  for h in raw.get("hashes") or [] if isinstance(h, dict)}
        properties = {str(p.get("name", "")).lower(): str(p.get("value", ""))
                      for p in raw.get("properties") or [] if isinstance(p, dict)}
        component = _Component(name.lower(), name, raw.get("version"), str(raw.get("type", "")), hashes,
                               raw.get("purl"), properties)
        found.setdefault(component.key, []).append(component)
    return found


def _checksum(component: _Component) -> str | None:
    if not component.hashes:
        return None
    alg = "SHA-256" if "SHA-256" in component.hashes else sorted(component.hashes)[0]
    return f"{alg.lower().replace('-', '')}:{component.hashes[alg]}"


def _hashes_differ(old: _Component, new: _Component) -> bool:
    common = set(old.hashes) & set(new.hashes)
    return any(old.hashes[alg] != new.hashes[alg] for alg in common)


def _properties(sbom: dict[str, Any]) -> dict[str, str]:
    metadata = sbom.get("metadata") if isinstance(sbom.get("metadata"), dict) else {}
    return {str(p.get("name", "")).lower(): str(p.get("value", ""))
            for p in metadata.get("properties") or [] if isinstance(p, dict)}


def diff_sboms(
    old: Any,
    new: Any,
    *,
    approvals: Mapping[str, str] | None = None,
    observed_at: datetime | str | None = None,
    collector: str | None = None,
) -> list[dict[str, Any] | Rejected]:
    """`sbom-component-changed` events for components added, removed, re-versioned or re-hashed.

    Components are matched by `group/name`; with several of one name, by version. A hash change is
    reported only when both SBOMs carry a hash of the same algorithm. Time: `observed_at`, else the
    new SBOM's `metadata.timestamp`, else now.
    """
    docs: list[dict[str, Any]] = []
    for label, doc in (("old SBOM", old), ("new SBOM", new)):
        try:
            parsed = _obj(load_json(doc, label), label)
            problem = validate_sbom(parsed)
        except _MAPPING_ERRORS as exc:
            return [_reject(f"cyclonedx:{label}", str(exc), doc)]
        if problem:
            return [_reject(f"cyclonedx:{label}", f"{label}: {problem}", doc)]
        docs.append(parsed)
    old_doc, new_doc = docs
    try:
        metadata = new_doc.get("metadata") or {}
        when = _when(observed_at if observed_at is not None else metadata.get("timestamp"), "SBOM timestamp")
        before, after = _components(old_doc), _components(new_doc)
    except _MAPPING_ERRORS as exc:
        return [_reject("cyclonedx", str(exc), new)]
    identity = (old_doc.get("serialNumber", ""), old_doc.get("version", ""),
                new_doc.get("serialNumber", ""), new_doc.get("version", ""))
    build_id = _properties(new_doc).get("aisoc:build-id")
    out: list[dict[str, Any] | Rejected] = []
    for key in sorted(set(before) | set(after)):
        for change, old_c, new_c in _pair(before.get(key, []), after.get(key, [])):
            try:
                out.append(_sbom_event(change, old_c, new_c, new_doc, identity, build_id, approvals, when,
                                       collector))
            except _MAPPING_ERRORS as exc:
                out.append(_reject(f"cyclonedx:{key}", str(exc), key))
    return out


def _pair(olds: list[_Component], news: list[_Component]) -> list[tuple[str, _Component | None, _Component | None]]:
    if len(olds) == 1 and len(news) == 1:
        o, n = olds[0], news[0]
        if o.version != n.version:
            return [("version_changed", o, n)]
        return [("hash_changed", o, n)] if _hashes_differ(o, n) else []
    changes: list[tuple[str, _Component | None, _Component | None]] = []
    remaining = list(olds)
    for n in news:
        same = next((o for o in remaining if o.version == n.version), None)
        if same is None:
            changes.append(("added", None, n))
            continue
        remaining.remove(same)
        if _hashes_differ(same, n):
            changes.append(("hash_changed", same, n))
    changes.extend(("removed", o, None) for o in remaining)
    return changes


def _sbom_event(
    change: str,
    old: _Component | None,
    new: _Component | None,
    new_doc: dict[str, Any],
    identity: tuple[Any, ...],
    build_id: str | None,
    approvals: Mapping[str, str] | None,
    when: str,
    collector: str | None,
) -> dict[str, Any]:
    current = new or old
    assert current is not None
    props = current.properties
    ticket = props.get("aisoc:change-ticket") or None
    stated = props.get("aisoc:approved", "").strip().lower()
    external = _approval(current.name, current.version, approvals)
    ticket = ticket or external
    if stated in ("false", "no", "0"):
        approved = False
    else:
        approved = stated in ("true", "yes", "1") or bool(ticket) or bool(props.get("aisoc:approver"))
    is_model = current.type == "machine-learning-model"
    summary = {
        "added": f"{current.type} {current.name} {current.version or ''} added",
        "removed": f"{current.type} {current.name} {current.version or ''} removed",
        "version_changed": f"{current.type} {current.name} {old.version if old else ''} -> "
                           f"{new.version if new else ''}",
        "hash_changed": f"{current.type} {current.name} {current.version or ''} changed hash "
                        f"{_checksum(old) if old else ''} -> {_checksum(new) if new else ''}",
    }[change]
    fields = {
        "event.category": ["package"],
        "event.type": [{"added": "creation", "removed": "deletion"}.get(change, "change")],
        "message": summary.strip() + ("; approved" + (f" ({ticket})" if ticket else "") if approved
                                      else "; no approval recorded"),
        "package.name": current.name,
        "package.version": current.version,
        "package.type": current.type,
        "package.checksum": _checksum(current),
        "package.reference": current.purl,
        "aisoc.supply_chain.sbom.change": change,
        "aisoc.supply_chain.sbom.serial_number": new_doc.get("serialNumber"),
        "aisoc.supply_chain.sbom.previous_version": old.version if old and change == "version_changed" else None,
        "aisoc.supply_chain.sbom.previous_checksum": _checksum(old) if old and new else None,
        "aisoc.supply_chain.build.id": build_id,
        "aisoc.change.approved": approved,
        "aisoc.change.ticket": ticket,
        "aisoc.model.name": current.name if is_model else None,
        "aisoc.model.version": current.version if is_model else None,
        "aisoc.model.previous_version": old.version if is_model and old and new and old.version != new.version
        else None,
        "related.hash": sorted({*(old.hashes.values() if old else ()), *(new.hashes.values() if new else ())})
        or None,
    }
    return make_event(
        layer="supply_chain", provider="cyclonedx", action="sbom-component-changed",
        record_id=(*identity, current.key, change, old.version if old else "", new.version if new else "",
                   _checksum(old) if old else "", _checksum(new) if new else ""),
        timestamp=when, fields=fields, collector=collector,
    )


# ---- 3. OpenSSF model signing -------------------------------------------------------------------------


class ModelSigningPolicy(BaseModel):
    """Who may sign models, for offline `model_signing` verification.

    `public_keys`: signer name -> PEM public key (elliptic-curve key signatures).
    `certificate_chain`: PEM CA certificates whose signing certificates are trusted.
    `trusted_identities`: fnmatch patterns of certificate identities (SAN URI / e-mail / DNS, else
    the subject CN) that may sign; empty = any identity the CA certified.
    """

    model_config = ConfigDict(extra="forbid")

    public_keys: dict[str, Path] = {}
    certificate_chain: list[Path] = []
    trusted_identities: list[str] = []
    ignore_unsigned_files: bool = False


@dataclass
class _Verdict:
    valid: bool | None = None
    trusted: bool | None = None
    status: str = ""
    detail: str = ""
    subject: str | None = None


def _pem_hint(path: Path) -> str | None:
    """The key hint `model_signing` writes into key-based bundles: sha256 of the PEM public key."""
    from cryptography.hazmat.primitives import serialization

    try:
        key = serialization.load_pem_public_key(Path(path).read_bytes())
    except (OSError, ValueError, TypeError):
        return None
    pem = key.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    return hashlib.sha256(pem).hexdigest()


def _cert_identity(cert: Any) -> str:
    from cryptography import x509
    from cryptography.x509.oid import NameOID

    try:
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        for kind in (x509.UniformResourceIdentifier, x509.RFC822Name, x509.DNSName):
            values = san.get_values_for_type(kind)
            if values:
                return str(values[0])
    except x509.ExtensionNotFound:
        pass
    common = cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
    return str(common[0].value) if common else cert.subject.rfc4514_string()


def _statement(bundle: dict[str, Any]) -> dict[str, Any]:
    envelope = _obj(bundle.get("dsseEnvelope"), "signature dsseEnvelope")
    payload = base64.b64decode(str(envelope.get("payload", "")), validate=True)
    return _obj(json.loads(payload), "signed in-toto statement")


def _hashing_config(statement: dict[str, Any], model_dir: Path, signature: Path) -> Any:
    """The hashing the signer used (from the statement), also ignoring the signature file itself."""
    from model_signing import hashing

    serialization = (statement.get("predicate") or {}).get("serialization") or {}
    method = serialization.get("method")
    allow = str(serialization.get("allow_symlinks", False)).lower() == "true"
    config = hashing.Config()
    ignored = []
    try:
        ignored.append(signature.resolve().relative_to(model_dir.resolve()))
    except ValueError:
        pass
    config.set_ignored_paths(paths=ignored, ignore_git_paths=True)
    algorithm = serialization.get("hash_type", "sha256")
    if method == "files":
        config.use_file_serialization(hashing_algorithm=algorithm, allow_symlinks=allow)
    elif method == "shards":
        config.use_shard_serialization(hashing_algorithm=algorithm, shard_size=int(serialization["shard_size"]),
                                       allow_symlinks=allow)
    else:
        raise MappingError(f"unknown serialization method {str(method)[:40]!r} in the signature")
    config.set_allow_symlinks(allow)
    return config


def _model_digests(model_dir: Path, hashing_config: Any) -> tuple[str, dict[str, str]]:
    """The statement's subject digest recomputed over the model as it is now, and per-file digests."""
    manifest = hashing_config.hash(model_dir)
    digest = hashlib.sha256()
    files: dict[str, str] = {}
    for descriptor in manifest.resource_descriptors():
        digest.update(descriptor.digest.digest_value)
        files[str(descriptor.identifier)] = descriptor.digest.digest_hex
    return digest.hexdigest(), files


def _manifest_diff(statement: dict[str, Any], actual: dict[str, str]) -> str:
    """Which files changed, vanished or appeared since signing, in plain words."""
    signed = {str(r.get("name")): str(r.get("digest")) for r in (statement.get("predicate") or {}).get("resources")
              or [] if isinstance(r, dict)}
    changed = sorted(n for n in signed.keys() & actual.keys() if signed[n] != actual[n])
    missing = sorted(signed.keys() - actual.keys())
    extra = sorted(actual.keys() - signed.keys())
    parts = [f"{label}: {', '.join(names[:10])}" + (" ..." if len(names) > 10 else "")
             for label, names in (("changed", changed), ("missing", missing), ("not signed", extra)) if names]
    return "; ".join(parts)


def _run_verify(verifier: Any, hashing_config: Any, model_dir: Path, signature: Path,
                ignore_unsigned: bool) -> tuple[str, str]:
    """Run model_signing's own verification: ('verified' | 'digest mismatch' | ..., detail)."""
    from cryptography.exceptions import InvalidSignature

    try:
        verifier.set_hashing_config(hashing_config).set_ignore_unsigned_files(ignore_unsigned)
        verifier.verify(model_dir, signature)
    except InvalidSignature:
        return "invalid signature", "the DSSE signature does not verify with the signer's key"
    except ValueError as exc:
        text = str(exc)
        if text.startswith("Signature mismatch"):
            return "digest mismatch", text
        return "invalid signature", text
    except Exception as exc:  # noqa: BLE001 - pyOpenSSL chain errors, unreadable model files
        name = type(exc).__name__
        if name == "X509StoreContextError":
            return "untrusted certificate chain", str(exc)
        return "verification error", f"{name}: {exc}"
    return "verified", ""


def verify_model_signature(
    model_dir: Path,
    signature: Path,
    config: ModelSigningPolicy | Mapping[str, Any],
    *,
    model_name: str | None = None,
    model_version: str | None = None,
    host: str | None = None,
    observed_at: datetime | str | None = None,
    collector: str | None = None,
) -> dict[str, Any] | Rejected:
    """Verify an OpenSSF model signature with `model_signing`, offline; one `model-signature-verified` event.

    exists: a signature file is there; valid: the signature verified and the in-toto digests match
    the files (unset when no key or certificate could check it); trusted: the signer is one the
    policy trusts; status: `verified`, `no signature`, `unreadable signature`, `digest mismatch`,
    `invalid signature`, `unknown key`, `untrusted certificate chain`, `untrusted signer`,
    `unsupported signature type`, `verification error`.
    """
    model_dir, signature = Path(model_dir), Path(signature)
    try:
        when = _when(observed_at, "observed_at")
        if not isinstance(config, ModelSigningPolicy):
            config = ModelSigningPolicy.model_validate(config)
    except (MappingError, ValueError) as exc:
        return _reject(f"model_signing:{model_dir}", str(exc), str(observed_at))
    if not model_dir.exists():
        return _reject(f"model_signing:{model_dir}", f"model path {model_dir} does not exist", str(model_dir))
    try:
        import model_signing.verifying  # noqa: F401 - model-signing 1.1.1 imports pyOpenSSL without declaring it
    except ImportError as exc:
        return _reject(f"model_signing:{model_dir}", f"cannot verify: model_signing is not importable ({exc}); "
                       "install aisoc[supply-chain] (model-signing and pyOpenSSL)", str(model_dir))
    verdict = _Verdict()
    expected_root: str | None = None
    actual_root: str | None = None
    signature_sha = None
    if not signature.is_file():
        verdict.status, verdict.detail = "no signature", f"no signature at {signature}"
    else:
        try:
            raw = signature.read_bytes()[:MAX_SIGNATURE_BYTES + 1]
            if len(raw) > MAX_SIGNATURE_BYTES:
                raise MappingError("signature file is too large")
            signature_sha = hashlib.sha256(raw).hexdigest()
            bundle = _obj(load_json(raw, "signature bundle"), "signature bundle")
            statement = _statement(bundle)
            subject = _list(statement.get("subject"), "statement subject")
            expected_root = str(_obj(_obj(subject[0], "subject").get("digest"), "subject digest").get("sha256"))
            hashing_config = _hashing_config(statement, model_dir, signature)
        except (*_MAPPING_ERRORS, OSError) as exc:
            verdict.valid, verdict.status, verdict.detail = False, "unreadable signature", str(exc)[:MAX_TEXT]
        else:
            verdict = _verify_bundle(bundle, config, model_dir, signature, hashing_config)
            if verdict.valid:
                actual_root = expected_root
            else:
                try:
                    actual_root, actual_files = _model_digests(model_dir, hashing_config)
                except Exception as exc:  # noqa: BLE001 - unreadable model files, symlinks
                    verdict.detail = (verdict.detail + f"; cannot hash the model: {exc}").strip("; ")
                else:
                    diff = _manifest_diff(statement, actual_files) if verdict.status == "digest mismatch" else ""
                    if diff and verdict.detail.startswith("Signature mismatch"):
                        verdict.detail = diff
                    elif diff:
                        verdict.detail = f"{diff}; {verdict.detail}"
    exists = signature.is_file()
    hash_match = None if expected_root is None or actual_root is None else expected_root == actual_root
    failed = not exists or verdict.valid is False or verdict.trusted is False
    fields = {
        "event.category": ["file"],
        "event.type": ["info"],
        "message": f"{model_dir}: {verdict.status}" + (f" ({verdict.detail})" if verdict.detail else ""),
        "file.path": str(model_dir),
        "file.name": model_dir.name,
        "file.code_signature.exists": exists,
        "file.code_signature.valid": verdict.valid,
        "file.code_signature.trusted": verdict.trusted if exists else None,
        "file.code_signature.status": verdict.status,
        "file.code_signature.subject_name": verdict.subject,
        "aisoc.model.name": model_name,
        "aisoc.model.version": model_version,
        "aisoc.model.artifact.sha256": actual_root,
        "aisoc.model.artifact.expected_sha256": expected_root,
        "aisoc.model.artifact.hash_match": hash_match,
        "aisoc.supply_chain.hash_match": hash_match,
        "host.name": host,
        "related.hash": sorted({h for h in (actual_root, expected_root, signature_sha) if h}) or None,
    }
    return make_event(
        layer="supply_chain", provider="model_signing", action="model-signature-verified",
        record_id=(host or "", str(model_dir), signature_sha or "", actual_root or "", verdict.status, when),
        timestamp=when, fields=fields, outcome="failure" if failed else "success", collector=collector,
    )


def _verify_bundle(bundle: dict[str, Any], config: ModelSigningPolicy, model_dir: Path, signature: Path,
                   hashing_config: Any) -> _Verdict:
    from model_signing import verifying

    material = bundle.get("verificationMaterial") if isinstance(bundle.get("verificationMaterial"), dict) else {}
    verdict = _Verdict()
    if isinstance(material.get("publicKey"), dict):
        hint = str(material["publicKey"].get("hint", ""))
        known = [(name, path) for name, path in config.public_keys.items() if _pem_hint(path) == hint]
        if not known:
            verdict.trusted, verdict.status = False, "unknown key"
            verdict.subject = f"key:sha256:{hint[:64]}" if hint else None
            verdict.detail = "signed with a key the policy does not list; signature not checked"
            return verdict
        name, path = known[0]
        verdict.subject = name
        status, detail = _run_verify(verifying.Config().use_elliptic_key_verifier(public_key=path), hashing_config,
                                     model_dir, signature, config.ignore_unsigned_files)
        verdict.status, verdict.detail = status, detail
        verdict.valid = status == "verified"
        verdict.trusted = True
        return verdict
    chain = material.get("x509CertificateChain")
    if isinstance(chain, dict) and isinstance(chain.get("certificates"), list) and chain["certificates"]:
        return _verify_certificate_bundle(chain["certificates"], config, model_dir, signature, hashing_config)
    verdict.trusted, verdict.status = False, "unsupported signature type"
    verdict.detail = ("Sigstore keyless bundle: verifying it needs Sigstore's trust root, which aisoc does not fetch"
                      if "certificate" in material or "tlogEntries" in material and material.get("tlogEntries")
                      else "no public key hint or certificate chain in the bundle")
    return verdict


def _verify_certificate_bundle(certificates: list[Any], config: ModelSigningPolicy, model_dir: Path,
                               signature: Path, hashing_config: Any) -> _Verdict:
    from cryptography import x509
    from cryptography.hazmat.primitives import serialization
    from model_signing import verifying

    verdict = _Verdict()
    try:
        certs = [x509.load_der_x509_certificate(base64.b64decode(str(c.get("rawBytes", "")), validate=True))
                 for c in certificates if isinstance(c, dict)]
    except ValueError as exc:
        return _Verdict(valid=False, status="unreadable signature", detail=f"bad certificate in the bundle: {exc}")
    if not certs:
        return _Verdict(valid=False, status="unreadable signature", detail="empty certificate chain")
    verdict.subject = _cert_identity(certs[0])
    if config.certificate_chain:
        verifier = verifying.Config().use_certificate_verifier(certificate_chain=config.certificate_chain)
        status, detail = _run_verify(verifier, hashing_config, model_dir, signature, config.ignore_unsigned_files)
        if status != "untrusted certificate chain":
            verdict.status, verdict.detail, verdict.valid = status, detail, status == "verified"
            patterns = config.trusted_identities
            verdict.trusted = not patterns or any(fnmatch.fnmatchcase(verdict.subject, p) for p in patterns)
            if verdict.valid and not verdict.trusted:
                verdict.status = "untrusted signer"
                verdict.detail = f"{verdict.subject} is not among the trusted identities"
            return verdict
    # The chain does not lead to a CA the policy trusts: still say whether the signature itself holds,
    # by verifying against the roots the bundle carries (self-signed certificates in its own chain).
    verdict.trusted, verdict.status = False, "untrusted certificate chain"
    roots = [c for c in certs if c.issuer == c.subject]
    if not roots:
        verdict.detail = "the signing certificate does not chain to a trusted CA; signature not checked"
        return verdict
    with tempfile.TemporaryDirectory(prefix="aisoc-sig-") as tmp:
        anchors = Path(tmp) / "anchors.pem"
        anchors.write_bytes(b"".join(c.public_bytes(serialization.Encoding.PEM) for c in roots))
        verifier = verifying.Config().use_certificate_verifier(certificate_chain=[anchors])
        status, detail = _run_verify(verifier, hashing_config, model_dir, signature, config.ignore_unsigned_files)
    verdict.valid = status == "verified" if status != "untrusted certificate chain" else None
    verdict.detail = "the signing certificate does not chain to a trusted CA"
    if status == "digest mismatch":
        verdict.status = "digest mismatch"
    elif verdict.valid:
        verdict.detail += "; the signature holds against the bundle's own root"
    else:
        verdict.detail += f"; {status}: {detail}"
    return verdict


# ---- 4. ModelScan reports ----------------------------------------------------------------------------


def run_modelscan(path: Path | str) -> dict[str, Any]:
    """Live mode: scan a model file or directory with ModelScan's Python API; its JSON report."""
    from modelscan.modelscan import ModelScan

    return ModelScan().scan(str(path))


def map_modelscan_report(
    report: Any,
    path: Path | str | None = None,
    *,
    model_name: str | None = None,
    model_version: str | None = None,
    repo_id: str | None = None,
    host: str | None = None,
    observed_at: datetime | str | None = None,
    collector: str | None = None,
) -> dict[str, Any] | Rejected:
    """A ModelScan JSON report -> one `model-scan-completed` event.

    max_severity is the highest issue severity (`none` without issues); operators and modules are
    the distinct ones of all issues; scanner errors become `error.type` (first category) and
    `error.message`, and a scan that read no file but reported errors has outcome failure. Time:
    `observed_at`, else the report's `summary.timestamp` (ModelScan writes local time without an
    offset; read as UTC), else now.
    """
    source = f"modelscan:{path}" if path is not None else "modelscan"
    try:
        doc = _obj(load_json(report, "ModelScan report"), "ModelScan report")
        summary = _obj(doc.get("summary") if doc.get("summary") is not None else {}, "summary")
        issues = [_obj(i, "issue") for i in _list(doc.get("issues"), "issues", required=False)]
        errors = [_obj(e, "error") for e in _list(doc.get("errors"), "errors", required=False)]
        if "issues" not in doc and "summary" not in doc:
            raise MappingError("not a ModelScan report (no 'summary' or 'issues')")
        severities = []
        operators: list[str] = []
        modules: list[str] = []
        for number, issue in enumerate(issues):
            severity = _text(issue.get("severity"), f"issues[{number}].severity", required=True, max_len=32)
            assert severity is not None
            if severity.lower() not in SEVERITIES:
                raise MappingError(f"issues[{number}].severity {severity!r} is not LOW, MEDIUM, HIGH or CRITICAL")
            severities.append(SEVERITIES.index(severity.lower()))
            for value, bucket, what in ((issue.get("operator"), operators, "operator"),
                                        (issue.get("module"), modules, "module")):
                text = _text(value, f"issues[{number}].{what}", max_len=512)
                if text and text not in bucket:
                    bucket.append(text)
        error_types = []
        error_messages = []
        for number, error in enumerate(errors):
            category = _text(error.get("category"), f"errors[{number}].category", max_len=128) or "MODEL_SCAN"
            if category not in error_types:
                error_types.append(category)
            description = _text(error.get("description") or error.get("message"), f"errors[{number}].description")
            where = _text(error.get("source"), f"errors[{number}].source")
            error_messages.append(f"{where + ': ' if where else ''}{description or category}")
        scanned_info = summary.get("scanned") if isinstance(summary.get("scanned"), dict) else {}
        scanned = _long(scanned_info.get("total_scanned"), "summary.scanned.total_scanned")
        skipped_info = summary.get("skipped") if isinstance(summary.get("skipped"), dict) else {}
        skipped = [str(s.get("source")) for s in skipped_info.get("skipped_files") or [] if isinstance(s, dict)]
        native_time = summary.get("timestamp")
        when = _when(observed_at if observed_at is not None else native_time, "summary.timestamp")
        target = str(path) if path is not None else _text(summary.get("input_path"), "summary.input_path")
    except _MAPPING_ERRORS as exc:
        return _reject(source, str(exc), report)
    max_severity = SEVERITIES[max(severities)] if severities else "none"
    failed = bool(errors) and not scanned
    notes = [f"{len(issues)} issue(s), highest {max_severity}"]
    if operators:
        notes.append("operators " + ", ".join(f"{m}.{o}" for m, o in zip(modules, operators, strict=False))
                     if len(modules) == len(operators) else "operators " + ", ".join(operators))
    if scanned is not None:
        notes.append(f"{scanned} file(s) scanned")
    if skipped:
        notes.append(f"{len(skipped)} file(s) skipped: " + ", ".join(skipped[:10]))
    if errors:
        notes.append(f"{len(errors)} scanner error(s)")
    suffix = Path(target).suffix.lstrip(".") if target else ""
    fields = {
        "event.category": ["malware", "file"],
        "event.type": ["info"],
        "message": "; ".join(notes),
        "file.path": target,
        "file.name": Path(target).name if target else None,
        "file.extension": suffix if suffix and target and not Path(target).is_dir() else None,
        "aisoc.supply_chain.scan.max_severity": max_severity,
        "aisoc.supply_chain.scan.issue_count": len(issues),
        "aisoc.supply_chain.scan.operator": operators or None,
        "aisoc.supply_chain.scan.module": modules or None,
        "aisoc.supply_chain.hub.repo_id": repo_id,
        "aisoc.model.name": model_name,
        "aisoc.model.version": model_version,
        "error.type": error_types[0] if error_types else None,
        "error.message": "; ".join(error_messages)[:MAX_TEXT] if error_messages else None,
        "host.name": host,
    }
    fingerprint = hashlib.sha256(json.dumps([issues, errors], sort_keys=True, default=str).encode()).hexdigest()
    return make_event(
        layer="supply_chain", provider="modelscan", action="model-scan-completed",
        record_id=(host or "", target or "", str(native_time), fingerprint, when),
        timestamp=when, fields=fields, original=doc, outcome="failure" if failed else "success",
        collector=collector,
    )


# ---- 5. Hugging Face Hub model info -------------------------------------------------------------------


def fetch_hub_model_info(
    repo_id: str,
    revision: str,
    *,
    endpoint: str = "https://huggingface.co",
    token: str | None = None,
    client: Any = None,
    timeout: float = 30.0,
) -> dict[str, Any]:
    """Live mode: GET `{endpoint}/api/models/{repo_id}/revision/{revision}?blobs=true` (LFS sha256 included)."""
    from urllib.parse import quote

    import httpx

    url = f"{endpoint.rstrip('/')}/api/models/{repo_id}/revision/{quote(revision, safe='')}"
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    own = client is None
    http = client or httpx.Client(timeout=timeout)
    try:
        response = http.get(url, params={"blobs": "true"}, headers=headers)
        response.raise_for_status()
        return _obj(response.json(), "hub model info")
    finally:
        if own:
            http.close()


def map_hub_model_info(
    info: Any,
    requested_revision: str,
    *,
    expected_hashes: Mapping[str, str] | None = None,
    endpoint: str = "https://huggingface.co",
    host: str | None = None,
    observed_at: datetime | str | None = None,
    collector: str | None = None,
) -> dict[str, Any] | Rejected:
    """Hub `/api/models/{repo_id}[/revision/{rev}]` JSON -> one `hub-model-resolved` event.

    revision_pinned: `requested_revision` is a full 40-hex commit sha (a branch, a tag or an
    abbreviated sha can move). hash_match: the pinned sha is the one the hub resolved, and every
    file of `expected_hashes` (rfilename -> sha256) has that LFS sha256 (unset when nothing could be
    compared). Time: `observed_at`, else now.
    """
    try:
        doc = _obj(load_json(info, "hub model info"), "hub model info")
        repo_id = _text(doc.get("id") or doc.get("modelId"), "id", required=True, max_len=512)
        sha = _text(doc.get("sha"), "sha", max_len=128)
        revision = _text(requested_revision, "requested revision", required=True, max_len=512)
        assert repo_id is not None and revision is not None
        siblings = _list(doc.get("siblings"), "siblings", required=False)
        lfs: dict[str, str] = {}
        files: list[str] = []
        for number, sibling in enumerate(siblings):
            entry = _obj(sibling, f"siblings[{number}]")
            name = _text(entry.get("rfilename"), f"siblings[{number}].rfilename", required=True, max_len=1024)
            assert name is not None
            files.append(name)
            blob = entry.get("lfs")
            if isinstance(blob, dict) and isinstance(blob.get("sha256"), str):
                lfs[name] = blob["sha256"].lower()
        expected = dict(expected_hashes or {})
        for name, digest in expected.items():
            if not isinstance(name, str) or not isinstance(digest, str):
                raise MappingError("expected_hashes must map file names to sha256 hex strings")
        when = _when(observed_at, "observed_at")
    except _MAPPING_ERRORS as exc:
        return _reject(f"huggingface:{str(requested_revision)[:100]}", str(exc), info)
    pinned = FULL_SHA_RE.fullmatch(revision) is not None
    problems = []
    compared = 0
    if pinned and sha and sha.lower() != revision.lower():
        problems.append(f"hub resolved {sha}, not the pinned {revision}")
    for name, digest in sorted(expected.items()):
        observed = lfs.get(name)
        if name not in files:
            problems.append(f"{name} missing from the revision")
        elif observed is None:
            continue  # not an LFS file: the API gives only its git blob id
        else:
            compared += 1
            if observed != digest.lower().removeprefix("sha256:"):
                problems.append(f"{name} sha256 {observed} != expected {digest}")
    hash_match: bool | None = None
    if problems:
        hash_match = False
    elif compared or (pinned and sha):
        hash_match = True
    notes = [f"{repo_id}@{revision} -> {sha or 'unknown sha'}",
             "pinned to a commit" if pinned else "movable revision (branch, tag or short sha)"]
    if expected:
        notes.append(f"{compared} of {len(expected)} expected file hash(es) compared")
    notes.extend(problems[:10])
    fields = {
        "event.category": ["package"],
        "event.type": ["info"],
        "message": "; ".join(notes),
        "url.full": f"{endpoint.rstrip('/')}/api/models/{repo_id}/revision/{revision}",
        "aisoc.supply_chain.hub.repo_id": repo_id,
        "aisoc.supply_chain.hub.revision": revision,
        "aisoc.supply_chain.hub.revision_pinned": pinned,
        "aisoc.supply_chain.hash_match": hash_match,
        "aisoc.model.registry": "huggingface",
        "aisoc.model.name": repo_id,
        "aisoc.model.version": sha,
        "host.name": host,
        "related.hash": sorted(set(lfs.values()))[:100] or None,
    }
    return make_event(
        layer="supply_chain", provider="huggingface", action="hub-model-resolved",
        record_id=(host or "", repo_id, revision, sha or "", when),
        timestamp=when, fields=fields, original=doc, outcome="failure" if hash_match is False else "success",
        collector=collector,
    )


__all__ = [
    "LockEntry",
    "ModelSigningPolicy",
    "RecordCheck",
    "diff_sboms",
    "fetch_hub_model_info",
    "load_json",
    "map_hub_model_info",
    "map_modelscan_report",
    "parse_lock",
    "pip_inspect",
    "run_modelscan",
    "validate_sbom",
    "verify_environment",
    "verify_model_signature",
    "verify_record",
]
