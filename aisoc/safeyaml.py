"""Bounded, alias-free YAML loading for every file a user hands aisoc (rules, playbooks, configs).

`yaml.safe_load` already refuses arbitrary objects; on top of that we refuse aliases (a "billion
laughs" document expands exponentially once walked) and files over a size cap, and we turn every
failure into a `YamlLoadError` that names the file, the line and what to do.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

DEFAULT_MAX_BYTES = 1024 * 1024


class YamlLoadError(ValueError):
    def __init__(self, path: Path | str, message: str, line: int | None = None, fix: str = "") -> None:
        self.path = str(path)
        self.line = line
        self.message = message
        self.fix = fix
        where = f"{self.path}:{line}" if line else self.path
        super().__init__(f"{where}: {message}" + (f" ({fix})" if fix else ""))


class _NoAliasLoader(yaml.SafeLoader):
    """SafeLoader that rejects anchors' uses (`*alias`) instead of expanding them."""

    def compose_node(self, parent: Any, index: Any) -> Any:  # type: ignore[override]
        if self.check_event(yaml.AliasEvent):
            event = self.peek_event()
            raise yaml.composer.ComposerError(
                None, None, "YAML aliases (*name) are not allowed in aisoc files", event.start_mark
            )
        return super().compose_node(parent, index)


def read_text_capped(path: Path, max_bytes: int = DEFAULT_MAX_BYTES) -> str:
    """Read a UTF-8 file, refusing it before reading when it is larger than `max_bytes`."""
    try:
        size = path.stat().st_size
    except OSError as exc:
        raise YamlLoadError(path, f"cannot read file: {exc.strerror or exc}") from None
    if size > max_bytes:
        raise YamlLoadError(
            path,
            f"file is {size / 1024 / 1024:.1f} MiB, over the {max_bytes // 1024} KiB limit",
            fix="split it or check that it is the file you meant",
        )
    try:
        return path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise YamlLoadError(path, f"not UTF-8 text (byte {exc.start})", fix="save the file as UTF-8") from None
    except OSError as exc:
        raise YamlLoadError(path, f"cannot read file: {exc.strerror or exc}") from None


def load_all(text: str, path: Path | str) -> list[Any]:
    """Parse every YAML document in `text` safely; errors carry file and line."""
    try:
        return list(yaml.load_all(text, Loader=_NoAliasLoader))  # noqa: S506 - SafeLoader subclass
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark is not None else None
        problem = exc.problem or str(exc)
        if exc.context:
            problem = f"{exc.context}, {problem}"
        fix = ("write the value out in full instead of referring to an anchor" if "aliases" in problem
               else "fix the YAML syntax at that line")
        raise YamlLoadError(path, f"invalid YAML: {problem}", line, fix=fix) from None
    except yaml.YAMLError as exc:
        raise YamlLoadError(path, f"invalid YAML: {exc}", fix="fix the YAML syntax") from None


def load_file(path: Path, max_bytes: int = DEFAULT_MAX_BYTES) -> list[Any]:
    return load_all(read_text_capped(path, max_bytes), path)


def line_of(text: str, needle: str, start_line: int = 1) -> int | None:
    """First line (1-based, at or after `start_line`) whose text contains `needle`."""
    for number, line in enumerate(text.splitlines(), start=1):
        if number >= start_line and needle in line:
            return number
    return None
