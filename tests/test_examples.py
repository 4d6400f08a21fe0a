"""The shipped examples stay valid for the code in this checkout."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml

from aisoc.config import load_config
from tests.conftest import REPO

EXAMPLE_CONFIGS = sorted((REPO / "examples").rglob("aisoc*.yml"))


@pytest.mark.parametrize("path", EXAMPLE_CONFIGS, ids=lambda p: str(p.relative_to(REPO)))
def test_example_config_is_valid(path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    for name in set(re.findall(r"\$\{([A-Z0-9_]+)", path.read_text())):
        monkeypatch.setenv(name, "example-secret")
    config = load_config(path)
    assert config.receiver.sources or config.collectors or config.sinks.elasticsearch


def test_every_collector_has_an_example() -> None:
    from aisoc.collectors.registry import REPLAYERS

    text = (REPO / "examples" / "aisoc.yml").read_text()
    kinds = set(re.findall(r"(?:type|kind): (\w+)", text))
    assert {"mlflow", "training_batches", "object_access_logs", "modelscan", "huggingface"} <= kinds
    assert {"litellm", "kserve", "mlflow_webhook"} <= kinds
    assert set(REPLAYERS) - {"litellm", "kserve"} <= kinds


def test_ci_example_uploads_sarif() -> None:
    workflow = yaml.safe_load((REPO / "examples" / "ci" / "github-validate-rules.yml").read_text())
    steps = workflow["jobs"]["validate"]["steps"]
    assert any("--format sarif" in str(s.get("run", "")) for s in steps)
    assert any("upload-sarif" in str(s.get("uses", "")) for s in steps)


def test_new_rule_example_validates_and_passes(cli) -> None:  # noqa: ANN001
    rules = REPO / "examples" / "new-rule" / "rules"
    code, out, _ = cli("validate", rules, "--no-lock")
    assert code == 0, out
    code, out, _ = cli("test", rules)
    assert code == 0 and "1 passed, 0 failed" in out
