"""Normalization throughput per collector, as events/s and as a ratio to a plain `json.loads` +
`json.dumps` round trip of the same native records in the same process (goal: at least 0.3).

    python bench/collectors.py [--records N]

What a mapping does beyond the round trip: validates every field it reads (types, sizes, IPs,
times), keeps the raw record as `event.original`, hashes the record's identity into `event.id`, and
for KServe joins request and response (whose event carries both CloudEvents). An S3 access-log line
is compared with the round trip of the same record as a JSON object of its fields. The fixtures
repeat their records, as logs repeat client addresses and seconds, so the S3 mapping's caches of
parsed IPs and times hit as they would in production.
"""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

FIXTURES = Path(__file__).resolve().parents[1] / "tests" / "fixtures"


def _records(path: Path) -> list[str]:
    return [line for line in path.read_text().splitlines() if line.strip()]


def cases() -> dict[str, tuple[list[str], Callable[[str], Any]]]:
    from aisoc.collectors.kserve import RequestResponseJoiner, parse_structured
    from aisoc.collectors.llm_gateway import map_litellm_payload
    from aisoc.collectors.supply_chain import map_hub_model_info
    from aisoc.collectors.training_data import ObjectAccessConfig, map_minio_audit, map_s3_access_log_line

    object_config = ObjectAccessConfig(ingestion_paths=["s3://training-landing/txn/"], pipeline_identities=["*svc*"])
    joiner = RequestResponseJoiner()
    hub = [json.dumps(json.loads(p.read_text())) for p in sorted((FIXTURES / "supply_chain").glob("hub_*.json"))]
    return {
        "litellm (StandardLoggingPayload)": (
            _records(FIXTURES / "llm_gateway" / "benign_traffic.ndjson"),
            lambda raw: map_litellm_payload(json.loads(raw))),
        "kserve (structured CloudEvents)": (
            _records(FIXTURES / "kserve" / "structured_events.ndjson"),
            lambda raw: parse_structured(json.loads(raw), joiner)),
        "s3 server access log": (
            _records(FIXTURES / "training_data" / "s3_access.log"),
            lambda raw: map_s3_access_log_line(raw, object_config)),
        "minio audit": (
            _records(FIXTURES / "training_data" / "minio_audit.jsonl"),
            lambda raw: map_minio_audit(json.loads(raw), object_config, raw=raw)),
        "huggingface model info": (hub, lambda raw: map_hub_model_info(json.loads(raw), "main")),
    }


def _as_json(raw: str) -> str:
    """The record as JSON text: JSON records as they are; an S3 log line as the object of its named fields
    (the same record, had S3 written JSON), so its baseline is a round trip of the same data."""
    if raw.lstrip().startswith(("{", "[")):
        return raw
    from aisoc.collectors.training_data import parse_s3_access_log_line

    try:
        return json.dumps(parse_s3_access_log_line(raw))
    except ValueError:
        return json.dumps({"line": raw})


def measure(records: list[str], fn: Callable[[str], Any], n: int) -> tuple[float, float]:
    batch = (records * (n // len(records) + 1))[:n]
    as_json = [_as_json(raw) for raw in batch]
    start = time.perf_counter()
    for text in as_json:
        json.dumps(json.loads(text))
    baseline = time.perf_counter() - start
    start = time.perf_counter()
    for raw in batch:
        try:
            fn(raw)
        except ValueError:
            pass  # a deliberately bad fixture record: rejected, still work done
    ours = time.perf_counter() - start
    return n / ours, baseline / ours


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=5000)
    args = parser.parse_args()
    print(f"{'collector':36} {'events/s':>10} {'x json round trip':>18}")
    for name, (records, fn) in cases().items():
        rate, ratio = measure(records, fn, args.records)
        print(f"{name:36} {rate:10,.0f} {ratio:18.2f}   (goal >= 0.3)")


if __name__ == "__main__":
    main()
