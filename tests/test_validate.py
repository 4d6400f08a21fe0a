"""`aisoc validate`: clean on good rules, and a clear finding (file, problem, what to do) on each bad input."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from xml.etree import ElementTree as ET

import pytest

from tests.conftest import REPO, SINGLE_RULE


def _single(rule_tree: Path) -> Path:
    return rule_tree / "inference" / SINGLE_RULE.name


def test_fixture_rules_are_clean(cli, rule_tree: Path) -> None:
    code, out, _ = cli("validate", rule_tree, "--no-lock")
    assert code == 0, out
    assert "0 error(s)" in out


def test_shipped_pack_is_clean(cli) -> None:
    code, out, _ = cli("validate", REPO / "rules")
    assert code == 0, out
    checked = int(out.splitlines()[-1].split()[0])
    assert checked >= 15


def test_empty_directory_is_a_finding(cli, tmp_path: Path) -> None:
    code, out, _ = cli("validate", tmp_path, "--no-lock")
    assert code == 1
    assert "no rule files" in out


BAD_INPUTS = {
    "yaml-syntax": (lambda t: t.replace("level: high", "level: [high"), "invalid YAML"),
    "unknown-field": (lambda t: t.replace("aisoc.signal.value|gte", "aisoc.signal.valeu|gte"),
                      "'aisoc.signal.valeu' is not in the field registry"),
    "unknown-technique": (lambda t: t.replace("atlas.aml.t0024.002", "atlas.aml.t9999"),
                          "'atlas.aml.t9999' names no ATLAS"),
    "missing-tests": (lambda t: t.split("aisoc:\n")[0], "no 'aisoc:' block with test events"),
    "too-few-tests": (lambda t: t.split("    - name: just under")[0], "3 'match' and 0 'no_match'"),
    "missing-metadata": (lambda t: t.replace("author: aisoc\n", ""), "rule has no 'author'"),
    "wrong-logsource": (lambda t: t.replace("product: aisoc", "product: windows"), "logsource is product='windows'"),
    "disallowed-value": (lambda t: t.replace("event.kind: metric\n    aisoc", "event.kind: metrics\n    aisoc"),
                         "event.kind never takes the value 'metrics'"),
    "test-event-typo": (lambda t: t.replace("aisoc.signal.sample_size: 12,", "aisoc.signal.sampel_size: 12,"),
                        "'aisoc.signal.sampel_size', which is not in the field registry"),
    "bad-condition": (lambda t: t.replace("condition: selection", "condition: selection and"), "sigma"),
}


@pytest.mark.parametrize("case", sorted(BAD_INPUTS))
def test_bad_rule_is_reported_with_file_and_fix(cli, rule_tree: Path, case: str) -> None:
    path = _single(rule_tree)
    edit, expected = BAD_INPUTS[case]
    path.write_text(edit(path.read_text()))
    code, out, err = cli("validate", rule_tree, "--no-lock")
    assert code == 1
    assert "Traceback" not in out + err
    lines = [line for line in out.splitlines() if str(path) in line]
    assert lines, out
    assert expected in out
    assert "->" in out  # every finding says what to do


def test_yaml_error_names_the_line(cli, rule_tree: Path) -> None:
    path = _single(rule_tree)
    path.write_text(path.read_text().replace("level: high", "level: [high"))
    _, out, _ = cli("validate", rule_tree, "--no-lock", "--format", "json")
    finding = next(f for f in json.loads(out)["findings"] if f["code"] == "yaml")
    assert finding["line"] is not None and finding["line"] > 1
    assert finding["path"] == str(path)


def test_duplicate_id_names_both_files(cli, rule_tree: Path) -> None:
    copy = rule_tree / "inference" / "copy_of_logprobs_rule.yml"
    copy.write_text(_single(rule_tree).read_text().replace("Fixture - API key", "Fixture copy - API key"))
    code, out, _ = cli("validate", rule_tree, "--no-lock")
    assert code == 1
    dup = [line for line in out.splitlines() if "is used by more than one rule" in line]
    assert any(str(copy) in line for line in dup) and any(str(_single(rule_tree)) in line for line in dup)


def test_fifty_megabyte_file_is_refused_without_reading_it(cli, rule_tree: Path) -> None:
    huge = rule_tree / "inference" / "huge_rule_file.yml"
    with open(huge, "wb") as fh:
        fh.truncate(50 * 1024 * 1024)
    code, out, err = cli("validate", rule_tree, "--no-lock")
    assert code == 1
    assert f"{huge}: error: file is 50.0 MiB" in out
    assert "Traceback" not in out + err


def test_yaml_alias_bomb_is_refused(cli, rule_tree: Path) -> None:
    bomb = rule_tree / "inference" / "alias_bomb_rule.yml"
    levels = ['a0: &a0 ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]']
    levels += [f"a{i}: &a{i} [" + ",".join([f"*a{i - 1}"] * 9) + "]" for i in range(1, 10)]
    bomb.write_text("title: bomb\n" + "\n".join(levels) + "\n")
    code, out, err = cli("validate", rule_tree, "--no-lock")
    assert code == 1
    assert f"{bomb}:3: error: invalid YAML: YAML aliases (*name) are not allowed" in out
    assert "Traceback" not in out + err


def test_usage_error_exits_2(cli, tmp_path: Path) -> None:
    code, _, err = cli("validate", tmp_path / "does-not-exist")
    assert code == 2
    assert "no such file or directory" in err


def test_sarif_output_is_code_scanning_shaped(cli, rule_tree: Path) -> None:
    path = _single(rule_tree)
    path.write_text(path.read_text().replace("atlas.aml.t0024.002", "atlas.aml.t9999"))
    code, out, _ = cli("validate", rule_tree, "--no-lock", "--format", "sarif")
    assert code == 1
    sarif = json.loads(out)
    assert sarif["version"] == "2.1.0"
    results = sarif["runs"][0]["results"]
    hit = next(r for r in results if r["ruleId"] == "atlas-unknown")
    location = hit["locations"][0]["physicalLocation"]
    assert location["artifactLocation"]["uri"].endswith(path.name)
    assert location["region"]["startLine"] == path.read_text().splitlines().index("  - atlas.aml.t9999") + 1
    rule_ids = [r["id"] for r in sarif["runs"][0]["tool"]["driver"]["rules"]]
    assert rule_ids[hit["ruleIndex"]] == "atlas-unknown"


def test_junit_output_has_one_case_per_file(cli, rule_tree: Path) -> None:
    path = _single(rule_tree)
    path.write_text(path.read_text().replace("author: aisoc\n", ""))
    code, out, _ = cli("validate", rule_tree, "--no-lock", "--format", "junit")
    assert code == 1
    suite = ET.fromstring(out)
    cases = {c.get("name"): c for c in suite.iter("testcase")}
    assert len(cases) == 2
    assert cases[str(path)].find("failure") is not None
    assert suite.get("failures") == "1"


def test_version_lock_catches_unbumped_change(cli, rule_tree: Path) -> None:
    code, out, _ = cli("validate", rule_tree)
    assert code == 1 and "lock-missing" in out
    code, out, _ = cli("lock", rule_tree)
    assert code == 0
    lock = json.loads((rule_tree / "version.lock.json").read_text())
    assert {v["version"] for v in lock.values()} == {1}
    assert cli("validate", rule_tree)[0] == 0
    path = _single(rule_tree)
    # editing test events does not change what runs in the SIEM: no bump needed
    path.write_text(path.read_text().replace("value: 0.79", "value: 0.7"))
    assert cli("validate", rule_tree)[0] == 0
    path.write_text(path.read_text().replace("|gte: 0.8", "|gte: 0.85"))
    code, out, _ = cli("validate", rule_tree)
    assert code == 1 and "changed since version 1" in out
    cli("lock", rule_tree)
    lock = json.loads((rule_tree / "version.lock.json").read_text())
    assert sorted(v["version"] for v in lock.values()) == [1, 2]
    assert cli("validate", rule_tree)[0] == 0


def test_console_script_runs_without_network_or_traceback(rule_tree: Path) -> None:
    bad = _single(rule_tree)
    bad.write_text("title: [unclosed\n")
    proc = subprocess.run(
        [sys.executable, "-m", "aisoc.cli", "validate", str(rule_tree), "--no-lock"],
        capture_output=True, text=True, timeout=120,
    )
    assert proc.returncode == 1
    assert "Traceback" not in proc.stdout + proc.stderr
    assert f"{bad}:" in proc.stdout
