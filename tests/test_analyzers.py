"""Analyzer formulas against independent hand computations on small inputs.

Each test recomputes the registry's formula for `aisoc.signal.name` its own way (brute force,
two-pass, or straight from the definition) and compares it with what the analyzer emitted.
"""

from __future__ import annotations

import math
import statistics
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from aisoc.analyzers.api_keys import (
    ApiKeyFirstSeen,
    ApiKeyLogprobsShare,
    ApiKeyRequestRate,
    ApiKeySkeletonDiversity,
    ApiKeyTokenZscore,
)
from aisoc.analyzers.base import StateStore
from aisoc.analyzers.data import (
    DatasetProfile,
    IngestionAccessRate,
    RareValueBurst,
    SourceMixShift,
    TrainingBatchAnalyzer,
)
from aisoc.analyzers.inference import CanaryDisagreementRate, ClientConfidenceStddev, ClientNearBoundaryShare
from aisoc.analyzers.pipeline import AnalyzerChain
from aisoc.analyzers.stats import js_distance, kmv_add, kmv_estimate, psi
from aisoc.collectors.base import make_event
from aisoc.schema import load_registry

T0 = datetime(2026, 3, 2, tzinfo=UTC)


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


def llm(seconds: float, key: str, *, tokens_in: int | None = 100, tokens_out: int | None = 50,
        logprobs: bool | None = False, skeleton: str | None = "s", n: int = 0) -> dict[str, Any]:
    """An llm-request event as the gateway collector makes it."""
    return make_event(layer="inference", provider="litellm", action="llm-request", record_id=(key, seconds, n),
                      timestamp=at(seconds), fields={
                          "aisoc.api_key.hash": key, "gen_ai.usage.input_tokens": tokens_in,
                          "gen_ai.usage.output_tokens": tokens_out, "aisoc.llm.logprobs_requested": logprobs,
                          "aisoc.llm.prompt.skeleton_hash": skeleton})


def prediction(seconds: float, client: str, *, confidence: float | None = 0.9, margin: float | None = 0.5,
               predicted: str | None = "a", endpoint: str = "default", request_id: str | None = None,
               skeleton: str | None = None, service: str = "fraud", n: int = 0) -> dict[str, Any]:
    """An inference-request event as the KServe collector makes it."""
    return make_event(layer="inference", provider="kserve", action="inference-request",
                      record_id=(service, client, seconds, endpoint, request_id, n), timestamp=at(seconds), fields={
                          "aisoc.inference.client_id": client, "aisoc.inference.confidence": confidence,
                          "aisoc.inference.margin": margin, "aisoc.inference.predicted_class": predicted,
                          "aisoc.inference.endpoint": endpoint, "aisoc.inference.request_id": request_id,
                          "aisoc.inference.input.skeleton_hash": skeleton, "aisoc.inference.service": service})


def landed(seconds: float, dataset: str, source: str, rows: int, *, path: str | None = None,
           batch_id: str | None = None, **extra: Any) -> dict[str, Any]:
    return make_event(layer="data", provider="pipeline", action="data-batch-landed",
                      record_id=(dataset, source, seconds, batch_id), timestamp=at(seconds), fields={
                          "aisoc.data.dataset": dataset, "aisoc.data.source": source, "aisoc.data.batch.rows": rows,
                          "file.path": path, "aisoc.data.batch.id": batch_id, **extra})


def write(seconds: float, user: str, *, operation: str = "write", ingestion: bool = True, n: int = 0) -> dict[str, Any]:
    return make_event(layer="data", provider="object_store", action="object-accessed",
                      record_id=(user, seconds, operation, n), timestamp=at(seconds), fields={
                          "user.name": user, "aisoc.data.storage.operation": operation,
                          "aisoc.data.storage.ingestion_path": ingestion})


def run(analyzer: Any, events: list[dict[str, Any]], until: float | None = None) -> list[dict[str, Any]]:
    out = [s for e in events for s in analyzer.observe(e)]
    if until is not None:
        out += analyzer.advance(at(until))
    return out


def by_time(signals: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {s["@timestamp"]: s for s in signals}


def iso(seconds: float) -> str:
    return at(seconds).strftime("%Y-%m-%dT%H:%M:%S.000Z")


# ---- the registry documents every signal we emit --------------------------------------------------

def test_every_signal_is_documented_with_formula_window_and_threshold() -> None:
    documented = {v.name: v for v in load_registry().get("aisoc.signal.name").allowed_values}
    emitted = {ApiKeyRequestRate.name, ApiKeyTokenZscore.name, ApiKeyLogprobsShare.name, ApiKeySkeletonDiversity.name,
               ClientNearBoundaryShare.name, ClientConfidenceStddev.name, CanaryDisagreementRate.name,
               SourceMixShift.name, IngestionAccessRate.name,
               "label_psi", "rare_value_burst", "duplicate_sample_share", "too_perfect_share"}
    assert emitted == set(documented)
    for name in emitted:
        assert {"formula", "window", "default_threshold"} <= set(documented[name].extra), name


# ---- API keys -------------------------------------------------------------------------------------

def test_request_rate_is_the_count_of_the_last_ten_minutes_at_every_minute() -> None:
    times = [10, 50, 90, 599, 600, 630, 1190, 1500]
    signals = run(ApiKeyRequestRate(StateStore()), [llm(t, "k1", n=i) for i, t in enumerate(times)], until=4000)
    expected = {}
    for end in range(60, 4000, 60):  # brute force: every minute boundary, count times in [end - 600, end)
        count = sum(1 for t in times if end - 600 <= t < end)
        if count:
            expected[iso(end)] = count
    got = {ts: s["aisoc.signal.value"] for ts, s in by_time(signals).items()}
    assert got == expected
    assert all(s["aisoc.signal.sample_size"] == s["aisoc.signal.value"] for s in signals)
    assert all(s["aisoc.signal.window_seconds"] == 600 and s["aisoc.signal.entity"] == "k1" for s in signals)
    assert all(s["aisoc.api_key.hash"] == "k1" and s["event.dataset"] == "aisoc.inference" for s in signals)


def test_request_rate_keeps_keys_apart() -> None:
    events = [llm(i, "a", n=i) for i in range(5)] + [llm(5 + i, "b", n=i) for i in range(3)]
    signals = run(ApiKeyRequestRate(StateStore()), events, until=120)
    assert {(s["aisoc.signal.entity"], s["aisoc.signal.value"]) for s in signals} == {("a", 5), ("b", 3)}


def _weighted_baseline(history: list[float], span: int = 168) -> tuple[float, float]:
    """EWMA mean and population stddev from the definition: weights (1 - alpha)^age, normalized."""
    alpha = 2 / (span + 1)
    weights = [(1 - alpha) ** (len(history) - 1 - i) for i in range(len(history))]
    mean = sum(w * x for w, x in zip(weights, history, strict=True)) / sum(weights)
    var = sum(w * (x - mean) ** 2 for w, x in zip(weights, history, strict=True)) / sum(weights)
    return mean, math.sqrt(var)


def test_token_zscore_against_the_weighted_baseline_of_previous_hours() -> None:
    hourly = [1000.0, 1200.0, 900.0, 1100.0, 5000.0]
    events = []
    for hour, tokens in enumerate(hourly):  # two requests per hour, splitting the tokens between input and output
        half = tokens / 2
        events += [llm(hour * 3600 + 60, "k", tokens_in=int(half), tokens_out=0, n=1),
                   llm(hour * 3600 + 120, "k", tokens_in=None, tokens_out=int(half), n=2)]
    signals = run(ApiKeyTokenZscore(StateStore()), events, until=len(hourly) * 3600)
    assert [s["@timestamp"] for s in signals] == [iso(h * 3600) for h in range(2, len(hourly) + 1)]
    for k, signal in enumerate(signals, start=1):
        mean, std = _weighted_baseline(hourly[:k])
        assert signal["aisoc.signal.value"] == pytest.approx((hourly[k] - mean) / max(std, 0.25 * mean, 1), abs=1e-5)
        assert signal["aisoc.signal.baseline"] == pytest.approx(mean, abs=1e-5)
        assert signal["aisoc.signal.sample_size"] == k
        assert signal["aisoc.signal.window_seconds"] == 3600


def test_token_zscore_matches_pandas_ewm() -> None:
    import pandas as pd  # installed with mlflow (test extra)
    hourly = [float(400 + (h * 37) % 90) for h in range(40)] + [9000.0]
    events = [llm(h * 3600 + 5, "k", tokens_in=int(x), tokens_out=0) for h, x in enumerate(hourly)]
    signals = run(ApiKeyTokenZscore(StateStore()), events, until=len(hourly) * 3600)
    series = pd.Series(hourly)
    mean = series.ewm(span=168, adjust=True).mean().shift(1)
    std = series.ewm(span=168, adjust=True).std(bias=True).shift(1)
    spread = pd.concat([std, 0.25 * mean], axis=1).max(axis=1).clip(lower=1)
    expected = ((series - mean) / spread).iloc[1:].tolist()
    assert [s["aisoc.signal.value"] for s in signals] == pytest.approx(expected, abs=1e-5)
    assert signals[-1]["aisoc.signal.value"] > 4 and signals[-1]["aisoc.signal.sample_size"] == 40


def test_token_zscore_floors_stddev_and_skips_idle_hours() -> None:
    events = [llm(0, "k", tokens_in=2, tokens_out=0), llm(3600, "k", tokens_in=2, tokens_out=0),
              llm(10 * 3600, "k", tokens_in=5, tokens_out=0)]  # eight idle hours in between
    signals = run(ApiKeyTokenZscore(StateStore()), events, until=11 * 3600)
    assert [s["aisoc.signal.value"] for s in signals] == [0.0, 3.0]  # (5 - 2) / max(0, 0.5, 1)
    assert [s["aisoc.signal.sample_size"] for s in signals] == [1, 2]


def test_token_zscore_spread_is_at_least_a_quarter_of_the_mean() -> None:
    """A regular low-volume cron key (stddev 0) that sends 1.6x its usual tokens is not a 4-sigma spike;
    a key that sends ten times as much is."""
    steady = [llm(h * 3600 + 5, "cron", tokens_in=400, tokens_out=0) for h in range(30)]
    for tokens, expected in ((640, 2.4), (4000, 36.0)):
        events = [*steady, llm(30 * 3600 + 5, "cron", tokens_in=tokens, tokens_out=0)]
        signals = run(ApiKeyTokenZscore(StateStore()), events, until=31 * 3600)
        assert signals[-1]["aisoc.signal.value"] == pytest.approx(expected)  # (x - 400) / (0.25 * 400)


def test_logprobs_share_is_requests_with_logprobs_over_requests() -> None:
    flags = [True] * 7 + [False] * 2 + [None]  # a request without the field did not ask for logprobs
    events = [llm(60 * i, "k", logprobs=f, n=i) for i, f in enumerate(flags)]
    events.append(llm(3600 + 1, "k", logprobs="TRUE"))
    signals = run(ApiKeyLogprobsShare(StateStore()), events, until=7200)
    assert [(s["aisoc.signal.value"], s["aisoc.signal.sample_size"]) for s in signals] == [(0.7, 10), (1.0, 1)]


def test_skeleton_diversity_is_distinct_skeletons_over_requests_with_one() -> None:
    skeletons = ["a", "a", "a", "b", "b", "c", None, None, "", None]
    events = [llm(10 * i, "k", skeleton=s, n=i) for i, s in enumerate(skeletons)]
    signals = run(ApiKeySkeletonDiversity(StateStore()), events, until=3600)
    assert [(s["aisoc.signal.value"], s["aisoc.signal.sample_size"]) for s in signals] == [(0.5, 6)]


def test_skeleton_sketch_is_exact_below_k_and_close_above() -> None:
    small: list[int] = []
    for i in range(300):
        kmv_add(small, f"t{i % 120}", k=256)
    assert kmv_estimate(small, k=256) == 120
    large: list[int] = []
    for i in range(50_000):
        kmv_add(large, f"prompt-{i}", k=4096)
    assert kmv_estimate(large, k=4096) == pytest.approx(50_000, rel=0.05)


def test_first_seen_enricher_sets_first_seen_and_age() -> None:
    enricher = ApiKeyFirstSeen(StateStore())
    first = llm(100, "k")
    out = [enricher.enrich(e) for e in (first, llm(160.7, "k"), llm(90_000, "k"), llm(50, "k"), llm(70, "k"),
                                          llm(70, "other"))]
    assert [(e["aisoc.api_key.first_seen"], e["aisoc.api_key.age_seconds"]) for e in out] == [
        (True, 0), (False, 60), (False, 89_900), (False, 0), (False, 20), (True, 0)]
    assert "aisoc.api_key.first_seen" not in first  # input not modified
    other = {"@timestamp": iso(1), "event.action": "inference-request", "aisoc.api_key.hash": "k"}
    assert enricher.enrich(other) is other


def test_first_seen_survives_a_restart(tmp_path) -> None:
    path = tmp_path / "state.db"
    store = StateStore(path)
    chain = AnalyzerChain([ApiKeyFirstSeen(store)], store)
    chain.process([llm(0, "k")])
    reopened = StateStore(path)
    later = AnalyzerChain([ApiKeyFirstSeen(reopened)], reopened).process([llm(3600, "k")])
    assert later[0]["aisoc.api_key.age_seconds"] == 3600 and later[0]["aisoc.api_key.first_seen"] is False


# ---- inference ------------------------------------------------------------------------------------

def test_near_boundary_share_counts_margins_below_one_tenth() -> None:
    margins = [0.05, 0.099, 0.1, 0.5, None, 1.5, 0.0]  # None and 1.5 are not usable margins
    events = [prediction(i, "c", margin=m, n=i) for i, m in enumerate(margins)]
    signals = run(ClientNearBoundaryShare(StateStore()), events, until=3600)
    assert [(s["aisoc.signal.value"], s["aisoc.signal.sample_size"]) for s in signals] == [(0.6, 5)]
    assert signals[0]["aisoc.signal.entity"] == "c" and signals[0]["aisoc.inference.client_id"] == "c"


def test_confidence_stddev_is_the_population_stddev() -> None:
    confidences = [0.99, 0.51, 0.97, 0.2, 0.88, 0.6, 0.93]
    events = [prediction(i, "c", confidence=x, n=i) for i, x in enumerate(confidences)]
    events += [prediction(100, "c", confidence=float("nan")), prediction(101, "c", confidence=None, n=1)]
    events += [prediction(200 + i, "d", confidence=0.8, n=i) for i in range(3)]
    signals = run(ClientConfidenceStddev(StateStore()), events, until=3600)
    got = {s["aisoc.signal.entity"]: (s["aisoc.signal.value"], s["aisoc.signal.sample_size"]) for s in signals}
    assert got["c"][0] == pytest.approx(statistics.pstdev(confidences), abs=1e-6) and got["c"][1] == 7
    assert got["d"] == (0.0, 3)


def test_canary_disagreement_pairs_by_request_id_then_by_input() -> None:
    events = [
        prediction(1, "x", endpoint="default", predicted="a", request_id="r1", skeleton="s1"),
        prediction(2, "x", endpoint="canary", predicted="a", request_id="r1", skeleton="s1"),  # agree
        prediction(3, "x", endpoint="default", predicted="a", request_id="r2"),
        prediction(4, "x", endpoint="canary", predicted="b", request_id="r2"),  # disagree
        prediction(5, "x", endpoint="default", predicted="a", request_id="r3", skeleton="s3"),
        prediction(6, "x", endpoint="canary", predicted="b", skeleton="s3"),  # paired by input: disagree
        prediction(7, "x", endpoint="canary", predicted="b", request_id="r4", skeleton="s9"),  # unpaired
        prediction(8, "x", endpoint="shadow", predicted="z", request_id="r4"),  # unknown endpoint: ignored
        prediction(9, "x", endpoint="default", predicted="a", request_id="r5", service="other"),
        prediction(10, "x", endpoint="canary", predicted="a", request_id="r5", service="other"),
    ]
    signals = run(CanaryDisagreementRate(StateStore()), events, until=3600)
    got = {s["aisoc.signal.entity"]: (s["aisoc.signal.value"], s["aisoc.signal.sample_size"]) for s in signals}
    assert got == {"fraud": (round(2 / 3, 6), 3), "other": (0.0, 1)}
    assert {s["aisoc.inference.service"] for s in signals} == {"fraud", "other"}


# ---- data -----------------------------------------------------------------------------------------

def test_psi_by_hand() -> None:
    expected = (0.5 - 0.8) * math.log(0.5 / 0.8) + (0.5 - 0.2) * math.log(0.5 / 0.2)
    assert psi({"a": 50, "b": 50}, {"a": 80, "b": 20}) == pytest.approx(expected, abs=1e-12)
    floored = (1 - 0.9) * math.log(1 / 0.9) + (1e-4 - 0.1) * math.log(1e-4 / 0.1)  # label b vanished
    assert psi({"a": 100}, {"a": 90, "b": 10}) == pytest.approx(floored, abs=1e-12)


def test_js_distance_by_hand_and_against_scipy() -> None:
    m = [0.75, 0.25]
    kl_pm = 0.5 * math.log2(0.5 / m[0]) + 0.5 * math.log2(0.5 / m[1])
    kl_qm = 1.0 * math.log2(1.0 / m[0])
    assert js_distance({"a": 1, "b": 1}, {"a": 5}) == pytest.approx(math.sqrt((kl_pm + kl_qm) / 2), abs=1e-12)
    assert js_distance({"a": 3}, {"b": 7}) == 1.0
    assert js_distance({"a": 2, "b": 6}, {"a": 1, "b": 3}) == 0.0
    from scipy.spatial import distance as spatial  # installed with mlflow (test extra)
    p, q = {"a": 10, "b": 30, "c": 60}, {"a": 40, "b": 40, "d": 20}
    keys = ["a", "b", "c", "d"]
    expected = spatial.jensenshannon([p.get(k, 0) for k in keys], [q.get(k, 0) for k in keys], base=2)
    assert js_distance(p, q) == pytest.approx(expected, abs=1e-9)


def _rows(spec: dict[tuple[str, str], int], **extra: Any) -> list[dict[str, Any]]:
    """Rows from {(region, label): count}."""
    return [{"region": region, "label": label, **extra} for (region, label), count in spec.items()
            for _ in range(count)]


def test_label_psi_per_segment_against_the_baseline() -> None:
    profile = DatasetProfile("txn", label_field="label", segment_fields=("region",))
    analyzer = TrainingBatchAnalyzer(StateStore(), [profile])
    base = _rows({("US", "ok"): 180, ("US", "fraud"): 20, ("BR", "ok"): 95, ("BR", "fraud"): 5,
                  ("DE", "ok"): 10})
    first = analyzer.observe_batch("txn", base, at(0), batch_id="b0")
    assert [s for s in first if s["aisoc.signal.name"] == "label_psi"] == []  # no baseline yet
    new = _rows({("US", "ok"): 90, ("US", "fraud"): 10, ("BR", "ok"): 40, ("BR", "fraud"): 60,
                 ("DE", "ok"): 30})
    signals = [s for s in analyzer.observe_batch("txn", new, at(3600), batch_id="b1", source="vendor-a")
               if s["aisoc.signal.name"] == "label_psi"]
    got = {s["aisoc.data.segment"]: s for s in signals}
    assert set(got) == {"all", "region=US", "region=BR"}  # region=DE: 30 rows < 50, 10 baseline rows < 100
    assert got["region=US"]["aisoc.signal.value"] < 1e-3  # the same mix (the half counts differ by batch size)
    # shares from counts + 0.5: batch ok 40, fraud 60 (of 100); baseline ok 95, fraud 5 (of 100)
    ok, fraud, b_ok, b_fraud = 40.5 / 101, 60.5 / 101, 95.5 / 101, 5.5 / 101
    by_hand = (ok - b_ok) * math.log(ok / b_ok) + (fraud - b_fraud) * math.log(fraud / b_fraud)
    assert got["region=BR"]["aisoc.signal.value"] == pytest.approx(by_hand, abs=1e-6)
    assert got["region=BR"]["aisoc.signal.entity"] == "txn/region=BR"
    assert got["region=BR"]["aisoc.signal.sample_size"] == 100
    assert got["region=BR"]["aisoc.data.batch.id"] == "b1" and got["region=BR"]["aisoc.data.source"] == "vendor-a"
    b_all = {"ok": 285.5 / 311, "fraud": 25.5 / 311}
    p_all = {"ok": 160.5 / 231, "fraud": 70.5 / 231}
    overall = sum((p_all[k] - b_all[k]) * math.log(p_all[k] / b_all[k]) for k in p_all)
    assert got["all"]["aisoc.signal.value"] == pytest.approx(overall, abs=1e-6)


def test_label_psi_baseline_is_thirty_days() -> None:
    profile = DatasetProfile("txn", label_field="label")
    analyzer = TrainingBatchAnalyzer(StateStore(), [profile])
    analyzer.observe_batch("txn", [{"label": "a"}] * 100, at(0), batch_id="old")
    later = analyzer.observe_batch("txn", [{"label": "b"}] * 100, at(31 * 86400), batch_id="new")
    assert [s for s in later if s["aisoc.signal.name"] == "label_psi"] == []  # the old batch left the baseline


def test_rare_value_burst_counts_rows_with_values_under_a_tenth_of_a_percent() -> None:
    profile = DatasetProfile("txn", feature_fields=("merchant",))
    analyzer = TrainingBatchAnalyzer(StateStore(), [profile])
    base = [{"merchant": "x"}] * 1991 + [{"merchant": "y"}] * 8 + [{"merchant": "z"}]
    analyzer.observe_batch("txn", base, at(0), batch_id="b0")
    batch = ([{"merchant": "x"}] * 80 + [{"merchant": "y"}] * 5 + [{"merchant": "z"}] * 5
             + [{"merchant": "q"}] * 10 + [{"other": 1}] * 5)
    signals = [s for s in analyzer.observe_batch("txn", batch, at(60), batch_id="b1")
               if s["aisoc.signal.name"] == "rare_value_burst"]
    # y: 8/2000 = 0.4% (not rare); z: 1/2000 = 0.05% (rare); q: never seen (rare); 105 rows in the batch
    assert [(s["aisoc.signal.value"], s["aisoc.signal.sample_size"]) for s in signals] == [(round(15 / 105, 6), 105)]
    assert signals[0]["aisoc.data.feature"] == "merchant" and signals[0]["aisoc.signal.entity"] == "txn/merchant"


def test_rare_value_burst_skips_identifier_like_features() -> None:
    profile = DatasetProfile("txn", feature_fields=("row_id",))
    store = StateStore()
    fresh = TrainingBatchAnalyzer(store, [profile], checks=[RareValueBurst(store, max_distinct=500)])
    fresh.observe_batch("txn", [{"row_id": i} for i in range(2000)], at(0), batch_id="b0")
    signals = fresh.observe_batch("txn", [{"row_id": i} for i in range(5000, 5100)], at(60), batch_id="b1")
    assert [s for s in signals if s["aisoc.signal.name"] == "rare_value_burst"] == []


def test_duplicate_share_counts_repeats_within_the_batch_and_of_the_baseline() -> None:
    profile = DatasetProfile("reviews", ignore_fields=("id",))
    analyzer = TrainingBatchAnalyzer(StateStore(), [profile])
    first = analyzer.observe_batch("reviews", [{"id": i, "text": f"r{i}"} for i in range(5)], at(0), batch_id="b0")
    assert [s["aisoc.signal.value"] for s in first if s["aisoc.signal.name"] == "duplicate_sample_share"] == [0.0]
    batch = [{"id": 90, "text": "r1"}, {"id": 91, "text": "r6"}, {"id": 92, "text": "r6"}, {"id": 93, "text": "r6"},
             {"id": 94, "text": "r7"}]  # r1 repeats the baseline, r6 three times: 1 + 2 duplicates of 5
    signals = [s for s in analyzer.observe_batch("reviews", batch, at(60), batch_id="b1")
               if s["aisoc.signal.name"] == "duplicate_sample_share"]
    assert [(s["aisoc.signal.value"], s["aisoc.signal.sample_size"]) for s in signals] == [(0.6, 5)]
    assert signals[0]["aisoc.signal.entity"] == "reviews"
    month_later = analyzer.observe_batch("reviews", [{"id": 1, "text": "r1"}], at(31 * 86400), batch_id="b2")
    assert [s["aisoc.signal.value"] for s in month_later if s["aisoc.signal.name"] == "duplicate_sample_share"] == [0]


def test_too_perfect_share_uses_the_model_score_of_the_given_label() -> None:
    scores = {"r1": 0.9999, "r2": 0.999, "r3": 0.5, "r4": None}
    profile = DatasetProfile("spam", label_field="label", score_fn=lambda row: scores[row["id"]])
    analyzer = TrainingBatchAnalyzer(StateStore(), [profile])
    signals = [s for s in analyzer.observe_batch("spam", [{"id": k, "label": "spam"} for k in scores], at(0))
               if s["aisoc.signal.name"] == "too_perfect_share"]
    assert [(s["aisoc.signal.value"], s["aisoc.signal.sample_size"]) for s in signals] == [(0.5, 4)]
    column = DatasetProfile("spam2", score_field="p")
    rows = [{"p": "0.9995"}, {"p": "0.2"}, {"p": "n/a"}, {"p": 1.0}, {}]
    signals = [s for s in TrainingBatchAnalyzer(StateStore(), [column]).observe_batch("spam2", rows, at(0))
               if s["aisoc.signal.name"] == "too_perfect_share"]
    assert [s["aisoc.signal.value"] for s in signals] == [0.4]
    unscored = TrainingBatchAnalyzer(StateStore()).observe_batch("plain", [{"a": 1}], at(0))
    assert [s["aisoc.signal.name"] for s in unscored] == ["duplicate_sample_share"]


def test_a_batch_is_analyzed_once() -> None:
    analyzer = TrainingBatchAnalyzer(StateStore(), [DatasetProfile("d")])
    rows = [{"a": i} for i in range(10)]
    assert analyzer.observe_batch("d", rows, at(0), batch_id="b") != []
    assert analyzer.observe_batch("d", rows, at(0), batch_id="b") == []


def test_batch_rows_are_read_from_the_landing_event() -> None:
    files = {"/land/b1.csv": [{"label": "a", "text": "x"}] * 4}
    analyzer = TrainingBatchAnalyzer(StateStore(), [DatasetProfile("d", label_field="label")],
                                     row_reader=lambda path: files[path])
    signals = analyzer.observe(landed(0, "d", "vendor", 4, path="/land/b1.csv", batch_id="b1"))
    assert [(s["aisoc.signal.name"], s["aisoc.signal.value"]) for s in signals] == [("duplicate_sample_share", 0.75)]
    assert analyzer.observe(landed(0, "unprofiled", "vendor", 4, path="/land/b1.csv")) == []


def test_source_mix_shift_is_the_js_distance_of_the_day_against_thirty_days() -> None:
    day = 86400
    events = []
    for d in range(3):
        events += [landed(d * day + 100, "reviews", "vendor-a", 900), landed(d * day + 200, "reviews", "vendor-b", 100)]
    events += [landed(3 * day + 100, "reviews", "vendor-a", 300), landed(3 * day + 200, "reviews", "scraper", 600),
               landed(3 * day + 300, "reviews", "vendor-b", 100)]
    signals = run(SourceMixShift(StateStore()), events, until=4 * day)
    got = {s["@timestamp"]: s["aisoc.signal.value"] for s in signals}
    assert got[iso(2 * day)] == 0.0 and got[iso(3 * day)] == 0.0
    by_hand = js_distance({"a": 300, "s": 600, "b": 100}, {"a": 2700, "b": 300})
    assert got[iso(4 * day)] == pytest.approx(by_hand, abs=1e-6)
    assert by_time(signals)[iso(4 * day)]["aisoc.signal.sample_size"] == 1000
    assert iso(day) not in got  # the first day has no baseline


def test_ingestion_rate_counts_writes_and_compares_with_active_hours() -> None:
    events = []
    for hour, count in [(0, 3), (1, 5), (5, 4)]:
        events += [write(hour * 3600 + i, "svc", n=i) for i in range(count)]
    events += [write(6 * 3600 + i, "svc", n=i) for i in range(60)]
    events += [write(6 * 3600 + 10, "svc", operation="read"), write(6 * 3600 + 11, "svc", ingestion=False),
               write(6 * 3600 + 12, "newbie")]
    signals = run(IngestionAccessRate(StateStore()), events, until=7 * 3600)
    got = {(s["aisoc.signal.entity"], s["@timestamp"]): (s["aisoc.signal.value"], s.get("aisoc.signal.baseline"))
           for s in signals}
    assert got[("svc", iso(3600))] == (3, None)
    assert got[("svc", iso(2 * 3600))] == (5, 3.0)
    assert got[("svc", iso(6 * 3600))] == (4, 4.0)
    assert got[("svc", iso(7 * 3600))] == (60, 4.0)  # mean of 3, 5 and 4
    assert got[("newbie", iso(7 * 3600))] == (1, None)
    assert all(s["user.name"] == s["aisoc.signal.entity"] for s in signals)


def test_ingestion_rate_counts_a_role_not_its_sessions_and_learns_quietly_on_day_one() -> None:
    role, day = "arn:aws:sts::123456789012:assumed-role/svc-ingest", 86400
    events = []
    for night in range(3):  # each nightly run assumes the role under a new session name
        events += [write(night * day + 7200 + i, f"{role}/ingest-run-{night}", n=i) for i in range(200)]
    events += [write(2 * day + 9000 + i, "contractor-7", n=i) for i in range(60)]
    signals = run(IngestionAccessRate(StateStore(), learning_seconds=day), events, until=3 * day)
    got = [(s["aisoc.signal.entity"], s["aisoc.signal.value"], s.get("aisoc.signal.baseline")) for s in signals]
    # night one is learned without a signal; the later nights compare with it; the contractor has no history
    assert got == [(role, 200, 200.0), (role, 200, 200.0), ("contractor-7", 60, None)]


# ---- windows and ids ----------------------------------------------------------------------------------

def test_late_events_are_dropped_and_counted() -> None:
    analyzer = ApiKeyLogprobsShare(StateStore())
    signals = run(analyzer, [llm(10, "k"), llm(3700, "k"), llm(20, "k", n=1)], until=7200)
    assert [s["aisoc.signal.sample_size"] for s in signals] == [1, 1]
    assert analyzer.late_events == 1


def test_allowed_lateness_holds_a_window_open() -> None:
    analyzer = ApiKeyLogprobsShare(StateStore(), allowed_lateness=120)
    signals = run(analyzer, [llm(10, "k"), llm(3650, "k"), llm(3590, "k", n=1), llm(3800, "k", n=2)])
    assert [s["aisoc.signal.sample_size"] for s in signals] == [2]


def test_signal_ids_are_deterministic() -> None:
    events = [llm(i * 7, "k", logprobs=i % 2 == 0, n=i) for i in range(50)]
    first = run(ApiKeyLogprobsShare(StateStore()), events, until=7200)
    second = run(ApiKeyLogprobsShare(StateStore()), events, until=7200)
    assert [s["event.id"] for s in first] == [s["event.id"] for s in second]


def test_a_failing_analyzer_does_not_stop_the_chain() -> None:
    class Boom:
        name = "boom"

        def observe(self, event: dict[str, Any]) -> list[dict[str, Any]]:
            raise RuntimeError("bad day")

    state = StateStore()
    chain = AnalyzerChain([Boom(), ApiKeyFirstSeen(state), ApiKeyLogprobsShare(state)], state)
    out = chain.process([llm(0, "k"), llm(3600, "k", n=1)])
    assert [e.get("aisoc.signal.name") for e in out] == [None, None, "api_key_logprobs_share"]
    assert out[1]["aisoc.api_key.age_seconds"] == 3600
    assert chain.error_count == 2 and chain.errors[0].analyzer == "boom"
    assert chain.errors[0].event_id == out[0]["event.id"] and "bad day" in chain.errors[0].reason


def test_a_sliding_window_analyzer_must_define_merge() -> None:
    from aisoc.analyzers.api_keys import ApiKeyRequestRate
    from aisoc.analyzers.base import StateStore as _State
    from aisoc.analyzers.windows import WindowedAnalyzer

    class Sliding(ApiKeyRequestRate):  # step 60 < window 600, but falls back to the one-bucket merge
        merge = WindowedAnalyzer.merge

    with pytest.raises(TypeError, match="must define merge"):
        Sliding(_State())
    ApiKeyRequestRate(_State())  # the real one defines it


def test_label_psi_small_segment_missing_a_label_stays_quiet_but_a_real_shift_fires() -> None:
    profile = DatasetProfile("txn", label_field="label", segment_fields=("region",))
    analyzer = TrainingBatchAnalyzer(StateStore(), [profile])

    def label_psi(rows: list[dict[str, Any]], hour: int, batch: str) -> float:
        signals = analyzer.observe_batch("txn", rows, at(hour * 3600), batch_id=batch)
        return next(s["aisoc.signal.value"] for s in signals
                    if s["aisoc.signal.name"] == "label_psi" and s["aisoc.data.segment"] == "region=BR")

    analyzer.observe_batch("txn", _rows({("BR", "ok"): 950, ("BR", "fraud"): 50}), at(0), batch_id="base")
    assert psi({"ok": 50}, {"ok": 950, "fraud": 50}) >= 0.25  # a 1e-4 floor would alert on 50 rows without fraud
    small = label_psi(_rows({("BR", "ok"): 50}), 1, "small")
    assert small < 0.1  # 0.95^50 = 8%: chance
    assert label_psi(_rows({("BR", "ok"): 150}), 2, "larger") > small  # 0.95^150 = 0.05%: weighs more
    assert label_psi(_rows({("BR", "ok"): 210, ("BR", "fraud"): 90}), 3, "flip") >= 0.25  # 30% where it was 5%


def test_first_seen_learning_period_marks_day_one_keys_established() -> None:
    enricher = ApiKeyFirstSeen(StateStore(), learning_seconds=86400)
    day_one = [enricher.enrich(llm(t, key)) for t, key in ((0, "a"), (3600, "b"), (90000, "a"))]
    assert [e["aisoc.api_key.first_seen"] for e in day_one] == [False, False, False]
    assert all("aisoc.api_key.age_seconds" not in e for e in day_one)  # their real age is unknown
    new = enricher.enrich(llm(90000, "c"))
    later = enricher.enrich(llm(93600, "c"))
    assert (new["aisoc.api_key.first_seen"], new["aisoc.api_key.age_seconds"]) == (True, 0)
    assert (later["aisoc.api_key.first_seen"], later["aisoc.api_key.age_seconds"]) == (False, 3600)
    late = enricher.enrich(llm(7200, "c"))  # delivered late: the key was in use during the learning period
    assert late["aisoc.api_key.first_seen"] is False and "aisoc.api_key.age_seconds" not in late
    assert "aisoc.api_key.age_seconds" not in enricher.enrich(llm(97200, "c"))
