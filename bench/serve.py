"""`aisoc serve` end to end: receiver -> spool -> SQLite (and Elasticsearch), and event-to-alert latency.

Prints, as ratios against baselines measured in the same run:
- throughput receiver -> SQLite sink vs inserting the same events straight into an EventStore;
- throughput receiver -> Elasticsearch vs `helpers.streaming_bulk` of the same events (with --es or a
  test node; --no-es skips);
- p50/p95 event-to-alert latency for a single-event rule (detection every 0.5 s);
- peak RSS of the service while fed a steady 5,000 events/s for 10 s.

    python bench/serve.py [--events N] [--es URL | --no-es]
"""

from __future__ import annotations

import argparse
import json
import signal
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path

import httpx

from aisoc.detect.store import EventStore

TOKEN = "bench-token"


def events(prefix: str, n: int, start: int = 0) -> list[dict]:
    return [{"@timestamp": "2026-05-01T00:00:00Z", "event.id": f"{prefix}-{i}", "event.dataset": "aisoc.inference",
             "event.action": "llm-request", "aisoc.api_key.hash": f"{i % 50:064x}",
             "gen_ai.usage.input_tokens": i % 900} for i in range(start, start + n)]


class Service:
    def __init__(self, workdir: Path, es_url: str | None = None, detection: bool = False) -> None:
        sinks = (f"sinks: {{sqlite: false, elasticsearch: {{url: {es_url}, namespace: bench{uuid.uuid4().hex[:6]}}}}}"
                 if es_url else "sinks: {sqlite: true}")
        lines = ["data_dir: data", "receiver:", "  port: 0", "  sources:", "    events:", "      kind: ndjson",
                 "      max_body_bytes: 50000000", f"      auth: {{token: {TOKEN}}}", sinks,
                 "detection:", f"  enabled: {str(detection).lower()}", "  interval_seconds: 0.5",
                 "  lookback_seconds: 60"]
        self.workdir = workdir
        (workdir / "aisoc.yml").write_text("\n".join(lines) + "\n")
        self.proc = subprocess.Popen([sys.executable, "-m", "aisoc.cli", "serve", "-c", str(workdir / "aisoc.yml")],
                                     stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            if line.startswith('{"ready"'):
                self.port = json.loads(line)["port"]
                break
        self.client = httpx.Client(timeout=60, headers={"Authorization": f"Bearer {TOKEN}"})

    def post(self, batch: list[dict]) -> None:
        body = "\n".join(json.dumps(e) for e in batch).encode()
        response = self.client.post(f"http://127.0.0.1:{self.port}/ingest/events", content=body)
        response.raise_for_status()

    def peak_rss_mb(self) -> float:
        for line in Path(f"/proc/{self.proc.pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
        return float("nan")

    def stop(self) -> None:
        self.proc.send_signal(signal.SIGTERM)
        self.proc.wait(timeout=60)


def stored(workdir: Path) -> int:
    conn = sqlite3.connect(workdir / "data" / "events.db")
    try:
        return int(conn.execute("SELECT COUNT(*) FROM logs").fetchone()[0])
    except sqlite3.OperationalError:
        return 0
    finally:
        conn.close()


def sqlite_throughput(n: int) -> tuple[float, float]:
    batch = events("base", n)
    store = EventStore(Path(tempfile.mkdtemp()) / "e.db")
    start = time.perf_counter()
    for i in range(0, n, 1000):
        store.insert(batch[i:i + 1000])
    baseline = n / (time.perf_counter() - start)
    workdir = Path(tempfile.mkdtemp())
    service = Service(workdir)
    start = time.perf_counter()
    with ThreadPoolExecutor(4) as pool:
        list(pool.map(service.post, [events("svc", 1000, i) for i in range(0, n, 1000)]))
    while stored(workdir) < n:
        time.sleep(0.05)
    ours = n / (time.perf_counter() - start)
    service.stop()
    return baseline, ours


def es_throughput(url: str, n: int) -> tuple[float, float]:
    from elasticsearch import Elasticsearch, helpers

    from aisoc.deploy import deploy_elasticsearch

    client = Elasticsearch(url, request_timeout=120)
    deploy_elasticsearch(client)
    ns = f"base{uuid.uuid4().hex[:6]}"
    actions = [{"_op_type": "create", "_index": f"logs-aisoc.inference-{ns}", "_id": e["event.id"], "_source": e}
               for e in events("esb", n)]
    start = time.perf_counter()
    for _ok, _ in helpers.streaming_bulk(client, actions, chunk_size=1000):
        pass
    baseline = n / (time.perf_counter() - start)
    service = Service(Path(tempfile.mkdtemp()), es_url=url)
    index = "logs-aisoc.inference-bench*"
    start = time.perf_counter()
    with ThreadPoolExecutor(4) as pool:
        list(pool.map(service.post, [events("ess", 1000, i) for i in range(0, n, 1000)]))
    while True:
        client.indices.refresh(index=index, ignore_unavailable=True, allow_no_indices=True)
        if client.count(index=index, ignore_unavailable=True, allow_no_indices=True)["count"] >= n:
            break
        time.sleep(0.1)
    ours = n / (time.perf_counter() - start)
    service.stop()
    return baseline, ours


def alert_latency(samples: int) -> list[float]:
    workdir = Path(tempfile.mkdtemp())
    service = Service(workdir, detection=True)
    alerts = workdir / "data" / "alerts.ndjson"
    latencies = []
    for i in range(samples):
        now = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"
        event = {"@timestamp": now, "event.id": f"lat-{i}", "event.kind": "metric", "event.dataset": "aisoc.inference",
                 "aisoc.signal.name": "api_key_logprobs_share", "aisoc.signal.value": 0.99,
                 "aisoc.signal.sample_size": 500, "aisoc.signal.entity": f"key-{i}"}
        before = alerts.read_text().count("\n") if alerts.exists() else 0
        start = time.perf_counter()
        service.post([event])
        while (alerts.read_text().count("\n") if alerts.exists() else 0) <= before:
            time.sleep(0.01)
        latencies.append(time.perf_counter() - start)
    service.stop()
    return latencies


def steady_rss(rate: int, seconds: int) -> float:
    workdir = Path(tempfile.mkdtemp())
    service = Service(workdir, detection=True)
    per_tick = rate // 10
    sent = 0
    start = time.perf_counter()
    while time.perf_counter() - start < seconds:
        tick = time.perf_counter()
        service.post(events("rss", per_tick, sent))
        sent += per_tick
        time.sleep(max(0.0, 0.1 - (time.perf_counter() - tick)))
    peak = service.peak_rss_mb()
    service.stop()
    return peak


def measure_all(es_url: str | None, n: int) -> list[tuple[str, str, str]]:
    rows = []
    base, ours = sqlite_throughput(n)
    rows.append(("direct EventStore.insert (baseline)", f"{base:,.0f} ev/s", "1.00"))
    rows.append(("aisoc serve -> SQLite", f"{ours:,.0f} ev/s", f"{ours / base:.2f}"))
    if es_url:
        base, ours = es_throughput(es_url, n)
        rows.append(("helpers.streaming_bulk (baseline)", f"{base:,.0f} ev/s", "1.00"))
        rows.append(("aisoc serve -> Elasticsearch", f"{ours:,.0f} ev/s", f"{ours / base:.2f}"))
    latencies = alert_latency(20)
    rows.append(("event -> alert p50", f"{statistics.median(latencies) * 1000:.0f} ms", ""))
    rows.append(("event -> alert p95", f"{statistics.quantiles(latencies, n=20)[18] * 1000:.0f} ms", ""))
    rows.append(("peak RSS at 5,000 ev/s for 10 s", f"{steady_rss(5000, 10):.0f} MiB", ""))
    return rows


def print_rows(rows: list[tuple[str, str, str]]) -> None:
    print(f"{'measurement':38} {'value':>14} {'x baseline':>11}")
    for name, value, ratio in rows:
        print(f"{name:38} {value:>14} {ratio:>11}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=50_000)
    parser.add_argument("--es", help="Elasticsearch URL (default: start a test node)")
    parser.add_argument("--no-es", action="store_true")
    args = parser.parse_args()
    if args.no_es:
        print_rows(measure_all(None, args.events))
        return
    from es_sink import elasticsearch

    with elasticsearch(args.es) as url:
        print_rows(measure_all(url, args.events))


if __name__ == "__main__":
    main()
