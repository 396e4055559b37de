"""The serving root's layout and its atomically swapped per-attribute ``CURRENT`` pointer.

    <root>/<attribute>/versions/<version>/   one complete index folder per version
    <root>/<attribute>/CURRENT               text: the live version's name
    <root>/<attribute>/PREVIOUS              text: the version CURRENT replaced (for rollback)
"""
from __future__ import annotations

import os
import uuid
from pathlib import Path

CURRENT = "CURRENT"
PREVIOUS = "PREVIOUS"


def version_dir(root: str | Path, attribute: str, version: str) -> Path:
    return Path(root) / attribute / "versions" / version


def read_pointer(root: str | Path, attribute: str, name: str = CURRENT) -> str | None:
    path = Path(root) / attribute / name
    try:
        text = path.read_text().strip()
    except FileNotFoundError:
        return None
    return text or None


def write_pointer(root: str | Path, attribute: str, version: str, name: str = CURRENT) -> None:
    """Replace the pointer in one rename: a reader sees the old or the new version, never neither."""
    folder = Path(root) / attribute
    folder.mkdir(parents=True, exist_ok=True)
    tmp = folder / f".{name}.{uuid.uuid4().hex}.tmp"
    tmp.write_text(version + "\n")
    os.replace(tmp, folder / name)


def attributes(root: str | Path) -> list[str]:
    """Attributes with a CURRENT pointer under ``root``."""
    root = Path(root)
    if not root.is_dir():
        return []
    return sorted(p.name for p in root.iterdir() if (p / CURRENT).is_file())
