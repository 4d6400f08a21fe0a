"""docker compose cannot run on CI machines: check the file's structure and its consistency instead."""

from __future__ import annotations

import yaml

from aisoc.config import load_config
from aisoc.testing.es_node import DEFAULT_VERSION
from tests.conftest import REPO


def test_compose_stack_is_complete_and_consistent(monkeypatch) -> None:  # noqa: ANN001
    compose = yaml.safe_load((REPO / "docker-compose.yml").read_text())
    services = compose["services"]
    assert set(services) == {"elasticsearch", "kibana", "mlflow", "aisoc"}
    es_tag = services["elasticsearch"]["image"].rsplit(":", 1)[1]
    assert es_tag == services["kibana"]["image"].rsplit(":", 1)[1] == DEFAULT_VERSION  # what the tests run
    for name, service in services.items():
        for port in service.get("ports", []):
            assert port.startswith("127.0.0.1:"), f"{name} publishes {port} beyond loopback"
    aisoc = services["aisoc"]
    mount = next(v for v in aisoc["volumes"] if v.endswith(":/etc/aisoc/aisoc.yml:ro"))
    config_path = REPO / mount.split(":")[0].removeprefix("./")
    monkeypatch.setenv("AISOC_RECEIVER_TOKEN", "x")
    config = load_config(config_path)  # the mounted config is valid for the code in this checkout
    assert config.sinks.elasticsearch is not None
    assert config.sinks.elasticsearch.url == "http://elasticsearch:9200"
    assert str(config.receiver.port) in aisoc["ports"][0]
    assert (REPO / "Dockerfile").exists() and aisoc["build"] == "."
    mlflow_version = services["mlflow"]["image"].rsplit(":v", 1)[1]
    assert mlflow_version.split(".")[0] == "3"
