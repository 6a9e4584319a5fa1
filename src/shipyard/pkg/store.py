"""The software root as the package manager keeps it: paths, records, lock and sweep.

A package dir is ``<software>/<group dots as dirs>/<id>/<version>/`` and holds the package
tree plus ``.shipyard/installed.json``, the record of what was installed (every file with
its sha256, size and exec bit; where it came from; when). The record is written inside the
staging dir before the rename, so a package dir and its record appear in one step: a
directory without a record is never something this module created.

Transient dirs live beside the package dir they belong to, so renames stay on one
filesystem: ``.<version>.staging-<random>`` while installing and
``.<version>.tombstone-<random>`` while uninstalling. Whatever a killed process leaves
behind is swept by the next install or uninstall, under the same ``flock``.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from shipyard import fsutil
from shipyard.config import Settings
from shipyard.coords import PackageCoord, version_key
from shipyard.errors import ShipyardError
from shipyard.fsutil import file_lock, fsync_dir

RECORD_DIR = ".shipyard"
RECORD_NAME = "installed.json"
RECORD_FORMAT = 1
TRANSIENT_RE = re.compile(r"^\..+\.(staging|tombstone)-[A-Za-z0-9_]+$")


@dataclass
class FileRecord:
    sha256: str
    size: int
    executable: bool

    def to_dict(self) -> dict[str, Any]:
        return {"sha256": self.sha256, "size": self.size, "executable": self.executable}


@dataclass
class InstalledRecord:
    """What ``.shipyard/installed.json`` says about one installed package."""

    coord: PackageCoord
    installed_at: str
    source: str
    archive_sha256: str
    archive_size: int
    files: dict[str, FileRecord]
    dirs: list[str] = field(default_factory=list)
    summary: str = ""
    requires: list[str] = field(default_factory=list)
    service: bool = False
    signed_by: str | None = None
    channel: str | None = None
    path: Path | None = None

    @property
    def size(self) -> int:
        return sum(f.size for f in self.files.values())

    def to_dict(self) -> dict[str, Any]:
        return {
            "format": RECORD_FORMAT,
            "coordinate": str(self.coord),
            "installed_at": self.installed_at,
            "source": self.source,
            "archive_sha256": self.archive_sha256,
            "archive_size": self.archive_size,
            "summary": self.summary,
            "requires": list(self.requires),
            "service": self.service,
            "signed_by": self.signed_by,
            "channel": self.channel,
            "dirs": sorted(self.dirs),
            "files": {name: self.files[name].to_dict() for name in sorted(self.files)},
        }

    def summary_dict(self) -> dict[str, Any]:
        """The record without the file list, for ``list --json`` and ``info --json``."""
        data = self.to_dict()
        del data["files"], data["dirs"], data["format"]
        data.update(path=str(self.path) if self.path else None, size=self.size,
                    file_count=len(self.files))
        return data

    @classmethod
    def from_dict(cls, data: Any, where: str) -> InstalledRecord:
        try:
            if data.get("format") != RECORD_FORMAT:
                raise ValueError(f"unsupported format {data.get('format')!r}")
            files = {
                str(name): FileRecord(str(entry["sha256"]), int(entry["size"]),
                                      bool(entry["executable"]))
                for name, entry in data["files"].items()
            }
            return cls(
                coord=PackageCoord.parse(str(data["coordinate"]), require_version=True),
                installed_at=str(data["installed_at"]), source=str(data["source"]),
                archive_sha256=str(data["archive_sha256"]),
                archive_size=int(data["archive_size"]), files=files,
                dirs=[str(d) for d in data.get("dirs", [])],
                summary=str(data.get("summary", "")),
                requires=[str(r) for r in data.get("requires", [])],
                service=bool(data.get("service", False)),
                signed_by=data.get("signed_by"), channel=data.get("channel"),
            )
        except (KeyError, TypeError, ValueError, AttributeError, ShipyardError) as exc:
            raise ShipyardError(f"{where}: malformed install record ({exc})") from None


def now_iso() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


# ---------------------------------------------------------------------------------------
# Paths


def software_root(settings: Settings) -> Path:
    return Path(os.path.abspath(settings.software_root))


def package_dir(settings: Settings, coord: PackageCoord) -> Path:
    return coord.install_path(software_root(settings))


def record_path(pkg_dir: Path) -> Path:
    return pkg_dir / RECORD_DIR / RECORD_NAME


def state_dir(settings: Settings) -> Path:
    return Path(settings.state_dir) / "pkg"


def lock_path(settings: Settings) -> Path:
    return state_dir(settings) / "install.lock"


def downloads_dir(settings: Settings) -> Path:
    return state_dir(settings) / "downloads"


@contextlib.contextmanager
def install_lock(settings: Settings) -> Iterator[list[str]]:
    """The one lock that every change to the software root holds; sweeps on entry.

    Yields the sweep's warnings (leftovers it could not remove), for the caller to show.
    """
    timeout = float(settings.get("pkg.lock_timeout"))
    with file_lock(lock_path(settings), timeout=timeout, what="the package install lock"):
        _removed, problems = sweep(settings)
        yield problems


# ---------------------------------------------------------------------------------------
# Records


def read_record(pkg_dir: Path) -> InstalledRecord | None:
    """The record of the package dir, ``None`` when the dir holds no record."""
    path = record_path(pkg_dir)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return None
    except (OSError, UnicodeDecodeError) as exc:
        raise ShipyardError(f"{path}: cannot read install record: {exc}") from None
    try:
        data = json.loads(text)
    except ValueError:
        raise ShipyardError(f"{path}: install record is not valid JSON") from None
    record = InstalledRecord.from_dict(data, str(path))
    record.path = pkg_dir
    return record


def write_record(pkg_dir: Path, record: InstalledRecord) -> None:
    """Write the record into a (staging) package dir; made durable with the whole tree."""
    directory = pkg_dir / RECORD_DIR
    directory.mkdir(mode=0o755, exist_ok=True)
    # Compact on purpose: json's C encoder only runs without indent, and the record of a
    # 5,000-file package is written on every install.
    body = (json.dumps(record.to_dict(), sort_keys=True, separators=(",", ":")) + "\n").encode()
    with open(directory / RECORD_NAME, "wb") as handle:
        handle.write(body)


def installed_record(settings: Settings, coord: PackageCoord) -> InstalledRecord | None:
    pkg_dir = package_dir(settings, coord)
    record = read_record(pkg_dir)
    if record is not None and record.coord != coord:
        raise ShipyardError(f"{pkg_dir}: install record names {record.coord}, not {coord}")
    return record


def list_installed(settings: Settings) -> list[InstalledRecord]:
    """Every installed package, sorted by name and version order."""
    root = software_root(settings)
    records: list[InstalledRecord] = []
    if root.is_dir():
        _walk(root, records, depth=0)
    records.sort(key=lambda r: (r.coord.group, r.coord.id, version_key(r.coord.version or "")))
    return records


def _walk(directory: Path, records: list[InstalledRecord], depth: int) -> None:
    if depth > 64:
        return
    try:
        entries = sorted(os.scandir(directory), key=lambda e: e.name)
    except OSError:
        return
    for entry in entries:
        if entry.name.startswith(".") or not entry.is_dir(follow_symlinks=False):
            continue
        path = Path(entry.path)
        record = read_record(path)
        if record is not None:
            records.append(record)
        else:
            _walk(path, records, depth + 1)


def installed_versions(settings: Settings, group: str, ident: str) -> list[InstalledRecord]:
    """Installed versions of ``group:id``, oldest first (cheap: one directory listing)."""
    base = software_root(settings) / PackageCoord(group, ident).relpath()
    found: list[InstalledRecord] = []
    try:
        entries = list(os.scandir(base))
    except OSError:
        return found
    for entry in entries:
        if entry.name.startswith(".") or not entry.is_dir(follow_symlinks=False):
            continue
        record = read_record(Path(entry.path))
        if record is not None and record.coord.group == group and record.coord.id == ident:
            found.append(record)
    found.sort(key=lambda r: version_key(r.coord.version or ""))
    return found


def owning_package(settings: Settings, path: Path) -> Path | None:
    """The installed package dir that ``path`` would lie inside, if any.

    Group labels may look like ids and versions (``org.example.foo:1.0:2`` lands in
    ``org/example/foo/1.0/2``, inside ``org.example:foo:1.0``), so a new package dir is
    never created inside another package's tree.
    """
    root = software_root(settings)
    current = path.parent
    while current != root and root in current.parents:
        if record_path(current).exists():
            return current
        current = current.parent
    return None


# ---------------------------------------------------------------------------------------
# Durable directory creation and removal


def makedirs_durable(path: Path) -> None:
    """``mkdir -p`` where each new directory's entry is fsynced in its parent."""
    missing: list[Path] = []
    current = path
    while not current.exists():
        missing.append(current)
        current = current.parent
    for directory in reversed(missing):
        try:
            directory.mkdir(mode=0o755)
        except FileExistsError:
            continue
        fsync_dir(directory.parent)


def remove_tree(path: Path) -> None:
    """Delete a transient dir, however deep; finishes a tree a killed process half-deleted.

    :func:`shipyard.fsutil.remove_tree` does not recurse, so no tree depth can make it
    fail with ``RecursionError`` (``shutil.rmtree`` did, at about a thousand levels).
    """
    fsutil.remove_tree(path)


def sweep(settings: Settings) -> tuple[list[Path], list[str]]:
    """Remove leftover staging and tombstone dirs and downloads; call under the lock.

    Returns what was removed and one line per leftover that could not be: a leftover that
    resists removal is reported, never fatal, so it cannot stop installs of other packages.
    """
    removed: list[Path] = []
    problems: list[str] = []
    root = software_root(settings)
    if root.is_dir():
        _sweep_dir(root, removed, problems, depth=0)
    downloads = downloads_dir(settings)
    if downloads.is_dir():
        for entry in os.scandir(downloads):
            path = Path(entry.path)
            if sweep_one(path, problems):
                removed.append(path)
    return removed, problems


def sweep_one(path: Path, problems: list[str]) -> bool:
    """Remove one leftover; on failure add a line to ``problems`` and return False."""
    try:
        remove_tree(path)
    except (OSError, RecursionError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        problems.append(f"cannot remove the leftover {path}: {reason}; the next install "
                        "tries again (or remove it by hand)")
        return False
    return True


def _sweep_dir(directory: Path, removed: list[Path], problems: list[str], depth: int) -> None:
    if depth > 64:
        return
    try:
        entries = list(os.scandir(directory))
    except OSError:
        return
    swept = False
    for entry in entries:
        if not entry.is_dir(follow_symlinks=False):
            continue
        path = Path(entry.path)
        if TRANSIENT_RE.match(entry.name):
            if sweep_one(path, problems):
                removed.append(path)
                swept = True
        elif not entry.name.startswith(".") and not record_path(path).exists():
            _sweep_dir(path, removed, problems, depth + 1)
    if swept:
        fsync_dir(directory)


def prune_empty_parents(settings: Settings, directory: Path) -> None:
    """Remove now-empty ``<id>/`` and group dirs up to (not including) the root."""
    root = software_root(settings)
    current = directory
    while current != root and root in current.parents:
        try:
            current.rmdir()
        except OSError:
            return
        fsync_dir(current.parent)
        current = current.parent
