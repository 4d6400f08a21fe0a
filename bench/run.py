"""Benchmarks: one entry point, one table.

Each measurement is reported per rule and as a ratio to a baseline measured in the same process:
plain `yaml.safe_load` of the same rule files, the least any tool must do to read them. Ratios,
not seconds, are what to compare between machines. Tests never assert on these numbers.

    python bench/run.py [RULES_DIR] [--repeat N]
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable
from pathlib import Path

import yaml

from aisoc.detect.ruletest import test_rule_sqlite
from aisoc.paths import data_path
from aisoc.rules.loader import iter_rule_paths, load_rules
from aisoc.rules.validate import validate


def _best(fn: Callable[[], object], repeat: int) -> float:
    samples = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        samples.append(time.perf_counter() - start)
    return min(samples) if repeat < 3 else statistics.median(samples)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("rules", nargs="?", type=Path, default=data_path("rules"))
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--es", help="Elasticsearch URL for the sink benchmark (default: start a test node)")
    parser.add_argument("--no-es", action="store_true", help="skip the Elasticsearch sink benchmark")
    parser.add_argument("--events", type=int, default=20000, help="events for the sink and service benchmarks")
    args = parser.parse_args()
    files = list(iter_rule_paths([args.rules]))
    if not files:
        raise SystemExit(f"no rule files under {args.rules}")
    rules, _ = load_rules([args.rules])

    def baseline() -> None:
        for path in files:
            list(yaml.safe_load_all(path.read_text(encoding="utf-8")))

    measurements = {
        "baseline: yaml.safe_load": baseline,
        "load (aisoc parse + pySigma)": lambda: load_rules([args.rules]),
        "validate (all checks, no lock)": lambda: validate([args.rules]),
        "test on SQLite (all cases)": lambda: [test_rule_sqlite(r) for r in rules],
    }
    validate([args.rules])  # warm caches (catalog, registry) outside the timed runs
    results = {name: _best(fn, args.repeat) for name, fn in measurements.items()}
    base = results["baseline: yaml.safe_load"]
    cases = sum(len(r.meta.tests) for r in rules)
    print(f"{len(files)} rule files, {cases} test cases, median of {args.repeat} runs")
    print(f"{'measurement':34} {'total ms':>10} {'ms/rule':>9} {'x baseline':>11}")
    for name, seconds in results.items():
        print(f"{name:34} {seconds * 1000:10.1f} {seconds * 1000 / len(files):9.2f} {seconds / base:11.1f}")
    import collectors
    from es_sink import elasticsearch, measure
    from serve import measure_all, print_rows

    print()
    print(f"{'collector':36} {'events/s':>10} {'x json round trip':>18}")
    for name, (records, fn) in collectors.cases().items():
        rate, ratio = collectors.measure(records, fn, 3000)
        print(f"{name:36} {rate:10,.0f} {ratio:18.2f}   (goal >= 0.3)")

    if args.no_es:
        print()
        print_rows(measure_all(None, args.events))
        return
    with elasticsearch(args.es) as url:
        measure(url, 2000, 500)  # warm-up
        sink = measure(url, args.events, 500)
        print()
        print(f"{'measurement':34} {'events/s':>10} {'x baseline':>11}")
        print(f"{'baseline: helpers.streaming_bulk':34} {sink['baseline_eps']:10.0f} {1.0:11.2f}")
        print(f"{'aisoc ElasticsearchSink':34} {sink['sink_eps']:10.0f} {sink['ratio']:11.2f}   (goal >= 0.9)")
        print()
        print_rows(measure_all(url, args.events))


if __name__ == "__main__":
    main()
