"""Per-client and per-service signals over model-serving events (KServe / Seldon inference logger).

Events: `event.action` `inference-request` (or `inference-response`, whichever carries the
prediction) with `aisoc.inference.client_id`, `.confidence`, `.margin`, `.predicted_class`,
`.endpoint` (`default` | `canary`), `.request_id`, `.service`, `.input.skeleton_hash`. Each
analyzer uses only the events that carry the fields it needs (confidence and margin must be
numbers in [0, 1]); anything else is ignored. Signals go to the `aisoc.inference` dataset,
stamped with the end of their 1h tumbling window.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from typing import Any

from aisoc.analyzers.base import StateStore, signal_event
from aisoc.analyzers.events import action, get_field, number, text
from aisoc.analyzers.stats import Welford
from aisoc.analyzers.windows import ShareWindow, WindowedAnalyzer, stamp

INFERENCE_ACTIONS = frozenset({"inference-request", "inference-response"})
HOUR = 3600
ENDPOINTS = ("canary", "default")


def _unit(value: Any) -> float | None:
    result = number(value)
    return result if result is not None and 0.0 <= result <= 1.0 else None


def _label(value: Any) -> str | None:
    """A class label as text (labels may arrive as numbers)."""
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    return text(value)


class _InferenceWindow(WindowedAnalyzer):
    layer = "inference"
    window = HOUR
    step = HOUR

    def __init__(self, state: StateStore, *, actions: Iterable[str] = INFERENCE_ACTIONS, **kwargs: Any) -> None:
        super().__init__(state, **kwargs)
        self.actions = self.stream = frozenset(a.lower() for a in actions)

    def _client(self, event: dict[str, Any]) -> str | None:
        if action(event) not in self.actions:
            return None
        return text(get_field(event, "aisoc.inference.client_id"))

    def _signal(self, entity: str, end: int, value: float, sample_size: int, fields: dict[str, Any]) -> dict[str, Any]:
        return signal_event(name=self.name, layer=self.layer, timestamp=stamp(end), entity=entity, value=value,
                            sample_size=sample_size, window_seconds=self.window, fields=fields, analyzer=self.name)


class ClientNearBoundaryShare(_InferenceWindow, ShareWindow):
    """client_near_boundary_share: count(predictions with margin < 0.1) / count(predictions), per client, 1h.

    Predictions without a margin in [0, 1] are not counted. sample_size = predictions counted.
    Registry default threshold: >= 0.4 with sample_size >= 100.
    """

    name = "client_near_boundary_share"
    boundary_margin = 0.1

    def select(self, event: dict[str, Any]) -> tuple[str, Any] | None:
        client = self._client(event)
        margin = _unit(get_field(event, "aisoc.inference.margin"))
        return (client, margin < self.boundary_margin) if client and margin is not None else None

    def close(self, entity: str, aggregate: list[int], end: int) -> list[dict[str, Any]]:
        total, near = aggregate
        if not total:
            return []
        return [self._signal(entity, end, near / total, total, {"aisoc.inference.client_id": entity})]


class ClientConfidenceStddev(_InferenceWindow):
    """client_confidence_stddev: population stddev of aisoc.inference.confidence per client, 1h tumbling.

    sqrt(sum((c - mean)^2) / n) over the client's predictions with a confidence in [0, 1]
    (Welford's running form). sample_size = n. Registry default threshold: >= 0.25 with
    sample_size >= 100 (at that size population and sample stddev differ by < 0.5%).
    """

    name = "client_confidence_stddev"

    def select(self, event: dict[str, Any]) -> tuple[str, Any] | None:
        client = self._client(event)
        confidence = _unit(get_field(event, "aisoc.inference.confidence"))
        return (client, confidence) if client and confidence is not None else None

    def new(self) -> list[float]:
        return Welford().to_json()

    def add(self, aggregate: list[float], observation: float) -> list[float]:
        running = Welford.from_json(aggregate)
        running.add(observation)
        return running.to_json()

    def close(self, entity: str, aggregate: list[float], end: int) -> list[dict[str, Any]]:
        running = Welford.from_json(aggregate)
        if not running.n:
            return []
        return [self._signal(entity, end, running.pstdev, running.n, {"aisoc.inference.client_id": entity})]


def _majority(classes: Counter[str]) -> str:
    """The most frequent class; ties go to the smallest label, so the choice is deterministic."""
    return min(classes.items(), key=lambda item: (-item[1], item[0]))[0]


class CanaryDisagreementRate(_InferenceWindow):
    """canary_disagreement_rate: count(pairs where predicted_class(canary) != predicted_class(default)) / count(pairs).

    Per inference service (`aisoc.inference.service`, the signal entity), 1h tumbling. A pair is
    one input seen on both endpoints within the window: first by `aisoc.inference.request_id`
    (mirrored/shadow traffic keeps the request id), then, among the predictions left unpaired, by
    `aisoc.inference.input.skeleton_hash` (split traffic: the same input served once by each
    predictor). When an input was predicted several times on one endpoint, its majority class is
    used. sample_size = pairs. At most `max_pending` predictions per service-hour are held; the
    rest are counted as dropped and not paired. Registry default threshold: >= 0.15 with
    sample_size >= 100.
    """

    name = "canary_disagreement_rate"

    def __init__(self, state: StateStore, *, max_pending: int = 200_000, **kwargs: Any) -> None:
        super().__init__(state, **kwargs)
        self.max_pending = max_pending

    def select(self, event: dict[str, Any]) -> tuple[str, Any] | None:
        if action(event) not in self.actions:
            return None
        service = text(get_field(event, "aisoc.inference.service"))
        endpoint = text(get_field(event, "aisoc.inference.endpoint"))
        label = _label(get_field(event, "aisoc.inference.predicted_class"))
        request_id = text(get_field(event, "aisoc.inference.request_id"))
        skeleton = text(get_field(event, "aisoc.inference.input.skeleton_hash"))
        if not service or not label or endpoint is None or endpoint.lower() not in ENDPOINTS:
            return None
        if not request_id and not skeleton:
            return None
        return service, [endpoint.lower(), label, request_id, skeleton]

    def new(self) -> dict[str, Any]:
        return {"by_request": {}, "no_request": [], "held": 0, "dropped": 0}

    def add(self, aggregate: dict[str, Any], observation: list[Any]) -> dict[str, Any]:
        if aggregate["held"] >= self.max_pending:
            aggregate["dropped"] += 1
            return aggregate
        endpoint, label, request_id, skeleton = observation
        aggregate["held"] += 1
        if request_id:
            aggregate["by_request"].setdefault(request_id, []).append([endpoint, label, skeleton])
        else:
            aggregate["no_request"].append([endpoint, label, skeleton])
        return aggregate

    def close(self, entity: str, aggregate: dict[str, Any], end: int) -> list[dict[str, Any]]:
        pairs = disagreements = 0
        unpaired: list[list[Any]] = list(aggregate["no_request"])
        for request_id in sorted(aggregate["by_request"]):
            seen = aggregate["by_request"][request_id]
            classes = {ep: Counter(label for e, label, _ in seen if e == ep) for ep in ENDPOINTS}
            if all(classes.values()):
                pairs += 1
                disagreements += _majority(classes["canary"]) != _majority(classes["default"])
            else:
                unpaired.extend(seen)
        by_input: dict[str, dict[str, Counter[str]]] = {}
        for endpoint, label, skeleton in unpaired:
            if skeleton:
                by_input.setdefault(skeleton, {ep: Counter() for ep in ENDPOINTS})[endpoint][label] += 1
        for skeleton in sorted(by_input):
            classes = by_input[skeleton]
            if all(classes.values()):
                pairs += 1
                disagreements += _majority(classes["canary"]) != _majority(classes["default"])
        if not pairs:
            return []
        return [self._signal(entity, end, disagreements / pairs, pairs, {"aisoc.inference.service": entity})]
