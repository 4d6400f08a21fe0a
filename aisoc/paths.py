"""Where aisoc's shipped data lives, in a source checkout and in an installed wheel."""

from __future__ import annotations

from pathlib import Path

_PACKAGE_DIR = Path(__file__).resolve().parent


def data_path(rel: str) -> Path:
    """Path of shipped data (`rules/`, `atlas/`, `playbooks/`, ...).

    A wheel carries it under `aisoc/_data/`; a source checkout keeps it at the repository root.
    """
    packaged = _PACKAGE_DIR / "_data" / rel
    if packaged.exists():
        return packaged
    return _PACKAGE_DIR.parent / rel
