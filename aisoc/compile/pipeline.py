"""pySigma processing pipelines for aisoc's logsources."""

from __future__ import annotations

from sigma.processing.conditions import LogsourceCondition
from sigma.processing.pipeline import ProcessingItem, ProcessingPipeline
from sigma.processing.transformations import SetStateTransformation

from aisoc.rules.model import LAYERS

DEFAULT_NAMESPACE = "*"


def index_pattern(layer: str | None, namespace: str = DEFAULT_NAMESPACE) -> str:
    """Data stream pattern of a layer: `logs-aisoc.<layer>-<namespace>` (all layers when unknown)."""
    return f"logs-aisoc.{layer}-{namespace}" if layer else f"logs-aisoc.*-{namespace}"


def elasticsearch_pipeline(namespace: str = DEFAULT_NAMESPACE) -> ProcessingPipeline:
    """Point each `product: aisoc` logsource at its layer's data streams (used by ES|QL's FROM)."""
    return ProcessingPipeline(
        name="aisoc data streams",
        priority=20,
        items=[
            ProcessingItem(
                identifier=f"aisoc_index_{layer}",
                transformation=SetStateTransformation("index", index_pattern(layer, namespace)),
                rule_conditions=[LogsourceCondition(product="aisoc", category=layer)],
            )
            for layer in LAYERS
        ],
    )
