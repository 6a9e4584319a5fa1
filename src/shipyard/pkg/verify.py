"""``pkg verify``: compare installed trees with the record kept at install time.

Every recorded file is hashed again; a file whose size, content, type or exec bit differs
is *modified*, a recorded file or directory that is gone is *missing*, and anything below
the package dir that the record does not list is *added* (the installer's own
``.shipyard/`` is not part of the package and is skipped).
"""

from __future__ import annotations

import os
import stat
from dataclasses import dataclass, field
from pathlib import Path

from shipyard.config import Settings
from shipyard.fsutil import sha256_file, walk
from shipyard.pkg import store
from shipyard.pkg.store import InstalledRecord


@dataclass
class VerifyReport:
    coord: str
    path: str
    modified: list[str] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)
    added: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not (self.modified or self.missing or self.added)

    def to_dict(self) -> dict[str, object]:
        return {"coordinate": self.coord, "path": self.path, "ok": self.ok,
                "modified": self.modified, "missing": self.missing, "added": self.added}


def verify(settings: Settings, coord: str | None = None) -> list[VerifyReport]:
    """Reports for every installed package, or for the one ``coord`` names."""
    if coord is None:
        records = store.list_installed(settings)
    else:
        from shipyard.coords import PackageCoord
        from shipyard.errors import ShipyardError

        parsed = PackageCoord.parse(coord)
        if parsed.version is None:
            records = store.installed_versions(settings, parsed.group, parsed.id)
        else:
            record = store.installed_record(settings, parsed)
            records = [record] if record is not None else []
        if not records:
            raise ShipyardError(f"{parsed} is not installed")
    return [verify_record(record) for record in records]


def verify_record(record: InstalledRecord) -> VerifyReport:
    assert record.path is not None
    root = record.path
    report = VerifyReport(str(record.coord), str(root))
    for name, expected in sorted(record.files.items()):
        path = root / name
        try:
            info = path.lstat()
        except FileNotFoundError:
            report.missing.append(name)
            continue
        except NotADirectoryError:
            report.missing.append(name)
            continue
        if not stat.S_ISREG(info.st_mode):
            report.modified.append(name)
            continue
        executable = bool(info.st_mode & stat.S_IXUSR)
        if (info.st_size != expected.size or executable != expected.executable
                or sha256_file(path) != expected.sha256):
            report.modified.append(name)
    recorded_dirs = set(record.dirs)
    implicit = {parent for name in record.files for parent in _parents(name)}
    for name in sorted(recorded_dirs):
        if not (root / name).is_dir() or (root / name).is_symlink():
            report.missing.append(name + "/")
    for dirpath, dirnames, filenames in walk(root):  # no recursion: any depth is fine
        rel_dir = os.path.relpath(dirpath, root)
        rel_dir = "" if rel_dir == "." else rel_dir
        if rel_dir == "":
            dirnames[:] = [d for d in dirnames if d != store.RECORD_DIR]
        for name in sorted(dirnames):
            rel = f"{rel_dir}/{name}" if rel_dir else name
            if rel not in recorded_dirs and rel not in implicit:
                report.added.append(rel + "/")
        for name in sorted(filenames):
            rel = f"{rel_dir}/{name}" if rel_dir else name
            if rel not in record.files:
                report.added.append(rel)
    report.added.sort()
    report.missing.sort()
    return report


def _parents(name: str) -> list[str]:
    parts = Path(name).parts[:-1]
    return ["/".join(parts[: i + 1]) for i in range(len(parts))]
