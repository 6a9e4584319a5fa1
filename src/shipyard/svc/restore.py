"""``svc restore SVC ARCHIVE``: put an archive of ``svc cleanup --archive`` back in place.

The way back from an archive, which extracting it by hand does not give: files owned by
whoever ran ``tar`` (root), so the service user cannot write its own data and the start
fails. Here every member is checked before anything is written (regular files and
directories only, under ``<SVC>/etc|log|data``, no absolute or ``..`` names; tarfile's
``data`` filter is a second wall), each part is unpacked into a staging dir beside its
place, given to the instance's service user, and renamed into place: a part is either
restored whole or not at all. Modes are kept, so a secret stays 0600.

The instance must be registered (its user is known) and stopped, and the parts to restore
must be empty or absent (``svc cleanup`` first): a restore never mixes two states.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tarfile
import tempfile
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

from shipyard.config import Settings
from shipyard.coords import ServiceCoord
from shipyard.errors import ShipyardError
from shipyard.fsutil import fsync_dir
from shipyard.svc import control
from shipyard.svc.cleanup import ARCHIVED
from shipyard.svc.runtime import DIR_MODE, ensure
from shipyard.svc.users import ServiceUser

MAX_MEMBERS = 1_000_000


@dataclass
class Restored:
    coordinate: str
    archive: str
    parts: list[str] = field(default_factory=list)
    files: int = 0

    def to_dict(self) -> dict[str, object]:
        return {"service": self.coordinate, "archive": self.archive, "parts": self.parts,
                "files": self.files}


def _plan(tar: tarfile.TarFile, archive: Path) -> dict[str, list[tarfile.TarInfo]]:
    """Members per part, renamed relative to the part; refuses anything unexpected."""
    parts: dict[str, list[tarfile.TarInfo]] = {}
    top: str | None = None
    for count, info in enumerate(tar):
        if count >= MAX_MEMBERS:
            raise ShipyardError(f"{archive}: more than {MAX_MEMBERS} members")
        name = info.name.rstrip("/")
        path = PurePosixPath(name)
        if not name or path.is_absolute() or ".." in path.parts or "\0" in name:
            raise ShipyardError(f"{archive}: member {info.name!r} refused: not a relative "
                                "name inside the archive")
        if not (info.isreg() or info.isdir()):
            raise ShipyardError(f"{archive}: member {info.name!r} refused: only regular "
                                "files and directories are restored")
        if top is None:
            top = path.parts[0]
        if path.parts[0] != top:
            raise ShipyardError(f"{archive}: member {info.name!r} is outside {top}/: not an "
                                "archive of svc cleanup --archive")
        if len(path.parts) == 1:
            continue  # the runtime dir entry itself: recreated for the service user
        part = path.parts[1]
        if part not in ARCHIVED:
            raise ShipyardError(f"{archive}: member {info.name!r} refused: expected "
                                f"{top}/{{{','.join(ARCHIVED)}}}/...")
        info.name = "/".join(path.parts[1:])
        parts.setdefault(part, []).append(info)
    if not parts:
        raise ShipyardError(f"{archive}: holds no etc/, log/ or data/ to restore")
    return parts


def _give(root: Path, user: ServiceUser) -> None:
    """Everything below ``root`` to the service user (root only; others own it already)."""
    if os.geteuid() != 0:
        return
    for directory, dirs, files in os.walk(root):
        os.lchown(directory, user.uid, user.gid)
        for name in dirs + files:
            os.lchown(os.path.join(directory, name), user.uid, user.gid)


def _empty(path: Path) -> bool:
    try:
        return not any(os.scandir(path))
    except FileNotFoundError:
        return True


def restore(settings: Settings, coordinate_text: str, archive: Path) -> Restored:
    coordinate = ServiceCoord.parse(coordinate_text)
    ctx = control.Context(settings)
    reg = control.require_registration(settings, coordinate)
    runtime = ctx.runtime(coordinate)
    try:
        tar = tarfile.open(archive, "r:*")  # noqa: SIM115 - closed by the with below
    except (OSError, tarfile.TarError) as exc:
        raise ShipyardError(f"{archive}: not a readable archive: {exc}") from None
    with tar, ctx.lock(coordinate):
        try:
            parts = _plan(tar, archive)
        except tarfile.TarError as exc:
            raise ShipyardError(f"{archive}: damaged archive: {exc}") from None
        current = control.live_record(ctx, reg, adopt=False)
        if current is not None:
            raise ShipyardError(f"{coordinate} is running (pid {current.pid}); stop it "
                                "before restoring")
        busy = [p for p in parts if not _empty(runtime.real_dir(p))]
        if busy:
            raise ShipyardError(
                f"{coordinate} already has {', '.join(f'{p}/' for p in busy)} "
                f"({runtime.root}); run 'shipyard svc cleanup {coordinate}' first")
        user = ctx.user(reg)
        ensure(runtime, user)
        result = Restored(str(coordinate), str(archive))
        for part, members in sorted(parts.items()):
            target = runtime.real_dir(part)
            staging = Path(tempfile.mkdtemp(prefix=f".restore-{part}-", dir=target.parent))
            try:
                unpacked = staging / part  # members are named <part>/...
                tar.extractall(staging, members=members, filter="data")
                unpacked.mkdir(mode=DIR_MODE, exist_ok=True)
                os.chmod(unpacked, DIR_MODE)
                _give(unpacked, user)
                os.rmdir(target)  # created empty by ensure() a moment ago
                os.rename(unpacked, target)
                fsync_dir(target.parent)
            except (OSError, tarfile.TarError) as exc:
                raise ShipyardError(f"cannot restore {part}/ of {coordinate} from {archive}: "
                                    f"{getattr(exc, 'strerror', None) or exc}") from None
            finally:
                with contextlib.suppress(OSError):
                    shutil.rmtree(staging)
            result.parts.append(part)
            result.files += sum(1 for m in members if m.isreg())
    return result
