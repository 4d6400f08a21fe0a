"""Supply-chain replays from files a build leaves behind, for `aisoc collect` and the demo.

- `replay_sboms(dir)`: CycloneDX JSON SBOMs of successive builds (file names sort in build order);
  each is diffed against the one before it.
- `replay_environment(dir)`: a `pip inspect` report, the hash-pinned lock and (optionally) the
  site-packages the RECORDs are checked against.
- `replay_model_signatures(dir)`: every model directory under `dir`, verified offline against
  its `<model>.sig` (a missing signature is reported, not skipped).
- `replay_builds(dir)`: build records, `<build>/build.json`, naming all of the above for one build
  (the layout `aisoc demo` writes; see `BUILD_RECORD`).

Files that cannot be read come back as Rejected naming the file and what is wrong.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from aisoc.records import Rejected

Item = dict[str, Any] | Rejected


class SbomReplayConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")
    approvals: dict[str, str] = Field(default_factory=dict, description="component -> change ticket approving it")


class EnvironmentReplayConfig(BaseModel):
    """Where the files of one environment check are, relative to the replayed directory."""

    model_config = ConfigDict(extra="forbid")
    inspect: str = Field("pip-inspect.json", description="`pip inspect` output")
    lock: str = Field("requirements.lock", description="hash-pinned lock (`pip-compile --generate-hashes`)")
    site_packages: str | None = Field(None, description="site-packages to check RECORDs in (default: pip's)")
    install_report: str | None = Field(None, description="`pip install --report` output, if kept")
    approvals: dict[str, str] = Field(default_factory=dict, description="package -> change ticket approving it")
    host: str | None = None


class SignatureReplayConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")
    policy: dict[str, Any] = Field(default_factory=dict, description="ModelSigningPolicy: public_keys, "
                                   "certificate_chain, trusted_identities, ignore_unsigned_files")
    host: str | None = None

BUILD_RECORD = """\
{"build_id": "b-0042", "started_at": "2026-01-05T03:00:00Z", "host": "ci-runner-7",
 "environment": {"inspect": "pip-inspect.json", "lock": "requirements.lock", "site_packages": "site-packages",
                 "install_report": "install-report.json", "verified_at": "2026-01-05T03:04:00Z"},
 "hub": [{"info": "hub/bert.json", "requested_revision": "main", "resolved_at": "2026-01-05T03:01:00Z"}],
 "scans": [{"report": "modelscan.json", "path": "models/bert", "model_name": "bert", "model_version": "7"}],
 "sbom": "sbom.cdx.json", "previous_sbom": "b-0041"}"""


def _mtime(path: Path) -> datetime:
    return datetime.fromtimestamp(path.stat().st_mtime, tz=UTC)


def _read_bytes(path: Path, what: str) -> bytes | Rejected:
    try:
        return path.read_bytes()
    except OSError as exc:
        return Rejected(str(path), f"cannot read {what}: {exc.strerror or exc}", b"")


def replay_sboms(path: Path, *, approvals: Mapping[str, str] | None = None) -> Iterator[Item]:
    """Diff each SBOM under `path` (`*.json`, by file name) against the previous one."""
    from aisoc.collectors.supply_chain import diff_sboms

    files = sorted(p for p in path.rglob("*.json") if p.is_file()) if path.is_dir() else [path]
    if len(files) < 2:
        yield Rejected(str(path), f"{len(files)} SBOM file(s) found; a diff needs two builds' SBOMs "
                       "(name them so they sort in build order)", b"")
        return
    previous: bytes | None = None
    for file in files:
        current = _read_bytes(file, "SBOM")
        if isinstance(current, Rejected):
            yield current
            continue
        if previous is not None:
            try:
                yield from diff_sboms(previous, current, approvals=approvals)
            except ImportError as exc:  # the SBOM validator, cyclonedx-python-lib, is an optional dependency
                yield Rejected(str(file), f"SBOM not diffed: {exc} (pip install 'aisoc[supply-chain]' or "
                               "cyclonedx-python-lib)", current[:4096])
                return
        previous = current


def replay_environment(path: Path, *, inspect: str = "pip-inspect.json", lock: str = "requirements.lock",
                       site_packages: str | None = None, install_report: str | None = None,
                       approvals: Mapping[str, str] | None = None, host: str | None = None) -> Iterator[Item]:
    """Installed distributions against the lock and their RECORDs; file names are relative to `path`.

    `site_packages`: where the dist-infos are (default: where `pip inspect` found them). The time of
    the check is the inspect report's modification time.
    """
    from aisoc.collectors.supply_chain import verify_environment

    report = _read_bytes(path / inspect, "the pip inspect report")
    lock_text = _read_bytes(path / lock, "the lock file")
    extra = _read_bytes(path / install_report, "the pip install report") if install_report else None
    for item in (report, lock_text, extra):
        if isinstance(item, Rejected):
            yield item
            return
    assert isinstance(report, bytes) and isinstance(lock_text, bytes)
    yield from verify_environment(report, path / site_packages if site_packages else None,
                                  lock_text.decode("utf-8", errors="replace"), install_report=extra,
                                  approvals=approvals, host=host, observed_at=_mtime(path / inspect))


def replay_model_signatures(path: Path, policy: Mapping[str, Any], *, host: str | None = None) -> Iterator[Item]:
    """Each directory directly under `path` is a model, signed by `<name>.sig` beside it.

    `policy`: `ModelSigningPolicy` fields (key and CA paths relative to the working directory).
    The model's name is its directory name; the time is the signature's (or the model's) mtime.
    """
    from aisoc.collectors.supply_chain import verify_model_signature

    models = sorted(p for p in path.iterdir() if p.is_dir()) if path.is_dir() else []
    if not models:
        yield Rejected(str(path), "no model directories found (expected <dir>/<model>/ with <dir>/<model>.sig)", b"")
        return
    for model in models:
        signature = path / f"{model.name}.sig"
        observed = _mtime(signature if signature.exists() else model)
        yield verify_model_signature(model, signature, policy, model_name=model.name, host=host,
                                     observed_at=observed)


def replay_builds(root: Path, approvals: Mapping[str, str] | None = None) -> Iterator[Item]:
    """Build records (`<root>/<build>/build.json`, see BUILD_RECORD) in start order: environment vs lock,
    Hub resolutions, ModelScan reports, and the SBOM diffed against the named previous build's."""
    from aisoc.collectors.supply_chain import diff_sboms, map_hub_model_info, map_modelscan_report, verify_environment

    records = []
    for path in sorted(root.glob("*/build.json")):
        try:
            records.append((path.parent, json.loads(path.read_text(encoding="utf-8"))))
        except (OSError, ValueError) as exc:
            yield Rejected(str(path), f"cannot read build record: {exc}", b"")
    records.sort(key=lambda item: str(item[1].get("started_at")))
    sboms: dict[str, Any] = {}
    for build_dir, record in records:
        host = record.get("host")
        env = record.get("environment") or {}
        try:
            yield from verify_environment(
                (build_dir / env["inspect"]).read_bytes(), build_dir / env["site_packages"],
                (build_dir / env["lock"]).read_text(encoding="utf-8"),
                install_report=(build_dir / env["install_report"]).read_bytes(), approvals=approvals, host=host,
                observed_at=env.get("verified_at"))
        except (OSError, KeyError, TypeError) as exc:
            yield Rejected(str(build_dir), f"cannot read the environment of build {record.get('build_id')}: {exc}",
                           b"")
        for hub in record.get("hub") or []:
            try:
                yield map_hub_model_info((build_dir / hub["info"]).read_bytes(), hub["requested_revision"],
                                         host=host, observed_at=hub.get("resolved_at"))
            except (OSError, KeyError) as exc:
                yield Rejected(str(build_dir), f"cannot read hub model info: {exc}", b"")
        for scan in record.get("scans") or []:
            try:
                yield map_modelscan_report((build_dir / scan["report"]).read_bytes(), scan.get("path"),
                                           model_name=scan.get("model_name"), model_version=scan.get("model_version"),
                                           repo_id=scan.get("repo_id"), host=host)
            except (OSError, KeyError) as exc:
                yield Rejected(str(build_dir), f"cannot read ModelScan report: {exc}", b"")
        try:
            sbom = (build_dir / record["sbom"]).read_bytes()
        except (OSError, KeyError) as exc:
            yield Rejected(str(build_dir), f"cannot read SBOM: {exc}", b"")
            continue
        sboms[str(record.get("build_id"))] = sbom
        previous = sboms.get(str(record.get("previous_sbom")))
        if previous is not None:
            try:
                yield from diff_sboms(previous, sbom)
            except ImportError as exc:  # the SBOM validator, cyclonedx-python-lib, is an optional dependency
                yield Rejected(str(build_dir / record["sbom"]), f"SBOM not diffed: {exc} (pip install "
                               "'aisoc[supply-chain]' or cyclonedx-python-lib)", sbom[:4096])
