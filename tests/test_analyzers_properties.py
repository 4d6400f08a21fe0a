"""Properties of the analyzer arithmetic and robustness of the chain on arbitrary events (hypothesis)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from aisoc.analyzers.base import StateStore
from aisoc.analyzers.data import DatasetProfile
from aisoc.analyzers.pipeline import AnalyzerChain, default_analyzers
from aisoc.analyzers.stats import js_distance, psi
from tests.test_analyzers import T0, llm, prediction

SHARES = {"api_key_logprobs_share", "api_key_skeleton_diversity", "client_near_boundary_share",
          "canary_disagreement_rate", "rare_value_burst", "duplicate_sample_share", "too_perfect_share",
          "source_mix_shift"}

counts = st.dictionaries(st.sampled_from("abcdefghij"), st.integers(1, 100_000), min_size=1)


@given(counts, counts)
def test_psi_is_non_negative(new: dict[str, int], base: dict[str, int]) -> None:
    assert psi(new, base) >= 0


@given(counts, st.integers(1, 50))
def test_psi_is_zero_for_identical_distributions(dist: dict[str, int], scale: int) -> None:
    assert psi(dist, dist) == 0
    assert abs(psi(dist, {k: v * scale for k, v in dist.items()})) < 1e-12


@given(counts, counts)
def test_js_distance_is_bounded_and_symmetric(p: dict[str, int], q: dict[str, int]) -> None:
    d = js_distance(p, q)
    assert 0.0 <= d <= 1.0
    assert d == js_distance(q, p)
    assert js_distance(p, p) == 0.0


# ---- arbitrary well-typed events -------------------------------------------------------------------

ACTIONS = ["llm-request", "LLM-Request", "inference-request", "inference-response", "data-batch-landed",
           "object-accessed", "model-version-registered"]
FIELDS = [
    "aisoc.api_key.hash", "gen_ai.usage.input_tokens", "gen_ai.usage.output_tokens", "aisoc.llm.total_tokens",
    "aisoc.llm.logprobs_requested", "aisoc.llm.prompt.skeleton_hash", "aisoc.inference.client_id",
    "aisoc.inference.confidence", "aisoc.inference.margin", "aisoc.inference.predicted_class",
    "aisoc.inference.endpoint", "aisoc.inference.request_id", "aisoc.inference.input.skeleton_hash",
    "aisoc.inference.service", "aisoc.data.dataset", "aisoc.data.source", "aisoc.data.batch.rows",
    "aisoc.data.manifest.rows", "aisoc.data.batch.id", "file.path", "user.name", "aisoc.data.storage.operation",
    "aisoc.data.storage.ingestion_path",
]
scalars = st.one_of(
    st.none(), st.booleans(), st.integers(-(2**63), 2**63), st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=8), st.sampled_from(["k1", "k2", "default", "canary", "write", "true", "ds", "0.5"]),
)
values = st.one_of(scalars, st.lists(scalars, max_size=3), st.dictionaries(st.text(max_size=3), scalars, max_size=2))
timestamps = st.one_of(
    st.datetimes(min_value=datetime(2000, 1, 1), max_value=datetime(2100, 1, 1), timezones=st.just(UTC)).map(
        lambda d: d.isoformat()),
    st.integers(0, 7200).map(lambda s: (T0 + timedelta(seconds=s)).isoformat()),
    st.text(max_size=10), st.none(), st.integers(),
)


@st.composite
def events(draw: st.DrawFn) -> dict[str, Any]:
    event: dict[str, Any] = {"@timestamp": draw(timestamps), "event.action": draw(st.sampled_from(ACTIONS) | values)}
    for name in draw(st.lists(st.sampled_from(FIELDS), unique=True)):
        event[name] = draw(values)
    if draw(st.booleans()):  # sometimes nested, as Elasticsearch documents are
        event["aisoc"] = {"api_key": {"hash": draw(values)}, "inference": {"client_id": draw(values)}}
    return event


rows = st.lists(st.dictionaries(st.sampled_from(["label", "region", "merchant", "score", "text"]), scalars,
                                max_size=5), max_size=20)


@settings(max_examples=150, deadline=None)
@given(st.lists(events(), max_size=30), rows)
def test_arbitrary_events_never_raise_and_pass_through(stream: list[dict[str, Any]], batch_rows: list[dict]) -> None:
    state = StateStore()
    profile = DatasetProfile("ds", label_field="label", segment_fields=("region",), feature_fields=("merchant",),
                             score_field="score")
    chain = AnalyzerChain(default_analyzers(state, [profile], row_reader=lambda path: batch_rows), state)
    out = chain.process(stream)
    out += chain.advance(T0 + timedelta(days=2))
    assert chain.errors == []
    passed = [e for e in out if e.get("event.kind") != "metric" or "aisoc.signal.name" not in e]
    assert len(passed) == len(stream)
    for signal in (e for e in out if "aisoc.signal.name" in e and e.get("event.kind") == "metric"):
        if signal["aisoc.signal.name"] in SHARES:
            assert 0.0 <= signal["aisoc.signal.value"] <= 1.0


# ---- well-formed streams: every share stays in [0, 1] ------------------------------------------------

@st.composite
def llm_events(draw: st.DrawFn) -> dict[str, Any]:
    return llm(draw(st.integers(0, 3 * 3600)), draw(st.sampled_from(["a", "b"])),
               tokens_in=draw(st.integers(0, 5000)), tokens_out=draw(st.integers(0, 5000)),
               logprobs=draw(st.booleans()), skeleton=draw(st.sampled_from(["s1", "s2", "s3", None])),
               n=draw(st.integers(0, 10**9)))


@st.composite
def predictions(draw: st.DrawFn) -> dict[str, Any]:
    return prediction(draw(st.integers(0, 3 * 3600)), draw(st.sampled_from(["c1", "c2"])),
                      confidence=draw(st.floats(0, 1)), margin=draw(st.floats(0, 1)),
                      predicted=draw(st.sampled_from(["a", "b", "c"])),
                      endpoint=draw(st.sampled_from(["default", "canary"])),
                      request_id=draw(st.sampled_from(["r1", "r2", "r3", None])),
                      skeleton=draw(st.sampled_from(["x1", "x2", None])), n=draw(st.integers(0, 10**9)))


@settings(max_examples=100, deadline=None)
@given(st.lists(llm_events() | predictions(), max_size=60))
def test_shares_stay_in_unit_interval(stream: list[dict[str, Any]]) -> None:
    stream.sort(key=lambda e: e["@timestamp"])
    state = StateStore()
    chain = AnalyzerChain(default_analyzers(state), state)
    signals = [e for e in chain.process(stream) + chain.advance(T0 + timedelta(hours=5))
               if "aisoc.signal.name" in e]
    assert chain.errors == []
    for signal in signals:
        value = signal["aisoc.signal.value"]
        if signal["aisoc.signal.name"] in SHARES:
            assert 0.0 <= value <= 1.0
        if signal["aisoc.signal.name"] == "client_confidence_stddev":
            assert 0.0 <= value <= 0.5
        assert signal["aisoc.signal.sample_size"] >= 0


REQUIRED = {"aisoc.api_key.hash", "aisoc.inference.client_id", "aisoc.inference.service"}


@settings(max_examples=100, deadline=None)
@given(st.lists(llm_events() | predictions(), min_size=1, max_size=40), st.data())
def test_events_missing_fields_are_ignored(stream: list[dict[str, Any]], data: st.DataObject) -> None:
    stream.sort(key=lambda e: e["@timestamp"])
    stripped = []
    for event in stream:
        drop = data.draw(st.sets(st.sampled_from(sorted(k for k in event if k != "@timestamp"))))
        stripped.append({k: v for k, v in event.items() if k not in drop | REQUIRED})
    state = StateStore()
    chain = AnalyzerChain(default_analyzers(state), state)
    out = chain.process(stripped) + chain.advance(T0 + timedelta(hours=5))
    assert chain.errors == []
    assert [e for e in out if "aisoc.signal.name" in e] == []  # no entity, no signal

