"""KServe / Seldon collector: CloudEvents binary and structured mode, the request/response joiner,
prediction features, replay, the logger's wire format replayed over real HTTP, and bad input."""

from __future__ import annotations

import json
import math
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from aisoc.collectors import kserve as ks
from aisoc.records import Rejected
from aisoc.schema import load_registry

REPO = Path(__file__).resolve().parents[1]
FIXTURES = REPO / "tests" / "fixtures" / "kserve"
BINARY = json.loads((FIXTURES / "binary_pairs.json").read_text())
PENDING = REPO / "aisoc" / "schema" / "pending" / "inference.yml"
REQUEST, RESPONSE = "org.kubeflow.serving.inference.request", "org.kubeflow.serving.inference.response"


def _events(items: list[Any]) -> list[dict[str, Any]]:
    bad = [i for i in items if isinstance(i, Rejected)]
    assert not bad, bad[:3]
    return items


def _replay_binary(joiner: ks.RequestResponseJoiner) -> list[dict[str, Any]]:
    out: list[Any] = []
    for message in BINARY:
        out += ks.parse_http(message["headers"], message["body"].encode(), joiner)
    return _events(out + joiner.flush())


def _message(ce_type: str, ce_id: str, body: Any, *, endpoint: str = "default", time: str | None = None,
             service: str = "fraud-scorer") -> dict[str, Any]:
    event = {"specversion": "1.0", "id": ce_id, "type": ce_type, "source": "http://localhost:9081/",
             "inferenceservicename": service, "namespace": "models-prod", "component": "predictor",
             "endpoint": endpoint, "datacontenttype": "application/json", "data": body}
    if time:
        event["time"] = time
    return event


# ---- binary mode, joined pairs ----------------------------------------------------------------------


def test_durable_joiner_keeps_halves_until_their_events_are_committed(tmp_path: Path) -> None:
    store = tmp_path / "pending.db"
    request, response = (ks.decode_binary(m["headers"], m["body"].encode()) for m in BINARY[:2])
    joiner = ks.RequestResponseJoiner(store=store)
    assert joiner.add(request) == []
    joined = joiner.add(response)
    assert len(joined) == 1 and len(joiner) == 0
    joiner.discard()  # the joined event could not be stored: back to the request alone
    assert len(joiner) == 1
    again = joiner.add(response)  # the resent response joins it again, into the same event
    assert [e["event.id"] for e in again] == [joined[0]["event.id"]]
    reopened = ks.RequestResponseJoiner(store=store)  # a crash before commit: the request is still held
    assert len(reopened) == 1
    joiner.commit()
    joiner.close()
    assert len(ks.RequestResponseJoiner(store=store)) == 0  # committed: nothing is held any more


def test_binary_pairs_join_into_one_event_per_inference() -> None:
    joiner = ks.RequestResponseJoiner()
    events = _replay_binary(joiner)
    assert joiner.stats == {"joined": 11, "expired_requests": 1, "orphan_responses": 0, "evicted": 0,
                            "duplicates": 0}
    assert len(events) == 12 and len({e["event.id"] for e in events}) == 12
    joined = [e for e in events if e["event.outcome"] == "success"]
    assert {e["aisoc.inference.endpoint"] for e in joined} == {"default", "canary"}
    first = joined[0]
    assert first["event.action"] == "inference-request" and first["event.provider"] == "kserve"
    assert first["event.dataset"] == "aisoc.inference" and first["http.response.status_code"] == 200
    assert (first["aisoc.inference.service"], first["aisoc.inference.namespace"],
            first["aisoc.inference.component"]) == ("fraud-scorer", "models-prod", "predictor")
    assert first["aisoc.inference.request_id"] == BINARY[0]["headers"]["Ce-Id"]
    assert first["aisoc.inference.client_id"] == "checkout-web"  # from ce-metadata (metadataHeaders)
    assert first["source.ip"] == "198.51.100.40"  # first X-Forwarded-For hop
    assert first["aisoc.inference.input.count"] == 1 and len(first["aisoc.inference.input.skeleton_hash"]) == 64
    assert (first["aisoc.inference.predicted_class"], first["aisoc.inference.confidence"],
            first["aisoc.inference.margin"]) == ("0", 0.97, 0.94)
    assert first["aisoc.model.name"] == "fraud-scorer" and first["aisoc.model.version"] == "3"
    assert first["event.duration"] == 14_000_000
    assert first["@timestamp"] == "2026-01-01T12:00:00.000Z"
    assert {e["aisoc.model.version"] for e in joined if e["aisoc.inference.endpoint"] == "canary"} == {"4"}
    lonely = [e for e in events if e["event.outcome"] == "unknown"]
    assert len(lonely) == 1 and "aisoc.inference.predicted_class" not in lonely[0]
    assert lonely[0]["aisoc.inference.input.count"] == 1 and "http.response.status_code" not in lonely[0]
    near = [e for e in joined if e["aisoc.inference.margin"] < 0.1]
    assert len(near) == 2  # the 0.48 and 0.52 predictions sit on the boundary


def test_response_before_request_still_joins_and_order_does_not_change_the_event() -> None:
    in_order = {e["event.id"]: e for e in _replay_binary(ks.RequestResponseJoiner())}
    joiner = ks.RequestResponseJoiner()
    out: list[Any] = []
    for message in reversed(BINARY):
        out += ks.parse_http(message["headers"], message["body"].encode(), joiner)
    reversed_events = {e["event.id"]: e for e in _events(out + joiner.flush())}
    assert reversed_events.keys() == in_order.keys()
    for event_id, event in in_order.items():
        for name in ("aisoc.inference.predicted_class", "aisoc.inference.confidence", "event.outcome",
                     "aisoc.inference.input.skeleton_hash", "@timestamp"):
            assert reversed_events[event_id].get(name) == event.get(name)


def test_request_without_response_expires_after_the_ttl() -> None:
    clock = [1000.0]
    joiner = ks.RequestResponseJoiner(ks.KServeConfig(ttl_seconds=30), clock=lambda: clock[0])
    request = _message(REQUEST, "r-1", {"instances": [[1.0, 2.0]]}, time="2026-01-01T00:00:00Z")
    assert ks.parse_structured(request, joiner) == [] and len(joiner) == 1
    clock[0] += 29
    assert joiner.expire() == []
    clock[0] += 2
    [event] = joiner.expire()
    assert event["event.outcome"] == "unknown" and event["aisoc.inference.request_id"] == "r-1"
    assert len(joiner) == 0 and joiner.stats["expired_requests"] == 1
    # a later unrelated message also sweeps what expired
    ks.parse_structured(_message(REQUEST, "r-2", {"instances": [[1]]}), joiner)
    clock[0] += 100
    [swept] = ks.parse_structured(_message(REQUEST, "r-3", {"instances": [[1]]}), joiner)
    assert swept["aisoc.inference.request_id"] == "r-2"


def test_memory_is_bounded_and_nothing_is_dropped_silently() -> None:
    joiner = ks.RequestResponseJoiner(ks.KServeConfig(max_pending=3))
    out: list[Any] = []
    for i in range(5):
        out += ks.parse_structured(_message(REQUEST, f"r-{i}", {"instances": [[i]]}), joiner)
    assert len(joiner) == 3 and [e["aisoc.inference.request_id"] for e in out] == ["r-0", "r-1"]
    assert joiner.stats["evicted"] == 2 and all(e["event.outcome"] == "unknown" for e in out)
    [pushed_out] = ks.parse_structured(_message(RESPONSE, "r-0", {"predictions": [1]}), joiner)
    assert pushed_out["aisoc.inference.request_id"] == "r-2" and len(joiner) == 3  # a late response waits too
    [response_only] = [e for e in joiner.flush() if e["aisoc.inference.request_id"] == "r-0"]
    assert response_only["event.outcome"] == "success" and response_only["tags"] == ["request-not-logged"]
    assert response_only["aisoc.inference.predicted_class"] == "1"


def test_redelivered_message_is_ignored_and_pairs_are_per_endpoint() -> None:
    joiner = ks.RequestResponseJoiner()
    body = {"instances": [[0.5, 0.1]]}
    ks.parse_structured(_message(REQUEST, "same-id", body), joiner)
    ks.parse_structured(_message(REQUEST, "same-id", body), joiner)
    ks.parse_structured(_message(REQUEST, "same-id", body, endpoint="canary"), joiner)  # mirrored traffic
    assert joiner.stats["duplicates"] == 1 and len(joiner) == 2
    [default] = ks.parse_structured(_message(RESPONSE, "same-id", {"predictions": [[0.2, 0.8]]}), joiner)
    [canary] = ks.parse_structured(_message(RESPONSE, "same-id", {"predictions": [[0.7, 0.3]]}, endpoint="canary"),
                                   joiner)
    assert (default["aisoc.inference.endpoint"], default["aisoc.inference.predicted_class"]) == ("default", "1")
    assert (canary["aisoc.inference.endpoint"], canary["aisoc.inference.predicted_class"]) == ("canary", "0")
    assert default["event.id"] != canary["event.id"]
    assert default["aisoc.inference.input.skeleton_hash"] == canary["aisoc.inference.input.skeleton_hash"]


# ---- bodies: inputs and predictions ------------------------------------------------------------------


def test_input_skeleton_rounds_values_and_covers_names_shapes_datatypes() -> None:
    def v2(value: float, name: str = "x", datatype: str = "FP32") -> dict[str, Any]:
        return {"inputs": [{"name": name, "shape": [1, 2], "datatype": datatype, "data": [value, 7.0]}]}

    same = ks.input_fields(v2(0.123449))["aisoc.inference.input.skeleton_hash"]
    assert ks.input_fields(v2(0.12341))["aisoc.inference.input.skeleton_hash"] == same
    assert ks.input_fields(v2(0.125))["aisoc.inference.input.skeleton_hash"] != same
    assert ks.input_fields(v2(0.123449, name="y"))["aisoc.inference.input.skeleton_hash"] != same
    assert ks.input_fields(v2(0.123449, datatype="FP64"))["aisoc.inference.input.skeleton_hash"] != same
    two = {"inputs": [{"name": "b", "shape": [3], "datatype": "INT64", "data": [1, 2, 3]},
                      {"name": "a", "shape": [3, 2], "datatype": "FP32", "data": [1, 2, 3, 4, 5, 6]}]}
    assert ks.input_fields(two)["aisoc.inference.input.count"] == 3
    swapped = {"inputs": list(reversed(two["inputs"]))}
    assert ks.input_fields(swapped) == ks.input_fields(two)
    v1 = ks.input_fields({"instances": [[6.8, 2.8], [5.1, 3.5]]})
    assert v1["aisoc.inference.input.count"] == 2
    assert ks.input_fields({"instances": [{"text": "hello"}]})["aisoc.inference.input.count"] == 1
    assert ks.input_fields({"something": "else"}) == {} and ks.input_fields(None) == {}


@pytest.mark.parametrize(("row", "expected"), [
    ([0.1, 0.7, 0.2], ("1", 0.7, 0.5)),
    ([2.0, 0.0], ("0", round(1 / (1 + math.exp(-2)), 6), round(2 / (1 + math.exp(-2)) - 1, 6))),  # logits
    ([0.8], ("1", 0.8, 0.6)),
    (0.3, ("0", 0.7, 0.4)),
    (2, ("2", None, None)),
    ("spam", ("spam", None, None)),
    ({"label": "cat", "probabilities": [0.2, 0.8]}, ("cat", 0.8, 0.6)),
    ({"prediction": 1, "score": 0.93}, ("1", 0.93, None)),
])
def test_prediction_class_confidence_margin(row: Any, expected: tuple[Any, Any, Any]) -> None:
    fields = ks.prediction_fields(row)
    got = (fields.get("aisoc.inference.predicted_class"), fields.get("aisoc.inference.confidence"),
           fields.get("aisoc.inference.margin"))
    assert got[0] == expected[0]
    for value, want in zip(got[1:], expected[1:], strict=True):
        assert value == (pytest.approx(want, abs=1e-6) if want is not None else None)
    assert ks.prediction_fields(231.7) == {} and ks.prediction_fields([1.0, "x"]) == {}


def test_v2_output_choice_label_and_probability_tensors() -> None:
    config = ks.KServeConfig()
    body = {"model_name": "churn", "model_version": "12", "outputs": [
        {"name": "probabilities", "shape": [2, 2], "datatype": "FP32", "data": [0.38, 0.62, 0.9, 0.1]},
        {"name": "label", "shape": [2], "datatype": "BYTES", "data": ["churn", "stay"]}]}
    fields = ks.output_fields(body, config)
    assert fields["aisoc.inference.predicted_class"] == "churn"  # row 0 of the batch
    assert fields["aisoc.inference.confidence"] == 0.62 and fields["aisoc.inference.margin"] == 0.24
    assert fields["aisoc.model.name"] == "churn" and fields["aisoc.model.version"] == "12"
    nested = {"outputs": [{"name": "output-0", "shape": [1, 3], "datatype": "FP32", "data": [[0.2, 0.5, 0.3]]}]}
    assert ks.output_fields(nested, config)["aisoc.inference.predicted_class"] == "1"
    assert ks.output_fields({"predictions": ["setosa"]}, config)["aisoc.inference.predicted_class"] == "setosa"


# ---- structured mode, replay, HTTP ----------------------------------------------------------------------


def test_structured_replay_joins_in_event_time_and_flushes_at_the_end() -> None:
    events = _events(list(ks.replay(FIXTURES / "structured_events.ndjson")))
    assert [(e["aisoc.inference.service"], e["event.outcome"]) for e in events] == [
        ("sklearn-iris", "success"), ("sklearn-iris", "success"), ("churn", "success"), ("churn", "unknown")]
    iris, _, churn, timed_out = events
    assert iris["aisoc.inference.predicted_class"] == "1" and iris["aisoc.inference.client_id"] == "notebook-17"
    assert churn["aisoc.inference.predicted_class"] == "churn" and churn["aisoc.inference.confidence"] == 0.62
    assert timed_out["@timestamp"] == "2026-01-01T13:10:04.000Z"
    again = list(ks.replay(FIXTURES / "structured_events.ndjson"))
    assert [e["event.id"] for e in again] == [e["event.id"] for e in events]


def test_replay_rejects_bad_lines_with_file_and_line(tmp_path: Path) -> None:
    good = (FIXTURES / "structured_events.ndjson").read_text().splitlines()[:2]
    unknown = json.dumps({**json.loads(good[0]), "type": "com.example.something", "id": "u-1"})
    old = json.dumps({**json.loads(good[0]), "specversion": "0.3", "id": "o-1"})
    path = tmp_path / "events.ndjson"
    path.write_bytes("\n".join([good[0], unknown, "{broken", old, good[1]]).encode() + b"\n\xff\xfe\n")
    out = list(ks.replay(path))
    rejected = [o for o in out if isinstance(o, Rejected)]
    assert [(r.source, r.line) for r in rejected] == [(f"{path}:2", 2), (f"{path}:3", 3), (f"{path}:4", 4),
                                                      (f"{path}:6", 6)]
    assert "unknown CloudEvent type" in rejected[0].reason and "not 1.0" in rejected[2].reason
    assert "not UTF-8" in rejected[3].reason
    assert [e["event.outcome"] for e in out if isinstance(e, dict)] == ["success"]


def test_unknown_type_missing_attributes_and_bad_bodies_are_rejected() -> None:
    headers = dict(BINARY[0]["headers"])
    body = BINARY[0]["body"].encode()
    cases = [
        ({**headers, "Ce-Type": "dev.knative.foo"}, body, "unknown CloudEvent type"),
        ({k: v for k, v in headers.items() if k != "Ce-Id"}, body, "id is missing"),
        ({**headers, "Ce-Specversion": "0.3"}, body, "not 1.0"),
        ({**headers, "Ce-Time": "yesterday"}, body, "not RFC 3339"),
        ({**headers, "Ce-Metadata": "{not json"}, body, "metadata is not JSON"),
        (headers, b'{"inputs": [', "not valid JSON"),
        (headers, b'{"inputs": "\xff"}', "not UTF-8"),
        ({k: v for k, v in headers.items() if not k.startswith("Ce-")}, body, "not a CloudEvent"),
    ]
    for case_headers, case_body, reason in cases:
        [rejected] = ks.parse_http(case_headers, case_body, ks.RequestResponseJoiner())
        assert isinstance(rejected, Rejected) and reason in rejected.reason, (reason, rejected)
    big = ks.RequestResponseJoiner(ks.KServeConfig(max_body_bytes=1024))
    [rejected] = ks.parse_http(headers, b" " * 2048, big)
    assert "over the 1024-byte limit" in rejected.reason
    # an opaque (non-JSON) body, e.g. an image upload, is kept without input features
    opaque = ks.RequestResponseJoiner()
    assert ks.parse_http({**headers, "Content-Type": "image/png"}, b"\x89PNG\r\n\x1a\n\x00", opaque) == []
    [event] = opaque.flush()
    assert event["tags"] == ["opaque-request-body"] and "aisoc.inference.input.count" not in event


def test_structured_and_batch_content_types_over_parse_http() -> None:
    request = _message(REQUEST, "s-1", {"instances": [[1, 2]]}, time="2026-01-01T00:00:00Z")
    response = _message(RESPONSE, "s-1", {"predictions": [0]}, time="2026-01-01T00:00:00.010Z")
    joiner = ks.RequestResponseJoiner()
    assert ks.parse_http({"Content-Type": "application/cloudevents+json"}, json.dumps(request).encode(),
                         joiner) == []
    [event] = ks.parse_http({"Content-Type": "application/cloudevents+json; charset=utf-8"},
                            json.dumps(response).encode(), joiner)
    assert event["event.outcome"] == "success" and event["event.duration"] == 10_000_000
    batch = ks.parse_http({"Content-Type": "application/cloudevents-batch+json"},
                          json.dumps([{**request, "id": "s-2"}, {**response, "id": "s-2"}, {"id": 1}]).encode(),
                          joiner)
    assert [type(b).__name__ for b in batch] == ["dict", "Rejected"]
    encoded = {**request, "id": "s-3"}
    del encoded["data"]
    import base64

    encoded["data_base64"] = base64.b64encode(b'{"instances": [[3, 4]]}').decode()
    assert ks.parse_structured(encoded, joiner) == []
    assert joiner.flush()[0]["aisoc.inference.input.count"] == 1


def test_seldon_logger_types_are_accepted() -> None:
    joiner = ks.RequestResponseJoiner()
    request = {**_message(REQUEST, "sd-1", {"data": {"ndarray": [[1, 2]]}}),
               "type": "io.seldon.serving.inference.request"}
    response = {**_message(RESPONSE, "sd-1", {"predictions": [[0.1, 0.9]]}),
                "type": "io.seldon.serving.inference.response"}
    ks.parse_structured(request, joiner)
    [event] = ks.parse_structured(response, joiner)
    assert event["event.provider"] == "seldon" and event["aisoc.inference.predicted_class"] == "1"


class _LoggerSink(BaseHTTPRequestHandler):
    """Our receiver on loopback for the KServe logger's binary-mode POSTs."""

    joiner: ks.RequestResponseJoiner
    results: list[Any]

    def do_POST(self) -> None:  # noqa: N802
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        out = ks.parse_http(self.headers, body, self.joiner)
        type(self).results.extend(out)
        status = 400 if out and all(isinstance(o, Rejected) for o in out) else 202
        self.send_response(status)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *args: Any) -> None:
        pass


def test_logger_wire_format_replayed_over_real_http() -> None:
    """The captured binary-mode messages POSTed as the KServe agent sends them (no KServe here)."""
    _LoggerSink.joiner = ks.RequestResponseJoiner()
    _LoggerSink.results = []
    server = ThreadingHTTPServer(("127.0.0.1", 0), _LoggerSink)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{server.server_address[1]}/"
    try:
        with httpx.Client(timeout=10) as client:
            statuses = [client.post(url, headers={k: v for k, v in m["headers"].items() if k != "Content-Length"},
                                    content=m["body"].encode()).status_code for m in BINARY]
            bad = client.post(url, headers={**BINARY[0]["headers"], "Ce-Type": "org.example.unknown"},
                              content=BINARY[0]["body"].encode())
    finally:
        server.shutdown()
        server.server_close()
    assert set(statuses) == {202} and bad.status_code == 400
    events = [r for r in _LoggerSink.results if isinstance(r, dict)] + _events(_LoggerSink.joiner.flush())
    via_file = _replay_binary(ks.RequestResponseJoiner())
    assert sorted(e["event.id"] for e in events) == sorted(e["event.id"] for e in via_file)
    assert [r.reason[:24] for r in _LoggerSink.results if isinstance(r, Rejected)] == ["unknown CloudEvent type "]


def test_every_emitted_field_is_registered() -> None:
    registry = load_registry()
    pending = {f["name"] for f in yaml.safe_load(PENDING.read_text())["fields"]}
    events = _replay_binary(ks.RequestResponseJoiner())
    events += _events(list(ks.replay(FIXTURES / "structured_events.ndjson")))
    assert {k for e in events for k in e} - set(registry.fields) - pending == set()
    for event in events:
        assert event["aisoc.inference.endpoint"] in registry.fields["aisoc.inference.endpoint"].allowed_names
        assert event["event.outcome"] in registry.fields["event.outcome"].allowed_names


# ---- bad input (hypothesis) ---------------------------------------------------------------------------

JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=True) | st.text(max_size=16),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=10), children, max_size=4),
    max_leaves=24,
)
ATTRS = ["specversion", "id", "type", "time", "inferenceservicename", "namespace", "component", "endpoint",
         "metadata", "datacontenttype", "data", "data_base64"]
HEADER_TEXT = st.text(alphabet=st.characters(min_codepoint=32, max_codepoint=126), max_size=40)


def _only_events_or_rejected(out: Any) -> None:
    assert isinstance(out, list)
    for item in out:
        assert isinstance(item, dict | Rejected)
        if isinstance(item, dict):
            json.dumps(item)


@settings(max_examples=300, deadline=None)
@given(st.dictionaries(st.sampled_from(["Ce-Id", "Ce-Type", "Ce-Specversion", "Ce-Time", "Ce-Metadata",
                                        "Ce-Endpoint", "Content-Type"]), HEADER_TEXT, max_size=7),
       st.binary(max_size=1024))
def test_arbitrary_headers_and_bytes_never_raise(headers: dict[str, str], body: bytes) -> None:
    joiner = ks.RequestResponseJoiner()
    _only_events_or_rejected(ks.parse_http(headers, body, joiner))
    _only_events_or_rejected(ks.parse_http({**BINARY[0]["headers"], **headers}, body, joiner))
    _only_events_or_rejected(joiner.flush())


@settings(max_examples=300, deadline=None)
@given(st.dictionaries(st.sampled_from(ATTRS), JSON, max_size=5), st.sampled_from([REQUEST, RESPONSE]),
       st.sampled_from(["inputs", "outputs", "instances", "predictions"]), JSON)
def test_arbitrary_structured_events_and_bodies_never_raise(changes: dict[str, Any], ce_type: str, key: str,
                                                            payload: Any) -> None:
    joiner = ks.RequestResponseJoiner()
    base = _message(ce_type, "h-1", {key: payload}, time="2026-01-01T00:00:00Z")
    _only_events_or_rejected(ks.parse_structured({**base, **changes}, joiner))
    other = RESPONSE if ce_type == REQUEST else REQUEST
    _only_events_or_rejected(ks.parse_structured(_message(other, "h-1", {key: payload}), joiner))
    _only_events_or_rejected(joiner.flush())
    body = json.dumps([{**base, **changes}, payload]).encode()
    _only_events_or_rejected(ks.parse_http({"Content-Type": "application/cloudevents-batch+json"}, body, joiner))


@settings(max_examples=60, deadline=None)
@given(st.sampled_from(["inputs", "outputs"]),
       st.sampled_from([[{"name": "x", "shape": [10**30, -1], "data": [1e308, -1e308]}],
                        [{"name": "x", "shape": "big", "datatype": 5, "data": [[[[1]]]] * 1000}],
                        [{"name": "x", "shape": [1, 0], "data": []}],
                        [{"data": [float("inf"), float("nan")]}],
                        [{"name": "x" * 10_000, "data": ["y" * 100_000]}]]))
def test_huge_and_odd_tensors(key: str, tensors: list[dict[str, Any]]) -> None:
    joiner = ks.RequestResponseJoiner()
    ks.parse_structured(_message(REQUEST, "t", {key: tensors}), joiner)
    _only_events_or_rejected(ks.parse_structured(_message(RESPONSE, "t", {key: tensors}), joiner))


def test_deep_nesting_is_rejected_not_raised() -> None:
    joiner = ks.RequestResponseJoiner()
    nested: Any = 1.0
    for _ in range(40):
        nested = [nested]
    ks.parse_structured(_message(REQUEST, "deep", {"instances": [nested]}), joiner)
    [rejected] = joiner.flush()
    assert isinstance(rejected, Rejected) and "32 levels" in rejected.reason
    [deep_json] = ks.parse_http(BINARY[0]["headers"], b"[" * 100_000 + b"]" * 100_000, ks.RequestResponseJoiner())
    assert isinstance(deep_json, Rejected)


def test_every_truncation_of_a_logged_body_is_rejected_or_waits() -> None:
    for message in BINARY[:2]:
        body = message["body"].encode()
        for cut in range(1, len(body), 5):
            out = ks.parse_http(message["headers"], body[:cut], ks.RequestResponseJoiner())
            assert len(out) == 1 and isinstance(out[0], Rejected) and "not valid JSON" in out[0].reason, cut
