"""`aisoc demo` at reduced scale: every attack class detected, benign edge cases quiet, an honest report that
renders in headless Chromium."""

from __future__ import annotations

import io
import json
import re
import shutil
import struct
import subprocess
import zlib
from collections import Counter
from dataclasses import replace
from pathlib import Path

import pytest
from rich.console import Console

from aisoc.atlas.catalog import load_catalog
from aisoc.demo import DemoOptions, DemoResult, RichProgress, render_html, render_text, run_demo, score
from aisoc.demo_scenarios import replay_rule_scenarios
from aisoc.rules.loader import load_rules
from aisoc.simulate.truth import Activity
from tests.conftest import REPO

ATTACKS = {"data-poisoning", "model-extraction", "evasion-probing", "tampered-artifact", "tampered-package",
           "unauthorized-promotion"}
WIDTH, HEIGHT = 1400, 2000


@pytest.fixture(scope="module")
def progress_log() -> io.StringIO:
    return io.StringIO()


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory, progress_log: io.StringIO) -> DemoResult:
    work = tmp_path_factory.mktemp("demo") / "work"
    progress = RichProgress(Console(file=progress_log, force_terminal=False, width=200))
    return run_demo(DemoOptions(work_dir=work, scale="small", seed=7), progress)


def test_every_attack_class_is_detected_by_its_own_entities(demo: DemoResult) -> None:
    assert {a.activity.id for a in demo.attacks} == ATTACKS
    assert demo.missed == [], [a.activity.name for a in demo.missed]
    for attack in demo.attacks:
        assert attack.time_to_alert is not None and 0 <= attack.time_to_alert <= 2 * 3600, attack.activity.id
        for view in attack.alerts:  # attributed through the alert's own triggering events
            assert any(attack.activity.owns(event) for event in view.events)
    rules = {a.activity.id: set(a.rules) for a in demo.attacks}
    assert "New API key immediately sends high-volume LLM traffic" in rules["model-extraction"]
    assert "Model version without lineage promoted to production within a day" in rules["unauthorized-promotion"]
    assert "Installed AI package does not match its locked hash or RECORD" in rules["tampered-package"]
    assert "ModelScan found a high or critical unsafe operator in a model artifact" in rules["tampered-artifact"]
    assert "Inference client walks the model's decision boundary" in rules["evasion-probing"]
    assert "Suspicious training batch followed by label drift in the same dataset" in rules["data-poisoning"]


def test_no_alert_on_benign_activity_or_edge_cases(demo: DemoResult) -> None:
    assert demo.false_alerts == [], [(v.title, v.doc.get("aisoc.alert.entity")) for v in demo.false_alerts]
    assert len(demo.benign) >= 10
    assert {k: len(v) for k, v in demo.benign.items() if v} == {}
    assert demo.ok and demo.exit_code == 0


def test_pipeline_ran_clean_end_to_end(demo: DemoResult, progress_log: io.StringIO) -> None:
    assert demo.rejected == 0 and demo.analyzer_errors == 0 and demo.detect.rule_errors == {}
    assert all(s.events > 0 and not s.note for s in demo.sources), [(s.name, s.events, s.note) for s in demo.sources]
    for signal in ("api_key_token_zscore", "client_near_boundary_share", "canary_disagreement_rate", "label_psi",
                   "source_mix_shift", "ingestion_access_rate"):
        assert demo.signals[signal] > 0, signal
    log = progress_log.getvalue()
    for stage in ("simulating", "replaying", "collecting, analyzing, storing", "running", "scoring"):
        assert re.search(rf"aisoc demo: [^\n]*{stage}[^\n]*: done in", log), (stage, log)


def test_incidents_group_alerts_and_carry_atlas_and_playbooks(demo: DemoResult) -> None:
    assert 0 < len(demo.incidents) < len(demo.alerts)
    assert sum(len(i.alerts) for i in demo.incidents) == len(demo.alerts)
    for incident in demo.incidents:
        assert incident.techniques and incident.playbooks and incident.owners
        assert all(re.fullmatch(r"AML\.T\d{4}(\.\d{3})?", t) for t in incident.techniques)
    covered = {a for i in demo.incidents for a in i.attacks}
    assert covered == ATTACKS


def test_outputs_are_written(demo: DemoResult) -> None:
    root = demo.options.work_dir
    alerts = [json.loads(line) for line in (root / "alerts.ndjson").read_text().splitlines()]
    assert len(alerts) == len(demo.alerts)
    assert all(a["event"]["kind"] == "alert" and a["threat"]["framework"] == "MITRE ATLAS" for a in alerts)
    summary = json.loads((root / "summary.json").read_text())
    assert summary["missed"] == [] and summary["false_alerts"] == []
    assert {a["id"] for a in summary["attacks"] if a["detected"]} == ATTACKS
    text = render_text(demo)
    assert "attack classes detected: 6 of 6" in text and "alerts on benign activity: 0" in text
    assert "MISSED" not in text
    assert not (root / "events.db").exists()  # the embedded store is not kept unless asked


def test_a_missed_attack_is_reported_as_missed(demo: DemoResult) -> None:
    """Scoring reads the alerts: an attack whose entities raised nothing is MISSED, whatever was injected."""
    ghost = Activity("ghost", "attack", "Ghost exfiltration", "Never happened in the telemetry.",
                     demo.truth.start, demo.truth.end, [{"aisoc.api_key.hash": "0" * 64}], "inference")
    truth = replace(demo.truth, activities=[*demo.truth.activities, ghost])
    saved = [(view.attacks, view.benign) for view in demo.alerts]
    for view in demo.alerts:
        view.attacks, view.benign = [], []
    attacks, benign, false_alerts = score(demo.alerts, truth)
    for view, (attacked, touched) in zip(demo.alerts, saved, strict=True):  # leave the module fixture as it was
        view.attacks, view.benign = attacked, touched
    result = replace(demo, truth=truth, attacks=attacks, benign=benign, false_alerts=false_alerts)
    assert [a.activity.id for a in result.missed] == ["ghost"] and result.exit_code == 1
    assert "MISSED: Ghost exfiltration" in render_text(result)
    assert "attack classes detected: 6 of 7" in render_text(result)
    page = render_html(result)
    assert 'class="verdict miss">MISSED' in page and "Ghost exfiltration" in page


def test_rule_scenario_replay_still_works() -> None:
    rules, _ = load_rules([REPO / "tests" / "fixtures" / "rules"])
    report = replay_rule_scenarios(rules, load_catalog())
    assert report.attacks and not report.missed and not report.false_positives


# ---- the HTML report in a real browser --------------------------------------------------------------------------


def _chromium() -> str:
    path = shutil.which("chromium") or shutil.which("chromium-browser") or "/usr/bin/chromium"
    if not Path(path).exists():
        pytest.fail("headless Chromium is missing: bash scripts/test.sh installs it (apt-get install -y chromium)")
    return path


def _run_chromium(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    flags = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
             "--disable-component-update", "--disable-sync", "--no-first-run",
             f"--user-data-dir={tmp_path / 'profile'}"]
    return subprocess.run([_chromium(), *flags, *args], capture_output=True, text=True, timeout=180, check=False)


def _png(data: bytes) -> tuple[int, int, bytes]:
    """Width, height and the zlib-decoded (still filtered) image data of a PNG."""
    assert data[:8] == b"\x89PNG\r\n\x1a\n", "not a PNG"
    pos, idat, header = 8, b"", b""
    while pos < len(data):
        length, kind = struct.unpack(">I4s", data[pos:pos + 8])
        chunk = data[pos + 8:pos + 8 + length]
        assert zlib.crc32(kind + chunk) == struct.unpack(">I", data[pos + 8 + length:pos + 12 + length])[0]
        if kind == b"IHDR":
            header = chunk
        elif kind == b"IDAT":
            idat += chunk
        pos += 12 + length
    width, height = struct.unpack(">II", header[:8])
    return width, height, zlib.decompress(idat)


def test_report_renders_in_headless_chromium(demo: DemoResult, tmp_path: Path) -> None:
    page = demo.options.html_path.resolve()
    shot = tmp_path / "report.png"
    run = _run_chromium(tmp_path, f"--screenshot={shot}", f"--window-size={WIDTH},{HEIGHT}", page.as_uri())
    assert shot.exists(), run.stderr[-2000:]
    data = shot.read_bytes()
    width, height, pixels = _png(data)
    assert (width, height) == (WIDTH, HEIGHT)
    assert len(data) > 100_000, "a page of tables, a timeline and a matrix compresses to far more than a blank one"
    # PNG filters turn flat areas into zero bytes: a blank page decodes to (nearly) all zeros
    busy = sum(1 for b in pixels[::7] if b) / len(pixels[::7])
    assert busy > 0.03, f"only {busy:.1%} of the image data is non-zero: the screenshot is (nearly) blank"
    assert len(Counter(pixels[::7])) > 200


def test_report_dom_names_the_attacks_and_techniques(demo: DemoResult, tmp_path: Path) -> None:
    run = _run_chromium(tmp_path, "--dump-dom", demo.options.html_path.resolve().as_uri())
    dom = run.stdout
    assert "<title>aisoc demo report: red-team run on a simulated AI platform</title>" in dom, run.stderr[-2000:]
    for attack in demo.attacks:
        assert attack.activity.name in dom
    assert dom.count('class="verdict det">DETECTED') == len(ATTACKS) and "MISSED</span>" not in dom
    for technique in ("AML.T0024.002", "AML.T0020", "AML.T0010.003", "AML.T0043"):
        assert technique in dom
    assert "Alerts timeline" in dom and "<svg" in dom and "INC-001" in dom
    assert "No alert fired on benign activity." in dom
    assert "<script" not in dom and "http://" not in dom.replace("http://www.w3.org/2000/svg", "")
