"""The response action interface: plan (read-only), apply, undo.

- `plan(params) -> Change` reads the current state and says what `apply` would change, before ->
  after. It never writes; a dry run is nothing but plans.
- `apply(params) -> Result` makes the change (re-reading the state first) and returns what undo
  needs. It raises `ActionError` when it cannot, having left nothing half-done.
- `undo(result)` puts back what `apply` changed, and refuses (raises) when someone else has changed
  the same thing since, rather than clobber their change.

`undoable` says whether undo exists; `mutating` whether the action changes the outside world at all
(verifying a signature or copying evidence does not, so there is nothing to undo).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import asdict, dataclass, field
from typing import Any, ClassVar

from pydantic import BaseModel, ConfigDict, ValidationError

from aisoc.respond.context import ResponseContext


class ActionError(RuntimeError):
    """An action could not plan, apply or undo; the message says what and why."""


@dataclass
class RunInfo:
    """Who is running what: recorded by actions that leave marks (quarantine entries, manifests)."""

    run_id: str = ""
    playbook: str = ""
    alert_id: str = ""
    rule_id: str = ""
    approved_by: str | None = None
    alert: dict[str, Any] = field(default_factory=dict)


@dataclass
class Change:
    """What a step would change: on `target`, `before` -> `after`."""

    action: str
    target: str
    before: dict[str, Any]
    after: dict[str, Any]
    summary: str = ""

    @property
    def noop(self) -> bool:
        return self.before == self.after

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "noop": self.noop}


@dataclass
class Result:
    """What a step did, and what its undo needs."""

    action: str
    target: str
    before: dict[str, Any]
    after: dict[str, Any]
    changed: bool = True
    undo_data: dict[str, Any] = field(default_factory=dict)
    details: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


class Params(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Action(ABC):
    """One response action. Subclasses set `name`, `Params`, `undoable`, `mutating`."""

    name: ClassVar[str]
    Params: ClassVar[type[Params]]
    undoable: ClassVar[bool] = False
    mutating: ClassVar[bool] = True
    description: ClassVar[str] = ""

    def __init__(self, context: ResponseContext, run: RunInfo | None = None) -> None:
        self.context = context
        self.run = run or RunInfo()

    def parse(self, params: dict[str, Any] | Params) -> Any:
        """Validated parameters (raises ActionError naming the bad parameter)."""
        if isinstance(params, self.Params):
            return params
        try:
            return self.Params.model_validate(params)
        except ValidationError as exc:
            problems = "; ".join(f"{'.'.join(str(p) for p in e['loc']) or 'params'}: {e['msg']}"
                                 for e in exc.errors())
            raise ActionError(f"{self.name}: invalid parameters: {problems}") from None

    @abstractmethod
    def plan(self, params: dict[str, Any] | Params) -> Change: ...

    @abstractmethod
    def apply(self, params: dict[str, Any] | Params) -> Result: ...

    def undo(self, result: Result) -> None:
        raise ActionError(f"{self.name} cannot be undone")

    def close(self) -> None:  # noqa: B027 - optional hook
        """Release clients (HTTP connections)."""
