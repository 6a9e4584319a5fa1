"""The accepted queue: the publisher's intake of uploads into the pool and the database.

Each upload is checked again (``upload`` checked it too, but the queue is a directory
anyone with write access can drop files into). A coordinate already known with other bytes
is refused: the upload goes to ``incoming/rejected/`` with a ``.reason`` beside it, for the
operator. Identical bytes are a no-op. A new package is hard-linked into ``pool/``, made
durable, then recorded with its channel marked dirty, in batches of :data:`BATCH` so
thousands of uploads cost a few transactions and one ``syncfs`` rather than one fsync each.
"""

from __future__ import annotations

import ctypes
import os
import time
from dataclasses import dataclass, field
from pathlib import Path

from shipyard.config import Settings
from shipyard.errors import ShipyardError
from shipyard.formats.archive import compression_of
from shipyard.formats.index import PackageEntry, pool_path
from shipyard.fsutil import atomic_write, fsync_dir, remove_tree, sha256_file
from shipyard.repo.generation import link_or_copy
from shipyard.repo.layout import Repository
from shipyard.repo.store import Key, RepoStore
from shipyard.repo.upload import QueuedUpload, queued, validate_archive

BATCH = 200
STALE_STAGING_SECONDS = 24 * 3600


@dataclass
class IntakeResult:
    """What happened to each upload (``{"coordinate", "channel", "upload"}``, or for a
    rejection ``{"upload", "reason", "kept"}``): the publisher's ``--json`` lists these."""

    accepted: list[dict[str, str]] = field(default_factory=list)
    unchanged: list[dict[str, str]] = field(default_factory=list)
    rejected: list[dict[str, str]] = field(default_factory=list)


def process_queue(settings: Settings | None, repo: Repository, store: RepoStore
                  ) -> IntakeResult:
    """Take every queued upload in (call under the publish lock)."""
    intake = _Intake(settings, repo, store)
    sweep_staging(repo)
    items = queued(repo)
    seen: dict[Key, str] = {}
    for start in range(0, len(items), BATCH):
        intake.process_batch(items[start:start + BATCH], seen)
    return intake.result


class _Intake:
    def __init__(self, settings: Settings | None, repo: Repository, store: RepoStore) -> None:
        self.settings = settings
        self.repo = repo
        self.store = store
        self.channels = repo.config.channels
        self.result = IntakeResult()

    def process_batch(self, batch: list[QueuedUpload], seen: dict[Key, str]) -> None:
        checked: list[tuple[QueuedUpload, PackageEntry]] = []
        for item in batch:
            try:
                checked.append((item, self.check_upload(item)))
            except ShipyardError as exc:
                self.reject(item, exc.message)
        known = self.store.lookup((e.group, e.id, e.version) for _, e in checked)
        new: list[tuple[PackageEntry, str]] = []
        members: list[tuple[Key, str]] = []
        done: list[QueuedUpload] = []
        dirs: set[Path] = set()
        for item, entry in checked:
            key = (entry.group, entry.id, entry.version)
            previous = seen.get(key) or (known[key].entry.sha256 if key in known else None)
            channel = item.channel or ""
            info = {"coordinate": str(entry.coord), "channel": channel, "upload": item.name}
            if previous is not None and previous != entry.sha256:
                self.reject(item, f"{entry.coord} is already in the repository with other "
                                  f"content (sha256 {previous[:16]}..., this upload "
                                  f"{entry.sha256[:16]}...); a published coordinate never "
                                  "changes: give the package a new version")
                continue
            if previous is not None:
                members.append((key, channel))
                self.result.unchanged.append(info)
            else:
                dirs |= place_in_pool(item.archive, self.repo.root / entry.filename,
                                      entry.sha256)
                new.append((entry, channel))
                seen[key] = entry.sha256
                self.result.accepted.append(info)
            done.append(item)
        make_durable(self.repo.root, dirs)
        if new or members:
            self.store.accept(new, members)
        for item in done:
            remove_tree(item.dir, ignore_errors=True)
        if done:
            fsync_dir(self.repo.incoming)

    def check_upload(self, item: QueuedUpload) -> PackageEntry:
        if item.channel is None:
            raise ShipyardError(f"upload {item.name} has no readable upload.json naming its "
                                "channel")
        if item.channel not in self.channels:
            raise ShipyardError(f"upload {item.name} is for unknown channel {item.channel!r}")
        if not item.archive.is_file():
            raise ShipyardError(f"upload {item.name} does not hold exactly one archive")
        manifest = validate_archive(self.settings, item.archive)
        digest = sha256_file(item.archive)
        if item.sha256 is not None and item.sha256 != digest:
            raise ShipyardError(f"upload {item.name}: archive changed after it was uploaded "
                                f"(sha256 {digest[:16]}..., upload.json says "
                                f"{item.sha256[:16]}...)")
        coord = manifest.coord
        return PackageEntry(
            group=coord.group, id=coord.id, version=manifest.version,
            filename=pool_path(coord, compression_of(item.archive)),
            size=item.archive.stat().st_size, sha256=digest, summary=manifest.summary,
            maintainer=manifest.maintainer,
            requires=tuple(str(r) for r in manifest.requires),
            service=manifest.service is not None,
        )

    def reject(self, item: QueuedUpload, reason: str) -> None:
        """Keep the upload aside with the reason, for the operator (never deleted)."""
        name = item.archive.name if item.archive.name != "(no single archive)" else "upload"
        atomic_write(item.dir / f"{name}.reason", reason + "\n")
        self.repo.rejected.mkdir(parents=True, exist_ok=True)
        target = self.repo.rejected / item.name
        suffix = 1
        while target.exists():
            suffix += 1
            target = self.repo.rejected / f"{item.name}.{suffix}"
        os.rename(item.dir, target)
        fsync_dir(self.repo.rejected)
        fsync_dir(self.repo.incoming)
        self.result.rejected.append({"upload": item.name, "reason": reason,
                                     "kept": str(target)})


def place_in_pool(archive: Path, target: Path, sha256: str) -> set[Path]:
    """Hard-link an accepted archive into the pool; returns the directories to fsync.

    A file already at ``target`` was left by a run that died before it recorded the
    package: the same bytes are kept, other bytes are replaced (nothing published names a
    pool file the database does not know).
    """
    dirs: set[Path] = {target.parent}
    missing = target.parent
    while not missing.exists():
        dirs.add(missing.parent)
        missing = missing.parent
    target.parent.mkdir(parents=True, exist_ok=True)
    if target.exists() and sha256_file(target) == sha256:
        return dirs
    temp = target.with_name(f".{target.name}.{os.getpid()}.tmp")
    if temp.exists():
        temp.unlink()
    link_or_copy(archive, temp)
    os.chmod(temp, 0o644)
    os.replace(temp, target)
    return dirs


_libc: ctypes.CDLL | None = None


def make_durable(root: Path, dirs: set[Path]) -> None:
    """fsync a few directories, or ``syncfs`` the repository's filesystem for many (one
    journal commit instead of one per directory when thousands of uploads arrive)."""
    if not dirs:
        return
    if len(dirs) <= 16:
        for directory in sorted(dirs, key=lambda p: len(p.parts), reverse=True):
            fsync_dir(directory)
        return
    global _libc
    try:
        if _libc is None:
            _libc = ctypes.CDLL(None, use_errno=True)
        fd = os.open(root, os.O_RDONLY | os.O_DIRECTORY)
        try:
            if _libc.syncfs(fd) != 0:
                raise OSError(ctypes.get_errno(), "syncfs failed")
        finally:
            os.close(fd)
    except (OSError, AttributeError):
        os.sync()


def sweep_staging(repo: Repository) -> None:
    """Remove upload staging dirs of uploaders that died a day ago (never a live one)."""
    cutoff = time.time() - STALE_STAGING_SECONDS
    for path in repo.incoming.glob(".tmp-*"):
        try:
            if path.stat().st_mtime < cutoff:
                remove_tree(path, ignore_errors=True)
        except FileNotFoundError:
            pass
