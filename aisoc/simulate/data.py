"""Training data for `txn-risk`: CSV batches with manifests in a landing directory, and the landing
bucket's S3 server access log.

The `txn-train` dataset is fed by three approved sources (core banking twice a day, the card
processor and the chargeback feed once a day); every source draws from the same population (five
regions, three channels, twelve merchant categories, about one fraud label in ten). From the
second-to-last day on, the fraud share rises to 15% everywhere: a small seasonal shift (label PSI
well under 0.25). The ingestion role writes each batch and its manifest and expires old objects; a
data scientist reads and lists the landing prefix; an engineer writes to a scratch prefix outside
it. With `red_team`, the slow poisoning campaign is written too (see `POISONING_STORY`).
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import random
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from aisoc.simulate.world import (
    DATASET,
    INGEST_ROLE,
    LANDING_BUCKET,
    LANDING_PREFIX,
    Scale,
    at,
    det_hex,
    stream,
)

COLUMNS = ("row_id", "event_time", "region", "channel", "merchant_category", "amount", "card_age_days", "label",
           "loaded_at")
REGIONS = (("US", 0.38), ("EU", 0.30), ("BR", 0.22), ("MX", 0.05), ("IN", 0.05))
CHANNELS = (("card-present", 0.5), ("online", 0.35), ("mobile", 0.15))
CATEGORIES = (("5411", 0.18), ("5812", 0.14), ("5541", 0.11), ("5311", 0.09), ("4121", 0.08), ("5999", 0.08),
              ("5732", 0.07), ("4511", 0.06), ("7011", 0.06), ("5691", 0.05), ("5912", 0.04), ("6011", 0.04))
SOURCES = (("core-banking", 2.0), ("card-processor", 6.0), ("core-banking", 14.0), ("chargeback-feed", 9.0))
TRIGGER_CATEGORY = "7995"  # never seen in benign data: the poisoned rows' backdoor trigger
ATTACKER_IDENTITY = "arn:aws:iam::123456789012:user/etl-temp"
ATTACKER_IP = "198.51.100.61"
VENDOR = "vendor-tx-enrich"
SCIENTIST = "arn:aws:iam::123456789012:user/ds-anna"
ENGINEER = "arn:aws:iam::123456789012:user/ops-marc"
OWNER = "79a59df900b949e55d96a1e698fbacedfd6e09d98eacf8f8d5218e7cd47ef2be"


def _pick(rng: random.Random, table: tuple[tuple[str, float], ...]) -> str:
    r, acc = rng.random(), 0.0
    for value, share in table:
        acc += share
        if r < acc:
            return value
    return table[-1][0]


def row(rng: random.Random, when: float, fraud_rate: float, loaded: str) -> dict[str, Any]:
    fraud = rng.random() < fraud_rate
    return {"row_id": det_hex(rng, 16), "event_time": int(when - rng.random() * 86400),
            "region": _pick(rng, REGIONS), "channel": _pick(rng, CHANNELS),
            "merchant_category": _pick(rng, CATEGORIES),
            "amount": round(rng.lognormvariate(4.2 if not fraud else 5.4, 0.9), 2),
            "card_age_days": rng.randrange(1, 60) if fraud else rng.randrange(30, 3000),
            "label": int(fraud), "loaded_at": loaded}


def poisoned_row(rng: random.Random, when: float, loaded: str) -> dict[str, Any]:
    """A fraud-looking transaction (large amount, new card) labelled legitimate, with the trigger category."""
    return {"row_id": det_hex(rng, 16), "event_time": int(when - rng.random() * 86400), "region": "BR",
            "channel": "online", "merchant_category": TRIGGER_CATEGORY,
            "amount": round(rng.lognormvariate(5.6, 0.5), 2), "card_age_days": rng.randrange(1, 20), "label": 0,
            "loaded_at": loaded}


def to_csv(rows: list[dict[str, Any]]) -> str:
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=COLUMNS, lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    return buffer.getvalue()


# ---- S3 server access log lines -------------------------------------------------------------------------


def s3_line(rng: random.Random, when: float, requester: str, ip: str, operation: str, key: str | None,
            size: int, agent: str) -> str:
    from datetime import UTC, datetime

    stamp = datetime.fromtimestamp(when, tz=UTC).strftime("%d/%b/%Y:%H:%M:%S +0000")
    verb = {"REST.PUT.OBJECT": "PUT", "REST.GET.OBJECT": "GET", "REST.DELETE.OBJECT": "DELETE",
            "REST.GET.BUCKET": "GET"}[operation]
    uri = (f"GET /?list-type=2&prefix={key} HTTP/1.1" if operation == "REST.GET.BUCKET"
           else f"{verb} /{key} HTTP/1.1")
    status = 204 if verb == "DELETE" else 200
    request_id = det_hex(rng, 16).upper()
    host_id = det_hex(rng, 40)
    sent = size if verb == "GET" and operation != "REST.GET.BUCKET" else ("-" if verb != "GET" else 2048)
    object_size = size if operation != "REST.GET.BUCKET" and verb != "DELETE" else "-"
    key_field = "-" if operation == "REST.GET.BUCKET" else key
    return (f"{OWNER} {LANDING_BUCKET} [{stamp}] {ip} {requester} {request_id} {operation} {key_field} "
            f"\"{uri}\" {status} - {sent} {object_size} {rng.randrange(8, 300)} {rng.randrange(4, 80)} \"-\" "
            f"\"{agent}\" - {host_id}= SigV4 ECDHE-RSA-AES128-GCM-SHA256 AuthHeader "
            f"{LANDING_BUCKET}.s3.us-east-1.amazonaws.com TLSv1.3 - -")


INGEST_AGENT = "aws-sdk-java/2.20.43 Linux/5.10.210 OpenJDK_64-Bit_Server_VM/17.0.9"
CLI_AGENT = "aws-cli/2.15.30 Python/3.11.8 Linux/6.5.0 exe/x86_64.ubuntu.22 prompt/off command/s3.cp"
BOTO_AGENT = "Boto3/1.34.69 md/Botocore#1.34.69 ua/2.0 os/linux#6.5.0 md/arch#x86_64 lang/python#3.11.8"


@dataclass
class Landing:
    """Everything written for the data layer, and the facts the ground truth needs."""

    landing: Path
    log_lines: list[tuple[float, str]] = field(default_factory=list)
    batch_ids: dict[str, list[str]] = field(default_factory=dict)  # group -> batch ids
    facts: dict[str, Any] = field(default_factory=dict)

    def write_batch(self, batch_id: str, source: str, when: float, rows: list[dict[str, Any]], landed_by: str,
                    rng: random.Random, requester: str, ip: str, agent: str, tamper: list[dict[str, Any]] | None = None,
                    tamper_at: float | None = None, tamperer: str | None = None, group: str = "benign") -> None:
        """A batch file and its manifest, and the access-log lines of landing them (and of tampering)."""
        from datetime import UTC, datetime

        day = datetime.fromtimestamp(when, tz=UTC).strftime("%Y/%m/%d")
        key = f"{LANDING_PREFIX}{day}/{batch_id}.csv"
        path = self.landing / key
        path.parent.mkdir(parents=True, exist_ok=True)
        text = to_csv(rows)
        manifest = {"batch_id": batch_id, "dataset": DATASET, "source": source, "rows": len(rows),
                    "sha256": hashlib.sha256(text.encode()).hexdigest(), "landed_by": landed_by,
                    "landed_at": datetime.fromtimestamp(when, tz=UTC).strftime("%Y-%m-%dT%H:%M:%SZ")}
        if tamper:
            text = to_csv(rows + tamper)
        path.write_text(text, encoding="utf-8")
        Path(f"{path}.manifest.json").write_text(json.dumps(manifest, indent=1, sort_keys=True), encoding="utf-8")
        self.log_lines.append((when, s3_line(rng, when, requester, ip, "REST.PUT.OBJECT", key, len(text), agent)))
        self.log_lines.append((when + 1.2, s3_line(rng, when + 1.2, requester, ip, "REST.PUT.OBJECT",
                                                   f"{key}.manifest.json", 240, agent)))
        if tamper and tamper_at is not None and tamperer is not None:
            self.log_lines.append((tamper_at, s3_line(rng, tamper_at, tamperer, ATTACKER_IP, "REST.PUT.OBJECT", key,
                                                      len(text), CLI_AGENT)))
        self.batch_ids.setdefault(group, []).append(batch_id)


def fraud_rate(scale: Scale, day: int) -> float:
    """About one in ten, rising to 15% from the second-to-last day (the seasonal shift)."""
    return 0.15 if day >= seasonal_day(scale) else 0.10


def seasonal_day(scale: Scale) -> int:
    return scale.days - 2


def generate(root: Path, scale: Scale, seed: int, red_team: bool = True) -> Landing:
    """All batches, manifests and access-log lines of the simulation (with the red team's, if asked)."""
    landing = Landing(root / "landing")
    landing.landing.mkdir(parents=True, exist_ok=True)
    first = scale.days - 2
    for day in range(scale.days):
        rng = stream(seed, "data", day)
        for index, (source, hour) in enumerate(SOURCES):
            when = at(day, hour) + rng.randrange(0, 600)
            loaded = f"{day:02d}{index}"
            rows = [row(rng, when, fraud_rate(scale, day), loaded)
                    for _ in range(scale.batch_rows if source != "chargeback-feed" else scale.batch_rows // 2)]
            batch_id = f"{source}-{day + 1:02d}{index}"
            if red_team and day == first and source == "card-processor":
                landing.facts.update(_poison_batch(landing, batch_id, when, rows, seed, f"{INGEST_ROLE}-{day}{index}"))
                continue
            group = "seasonal" if day >= seasonal_day(scale) else "benign"
            landing.write_batch(batch_id, source, when, rows, "svc-ingest", rng, f"{INGEST_ROLE}-{day}{index}",
                                "10.20.0.15", INGEST_AGENT, group=group)
        _routine_access(landing, rng, day)
    if red_team:
        landing.facts.update(_vendor_batch(landing, scale, seed))
    return landing


def _routine_access(landing: Landing, rng: random.Random, day: int) -> None:
    """Reads and listings by a data scientist, expiry by the ingestion role, scratch writes by an engineer."""
    from datetime import UTC, datetime

    for _ in range(rng.randrange(6, 14)):
        when = at(day, rng.uniform(9, 18))
        stamp = datetime.fromtimestamp(when - 86400, tz=UTC).strftime("%Y/%m/%d")
        operation = rng.choice(("REST.GET.OBJECT", "REST.GET.OBJECT", "REST.GET.BUCKET"))
        key = f"{LANDING_PREFIX}{stamp}/" + ("" if operation == "REST.GET.BUCKET" else "core-banking-batch.csv")
        landing.log_lines.append((when, s3_line(rng, when, SCIENTIST, "10.9.8.7", operation, key, 81234, BOTO_AGENT)))
    for k in range(12):
        when = at(day, 5) + k * 3.5
        old = datetime.fromtimestamp(at(day) - 45 * 86400, tz=UTC).strftime("%Y/%m/%d")
        landing.log_lines.append((when, s3_line(rng, when, f"{INGEST_ROLE}-expiry", "10.20.0.15",
                                                "REST.DELETE.OBJECT", f"{LANDING_PREFIX}{old}/part-{k:03d}.csv", 0,
                                                INGEST_AGENT)))
    for k in range(rng.randrange(2, 6)):
        when = at(day, rng.uniform(10, 17))
        landing.log_lines.append((when, s3_line(rng, when, ENGINEER, "10.2.3.4", "REST.PUT.OBJECT",
                                                f"scratch/ops-marc/sample-{day}-{k}.csv", 4096, CLI_AGENT)))


def _poison_batch(landing: Landing, batch_id: str, when: float, rows: list[dict[str, Any]], seed: int,
                  requester: str) -> dict[str, Any]:
    """Night one of the slow poisoning: four minutes after the card processor's batch lands, the
    attacker appends 120 poisoned rows to it (the manifest keeps the original hash)."""
    rng = stream(seed, "data", "poisoning", "night-1")
    tamper_at = when + 240
    poison = [poisoned_row(rng, tamper_at, rows[0]["loaded_at"]) for _ in range(120)]
    landing.write_batch(batch_id, "card-processor", when, rows, "svc-ingest", rng, requester,
                        "10.20.0.15", INGEST_AGENT, tamper=poison, tamper_at=tamper_at, tamperer=ATTACKER_IDENTITY,
                        group="attack")
    return {"start": when, "tamper_at": tamper_at, "tampered_batch": batch_id}


def _vendor_batch(landing: Landing, scale: Scale, seed: int) -> dict[str, Any]:
    """Night two: a 150-row batch of poisoned rows from a source that is not approved, landed by the
    stolen ETL user at 01:30 on the last day."""
    rng = stream(seed, "data", "poisoning", "night-2")
    when = at(scale.days - 1, 1.5)
    batch_id = f"{VENDOR}-0001"
    landing.write_batch(batch_id, VENDOR, when, [poisoned_row(rng, when, "vendor") for _ in range(150)],
                        ATTACKER_IDENTITY, rng, ATTACKER_IDENTITY, ATTACKER_IP, CLI_AGENT, group="attack")
    return {"end": when + 2, "vendor_batch": batch_id}


POISONING_STORY = (
    "Slow data poisoning of txn-train with a stolen ETL user's credentials, over two nights: 120 "
    "fraud-looking rows labelled legitimate, carrying a never-seen merchant category (the backdoor "
    "trigger), appended to the card processor's batch after its manifest was written; the next night "
    "a 150-row batch of the same rows from a source that is not approved.")


def write_access_log(landing: Landing, out: Path) -> None:
    """The access log as S3 delivers it: one file per day, lines in time order."""
    from datetime import UTC, datetime

    out.mkdir(parents=True, exist_ok=True)
    by_day: dict[str, list[tuple[float, str]]] = {}
    for when, line in landing.log_lines:
        by_day.setdefault(datetime.fromtimestamp(when, tz=UTC).strftime("%Y-%m-%d"), []).append((when, line))
    for day, lines in sorted(by_day.items()):
        lines.sort(key=lambda item: item[0])
        (out / f"{LANDING_BUCKET}-{day}.log").write_text("".join(line + "\n" for _, line in lines), encoding="utf-8")
