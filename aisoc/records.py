"""What flows out of a source: ECS events, and the records that could not become one."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Rejected:
    """A record that could not become an event: where it came from, why, and its raw bytes.

    Rejected records go to the dead-letter store; nothing is silently dropped.
    """

    source: str  # file:line, URL, or collector + record id
    reason: str
    raw: bytes | str
    line: int | None = None
