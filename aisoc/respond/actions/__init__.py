"""The response actions, by the name playbooks use in `action:`."""

from __future__ import annotations

from aisoc.respond.actions.attest import ReattestModelArtifacts
from aisoc.respond.actions.base import Action, ActionError, Change, Result, RunInfo
from aisoc.respond.actions.evidence import SnapshotEvidence, verify_bundle
from aisoc.respond.actions.litellm import BlockApiKey, RotateApiKey, ThrottleApiKey
from aisoc.respond.actions.mlflow import RollbackModelAlias
from aisoc.respond.actions.quarantine import QuarantineDataSource, is_quarantined, load_quarantine

ACTIONS: dict[str, type[Action]] = {
    cls.name: cls
    for cls in (RollbackModelAlias, ThrottleApiKey, BlockApiKey, RotateApiKey, QuarantineDataSource,
                ReattestModelArtifacts, SnapshotEvidence)
}

__all__ = [
    "ACTIONS", "Action", "ActionError", "BlockApiKey", "Change", "QuarantineDataSource", "ReattestModelArtifacts",
    "Result", "RollbackModelAlias", "RotateApiKey", "RunInfo", "SnapshotEvidence", "ThrottleApiKey",
    "is_quarantined", "load_quarantine", "verify_bundle",
]
