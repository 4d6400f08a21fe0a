"""MITRE ATLAS: the shipped catalog (tactics, techniques) and rule coverage reports.

Names are re-exported lazily so that ``python -m aisoc.atlas.catalog`` runs without the module
being imported twice.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from aisoc.atlas.catalog import (
        AtlasCatalog,
        AtlasFormatError,
        Tactic,
        Technique,
        load_catalog,
        parse_official,
        short_name_for,
        update_catalog,
    )
    from aisoc.atlas.coverage import (
        CoverageReport,
        RuleCoverageInput,
        build_coverage,
        coverage_html,
        coverage_json,
        coverage_text,
        navigator_layer,
    )

_EXPORTS: dict[str, str] = {
    "AtlasCatalog": "catalog",
    "AtlasFormatError": "catalog",
    "Tactic": "catalog",
    "Technique": "catalog",
    "load_catalog": "catalog",
    "parse_official": "catalog",
    "short_name_for": "catalog",
    "update_catalog": "catalog",
    "CoverageReport": "coverage",
    "RuleCoverageInput": "coverage",
    "build_coverage": "coverage",
    "coverage_html": "coverage",
    "coverage_json": "coverage",
    "coverage_text": "coverage",
    "navigator_layer": "coverage",
}

__all__ = [
    "AtlasCatalog",
    "AtlasFormatError",
    "CoverageReport",
    "RuleCoverageInput",
    "Tactic",
    "Technique",
    "build_coverage",
    "coverage_html",
    "coverage_json",
    "coverage_text",
    "load_catalog",
    "navigator_layer",
    "parse_official",
    "short_name_for",
    "update_catalog",
]


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'aisoc.atlas' has no attribute {name!r}")
    value = getattr(importlib.import_module(f"aisoc.atlas.{module}"), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_EXPORTS))
