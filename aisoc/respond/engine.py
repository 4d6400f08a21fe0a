"""Run a playbook against an alert: dry-run by default, approval-gated execution, audit, rollback.

`respond(alert, playbook, audit_log=..., context=...)` plans every step and returns what would
change (action, target, before -> after) without changing anything. With `execute=True` it applies
the steps in order, provided the playbook's approval policy is met (`approval: require` needs
`approved_by`). Every attempt is appended to the hash-chained audit log: the run (who approved,
when, the alert), each step (inputs, before/after, result or error), each undo, and the outcome.

If a step fails (and its `on_failure` is `rollback`, the default), the steps already applied are
undone in reverse order and the run reports `rolled_back`; if an undo itself fails the run reports
`rollback_failed` and names what is left to fix by hand. Nothing raises to the caller for an action
failure: the report says what happened.

Statuses: `planned` (dry run), `plan_failed` (a step cannot be planned: nothing was done),
`not_applicable` (trigger gates refuse the alert), `approval_required`, `completed`,
`completed_with_errors` (a `continue` step failed), `rolled_back`, `rollback_failed`.
"""

from __future__ import annotations

import logging
import uuid
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from aisoc.respond.actions import ACTIONS, Action, ActionError, Change, Result, RunInfo
from aisoc.respond.audit import AuditLog
from aisoc.respond.context import ResponseContext
from aisoc.respond.model import Playbook
from aisoc.respond.secrets import MissingSecret
from aisoc.respond.templating import TemplateError, flat_fields, render_params

log = logging.getLogger(__name__)


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


@dataclass
class StepReport:
    index: int
    id: str
    action: str
    status: str = "pending"  # planned | plan_failed | applied | unchanged | failed | undone | undo_failed | skipped
    target: str = ""
    before: dict[str, Any] = field(default_factory=dict)
    after: dict[str, Any] = field(default_factory=dict)
    summary: str = ""
    error: str = ""
    details: dict[str, Any] = field(default_factory=dict)


@dataclass
class RunReport:
    run_id: str
    playbook: str
    alert_id: str
    rule_id: str
    mode: str  # dry_run | execute
    status: str = "pending"
    approved_by: str | None = None
    approved_at: str | None = None
    steps: list[StepReport] = field(default_factory=list)
    message: str = ""
    audit_head: str = ""

    @property
    def changed_nothing(self) -> bool:
        return self.status in ("planned", "plan_failed", "not_applicable", "approval_required", "rolled_back")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def summary(self) -> str:
        """A few lines for a person: what would change / what changed, step by step."""
        lines = [f"{self.playbook} on alert {self.alert_id} ({self.mode}): {self.status}"
                 + (f" - {self.message}" if self.message else "")]
        for step in self.steps:
            change = f"{step.before} -> {step.after}" if step.before or step.after else ""
            lines.append(f"  {step.index + 1}. {step.action} [{step.status}] {step.target} {change}".rstrip()
                         + (f"  error: {step.error}" if step.error else ""))
        return "\n".join(lines)


def _alert_ids(alert: dict[str, Any]) -> tuple[str, str]:
    flat = flat_fields(alert)
    return str(flat.get("event.id") or ""), str(flat.get("rule.id") or "")


class _Run:
    """One playbook run: holds the actions, the audit log and the report."""

    def __init__(self, alert: dict[str, Any], playbook: Playbook, audit: AuditLog, context: ResponseContext,
                 mode: str, approved_by: str | None) -> None:
        self.alert = alert
        self.playbook = playbook
        self.audit = audit
        self.context = context
        alert_id, rule_id = _alert_ids(alert)
        self.report = RunReport(uuid.uuid4().hex, playbook.id, alert_id, rule_id, mode, approved_by=approved_by,
                                approved_at=_now() if approved_by else None)
        self.info = RunInfo(self.report.run_id, playbook.id, alert_id, rule_id, approved_by, dict(alert))
        self.actions: list[Action] = []
        self.params: list[Any] = []  # validated Params models, one per step

    def record(self, kind: str, **fields: Any) -> None:
        r = self.report
        entry = {"type": kind, "run_id": r.run_id, "playbook": r.playbook, "alert_id": r.alert_id,
                 "rule_id": r.rule_id, "mode": r.mode, "actor": self.context.actor,
                 "approved_by": r.approved_by, "approved_at": r.approved_at, **fields}
        written = self.audit.append(self.context.secrets.scrub(entry))
        r.audit_head = written["hash"]

    def finish(self, status: str, message: str = "") -> RunReport:
        self.report.status = status
        self.report.message = message
        self.record("run_finished", status=status, message=message,
                    steps=[{"id": s.id, "action": s.action, "status": s.status} for s in self.report.steps])
        for action in self.actions:
            try:
                action.close()
            except Exception:  # noqa: BLE001
                log.debug("closing %s failed", action.name, exc_info=True)
        log.info("playbook %s run %s on alert %s: %s %s", self.playbook.id, self.report.run_id[:8],
                 self.report.alert_id, status, message)
        return self.report

    # -- preparation: render parameters and build actions (no I/O)
    def prepare(self) -> str:
        for index, (step, step_id) in enumerate(zip(self.playbook.steps, self.playbook.step_ids(), strict=True)):
            self.report.steps.append(StepReport(index, step_id, step.action))
        for index, step in enumerate(self.playbook.steps):
            report = self.report.steps[index]
            cls = ACTIONS.get(step.action)
            if cls is None:
                report.status, report.error = "plan_failed", f"unknown action {step.action!r}"
                return report.error
            try:
                params = render_params(step.params, self.alert, self.context.vars)
            except TemplateError as exc:
                report.status, report.error = "plan_failed", str(exc)
                return f"step {report.id}: {exc}"
            action = cls(self.context, self.info)
            try:
                self.params.append(action.parse(params))
            except ActionError as exc:
                report.status, report.error = "plan_failed", str(exc)
                return f"step {report.id}: {exc}"
            self.actions.append(action)
        return ""

    def plan_all(self) -> str:
        failure = ""
        for index, action in enumerate(self.actions):
            report = self.report.steps[index]
            try:
                change = action.plan(self.params[index])
            except (ActionError, MissingSecret, PermissionError, OSError) as exc:
                report.status, report.error = "plan_failed", self.context.secrets.scrub(str(exc))
                failure = failure or f"step {report.id}: {report.error}"
                continue
            except Exception as exc:  # noqa: BLE001 - a bug in an action must not reach the caller
                log.exception("planning step %s (%s) raised", report.id, action.name)
                report.status = "plan_failed"
                report.error = self.context.secrets.scrub(f"{type(exc).__name__}: {exc}")
                failure = failure or f"step {report.id}: {report.error}"
                continue
            self._fill(report, change)
            report.status = "planned"
        return failure

    @staticmethod
    def _fill(report: StepReport, change: Change | Result) -> None:
        report.target, report.before, report.after = change.target, change.before, change.after
        report.summary = getattr(change, "summary", "") or report.summary

    def execute(self) -> RunReport:
        done: list[tuple[int, Result]] = []
        errors: list[str] = []
        for index, action in enumerate(self.actions):
            step = self.playbook.steps[index]
            report = self.report.steps[index]
            inputs = self.params[index].model_dump()
            try:
                result = action.apply(self.params[index])
            except Exception as exc:  # noqa: BLE001 - any failure must lead to rollback, not a crash
                message = self.context.secrets.scrub(f"{exc}" if isinstance(exc, ActionError)
                                                     else f"{type(exc).__name__}: {exc}")
                report.status, report.error = "failed", message
                self.record("step", step=report.id, index=index, action=action.name, phase="apply",
                            status="failed", inputs=inputs, error=message)
                log.warning("playbook %s step %s (%s) failed: %s", self.playbook.id, report.id, action.name, message)
                if step.on_failure == "continue":
                    errors.append(f"step {report.id}: {message}")
                    continue
                return self.rollback(done, f"step {report.id} failed: {message}")
            self._fill(report, result)
            report.summary = str(result.details.get("summary", report.summary))
            report.details = result.details
            report.status = "applied" if result.changed else ("done" if not action.mutating else "unchanged")
            self.record("step", step=report.id, index=index, action=action.name, phase="apply", status=report.status,
                        inputs=inputs, target=result.target, before=result.before, after=result.after,
                        details=result.details, changed=result.changed, undo_data=result.undo_data)
            if result.changed and step.should_undo:
                done.append((index, result))
        if errors:
            return self.finish("completed_with_errors", "; ".join(errors))
        return self.finish("completed")

    def rollback(self, done: list[tuple[int, Result]], reason: str) -> RunReport:
        left: list[str] = []
        for index, result in reversed(done):
            action = self.actions[index]
            report = self.report.steps[index]
            try:
                action.undo(result)
            except Exception as exc:  # noqa: BLE001
                message = self.context.secrets.scrub(str(exc))
                report.status = "undo_failed"
                report.error = message
                left.append(f"step {report.id} ({action.name} on {result.target}): {message}")
                self.record("undo", step=report.id, index=index, action=action.name, phase="undo", status="failed",
                            target=result.target, restore=result.before, error=message)
                continue
            report.status = "undone"
            self.record("undo", step=report.id, index=index, action=action.name, phase="undo", status="ok",
                        target=result.target, restore=result.before)
        irreversible = [f"step {r.id} ({r.action})" for r in self.report.steps
                        if r.status == "applied" and not self.playbook.steps[r.index].should_undo
                        and ACTIONS[r.action].mutating]
        for index in range(len(self.report.steps)):
            if self.report.steps[index].status in ("planned", "pending"):
                self.report.steps[index].status = "skipped"
        if left or irreversible:
            detail = "; ".join(left + [f"{i} was not undone (the action has no undo, or undo: false)"
                                       for i in irreversible])
            return self.finish("rollback_failed", f"{reason}; NOT restored: {detail}")
        return self.finish("rolled_back", f"{reason}; every applied step was undone, the system is as it was")


def respond(
    alert: dict[str, Any],
    playbook: Playbook,
    *,
    execute: bool = False,
    approved_by: str | None = None,
    audit_log: AuditLog | str | Path,
    context: ResponseContext,
    force: bool = False,
) -> RunReport:
    """Dry-run (default) or execute `playbook` for `alert`; every attempt goes to `audit_log`.

    `force=True` runs a playbook whose trigger gates (severity, layers, selection) refuse the alert
    — an analyst's explicit choice, recorded as such. Action failures never raise (the report says
    what happened); an audit log that cannot be written does (`AuditError`, `OSError`): nothing is
    done without a record, and the first record is written before any step runs.
    """
    audit = audit_log if isinstance(audit_log, AuditLog) else AuditLog(audit_log, context.secrets.scrub)
    approver = approved_by.strip() if isinstance(approved_by, str) and approved_by.strip() else None
    run = _Run(alert, playbook, audit, context, "execute" if execute else "dry_run", approver)
    applies, why = playbook.applies_to(alert)
    run.record("run_started", approval_policy=playbook.approval, forced=force and not applies,
               trigger_matched=applies, alert=alert)
    if not applies and not force:
        return run.finish("not_applicable", why)
    problem = run.prepare()
    if problem:
        return run.finish("plan_failed", problem + " (nothing was changed)")
    problem = run.plan_all()
    run.record("plan", steps=[{"id": s.id, "action": s.action, "status": s.status, "target": s.target,
                               "before": s.before, "after": s.after, "error": s.error} for s in run.report.steps],
               inputs=[p.model_dump() for p in run.params])
    if problem:
        return run.finish("plan_failed", problem + " (nothing was changed)")
    if not execute:
        return run.finish("planned", "dry run: nothing was changed")
    if playbook.approval == "require" and approver is None:
        for step in run.report.steps:
            step.status = "skipped"
        return run.finish("approval_required",
                          f"{playbook.id} requires approval: run again with approved_by=<person> (nothing was changed)")
    return run.execute()


def undo_run(
    run_id: str,
    playbook: Playbook,
    *,
    approved_by: str | None = None,
    audit_log: AuditLog | str | Path,
    context: ResponseContext,
) -> RunReport:
    """Undo a finished run (say, once the incident is closed): its applied steps, in reverse.

    The steps and what their undo needs are read from the audit log, so this works from any
    process. Undo is approval-gated like the playbook; each undo is audited; an undo that finds
    the target changed by someone else since refuses, and the report says `undo_failed`.
    """
    audit = audit_log if isinstance(audit_log, AuditLog) else AuditLog(audit_log, context.secrets.scrub)
    records = [r for r in audit.records() if r.get("run_id") == run_id]
    started = next((r for r in records if r.get("type") == "run_started"), None)
    if started is None:
        raise ValueError(f"run {run_id} is not in {audit.path}")
    if started.get("playbook") != playbook.id:
        raise ValueError(f"run {run_id} ran playbook {started.get('playbook')}, not {playbook.id}")
    undone = {r.get("index") for r in records if r.get("type") == "undo" and r.get("status") == "ok"}
    applied = [r for r in records if r.get("type") == "step" and r.get("phase") == "apply"
               and r.get("status") == "applied" and r.get("index") not in undone]
    approver = approved_by.strip() if isinstance(approved_by, str) and approved_by.strip() else None
    alert = started.get("alert") or {}
    run = _Run(alert, playbook, audit, context, "undo", approver)
    run.report.run_id = run_id
    run.info.run_id = run_id
    run.record("undo_started", approval_policy=playbook.approval, steps=[r.get("step") for r in applied])
    if playbook.approval == "require" and approver is None:
        return run.finish("approval_required", f"undoing {playbook.id} requires approval (nothing was changed)")
    left: list[str] = []
    for record in reversed(applied):
        index = int(record["index"])
        step = playbook.steps[index] if index < len(playbook.steps) else None
        name = str(record.get("action"))
        report = StepReport(index, str(record.get("step")), name, target=str(record.get("target", "")),
                            before=record.get("after") or {}, after=record.get("before") or {})
        run.report.steps.append(report)
        cls = ACTIONS.get(name)
        if cls is None or step is None or step.action != name or not step.should_undo:
            report.status = "skipped"
            report.error = "this step is not undone (no undo, undo: false, or the playbook changed)"
            if cls is not None and cls.mutating:
                left.append(f"step {report.id} ({name}): {report.error}")
            continue
        action = cls(context, run.info)
        run.actions.append(action)
        result = Result(name, report.target, record.get("before") or {}, record.get("after") or {},
                        bool(record.get("changed", True)), record.get("undo_data") or {}, record.get("details") or {})
        try:
            action.undo(result)
        except Exception as exc:  # noqa: BLE001
            message = context.secrets.scrub(str(exc))
            report.status, report.error = "undo_failed", message
            left.append(f"step {report.id} ({name} on {report.target}): {message}")
            run.record("undo", step=report.id, index=index, action=name, phase="undo", status="failed",
                       target=report.target, restore=result.before, error=message)
            continue
        report.status = "undone"
        run.record("undo", step=report.id, index=index, action=name, phase="undo", status="ok",
                   target=report.target, restore=result.before)
    if left:
        return run.finish("undo_failed", "NOT restored: " + "; ".join(left))
    return run.finish("undone", f"{len(run.report.steps)} step(s) undone")
