"""``repo upload``: put a checked archive into the accepted queue.

An upload is one directory ``incoming/<time>-<random>/`` holding the archive under its own
name (``<id>-<version>.tar.gz``, which the archive check insists on) and ``upload.json``
(channel, coordinate, sha256, size). It is assembled as ``incoming/.tmp-*`` and renamed into
place after an fsync, so the publisher sees a complete upload or none, whatever dies when.

The publisher re-checks everything (the queue is a directory; it trusts nothing in it), but
an upload is checked here too so the uploader hears about a bad archive or a coordinate that
already exists with other bytes at once rather than from the next cron run.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from shipyard.config import Settings
from shipyard.coords import PackageCoord
from shipyard.errors import ShipyardError
from shipyard.fsutil import atomic_write, fsync_dir, remove_tree, sha256_file
from shipyard.manifest import Manifest
from shipyard.repo.layout import Repository, open_repository
from shipyard.repo.store import RepoStore

META_NAME = "upload.json"


@dataclass(frozen=True)
class QueuedUpload:
    """One complete upload in ``incoming/``."""

    dir: Path
    archive: Path
    channel: str | None
    sha256: str | None

    @property
    def name(self) -> str:
        return self.dir.name


def validate_archive(settings: Settings | None, path: Path) -> Manifest:
    """The package checks every archive passes before it enters the repository."""
    from shipyard.formats.archive import inspect_archive

    if settings is None:
        return inspect_archive(path)
    return inspect_archive(path, max_members=int(settings.get("pkg.max_members")),
                           max_bytes=int(settings.get("pkg.max_bytes")),
                           max_ratio=int(settings.get("pkg.max_ratio")))


def upload(settings: Settings | None, repo_dir: str | os.PathLike[str],
           archive_path: str | os.PathLike[str], channel: str | None = None, *,
           db_url: str | None = None) -> PackageCoord:
    """Check ``archive_path`` and queue it for ``channel`` (default: the repository's
    default channel). Returns the archive's coordinate."""
    repo = open_repository(repo_dir, db_url=db_url)
    source = Path(archive_path)
    if not source.is_file():
        raise ShipyardError(f"{source}: no such archive")
    target_channel = repo.channel_or_default(channel)
    manifest = validate_archive(settings, source)
    coord = manifest.coord
    digest = sha256_file(source)
    known = RepoStore(repo.db_url).find(coord)
    if known is not None and known.entry.sha256 != digest:
        raise ShipyardError(
            f"{coord} is already in the repository with other content "
            f"(sha256 {known.entry.sha256[:16]}..., this archive {digest[:16]}...); "
            "a published coordinate never changes: give the package a new version")
    _enqueue(repo, source, coord, target_channel, digest)
    return coord


def _enqueue(repo: Repository, source: Path, coord: PackageCoord, channel: str,
             digest: str) -> QueuedUpload:
    now = datetime.now(UTC)
    name = f"{now:%Y%m%dT%H%M%S%f}-{secrets.token_hex(4)}"
    staging = repo.incoming / f".tmp-{name}"
    staging.mkdir(parents=True)
    try:
        archive = staging / source.name
        with open(source, "rb") as src, open(archive, "wb") as dst:
            shutil.copyfileobj(src, dst, 1 << 20)
            dst.flush()
            os.fsync(dst.fileno())
        os.chmod(archive, 0o644)
        if sha256_file(archive) != digest:
            raise ShipyardError(f"{source} changed while it was uploaded")
        meta = {"channel": channel, "coordinate": str(coord), "sha256": digest,
                "size": archive.stat().st_size, "uploaded": now.strftime("%Y-%m-%dT%H:%M:%SZ")}
        atomic_write(staging / META_NAME, json.dumps(meta, sort_keys=True) + "\n")
        final = repo.incoming / name
        os.rename(staging, final)
    except BaseException:
        remove_tree(staging, ignore_errors=True)
        raise
    fsync_dir(repo.incoming)
    return QueuedUpload(final, final / source.name, channel, digest)


def queued(repo: Repository) -> list[QueuedUpload]:
    """Complete uploads, oldest first (names start with their time)."""
    items: list[QueuedUpload] = []
    try:
        names = sorted(os.listdir(repo.incoming))
    except FileNotFoundError:
        return items
    for name in names:
        path = repo.incoming / name
        if name.startswith(".") or name == "rejected" or not path.is_dir():
            continue
        archives = [p for p in path.iterdir() if p.name != META_NAME
                    and not p.name.endswith(".reason") and p.is_file()]
        meta: dict[str, object] = {}
        try:
            meta = json.loads((path / META_NAME).read_text(encoding="utf-8"))
        except (OSError, ValueError):
            meta = {}
        archive = archives[0] if len(archives) == 1 else path / "(no single archive)"
        channel = meta.get("channel") if isinstance(meta.get("channel"), str) else None
        sha = meta.get("sha256") if isinstance(meta.get("sha256"), str) else None
        items.append(QueuedUpload(path, archive, channel, sha))  # type: ignore[arg-type]
    return items
