"""Test helpers for aisoc: a real, throwaway Elasticsearch node (see `aisoc.testing.es_node`).

Names are loaded lazily so `python -m aisoc.testing.es_node` does not import the module twice.
"""

from __future__ import annotations

import importlib
from typing import Any

__all__ = [
    "ElasticsearchNode",
    "EsNodeError",
    "ensure_distribution",
    "session_es_url",
    "wait_for_health",
]


def __getattr__(name: str) -> Any:
    if name in __all__:
        return getattr(importlib.import_module("aisoc.testing.es_node"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
