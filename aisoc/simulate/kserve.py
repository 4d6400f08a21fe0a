"""KServe inference-logger traffic: structured-mode CloudEvents, NDJSON, one file per day.

The `txn-risk` InferenceService (namespace `models-prod`, V2 protocol) classifies card
transactions into four classes. Its canary predictor shadows production: every request is
mirrored to it (same `ce-id`), and each predictor's logger writes the request and its response, as
KServe's logger does with `mode: all`. The models are prototype classifiers (softmax of negative
squared distances to four class centres); the canary's centres sit slightly off production's, so
the two disagree only near decision boundaries. A given input always gets the same probabilities.

Benign clients: checkout and mobile back ends (confident predictions around the clock), a partner
gateway (office hours), a risk dashboard re-scoring the same six cases every three minutes and a
synthetic monitor sending one fixed payload every 90 s (both repeat inputs, with a constant
confidence), a manual-review queue whose cases are borderline by design, and a nightly backfill of
historical records with a mix of easy and hard cases. `evasion_campaign` is the red team.
"""

from __future__ import annotations

import json
import math
import random
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from aisoc.simulate.world import (
    HOUR,
    KSERVE_NAMESPACE,
    KSERVE_SERVICE,
    MINUTE,
    Scale,
    always_on_shape,
    at,
    business_shape,
    det_uuid,
    stream,
)

CLASSES = 4
DIM = 6
TAU = 4.0
LOGGER_SOURCE = "http://localhost:9081/"
ATTACKER_CLIENT = "acct-7731"
ATTACKER_IP = "198.51.100.23"

Vector = list[float]
VersionAt = Callable[[float, str], str]


@dataclass(frozen=True)
class Model:
    """A prototype classifier: p(c | x) = softmax(-|x - centre_c|^2 / TAU)."""

    centres: tuple[tuple[float, ...], ...]

    def probabilities(self, x: Vector) -> list[float]:
        logits = [-sum((a - b) ** 2 for a, b in zip(x, centre, strict=True)) / TAU for centre in self.centres]
        top = max(logits)
        exps = [math.exp(v - top) for v in logits]
        total = sum(exps)
        return [e / total for e in exps]


def models(seed: int) -> tuple[Model, Model]:
    """Production and canary models (each of the canary's centre coordinates moved by about 0.15)."""
    rng = stream(seed, "kserve", "models")
    centres = []
    while len(centres) < CLASSES:
        c = [rng.uniform(-2.8, 2.8) for _ in range(DIM)]
        if all(math.dist(c, o) > 4.2 for o in centres):
            centres.append(c)
    canary = [[v + rng.gauss(0, 0.15) for v in c] for c in centres]
    return Model(tuple(tuple(c) for c in centres)), Model(tuple(tuple(c) for c in canary))


def _round4(x: Vector) -> Vector:
    return [round(v, 4) for v in x]


def typical(model: Model, rng: random.Random, cls: int) -> Vector:
    return _round4([c + rng.gauss(0, 0.55) for c in model.centres[cls]])


def hard(model: Model, rng: random.Random, low: float = 0.3, high: float = 0.7) -> Vector:
    """A case between two classes (part of the way from one centre to another)."""
    a, b = rng.sample(range(CLASSES), 2)
    t = rng.uniform(low, high)
    return _round4([pa + t * (pb - pa) + rng.gauss(0, 0.25)
                    for pa, pb in zip(model.centres[a], model.centres[b], strict=True)])


def borderline(model: Model, rng: random.Random) -> Vector:
    """A case right on the boundary between two classes (what a review queue is for)."""
    a, b = rng.sample(range(CLASSES), 2)
    t = rng.uniform(0.49, 0.51)
    return _round4([pa + t * (pb - pa) + rng.gauss(0, 0.03)
                    for pa, pb in zip(model.centres[a], model.centres[b], strict=True)])


def circumcentre(model: Model) -> Vector:
    """The point equidistant from all class centres (in their affine hull): every class equally likely."""
    c = model.centres
    rows = [[2 * sum((c[i][k] - c[0][k]) * (c[j][k] - c[0][k]) for k in range(DIM)) for j in range(1, CLASSES)]
            for i in range(1, CLASSES)]
    rhs = [sum(c[i][k] ** 2 - c[0][k] ** 2 - 2 * c[0][k] * (c[i][k] - c[0][k]) for k in range(DIM))
           for i in range(1, CLASSES)]
    m = [row + [value] for row, value in zip(rows, rhs, strict=True)]
    n = len(m)
    for i in range(n):  # Gauss-Jordan elimination with partial pivoting
        pivot = max(range(i, n), key=lambda r: abs(m[r][i]))
        m[i], m[pivot] = m[pivot], m[i]
        for r in range(n):
            if r != i:
                f = m[r][i] / m[i][i]
                m[r] = [x - f * y for x, y in zip(m[r], m[i], strict=True)]
    weights = [m[i][n] / m[i][i] for i in range(n)]
    return [c[0][k] + sum(w * (c[j + 1][k] - c[0][k]) for j, w in enumerate(weights)) for k in range(DIM)]


def _class_mix(rng: random.Random) -> int:
    r = rng.random()
    return 0 if r < 0.85 else 1 if r < 0.93 else 2 if r < 0.97 else 3


# ---- CloudEvents -------------------------------------------------------------------------------------


def _ce_time(when: float, rng: random.Random) -> str:
    whole = math.floor(when)
    nanos = round((when - whole) * 1e9) // 1000 * 1000 + rng.randrange(1000)
    from datetime import UTC, datetime

    return datetime.fromtimestamp(whole, tz=UTC).strftime("%Y-%m-%dT%H:%M:%S") + f".{nanos:09d}Z"


def cloud_events(when: float, x: Vector, client: str, ip: str, prod: Model, canary: Model, version_at: VersionAt,
                 rng: random.Random) -> list[tuple[float, str]]:
    """The four logger records of one mirrored request: each predictor's request and response."""
    ce_id = det_uuid(rng)
    metadata = json.dumps({"X-Client-Id": [client], "X-Forwarded-For": [f"{ip}, 10.0.0.3"]}, separators=(",", ":"))
    base = {"specversion": "1.0", "id": ce_id, "source": LOGGER_SOURCE, "datacontenttype": "application/json",
            "inferenceservicename": KSERVE_SERVICE, "namespace": KSERVE_NAMESPACE, "component": "predictor",
            "metadata": metadata}
    request = {"id": ce_id, "inputs": [{"name": "features", "shape": [1, DIM], "datatype": "FP32", "data": x}]}
    out = []
    for endpoint, model in (("default", prod), ("canary", canary)):
        latency = rng.uniform(0.004, 0.03)
        probs = model.probabilities(x)
        response = {"model_name": KSERVE_SERVICE, "model_version": version_at(when, endpoint), "id": ce_id,
                    "parameters": None, "outputs": [{"name": "probabilities", "shape": [1, CLASSES],
                                                     "datatype": "FP32", "data": [round(p, 6) for p in probs]}]}
        for kind, stamp, body in (("request", when, request), ("response", when + latency, response)):
            record = {**base, "type": f"org.kubeflow.serving.inference.{kind}", "time": _ce_time(stamp, rng),
                      "endpoint": endpoint, "data": body}
            out.append((stamp, json.dumps(record, separators=(",", ":"))))
    return out


# ---- benign clients -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Client:
    name: str
    ip: str
    rate: float
    shape: str  # always | office


def clients(scale: Scale) -> list[Client]:
    return [Client("checkout-api", "10.60.1.10", 90 * scale.kserve_rate, "always"),
            Client("mobile-backend", "10.60.2.14", 55 * scale.kserve_rate, "always"),
            Client("partner-gateway-eu", "10.60.3.7", 45 * scale.kserve_rate, "office")]


def benign_day(scale: Scale, seed: int, day: int, version_at: VersionAt) -> list[tuple[float, str]]:
    """All benign logger records of one day, in time order."""
    prod, canary = models(seed)
    lines: list[tuple[float, str]] = []
    for client in clients(scale):
        rng = stream(seed, "kserve", client.name, day)
        for hour in range(24):
            shape = always_on_shape(hour) if client.shape == "always" else business_shape(hour + 0.5)
            factor = min(1.45, max(0.55, 1 + 0.2 * rng.gauss(0, 1)))
            for _ in range(round(client.rate * shape * factor)):
                when = at(day, hour) + rng.random() * HOUR
                x = hard(prod, rng) if rng.random() < 0.04 else typical(prod, rng, _class_mix(rng))
                lines.extend(cloud_events(when, x, client.name, client.ip, prod, canary, version_at, rng))
    volume = scale.edge_volume
    lines.extend(_dashboard(seed, day, prod, canary, version_at, volume))
    lines.extend(_monitor(seed, day, prod, canary, version_at, volume))
    lines.extend(_review_queue(seed, day, prod, canary, version_at, volume))
    lines.extend(_backfill(seed, day, prod, canary, version_at, volume))
    lines.sort(key=lambda item: item[0])
    return lines


def _dashboard(seed: int, day: int, prod: Model, canary: Model, version_at: VersionAt,
               volume: float) -> list[tuple[float, str]]:
    """Risk dashboard: re-scores the same six open cases every three minutes in office hours."""
    rng = stream(seed, "kserve", "risk-dashboard", day)
    cases = [typical(prod, stream(seed, "kserve", "dashboard-cases"), c % CLASSES) for c in range(6)]
    out = []
    when = at(day, 8)
    while when < at(day, 18):
        for i, case in enumerate(cases):
            out.extend(cloud_events(when + i * 0.4, case, "risk-dashboard", "10.60.9.21", prod, canary, version_at,
                                    rng))
        when += 3 * MINUTE / volume
    return out


def _monitor(seed: int, day: int, prod: Model, canary: Model, version_at: VersionAt,
             volume: float) -> list[tuple[float, str]]:
    """Synthetic monitoring: one fixed payload every 90 seconds, around the clock."""
    rng = stream(seed, "kserve", "synthetic-monitor", day)
    payload = typical(prod, stream(seed, "kserve", "monitor-case"), 0)
    every = 90 / volume
    return [line for k in range(round(86400 / every))
            for line in cloud_events(at(day) + 45 + k * every, payload, "synthetic-monitor", "10.60.9.5", prod,
                                     canary, version_at, rng)]


def _review_queue(seed: int, day: int, prod: Model, canary: Model, version_at: VersionAt,
                  volume: float) -> list[tuple[float, str]]:
    """Manual-review queue: borderline cases by design (one in five right on a boundary, the rest hard)."""
    rng = stream(seed, "kserve", "manual-review-queue", day)
    out = []
    for hour in range(8, 18):
        for _ in range(rng.randrange(max(55, round(95 * volume)), max(66, round(125 * volume)))):
            when = at(day, hour) + rng.random() * HOUR
            x = borderline(prod, rng) if rng.random() < 0.22 else hard(prod, rng)
            out.extend(cloud_events(when, x, "manual-review-queue", "10.60.7.30", prod, canary, version_at, rng))
    return out


def _backfill(seed: int, day: int, prod: Model, canary: Model, version_at: VersionAt,
              volume: float) -> list[tuple[float, str]]:
    """Nightly backfill of historical records: 500 cases in 40 minutes, one in five a hard one."""
    rng = stream(seed, "kserve", "backfill-job", day)
    out = []
    count = round(500 * volume)
    for k in range(count):
        x = hard(prod, rng) if rng.random() < 0.2 else typical(prod, rng, _class_mix(rng))
        out.extend(cloud_events(at(day, 0.1) + k * 2400 / count, x, "backfill-job", "10.60.8.2", prod, canary,
                                version_at, rng))
    return out


EDGE_CLIENTS = {
    "risk-dashboard": "risk dashboard re-scoring the same six cases every three minutes",
    "synthetic-monitor": "synthetic monitor sending one fixed payload every 90 s across model rollouts",
    "manual-review-queue": "manual-review queue whose cases are borderline by design",
    "backfill-job": "nightly backfill scoring a mix of easy and hard historical records",
}


# ---- the red team's evasion probing -------------------------------------------------------------------


def _sig3_point(x: Vector) -> Vector:
    """Each value rounded to 3 significant digits (the skeleton's resolution), so small nudges keep it."""
    return [float(f"{v:.3g}") for v in x]


def _nudge(base: Vector, rng: random.Random) -> Vector:
    """A perturbation below the skeleton's rounding: values of magnitude >= 1 move by at most 0.004."""
    return [round(v + rng.uniform(-0.004, 0.004), 4) if abs(v) >= 1 else v for v in base]


def evasion_campaign(seed: int, day: int, version_at: VersionAt) -> tuple[list[tuple[float, str]], dict[str, Any]]:
    """Evasion probing of `txn-risk` by a partner account, 02:00-03:40.

    The attacker takes transactions the model flags as fraud and searches for the smallest change
    that flips them to legitimate: each walk restarts from the fraud record (near-certain answers),
    probes the point where every class is equally likely (near-random answers) and bisects towards
    the boundary with the legitimate class (near 50/50 answers). After 02:55 it
    refines three boundary points with nudges below the input skeleton's rounding, twenty times
    each within four minutes, reading how the confidence moves.
    """
    prod, canary = models(seed)
    rng = stream(seed, "kserve", "evasion", day)
    middle = circumcentre(prod)
    lines: list[tuple[float, str]] = []
    when = at(day, 2)
    boundary_points: list[Vector] = []

    def send(x: Vector) -> None:
        nonlocal when
        lines.extend(cloud_events(when, x, ATTACKER_CLIENT, ATTACKER_IP, prod, canary, version_at, rng))
        when += rng.uniform(8, 12)

    while when < at(day, 2.9):
        fraud = typical(prod, rng, 1)
        legit = typical(prod, rng, 0)
        for _ in range(12):
            send(_round4([v + rng.gauss(0, 0.1) for v in fraud]))
        for _ in range(12):
            send(_round4([c + rng.gauss(0, 0.12) for c in middle]))
        low, high = 0.0, 1.0
        for _ in range(12):
            mid = (low + high) / 2
            x = _round4([a + mid * (b - a) for a, b in zip(fraud, legit, strict=True)])
            send(x)
            if prod.probabilities(x)[1] > prod.probabilities(x)[0]:
                low = mid
            else:
                high = mid
        boundary_points.append(x)
    for point in boundary_points[:3]:
        base = _sig3_point(point)
        start = when
        for _ in range(20):
            lines.extend(cloud_events(when, _nudge(base, rng), ATTACKER_CLIENT, ATTACKER_IP, prod, canary,
                                      version_at, rng))
            when += rng.uniform(9, 11)
        when = max(when, start + 4 * MINUTE) + 2 * MINUTE
    lines.sort(key=lambda item: item[0])
    return lines, {"client": ATTACKER_CLIENT, "start": at(day, 2), "end": when}
