"""Native platform records -> events through the real collector mappings, by name.

Rule test cases can give a platform's own record instead of a hand-written ECS event
(`{native: litellm, record: {...}}`), so a change in a collector's mapping that breaks a rule
breaks that rule's test. `aisoc collect --replay` uses the same names.

Kinds (record; options; the collector function that maps it):

- `litellm`: a LiteLLM StandardLoggingPayload; -; `llm_gateway.map_litellm_payload`.
- `openai_exchange`: `{request, response, meta}` of any OpenAI-compatible gateway; defaults for
  `meta`; `llm_gateway.map_openai_exchange`.
- `kserve`: `{events: [structured CloudEvent, ...]}`; `KServeConfig`; `kserve.parse_structured`.
- `s3_access_log`: `{line: <S3 server access log line>}`; `ObjectAccessConfig`;
  `training_data.map_s3_access_log_line`.
- `minio_audit`: a MinIO audit webhook record; `ObjectAccessConfig`; `training_data.map_minio_audit`.
- `data_batch`: `{file, content, manifest?, mtime?}`; `BatchLandingConfig`; `BatchLandingSource.replay`.
- `mlflow`: `{records: [REST response page or webhook delivery, ...]}`; `MlflowConfig`;
  `mlflow.MlflowCollector.replay`.
- `mlflow_poll`: `{polls: [recorded registry state, ...]}`, served on loopback; `MlflowConfig`;
  `mlflow.MlflowCollector.poll` (live lineage lookups and artifact verification).
- `modelscan`: `{report, path?, observed_at?}`; model_name, model_version, repo_id, host;
  `supply_chain.map_modelscan_report`.
- `hub_model_info`: `{info, requested_revision, expected_hashes?, observed_at?}`; endpoint, host;
  `supply_chain.map_hub_model_info`.
- `sbom_diff`: `{old, new, observed_at?}` (CycloneDX JSON); approvals; `supply_chain.diff_sboms`.
- `pip_environment`: `{inspect, lock, site_packages?, install_report?, observed_at?}`; approvals,
  host; `supply_chain.verify_environment`.
- `model_signature`: `{model, files, signature?, observed_at?}`; `ModelSigningPolicy` (keys and CA
  certificates as PEM text), model_name, model_version, host; `supply_chain.verify_model_signature`.

Records that need files (batches, site-packages, signed models) are written to a temporary
directory first, so `file.path`-like fields name that directory.
"""

from __future__ import annotations

import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

from aisoc.records import Rejected

Mapper = Callable[[dict[str, Any], dict[str, Any]], list[dict[str, Any] | Rejected]]


def _litellm(record: dict[str, Any], options: dict[str, Any]) -> list[dict[str, Any] | Rejected]:
    from aisoc.collectors.llm_gateway import map_litellm_payload

    return list(map_litellm_payload(record))


def _openai_exchange(record: dict[str, Any], options: dict[str, Any]) -> list[dict[str, Any] | Rejected]:
    """`record: {request: {...}, response: {...} | null, meta: ExchangeMeta}`; options give meta defaults."""
    from aisoc.collectors.llm_gateway import map_openai_exchange

    return [map_openai_exchange(record["request"], record.get("response"), {**options, **record["meta"]})]


def _kserve(record: dict[str, Any], options: dict[str, Any]) -> list[dict[str, Any] | Rejected]:
    """`record: {events: [structured CloudEvent, ...]}` — requests and responses, joined as `kserve.replay`
    joins a file of them (the TTL runs in CloudEvent time)."""
    import json

    from aisoc.collectors.kserve import KServeConfig, replay

    events = record.get("events", [])
    if not isinstance(events, list):
        raise TypeError("'events' must be a list of structured CloudEvents")
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "events.ndjson"
        path.write_text("".join(json.dumps(e) + "\n" for e in events), encoding="utf-8")
        return list(replay(path, KServeConfig(**options) if options else None))


def _s3_access_log(record: dict[str, Any], options: dict[str, Any]) -> list[dict[str, Any] | Rejected]:
    from aisoc.collectors.training_data import ObjectAccessConfig, map_s3_access_log_line

    return [map_s3_access_log_line(record["line"], ObjectAccessConfig(**options))]


def _minio_audit(record: dict[str, Any], options: dict[str, Any]) -> list[dict[str, Any] | Rejected]:
    from aisoc.collectors.training_data import ObjectAccessConfig, map_minio_audit

    return list(map_minio_audit(record, ObjectAccessConfig(**options)))


def _modelscan(record: dict[str, Any], options: dict[str, Any]) -> list[dict[str, Any] | Rejected]:
    from aisoc.collectors.supply_chain import map_modelscan_report

    return [map_modelscan_report(record["report"], record.get("path"), observed_at=record.get("observed_at"),
                                 **options)]


def _hub(record: dict[str, Any], options: dict[str, Any]) -> list[dict[str, Any] | Rejected]:
    """Options: `endpoint` (a hub mirror; default huggingface.co) and `host` (where the model was resolved)."""
    from aisoc.collectors.supply_chain import map_hub_model_info

    return [map_hub_model_info(record["info"], record["requested_revision"],
                               expected_hashes=record.get("expected_hashes"), observed_at=record.get("observed_at"),
                               **options)]


def _sbom_diff(record: dict[str, Any], options: dict[str, Any]) -> list[dict[str, Any] | Rejected]:
    from aisoc.collectors.supply_chain import diff_sboms

    return list(diff_sboms(record["old"], record["new"], approvals=options.get("approvals"),
                           observed_at=record.get("observed_at")))


def _batch(record: dict[str, Any], options: dict[str, Any],
           workdir: Path | None = None) -> list[dict[str, Any] | Rejected]:
    """`record: {file: name, content: text, manifest: {...}, mtime: ISO time}` — a landed batch and its manifest.

    Without `manifest` the batch lands alone (no manifest file); `mtime` sets the batch file's
    modification time, which is the landing time when the manifest has no `landed_at`. The files go
    to a new directory under `workdir` (kept, so analyzers can read the batch) or a temporary one.
    """
    if workdir is not None:
        return _land_batch(record, options, Path(tempfile.mkdtemp(dir=workdir)))
    with tempfile.TemporaryDirectory() as tmp:
        return _land_batch(record, options, Path(tmp))


def _land_batch(record: dict[str, Any], options: dict[str, Any], root: Path) -> list[dict[str, Any] | Rejected]:
    import json
    import os
    from datetime import datetime

    from aisoc.collectors.training_data import BatchLandingConfig, BatchLandingSource
    from aisoc.rules.model import normalize_timestamp

    batch = root / record["file"]
    if not batch.resolve().is_relative_to(root.resolve()):
        raise TypeError(f"file {record['file']!r} points outside the batch directory")
    batch.parent.mkdir(parents=True, exist_ok=True)
    batch.write_text(record["content"], encoding="utf-8")
    if record.get("mtime") is not None:
        stamp = normalize_timestamp(record["mtime"])
        if stamp is None:
            raise TypeError("mtime must be an ISO-8601 time")
        seconds = datetime.fromisoformat(stamp.replace("Z", "+00:00")).timestamp()
        os.utime(batch, (seconds, seconds))
    if record.get("manifest") is not None:
        (root / f"{record['file']}.manifest.json").write_text(json.dumps(record["manifest"]), encoding="utf-8")
    return list(BatchLandingSource(BatchLandingConfig(**options)).replay(root))


def _mlflow(record: dict[str, Any], options: dict[str, Any]) -> list[dict[str, Any] | Rejected]:
    """`record: {records: [...]}` — MLflow REST responses and webhook deliveries, replayed in order.

    Each item is a `model-versions/search`, `registered-models/search` or `runs/search` response
    (or a single `model_version` / `registered_model`), or a webhook delivery `{headers, body}`.
    The items share one registry snapshot, as in one `MlflowCollector.replay` of a file, so a later
    alias or stage change sees the tags and lineage of a version an earlier item registered. A record
    without `records` is a single item. Options are `MlflowConfig` fields; `tracking_uri` defaults to
    https://mlflow.internal (replay never contacts it).
    """
    import json

    from aisoc.collectors.mlflow import MlflowCollector, MlflowConfig

    items = record["records"] if "records" in record else [record]
    if not isinstance(items, list):
        raise TypeError("'records' must be a list")
    config = MlflowConfig(**{"tracking_uri": "https://mlflow.internal", **options})
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "records.ndjson"
        path.write_text("".join(json.dumps(item) + "\n" for item in items), encoding="utf-8")
        with MlflowCollector(config) as collector:
            return list(collector.replay(path))


def _mlflow_poll(record: dict[str, Any], options: dict[str, Any]) -> list[dict[str, Any] | Rejected]:
    """`record: {polls: [registry state, ...]}` — `MlflowCollector.poll` against a recorded MLflow server.

    Each state is what the REST API answered at one poll: `registered_models` and `model_versions`
    (the search responses' items), `runs` (Run objects, for `runs/get` lineage and `runs/search` of
    watched experiments) and `artifacts` (run id -> {artifact path: text or {base64: ...}}). The
    states are served on loopback and polled in order by one collector, so the second poll diffs
    against the first (stage moves, tampered artifacts). A run id missing from `runs` answers 404
    (a dangling run). Events the collector stamps with the poll time (alias changes, artifact
    verification) get the state's `polled_at`, by default one minute after the latest time the state
    holds, so a case maps to the same events every time. Options are `MlflowConfig` fields;
    `verify_artifacts` defaults to true and `artifact_verify_interval_seconds` to 0.
    """
    import threading

    from aisoc.collectors.mlflow import MlflowCollector, MlflowConfig

    states = record["polls"]
    if not isinstance(states, list) or not all(isinstance(s, dict) for s in states):
        raise TypeError("'polls' must be a list of registry states")
    current: dict[str, Any] = {}
    server = _recorded_mlflow_server(current)
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)  # quick shutdown
    thread.start()
    try:
        settings = {"tracking_uri": f"http://127.0.0.1:{server.server_address[1]}", "verify_artifacts": True,
                    "artifact_verify_interval_seconds": 0, **options}
        out: list[dict[str, Any] | Rejected] = []
        clock = {"now": ""}
        with MlflowCollector(MlflowConfig(**settings), clock=lambda: clock["now"]) as collector:
            for state in states:
                current["state"] = state
                clock["now"] = _poll_time(state)
                out.extend(collector.poll())
        return out
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


def _poll_time(state: dict[str, Any]) -> str:
    """When a recorded state was polled: its `polled_at`, else a minute after the latest registry time in it."""
    from aisoc.collectors.base import epoch_ms_to_iso
    from aisoc.rules.model import normalize_timestamp

    if state.get("polled_at") is not None:
        stamp = normalize_timestamp(state["polled_at"])
        if stamp is None:
            raise TypeError("polled_at must be an ISO-8601 time")
        return stamp
    items = [*(state.get("registered_models") or []), *(state.get("model_versions") or []),
             *[r.get("info") or {} for r in state.get("runs") or []]]
    times = [int(v) for item in items for k in ("creation_timestamp", "last_updated_timestamp", "start_time",
                                                "end_time")
             if str(v := item.get(k, "")).isdigit()]
    if not times:
        raise TypeError("a poll state without registry times needs 'polled_at'")
    return epoch_ms_to_iso(max(times) + 60_000) or ""


def _recorded_mlflow_server(current: dict[str, Any]) -> Any:
    """A loopback HTTP server answering MLflow REST calls from `current["state"]`, a recorded registry state."""
    import base64
    import json
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
    from urllib.parse import parse_qs, urlsplit

    def content(value: Any) -> bytes:
        if isinstance(value, dict) and "base64" in value:
            return base64.b64decode(value["base64"])
        return str(value).encode("utf-8")

    def answer(method: str, path: str, query: dict[str, str], body: dict[str, Any]) -> tuple[int, Any]:
        state = current.get("state") or {}
        runs = {r["info"].get("run_id") or r["info"].get("run_uuid"): r for r in state.get("runs") or []}
        route = path.removeprefix("/api/2.0/mlflow/")
        if route == "registered-models/search":
            return 200, {"registered_models": state.get("registered_models") or []}
        if route == "model-versions/search":
            return 200, {"model_versions": state.get("model_versions") or []}
        if route == "model-versions/get":
            found = [v for v in state.get("model_versions") or []
                     if v.get("name") == query.get("name") and str(v.get("version")) == query.get("version")]
            if found:
                return 200, {"model_version": found[0]}
        elif route == "runs/get" and query.get("run_id") in runs:
            return 200, {"run": runs[query["run_id"]]}
        elif route == "runs/search" and method == "POST":
            wanted = {str(e) for e in body.get("experiment_ids") or []}
            return 200, {"runs": [r for r in runs.values() if str(r["info"].get("experiment_id")) in wanted]}
        elif route == "artifacts/list" and (query.get("run_id") in runs
                                            or query.get("run_id") in (state.get("artifacts") or {})):
            files = (state.get("artifacts") or {}).get(query.get("run_id"), {})
            prefix = query.get("path", "").strip("/")
            listed: dict[str, dict[str, Any]] = {}
            for name, value in files.items():
                if prefix and not name.startswith(prefix + "/"):
                    continue
                rest = name[len(prefix) + 1:] if prefix else name
                head, sep, _ = rest.partition("/")
                child = f"{prefix}/{head}" if prefix else head
                listed[child] = {"path": child, "is_dir": True} if sep else {
                    "path": child, "is_dir": False, "file_size": len(content(value))}
            return 200, {"root_uri": f"mlflow-artifacts:/{query.get('run_id')}/artifacts",
                         "files": sorted(listed.values(), key=lambda f: f["path"])}
        elif path == "/get-artifact":
            files = (state.get("artifacts") or {}).get(query.get("run_id") or query.get("run_uuid"), {})
            if query.get("path") in files:
                return 200, content(files[query["path"]])
        return 404, {"error_code": "RESOURCE_DOES_NOT_EXIST", "message": f"{route} {query} not found"}

    class Handler(BaseHTTPRequestHandler):
        def _reply(self, method: str) -> None:
            url = urlsplit(self.path)
            query = {k: v[0] for k, v in parse_qs(url.query).items()}
            length = int(self.headers.get("Content-Length") or 0)
            body = json.loads(self.rfile.read(length) or b"{}") if length else {}
            status, data = answer(method, url.path, query, body)
            raw = data if isinstance(data, bytes) else json.dumps(data).encode("utf-8")
            self.send_response(status)
            self.send_header("Content-Type", "application/octet-stream" if isinstance(data, bytes)
                             else "application/json")
            self.send_header("Content-Length", str(len(raw)))
            self.end_headers()
            self.wfile.write(raw)

        def do_GET(self) -> None:  # noqa: N802 - http.server's name
            self._reply("GET")

        def do_POST(self) -> None:  # noqa: N802 - http.server's name
            self._reply("POST")

        def log_message(self, *args: object) -> None:
            pass

    return ThreadingHTTPServer(("127.0.0.1", 0), Handler)


def _write_tree(root: Path, files: dict[str, Any]) -> None:
    """Files under `root`: path -> text, or `{base64: ...}` for binary content; paths stay inside `root`."""
    import base64

    for name, content in files.items():
        target = (root / name).resolve()
        if not target.is_relative_to(root.resolve()):
            raise TypeError(f"file {name!r} points outside the record's directory")
        target.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(content, dict) and "base64" in content:
            target.write_bytes(base64.b64decode(content["base64"]))
        elif isinstance(content, str):
            target.write_text(content, encoding="utf-8")
        else:
            raise TypeError(f"file {name!r} must be text or {{base64: ...}}")


def _pip_environment(record: dict[str, Any], options: dict[str, Any]) -> list[dict[str, Any] | Rejected]:
    """`record: {inspect: <pip inspect JSON>, lock: <hash-pinned lock text>, site_packages: {path: text}}`.

    `site_packages` holds the installed files the RECORDs are checked against (each dist-info with its
    RECORD, and the package files); dist-infos not given are not checked. Optional `install_report`
    (`pip install --report` JSON) and `observed_at`. Options: `approvals`, `host`.
    """
    from aisoc.collectors.supply_chain import verify_environment

    with tempfile.TemporaryDirectory() as tmp:
        site = Path(tmp) / "site-packages"
        site.mkdir()
        _write_tree(site, record.get("site_packages") or {})
        return list(verify_environment(record["inspect"], site, record["lock"],
                                       install_report=record.get("install_report"),
                                       approvals=options.get("approvals"), host=options.get("host"),
                                       observed_at=record.get("observed_at")))


def _model_signature(record: dict[str, Any], options: dict[str, Any]) -> list[dict[str, Any] | Rejected]:
    """`record: {model: dir name, files: {path: text}, signature: <model_signing bundle> | absent}`.

    The model directory and its signature (`<model>.sig`, next to it; none when `signature` is
    absent) are written out and verified offline. Options: the `ModelSigningPolicy` with
    `public_keys` as signer name -> PEM text and `certificate_chain` as a list of PEM texts, plus
    `model_name`, `model_version`, `host`.
    """
    import json

    from aisoc.collectors.supply_chain import verify_model_signature

    policy = {k: v for k, v in options.items() if k not in ("model_name", "model_version", "host")}
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        keys = root / "policy"
        keys.mkdir()
        public_keys = {}
        for number, (name, pem) in enumerate(sorted((policy.get("public_keys") or {}).items())):
            (keys / f"key{number}.pem").write_text(pem, encoding="utf-8")
            public_keys[name] = keys / f"key{number}.pem"
        chain = []
        for number, pem in enumerate(policy.get("certificate_chain") or []):
            (keys / f"ca{number}.pem").write_text(pem, encoding="utf-8")
            chain.append(keys / f"ca{number}.pem")
        policy = {**policy, "public_keys": public_keys, "certificate_chain": chain}
        model = root / str(record["model"])
        if model.parent != root:
            raise TypeError("model must be a plain directory name")
        model.mkdir()
        _write_tree(model, record["files"])
        signature = root / f"{record['model']}.sig"
        if record.get("signature") is not None:
            signature.write_text(json.dumps(record["signature"]), encoding="utf-8")
        return [verify_model_signature(model, signature, policy, model_name=options.get("model_name"),
                                       model_version=options.get("model_version"), host=options.get("host"),
                                       observed_at=record.get("observed_at"))]


MAPPERS: dict[str, Mapper] = {
    "litellm": _litellm,
    "openai_exchange": _openai_exchange,
    "kserve": _kserve,
    "s3_access_log": _s3_access_log,
    "minio_audit": _minio_audit,
    "data_batch": _batch,
    "mlflow": _mlflow,
    "mlflow_poll": _mlflow_poll,
    "modelscan": _modelscan,
    "hub_model_info": _hub,
    "sbom_diff": _sbom_diff,
    "pip_environment": _pip_environment,
    "model_signature": _model_signature,
}


def map_native(kind: str, record: dict[str, Any], options: dict[str, Any] | None = None,
               workdir: Path | None = None) -> list[dict[str, Any]]:
    """Events for one native record; raises ValueError naming what is wrong (unknown kind, rejected record).

    `workdir`: where a batch record's files are written and kept (for analyzers that read them later).
    """
    mapper = MAPPERS.get(kind)
    if mapper is None:
        raise ValueError(f"unknown native record kind {kind!r}; known: {', '.join(sorted(MAPPERS))}")
    try:
        results = _batch(record, options or {}, workdir) if kind == "data_batch" else mapper(record, options or {})
    except (KeyError, TypeError) as exc:
        raise ValueError(f"{kind} record is missing {exc}") from None
    rejected = [r for r in results if isinstance(r, Rejected)]
    if rejected:
        raise ValueError(f"{kind} mapping rejected the record: {rejected[0].reason}")
    return [r for r in results if isinstance(r, dict)]
