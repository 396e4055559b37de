"""The serving root's layout: published index versions and the atomically swapped ``CURRENT`` pointer.

    <root>/<attribute>/versions/<version>/   one complete index folder per version
    <root>/<attribute>/CURRENT               text: the live version's name (local target)
    <root>/<attribute>/PREVIOUS              text: the version CURRENT replaced (for rollback)

On Kubernetes no pointer is written: the pod template's annotations pin the versions (``pins.py``).
"""

from __future__ import annotations

import logging
import os
import shutil
import uuid
from pathlib import Path

from silverset.components.common.artifacts import IndexManifest, read_index_manifest
from silverset.components.common.errors import SilversetInputError

from .build import MANIFEST_FILE

log = logging.getLogger(__name__)

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


def remove_pointer(root: str | Path, attribute: str, name: str = CURRENT) -> None:
    """Remove a pointer (a failed first deploy leaves no CURRENT naming a version nobody verified)."""
    (Path(root) / attribute / name).unlink(missing_ok=True)


def attributes(root: str | Path) -> list[str]:
    """Attributes with a CURRENT pointer under ``root``."""
    root = Path(root)
    if not root.is_dir():
        return []
    return sorted(p.name for p in root.iterdir() if (p / CURRENT).is_file())


def _is_local(root: str) -> bool:
    return "://" not in root or root.startswith("file://")


def _check_same_index(published: IndexManifest, manifest: IndexManifest, where: str) -> None:
    """A version name is derived from the index's content; the same name with another digest is a collision."""
    if published.digest != manifest.digest:
        raise SilversetInputError(
            where,
            f"already holds version {manifest.version} with content digest "
            f"{published.digest[:12]}, not {manifest.digest[:12]}",
        )


def publish_version(index_dir: str | Path, serve_root: str | Path, attribute: str, version: str) -> Path | str:
    """Put the built index folder ``index_dir`` at ``<serve_root>/<attribute>/versions/<version>/``.

    A reader (the index server) sees the whole folder or none of it: on a local root it is copied to a
    hidden staging folder and renamed into place in one step; on an fsspec URI root (``s3://``, ``gs://``,
    no rename there) every file is uploaded before ``manifest.json``, whose presence marks the version as
    published. A no-op when the version is already published (its digest must then match). Returns the
    version folder: a Path for a local root, the URI string otherwise.
    """
    manifest = read_index_manifest(index_dir)
    if (manifest.attribute, manifest.version) != (attribute, version):
        raise SilversetInputError(
            f"index '{index_dir}'",
            f"is {manifest.attribute}/{manifest.version}, not the {attribute}/{version} asked to publish",
        )
    root = str(serve_root)
    if not _is_local(root):
        return _publish_to_object_store(Path(index_dir), root, manifest)
    target = version_dir(root.removeprefix("file://"), attribute, version)
    if target.exists():
        _check_same_index(read_index_manifest(target), manifest, f"serving root '{root}'")
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = target.with_name(f".{version}.{uuid.uuid4().hex[:8]}.tmp")
    shutil.copytree(index_dir, staging)
    try:
        os.replace(staging, target)
    except OSError:  # another publisher renamed the same version into place first
        shutil.rmtree(staging, ignore_errors=True)
        if not target.exists():
            raise
        _check_same_index(read_index_manifest(target), manifest, f"serving root '{root}'")
    log.info("published %s/%s to %s", attribute, version, target)
    return target


def _publish_to_object_store(index_dir: Path, root: str, manifest: IndexManifest) -> str:
    import fsspec

    fs, base = fsspec.core.url_to_fs(root)
    target = f"{base.rstrip('/')}/{manifest.attribute}/versions/{manifest.version}"
    uri = fs.unstrip_protocol(target)
    if fs.exists(f"{target}/{MANIFEST_FILE}"):
        _check_same_index(read_index_manifest(uri), manifest, f"serving root '{root}'")
        return uri
    files = sorted(p for p in index_dir.rglob("*") if p.is_file() and p.name != MANIFEST_FILE)
    for path in files + [index_dir / MANIFEST_FILE]:
        fs.put_file(str(path), f"{target}/{path.relative_to(index_dir).as_posix()}")
    log.info("published %s/%s to %s (%d files)", manifest.attribute, manifest.version, uri, len(files) + 1)
    return uri
