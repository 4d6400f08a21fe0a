"""Test helpers for aisoc: a real, throwaway Elasticsearch node (see `aisoc.testing.es_node`)."""

from __future__ import annotations

from aisoc.testing.es_node import (
    ElasticsearchNode,
    EsNodeError,
    ensure_distribution,
    session_es_url,
    wait_for_health,
)

__all__ = [
    "ElasticsearchNode",
    "EsNodeError",
    "ensure_distribution",
    "session_es_url",
    "wait_for_health",
]
