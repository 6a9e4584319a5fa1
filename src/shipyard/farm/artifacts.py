"""The packages workers upload: checked before the body is read, stored durably under a
name that carries the attempt, recorded on the build only while that attempt is current.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from datetime import timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import select

from shipyard.farm.config import FarmConfig
from shipyard.farm.db import FarmDB
from shipyard.farm.errors import FarmError, NotFound
from shipyard.farm.leases import current_attempt
from shipyard.farm.statements import B, set_build
from shipyard.formats.farm import StoredArtifact
from shipyard.fsutil import fsync_dir
from shipyard.timeutil import utcnow

ARCHIVE_RE = re.compile(r"(?P<id>[a-z0-9][a-z0-9._-]*)-(?P<version>[A-Za-z0-9][A-Za-z0-9.+~_-]*)"
                        r"\.tar\.(?:gz|zst)")


def check_upload(db: FarmDB, build_id: int, worker: str, attempt: int, filename: str) -> None:
    """Refuse an upload before reading its body (stale attempt, wrong file name)."""
    with db.rtx() as conn:
        build = current_attempt(conn, build_id, worker, attempt, lock=False)
    _check_archive_name(build, filename)


def _check_archive_name(b: Mapping[str, Any], filename: str) -> str:
    ident = b["package"].partition(":")[2]
    match = ARCHIVE_RE.fullmatch(filename)
    if match is None or ".." in filename or not filename.startswith(ident + "-"):
        raise FarmError(f"upload {filename!r} is not an archive of {b['package']} "
                        f"(expected {ident}-<version>.tar.gz or .tar.zst)")
    # The id may contain '-', so split on the id we expect rather than trusting the regex.
    version = filename[len(ident) + 1:].rsplit(".tar.", 1)[0]
    if b["version"] and version != b["version"]:
        raise FarmError(f"upload {filename!r} is version {version}, the build is of "
                        f"{b['package']} {b['version']}")
    return version


def artifact_file(cfg: FarmConfig, build_id: int, attempt: int, name: str) -> Path:
    """Where the coordinator keeps a build's package: one flat directory, so storing one
    is a rename and one directory fsync; the attempt is in the name, so a stale attempt's
    upload can never replace or remove the current one's."""
    return cfg.artifacts / f"{build_id}-a{attempt}-{name}"


def store_artifact(db: FarmDB, cfg: FarmConfig, build_id: int, worker: str, attempt: int,
                   filename: str, staged: Path, size: int, sha256: str) -> StoredArtifact:
    """Move a fully received (and fsynced) upload into place, then record it on the build
    if the attempt is still current. The file is durable before the row names it; a file
    of an attempt that lost the race is removed again."""
    target = artifact_file(cfg, build_id, attempt, filename)
    os.replace(staged, target)
    fsync_dir(target.parent)
    try:
        with db.tx() as conn:
            build = current_attempt(conn, build_id, worker, attempt)
            version = _check_archive_name(build, filename)
            changes = {"artifact_name": filename, "artifact_size": size,
                       "artifact_sha256": sha256,
                       "lease_expires_at": utcnow() + timedelta(seconds=cfg.lease_seconds)}
            if build["version"] is None:
                changes["version"] = version
            set_build(conn, build_id, changes)
    except BaseException:
        target.unlink(missing_ok=True)
        raise
    return StoredArtifact(name=filename, size=size, sha256=sha256)


def artifact_path(db: FarmDB, cfg: FarmConfig, build_id: int) -> Path:
    """The stored package of a build (for downloads and the publisher)."""
    with db.rtx() as conn:
        build = conn.execute(select(B.c.artifact_name, B.c.attempt)
                             .where(B.c.id == build_id)).first()
    if build is None:
        raise NotFound(f"no build {build_id}")
    if not build.artifact_name:
        raise NotFound(f"build {build_id} has no package")
    path = artifact_file(cfg, build_id, build.attempt, build.artifact_name)
    if not path.is_file():
        raise NotFound(f"build {build_id}: its package file is gone")
    return path


