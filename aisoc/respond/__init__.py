"""Response playbooks: YAML playbooks, actions against real systems, dry-run, approval, audit, rollback."""

from aisoc.respond.actions import ACTIONS, Action, ActionError, Change, Result, verify_bundle
from aisoc.respond.audit import AuditLog, verify_audit_log
from aisoc.respond.context import LiteLLMSettings, MlflowSettings, ResponseContext
from aisoc.respond.engine import RunReport, StepReport, respond, undo_run
from aisoc.respond.model import (
    Playbook,
    PlaybookError,
    load_playbook,
    load_playbooks,
    select_playbooks,
    validate_playbooks,
)

__all__ = [
    "ACTIONS", "Action", "ActionError", "AuditLog", "Change", "LiteLLMSettings", "MlflowSettings", "Playbook",
    "PlaybookError", "ResponseContext", "Result", "RunReport", "StepReport", "load_playbook", "load_playbooks",
    "respond", "select_playbooks", "undo_run", "validate_playbooks", "verify_audit_log", "verify_bundle",
]
