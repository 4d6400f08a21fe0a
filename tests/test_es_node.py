"""The real Elasticsearch test node (`aisoc.testing.es_node`): fetch, start, use, restart, crash."""

from __future__ import annotations

import shutil
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest

from aisoc.testing import es_node
from aisoc.testing.es_node import ElasticsearchNode, EsNodeError, ensure_distribution, session_es_url


@pytest.fixture(scope="module")
def node() -> Iterator[ElasticsearchNode]:
    """One real node for this module (the restart/kill tests come last and leave it running)."""
    with ElasticsearchNode() as started:
        yield started


def _client(node: ElasticsearchNode) -> httpx.Client:
    return httpx.Client(base_url=node.url, timeout=30)


def _index_into_stream(client: httpx.Client, stream: str, message: str) -> str:
    """Create a composable template with a data stream for `stream`, index one doc; returns backing index."""
    resp = client.put(
        f"/_index_template/{stream}",
        json={
            "index_patterns": [f"{stream}*"],
            "data_stream": {},
            "priority": 500,
            "template": {
                "settings": {"number_of_replicas": 0},
                "mappings": {
                    "properties": {
                        "@timestamp": {"type": "date"},
                        "message": {"type": "text"},
                        "event": {"properties": {"kind": {"type": "keyword"}}},
                    }
                },
            },
        },
    )
    assert resp.status_code == 200, resp.text
    doc = {"@timestamp": datetime.now(UTC).isoformat(), "message": message, "event": {"kind": "alert"}}
    resp = client.post(f"/{stream}/_doc", params={"refresh": "true"}, json=doc)
    assert resp.status_code == 201, resp.text
    return str(resp.json()["_index"])


def _query_string_hits(client: httpx.Client, stream: str, query: str) -> list[dict[str, object]]:
    resp = client.post(f"/{stream}/_search", json={"query": {"query_string": {"query": query}}})
    assert resp.status_code == 200, resp.text
    return list(resp.json()["hits"]["hits"])


def test_node_is_healthy(node: ElasticsearchNode) -> None:
    assert node.url.startswith("http://127.0.0.1:")
    assert node.is_running()
    assert node.startup_seconds is not None and node.startup_seconds < es_node.STARTUP_TIMEOUT
    with _client(node) as client:
        health = client.get("/_cluster/health").json()
        assert health["status"] in ("green", "yellow")
        assert health["number_of_nodes"] == 1
        nodes = client.get("/_nodes/_local").json()["nodes"]
        assert [n["version"] for n in nodes.values()] == [node.version]


def test_data_stream_roundtrip_with_query_string(node: ElasticsearchNode) -> None:
    stream = "logs-aisoc.estest-default"
    with _client(node) as client:
        backing = _index_into_stream(client, stream, "prompt injection attempt against model gpt-x")
        assert backing.startswith(f".ds-{stream}-")
        # The integ-test zip has no data-streams module: /_data_stream/* has no REST handler, but the
        # streams themselves work; _resolve/index shows it is a data stream.
        streams = client.get(f"/_resolve/index/{stream}").json()["data_streams"]
        assert [(s["name"], s["backing_indices"]) for s in streams] == [(stream, [backing])]
        hits = _query_string_hits(client, stream, "message:injection AND event.kind:alert")
        assert len(hits) == 1
        assert hits[0]["_source"]["message"] == "prompt injection attempt against model gpt-x"  # type: ignore[index]
        assert _query_string_hits(client, stream, "message:exfiltration") == []


def test_session_es_url_uses_external_cluster(node: ElasticsearchNode, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AISOC_TEST_ES_URL", node.url + "/")
    with session_es_url(timeout=30) as (url, started):
        assert url == node.url
        assert started is None  # nothing started: the external cluster is used as is


def test_second_ensure_distribution_does_not_download(node: ElasticsearchNode, monkeypatch: pytest.MonkeyPatch) -> None:
    """The node fixture already fetched the default cache: asking again must not call mvn."""

    def no_download(version: str, out_dir: Path) -> Path:
        raise AssertionError("ensure_distribution downloaded again")

    monkeypatch.setattr(es_node, "_mvn_download", no_download)
    home = ensure_distribution(node.version)
    assert (home / "bin" / "elasticsearch").is_file()


def test_ensure_distribution_downloads_and_unpacks_once(
    node: ElasticsearchNode, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A fresh cache: the first call runs mvn once and unpacks; the second reuses both."""
    calls: list[str] = []
    real_download = es_node._mvn_download

    def counting_download(version: str, out_dir: Path) -> Path:
        calls.append(version)
        return real_download(version, out_dir)

    monkeypatch.setattr(es_node, "_mvn_download", counting_download)
    cache = tmp_path / "cache"
    try:
        home = ensure_distribution(node.version, cache_dir=cache)
        assert calls == [node.version]
        zip_path = cache / "elasticsearch" / "downloads" / f"elasticsearch-{node.version}.zip"
        launcher = home / "bin" / "elasticsearch"
        assert home == cache / "elasticsearch" / f"elasticsearch-{node.version}"
        assert launcher.stat().st_mode & 0o111, "executable bits survive unpacking"
        before = (zip_path.stat().st_mtime_ns, home.stat().st_ino, launcher.stat().st_mtime_ns)

        assert ensure_distribution(node.version, cache_dir=cache) == home
        assert calls == [node.version]
        assert (zip_path.stat().st_mtime_ns, home.stat().st_ino, launcher.stat().st_mtime_ns) == before
        assert not [p for p in (cache / "elasticsearch").iterdir() if p.name.startswith((".unpack-", ".download-"))]
    finally:
        shutil.rmtree(cache, ignore_errors=True)  # ~200 MB; do not leave it to pytest's tmp retention


def test_missing_mvn_is_a_clear_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(es_node.shutil, "which", lambda name, *a, **k: None)
    with pytest.raises(EsNodeError, match=r"Maven \(`mvn`\) is not on PATH"):
        ensure_distribution("9.2.0", cache_dir=tmp_path)


def test_failed_download_names_the_command(tmp_path: Path) -> None:
    with pytest.raises(EsNodeError, match=r"dependency:copy.*0\.0\.0-aisoc-no-such-version") as err:
        ensure_distribution("0.0.0-aisoc-no-such-version", cache_dir=tmp_path)
    assert "output tail" in str(err.value)
    assert not list((tmp_path / "elasticsearch").glob(".download-*")), "temp download dir cleaned up"


def test_start_failure_is_reported_with_the_cause() -> None:
    broken = ElasticsearchNode(settings={"aisoc.no.such.setting": "x"})
    started = time.monotonic()
    with pytest.raises(EsNodeError, match=r"unknown setting \[aisoc\.no\.such\.setting\]"):
        broken.start()
    assert time.monotonic() - started < 60, "a dying process must fail fast, not wait for the timeout"
    assert not broken.is_running()
    assert broken.node_dir is None, "temp dirs removed"


def test_restart_keeps_port_and_data(node: ElasticsearchNode) -> None:
    stream = "logs-aisoc.restart-default"
    with _client(node) as client:
        _index_into_stream(client, stream, "survives a graceful restart")
    url, data_dir = node.url, node.data_dir

    node.restart()

    assert (node.url, node.data_dir) == (url, data_dir)
    with _client(node) as client:
        assert len(_query_string_hits(client, stream, "message:graceful")) == 1


def test_kill_then_restart_recovers_acknowledged_writes(node: ElasticsearchNode) -> None:
    stream = "logs-aisoc.crash-default"
    with _client(node) as client:
        _index_into_stream(client, stream, "acknowledged before the crash")

    node.kill()

    assert not node.is_running()
    with pytest.raises(httpx.TransportError):
        httpx.get(f"{node.url}/_cluster/health", timeout=5)

    node.restart()

    with _client(node) as client:
        assert client.get("/_cluster/health").json()["status"] in ("green", "yellow")
        assert len(_query_string_hits(client, stream, "message:crash")) == 1
