"""The simulated AI platform: its clock, scale, random streams and the names everything shares.

Everything the generators produce is a pure function of the seed and the scale: each component
draws from its own random stream (`stream(seed, "llm", "key-7")`), so adding a component or a key
never changes what the others generate, and two runs with one seed write byte-identical files.
"""

from __future__ import annotations

import hashlib
import math
import random
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime

MINUTE = 60
HOUR = 3600
DAY = 86400
START = datetime(2026, 3, 2, tzinfo=UTC)  # a Monday, 00:00 UTC
START_EPOCH = START.timestamp()

# names of the simulated platform (shared by generators, platform config and ground truth)
GATEWAY_HOST = "llm-gateway.internal:4000"
KSERVE_SERVICE = "txn-risk"
KSERVE_NAMESPACE = "models-prod"
MODEL_NAME = "txn-risk"
EXPERIMENT_ID = "42"
PIPELINE_IDENTITY = "svc-train-pipeline"
DATASET = "txn-train"
LANDING_BUCKET = "training-landing"
LANDING_PREFIX = "txn/"
INGEST_ROLE = "arn:aws:sts::123456789012:assumed-role/svc-ingest/ingest-run"
BUILD_HOST = "build-runner-03"
SERVING_IMAGE = "txn-risk-serving"
EMBEDDINGS_REPO = "acme-ml/txn-embeddings"


@dataclass(frozen=True)
class Scale:
    """How much benign traffic the simulation generates; attacks are the same at every scale.

    days: simulated days (the red-team run happens in the last two).
    llm_keys: API keys of the LLM gateway (at least 12: the roles the edge cases need).
    llm_rate: multiplier of every ordinary key's request rate.
    kserve_rate: multiplier of every ordinary inference client's request rate.
    batch_rows: rows per training batch.
    edge_volume: multiplier of the volume of the inference edge-case clients (dashboard, monitor,
        review queue, backfill); their shape, which is what makes them look-alikes, stays.
    """

    name: str
    days: int
    llm_keys: int
    llm_rate: float
    kserve_rate: float
    batch_rows: int
    edge_volume: float = 1.0


SCALES: dict[str, Scale] = {
    "small": Scale("small", days=3, llm_keys=14, llm_rate=0.35, kserve_rate=0.35, batch_rows=500, edge_volume=0.5),
    "default": Scale("default", days=5, llm_keys=36, llm_rate=1.0, kserve_rate=1.0, batch_rows=600),
}


def get_scale(scale: str | Scale) -> Scale:
    """A named scale (`small`, `default`) or a Scale as is; ValueError names the choices."""
    if isinstance(scale, Scale):
        return scale
    if scale not in SCALES:
        raise ValueError(f"unknown scale {scale!r}; choose one of: {', '.join(SCALES)}")
    return SCALES[scale]


def stream(seed: int, *names: object) -> random.Random:
    """An independent, reproducible random stream for one component (string seeds hash stably)."""
    return random.Random("aisoc-demo:" + ":".join(str(n) for n in (seed, *names)))


def det_uuid(rng: random.Random) -> str:
    return str(uuid.UUID(int=rng.getrandbits(128), version=4))


def det_hex(rng: random.Random, chars: int) -> str:
    return f"{rng.getrandbits(chars * 4):0{chars}x}"


def sha256_text(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def poisson(rng: random.Random, lam: float) -> int:
    """A Poisson draw (Knuth below 30, normal approximation above)."""
    if lam <= 0:
        return 0
    if lam < 30:
        limit, k, p = math.exp(-lam), 0, 1.0
        while True:
            p *= rng.random()
            if p <= limit:
                return k
            k += 1
    return max(0, round(rng.gauss(lam, math.sqrt(lam))))


def at(day: int, hour: float = 0.0) -> float:
    """Epoch seconds of simulated day `day` (0-based) at `hour` (fractional hours allowed)."""
    return START_EPOCH + day * DAY + hour * HOUR


def iso(epoch: float) -> str:
    """`YYYY-MM-DDTHH:MM:SS.ffffffZ`."""
    return datetime.fromtimestamp(epoch, tz=UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def iso_seconds(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, tz=UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def day_name(day: int) -> str:
    return datetime.fromtimestamp(at(day), tz=UTC).strftime("%Y-%m-%d")


def business_shape(hour: float) -> float:
    """Relative activity of an office workload by UTC hour (0 outside 07:00-19:00)."""
    if hour < 7 or hour >= 19:
        return 0.0
    if hour < 8 or hour >= 18:
        return 0.35
    if 12 <= hour < 13:
        return 0.7
    return 1.0


def always_on_shape(hour: float) -> float:
    """Relative activity of a customer-facing workload by UTC hour (never zero)."""
    return 0.45 + 0.55 * math.sin(math.pi * max(0.0, min(1.0, (hour - 4) / 18))) ** 2
