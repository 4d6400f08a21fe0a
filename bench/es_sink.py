"""Elasticsearch sink throughput against raw `helpers.streaming_bulk` on the same node.

Both index the same events (pre-serialized for the baseline) into fresh data streams with the same
batch size; the ratio sink/baseline is what matters (goal: at least 0.9).

    python bench/es_sink.py [--es URL] [--events N]
"""

from __future__ import annotations

import argparse
import json
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager

from elasticsearch import Elasticsearch, helpers

from aisoc.deploy import deploy_elasticsearch
from aisoc.sinks.deadletter import DeadLetterStore
from aisoc.sinks.elasticsearch import ElasticsearchSink
from aisoc.testing.es_node import ElasticsearchNode


@contextmanager
def elasticsearch(url: str | None) -> Iterator[str]:
    if url:
        yield url
        return
    with ElasticsearchNode() as node:
        yield node.url


def make_events(n: int, tag: str) -> list[dict]:
    return [{
        "@timestamp": f"2026-03-01T00:{(i // 60) % 60:02d}:{i % 60:02d}.000Z",
        "event": {"id": f"{tag}-{i}", "kind": "event", "action": "llm-request", "dataset": "aisoc.inference"},
        "gen_ai": {"request": {"model": "gpt-4o"}, "usage": {"input_tokens": 120 + i % 50, "output_tokens": 80}},
        "aisoc": {"api_key": {"hash": f"{i % 40:064x}"}, "llm": {"logprobs_requested": i % 7 == 0}},
        "user": {"name": f"user-{i % 40}"},
    } for i in range(n)]


def measure(url: str, n: int, batch: int) -> dict[str, float]:
    client = Elasticsearch(url, request_timeout=120)
    deploy_elasticsearch(client)
    raw_ns, sink_ns = f"raw{uuid.uuid4().hex[:6]}", f"sink{uuid.uuid4().hex[:6]}"
    raw_events = make_events(n, "raw")
    actions = [{"_op_type": "create", "_index": f"logs-aisoc.inference-{raw_ns}", "_id": e["event"]["id"],
                "_source": json.dumps(e)} for e in raw_events]
    start = time.perf_counter()
    for ok, _ in helpers.streaming_bulk(client, actions, chunk_size=batch, raise_on_error=False):
        assert ok
    baseline = time.perf_counter() - start
    sink = ElasticsearchSink(client, DeadLetterStore(), namespace=sink_ns, batch_size=batch)
    events = make_events(n, "sink")
    start = time.perf_counter()
    result = sink.send(events)
    ours = time.perf_counter() - start
    assert result.created == n, result
    return {"events": n, "baseline_eps": n / baseline, "sink_eps": n / ours, "ratio": baseline / ours}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--es", help="Elasticsearch URL (default: start a local test node)")
    parser.add_argument("--events", type=int, default=20000)
    parser.add_argument("--batch", type=int, default=500)
    args = parser.parse_args()
    with elasticsearch(args.es) as url:
        measure(url, 2000, args.batch)  # warm-up: JIT, mappings, connections
        r = measure(url, args.events, args.batch)
    print(f"{'measurement':34} {'events/s':>10} {'x baseline':>11}")
    print(f"{'baseline: helpers.streaming_bulk':34} {r['baseline_eps']:10.0f} {1.0:11.2f}")
    print(f"{'aisoc ElasticsearchSink':34} {r['sink_eps']:10.0f} {r['ratio']:11.2f}")


if __name__ == "__main__":
    main()
