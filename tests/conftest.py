from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from typer.testing import CliRunner

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared"
FIXTURE_RULES = REPO / "tests" / "fixtures" / "rules"
SINGLE_RULE = FIXTURE_RULES / "inference" / "logprobs_share_fixture.yml"
CORRELATION_RULE = FIXTURE_RULES / "inference" / "injection_burst_fixture.yml"


@pytest.fixture
def cli():
    """Invoke the real CLI in-process; returns (exit code, stdout, stderr)."""
    from aisoc.cli import app

    runner = CliRunner()

    def invoke(*args: str) -> tuple[int, str, str]:
        result = runner.invoke(app, [str(a) for a in args])
        return result.exit_code, result.stdout, result.stderr

    return invoke


@pytest.fixture
def rule_tree(tmp_path: Path) -> Path:
    """A writable rule tree holding copies of the fixture rules."""
    root = tmp_path / "rules"
    shutil.copytree(FIXTURE_RULES, root)
    return root


@pytest.fixture(scope="session")
def es_url():
    """A real Elasticsearch for the session: $AISOC_TEST_ES_URL if set, else a node started here."""
    from aisoc.testing.es_node import session_es_url

    with session_es_url() as (url, _node):
        yield url
