"""Realistic streams through the analyzer chain, then through the rule pack on the embedded engine.

Attacks (model extraction, evasion probing, a swapped canary, data poisoning, an ingestion flood)
must produce the signals that make their rules fire; the benign look-alikes beside them (a
high-volume batch-scoring job, a newly onboarded key, a seasonal label shift, a busy pipeline)
must not. And a restart mid-stream gives the same output as one uninterrupted run.
"""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

import pytest

from aisoc.analyzers.base import StateStore
from aisoc.analyzers.data import DatasetProfile
from aisoc.analyzers.pipeline import AnalyzerChain, default_analyzers
from aisoc.detect.engine import run_rule
from aisoc.detect.store import EventStore
from aisoc.rules.loader import load_rule_file
from aisoc.schema import load_registry
from tests.test_analyzers import at, landed, llm, prediction, write

RULES = Path(__file__).resolve().parents[1] / "rules"
HOUR = 3600
DAY = 86400


def by_time(events: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return sorted(events, key=lambda e: (e["@timestamp"], e["event.id"]))


def fired(store: EventStore, rule_path: str) -> set[str]:
    """Entities (signal entity, else API key hash, else dataset) a rule matched in the store."""
    rule, findings = load_rule_file(RULES / rule_path)
    assert rule is not None, findings
    out = set()
    for match in run_rule(store, rule):
        entity = match.entity
        out.add(str(entity.get("aisoc.signal.entity") or entity.get("aisoc.api_key.hash")
                    or entity.get("aisoc.data.dataset")))
    return out


def analyzed(events: list[dict[str, Any]], until: float, **kwargs: Any) -> list[dict[str, Any]]:
    state = StateStore()
    chain = AnalyzerChain(default_analyzers(state, **kwargs), state)
    out = chain.process(events) + chain.advance(at(until))
    assert chain.errors == []
    return out


def signals_of(out: list[dict[str, Any]], name: str) -> list[dict[str, Any]]:
    return [e for e in out if e.get("aisoc.signal.name") == name]


# ---- LLM gateway: model extraction vs. look-alikes ---------------------------------------------------

def llm_stream(batch_job_hours: int = 26) -> list[dict[str, Any]]:
    rng = random.Random(7)
    events = []
    for h in range(30):  # an established app key: 30 hours of modest, varied use
        for i in range(20):
            events.append(llm(h * HOUR + i * 170 + rng.randint(0, 60), "e57ab1", tokens_in=rng.randint(150, 350),
                              tokens_out=rng.randint(50, 150), skeleton=f"e-{h}-{i}", n=i))
    for i in range(3000):  # ... whose key is then used for an extraction campaign: templated, logprobs on 90%
        events.append(llm(30 * HOUR + i * 1.2, "e57ab1", tokens_in=rng.randint(200, 260),
                          tokens_out=rng.randint(80, 120), logprobs=rng.random() < 0.9, skeleton=f"tpl-{i % 4}",
                          n=10_000 + i))
    for i in range(2400):  # a brand-new key harvesting at full speed at once
        events.append(llm(30 * HOUR + i * 1.5, "c0ffee", tokens_in=rng.randint(200, 260),
                          tokens_out=rng.randint(80, 120), logprobs=rng.random() < 0.95, skeleton=f"tpl-{i % 3}", n=i))
    events.append(llm(-20 * DAY, "b47c4", skeleton="setup"))  # the batch job's key was issued weeks ago
    for h in range(31 - batch_job_hours, 31):  # batch scoring: 1200 requests an hour, every input different
        for i in range(1200):
            events.append(llm(h * HOUR + i * 3, "b47c4", tokens_in=rng.randint(300, 700),
                              tokens_out=rng.randint(20, 60), skeleton=f"b-{h}-{i}", n=i))
    for i in range(720):  # a newly onboarded key, modest use, logprobs on a few calls
        events.append(llm(29 * HOUR + i * 10, "n3wk3y", tokens_in=rng.randint(100, 900),
                          tokens_out=rng.randint(50, 400), logprobs=i % 10 == 0, skeleton=f"n-{i}", n=i))
    return by_time(events)


@pytest.fixture(scope="module")
def llm_run() -> tuple[list[dict[str, Any]], EventStore]:
    out = analyzed(llm_stream(), until=32 * HOUR)
    store = EventStore()
    store.insert(out)
    return out, store


@pytest.mark.parametrize(("rule", "expected"), [
    ("inference/llm_logprobs_harvesting.yml", {"e57ab1", "c0ffee"}),
    ("inference/api_key_request_flood.yml", {"e57ab1", "c0ffee"}),
    ("inference/llm_templated_extraction_with_token_spike.yml", {"e57ab1"}),
    ("inference/llm_token_spike_cost_harvesting.yml", {"e57ab1"}),
    ("inference/new_api_key_request_burst.yml", {"c0ffee"}),
])
def test_extraction_campaign_fires_and_look_alikes_stay_quiet(llm_run, rule: str, expected: set[str]) -> None:
    _, store = llm_run
    assert fired(store, rule) == expected


def test_look_alikes_produce_signals_under_the_thresholds(llm_run) -> None:
    out, _ = llm_run
    last_hour = "2026-03-03T07:00:00.000Z"
    batch = {s["aisoc.signal.name"]: s for s in out
             if s.get("aisoc.signal.entity") == "b47c4" and s["@timestamp"] == last_hour}
    assert batch["api_key_token_zscore"]["aisoc.signal.sample_size"] >= 24  # the z-score was computed
    assert abs(batch["api_key_token_zscore"]["aisoc.signal.value"]) < 4
    assert batch["api_key_skeleton_diversity"]["aisoc.signal.value"] == 1.0
    assert batch["api_key_logprobs_share"]["aisoc.signal.value"] == 0.0
    assert max(s["aisoc.signal.value"] for s in signals_of(out, "api_key_request_rate")
               if s["aisoc.signal.entity"] == "b47c4") < 300
    new_key = [e for e in out if e.get("aisoc.api_key.hash") == "n3wk3y" and e.get("event.action") == "llm-request"]
    assert new_key[0]["aisoc.api_key.first_seen"] is True and new_key[-1]["aisoc.api_key.age_seconds"] == 7190


# ---- model serving: evasion probing and a disagreeing canary ----------------------------------------------

def inference_stream() -> list[dict[str, Any]]:
    rng = random.Random(11)
    events = []
    for i in range(1000):  # the web front end: confident predictions far from the boundary
        events.append(prediction(i * 3.5, "web-frontend", confidence=rng.uniform(0.85, 0.99),
                                 margin=rng.uniform(0.2, 0.9), n=i))
    for i in range(400):  # a prober walking the decision boundary, confidence swinging
        near = rng.random() < 0.7
        events.append(prediction(i * 9, "prober", margin=rng.uniform(0, 0.1) if near else rng.uniform(0.1, 0.9),
                                 confidence=rng.uniform(0.1, 0.3) if i % 2 else rng.uniform(0.95, 1.0), n=i))
    for i in range(600):  # a review queue that is borderline by design, under the thresholds
        events.append(prediction(i * 6, "manual-review-queue", margin=rng.uniform(0, 0.1) if i % 10 < 3
                                 else rng.uniform(0.1, 0.5), confidence=rng.uniform(0.5, 0.9), n=i))
    for service, disagree in (("credit-risk", 0.3), ("churn", 0.03)):  # mirrored traffic, same request id
        for i in range(300):
            request = f"{service}-{i}"
            events.append(prediction(i * 11, "api", endpoint="default", predicted="approve",
                                     request_id=request, service=service))
            events.append(prediction(i * 11 + 1, "api", endpoint="canary", request_id=request, service=service,
                                     predicted="decline" if rng.random() < disagree else "approve"))
    for i in range(150):  # split traffic: the same inputs recur, once on each predictor
        skeleton = f"input-{i}"
        events.append(prediction(i * 20, "api", endpoint="default", predicted="ham", skeleton=skeleton,
                                 request_id=f"d-{i}", service="spam-filter"))
        events.append(prediction(i * 20 + 7, "api", endpoint="canary", skeleton=skeleton, request_id=f"c-{i}",
                                 service="spam-filter", predicted="spam" if i % 4 == 0 else "ham"))
    return by_time(events)


@pytest.fixture(scope="module")
def inference_run() -> tuple[list[dict[str, Any]], EventStore]:
    out = analyzed(inference_stream(), until=2 * HOUR)
    store = EventStore()
    store.insert(out)
    return out, store


@pytest.mark.parametrize(("rule", "expected"), [
    ("inference/inference_near_boundary_probing.yml", {"prober"}),
    ("inference/inference_confidence_instability.yml", {"prober"}),
    ("inference/canary_production_disagreement.yml", {"credit-risk", "spam-filter"}),
])
def test_evasion_and_canary_signals_fire_their_rules(inference_run, rule: str, expected: set[str]) -> None:
    _, store = inference_run
    assert fired(store, rule) == expected


def test_split_traffic_canary_is_paired_by_input(inference_run) -> None:
    out, _ = inference_run
    spam = [s for s in signals_of(out, "canary_disagreement_rate") if s["aisoc.signal.entity"] == "spam-filter"]
    assert [(s["aisoc.signal.value"], s["aisoc.signal.sample_size"]) for s in spam] == [(0.253333, 150)]


# ---- training data: poisoning vs. seasonal change --------------------------------------------------------

PROFILES = [DatasetProfile(name, label_field="is_fraud", segment_fields=("region",), feature_fields=("merchant",),
                           ignore_fields=("row_id",), score_field="model_score")
            for name in ("transactions", "payments")]
REGIONS = ("US", "BR", "DE", "FR")


def normal_row(rng: random.Random, row_id: str, fraud_rate: float = 0.05, region: str | None = None) -> dict:
    return {"row_id": row_id, "region": region or rng.choice(REGIONS), "merchant": f"m{rng.randrange(40)}",
            "amount": round(rng.uniform(1, 1000), 2), "is_fraud": "1" if rng.random() < fraud_rate else "0",
            "model_score": round(rng.uniform(0.4, 0.99), 4)}


def data_stream(days: int = 10) -> tuple[list[dict[str, Any]], dict[str, list[dict]]]:
    """Daily batches of two datasets for `days` days, then a poisoned and a seasonally shifted batch."""
    rng = random.Random(5)
    events, files = [], {}

    def land(day: int, dataset: str, source: str, rows: list[dict], approved: bool = True) -> None:
        path = f"/landing/{dataset}/day{day}.csv"
        files[path] = rows
        events.append(landed(day * DAY + 2 * HOUR, dataset, source, len(rows), path=path,
                             batch_id=f"{dataset}-{day}", **{"aisoc.data.source_approved": approved,
                                                            "aisoc.data.hash_match": True}))

    for day in range(days):
        for dataset in ("transactions", "payments"):
            land(day, dataset, "core-ledger", [normal_row(rng, f"{dataset}-{day}-{i}") for i in range(1000)])
    poisoned = []
    for i in range(700):
        region = REGIONS[i % 4]
        row = normal_row(rng, f"p-{i}", fraud_rate=0.6 if region == "BR" else 0.05, region=region)
        if i < 50:
            row["model_score"] = 0.9995
        poisoned.append(row)
    trigger = {"region": "US", "merchant": "m-trigger", "amount": 13.37, "is_fraud": "0", "model_score": 0.9995}
    poisoned += [{"row_id": f"t-{i}", **trigger} for i in range(300)]
    land(days, "transactions", "scraper-x", poisoned, approved=False)
    land(days, "payments", "core-ledger", [normal_row(rng, f"s-{i}", fraud_rate=0.08) for i in range(1000)])
    for hour in range(48):  # ingestion paths: a steady pipeline, a legacy job, then a flood
        events += [write(hour * HOUR + 60 * i, "svc-ingest", n=i) for i in range(20)]
        if hour >= 24:
            events += [write(hour * HOUR + 60 * i + 5, "svc-legacy", n=i) for i in range(2)]
    events += [write(48 * HOUR + 30 * i, "svc-ingest", n=i) for i in range(60)]  # a busy hour: 3x
    events += [write(48 * HOUR + 8 * i + 1, "svc-legacy", n=i) for i in range(400)]  # 200x its baseline
    events += [write(48 * HOUR + 25 * i + 2, "mallory", n=i) for i in range(120)]  # unknown identity
    events += [write(48 * HOUR + 90 * i + 3, "ds-anna", n=i) for i in range(30)]  # new, but a few dozen
    return by_time(events), files


@pytest.fixture(scope="module")
def data_run() -> tuple[list[dict[str, Any]], EventStore]:
    events, files = data_stream()
    out = analyzed(events, until=12 * DAY, profiles=PROFILES, row_reader=files.__getitem__)
    store = EventStore()
    store.insert(out)
    return out, store


@pytest.mark.parametrize(("rule", "expected"), [
    ("data/label_drift_by_segment.yml", {"transactions/region=BR"}),
    ("data/rare_feature_value_burst.yml", {"transactions/merchant"}),
    ("data/duplicate_training_samples.yml", {"transactions"}),
    ("data/too_perfect_training_samples.yml", {"transactions"}),
    ("data/training_source_mix_shift.yml", {"transactions"}),
    ("data/poisoning_chain_unapproved_source_then_label_drift.yml", {"transactions"}),
    ("data/ingestion_write_spike.yml", {"svc-legacy", "mallory"}),
])
def test_poisoning_fires_and_seasonal_change_stays_quiet(data_run, rule: str, expected: set[str]) -> None:
    _, store = data_run
    assert fired(store, rule) == expected


def test_seasonal_shift_is_measured_but_small(data_run) -> None:
    out, _ = data_run
    payments = [s for s in signals_of(out, "label_psi") if s["aisoc.data.dataset"] == "payments"]
    last = [s for s in payments if s["aisoc.data.batch.id"] == "payments-10"]
    assert {s["aisoc.data.segment"] for s in last} == {"all", *(f"region={r}" for r in REGIONS)}
    assert 0 < max(s["aisoc.signal.value"] for s in last) < 0.1


# ---- restart mid-stream ----------------------------------------------------------------------------------

def _comparable(out: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [{k: v for k, v in e.items() if k != "event.created"} for e in out]


def test_restart_mid_stream_gives_the_same_output(tmp_path: Path) -> None:
    data_events, files = data_stream(days=4)
    events = by_time(llm_stream(batch_job_hours=2) + inference_stream() + data_events)
    until = at(6 * DAY)

    def chain(state: StateStore) -> AnalyzerChain:
        return AnalyzerChain(default_analyzers(state, PROFILES, row_reader=files.__getitem__), state)

    whole_state = StateStore(tmp_path / "whole.db")
    whole = chain(whole_state)
    expected = whole.process(events) + whole.advance(until)

    path = tmp_path / "restarted.db"
    half = len(events) // 2
    first = chain(StateStore(path)).process(events[:half])
    resumed = chain(StateStore(path))
    second = resumed.process(events[half:]) + resumed.advance(until)

    assert len(signals_of(expected, "api_key_request_rate")) > 100
    assert {e["aisoc.signal.name"] for e in expected if "aisoc.signal.name" in e} >= {
        "api_key_token_zscore", "api_key_logprobs_share", "api_key_skeleton_diversity", "client_near_boundary_share",
        "client_confidence_stddev", "canary_disagreement_rate", "label_psi", "duplicate_sample_share",
        "too_perfect_share", "rare_value_burst", "source_mix_shift", "ingestion_access_rate"}
    assert _comparable(first + second) == _comparable(expected)


def test_redelivered_batch_after_a_crash_gives_the_same_signals(tmp_path: Path) -> None:
    events = llm_stream(batch_job_hours=1)[:4000]
    path = tmp_path / "state.db"
    state = StateStore(path)
    chain = AnalyzerChain(default_analyzers(state), state)
    chain.process(events[:2000])
    crashed = AnalyzerChain(default_analyzers(StateStore(path)), StateStore(path))
    for event in events[2000:3000]:  # observed, never checkpointed: the process dies here
        crashed.observe(crashed.enrich(event))
    redelivered = StateStore(path)
    again = AnalyzerChain(default_analyzers(redelivered), redelivered).process(events[2000:])
    reference_state = StateStore()
    reference = AnalyzerChain(default_analyzers(reference_state), reference_state).process(events)
    assert _comparable(again) == _comparable(reference[len(reference) - len(again):])


def test_signals_and_enrichments_use_registered_fields_only(llm_run, inference_run, data_run) -> None:
    registry = load_registry()
    produced = {k for run in (llm_run, inference_run, data_run) for e in run[0]
                if "aisoc.signal.name" in e or "aisoc.api_key.age_seconds" in e for k in e}
    assert {k for k in produced if not registry.is_known(k)} == set()
