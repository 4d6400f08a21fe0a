"""A finding: one problem in one file, said so that whoever reads it knows what to do."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Literal

Severity = Literal["error", "warning"]


@dataclass(frozen=True)
class Finding:
    path: str
    code: str
    message: str
    fix: str = ""
    line: int | None = None
    rule_id: str | None = None
    severity: Severity = "error"

    def location(self) -> str:
        return f"{self.path}:{self.line}" if self.line else self.path

    def to_dict(self) -> dict[str, object]:
        return asdict(self)
