"""``svc cleanup``: remove a stopped instance's runtime dir, archiving first if asked.

copkg's "cleaning up need not be more complicated than removing the runtime directory",
plus the part it left for later: securing logs and data before an ephemeral disk goes. The
archive is ``<DIR>/<SVC>-<UTC time>.tar.gz`` holding the runtime dir entry itself and
``etc/``, ``log/`` and ``data/`` (followed through the FHS links; modes kept, so secrets
stay 0600), written under a temporary name and renamed, so a half-written archive never
looks complete. ``svc restore`` (:mod:`shipyard.svc.restore`) is the way back. The
registration stays; ``svc unregister`` removes it.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tarfile
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from shipyard.config import Settings
from shipyard.coords import ServiceCoord
from shipyard.errors import ShipyardError
from shipyard.fsutil import fsync_dir
from shipyard.svc import control, registry, state
from shipyard.svc.runtime import Runtime, state_path

# What an archive holds: the instance's data (copkg's etc/ is instance config, which the
# operator guide counts as instance data); console/ and run/ describe one run only.
ARCHIVED = ("etc", "log", "data")


@dataclass
class Cleaned:
    coordinate: str
    removed: list[str]
    archive: str | None

    def to_dict(self) -> dict[str, object]:
        return {"service": self.coordinate, "removed": self.removed, "archive": self.archive}


def archive(runtime: Runtime, directory: Path) -> Path:
    directory = Path(directory)
    try:
        directory.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ShipyardError(f"cannot create archive dir {directory}: {exc.strerror}") from None
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
    name = f"{runtime.coordinate}-{stamp}.tar.gz"
    target = directory / name
    counter = 1
    while target.exists():
        target = directory / f"{runtime.coordinate}-{stamp}.{counter}.tar.gz"
        counter += 1
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=directory)
    try:
        with os.fdopen(fd, "wb") as raw, tarfile.open(fileobj=raw, mode="w:gz") as tar:
            if runtime.root.is_dir():
                tar.add(runtime.root, arcname=str(runtime.coordinate), recursive=False)
            for part in ARCHIVED:
                source = runtime.real_dir(part)
                if source.is_dir():
                    tar.add(source, arcname=f"{runtime.coordinate}/{part}")
        with open(tmp, "rb") as handle:
            os.fsync(handle.fileno())
        os.chmod(tmp, 0o640)
        os.replace(tmp, target)
        fsync_dir(directory)
    except OSError as exc:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise ShipyardError(f"cannot write archive {target}: {exc.strerror or exc}") from None
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    return target


def _remove(path: Path, removed: list[str]) -> None:
    if os.path.islink(path):
        os.unlink(path)
        return
    if path.is_dir():
        shutil.rmtree(path)
        removed.append(str(path))


def cleanup(settings: Settings, coordinate_text: str, archive_dir: Path | None = None
            ) -> Cleaned:
    coordinate = ServiceCoord.parse(coordinate_text)
    ctx = control.Context(settings)
    runtime = ctx.runtime(coordinate)
    reg = registry.load(settings, coordinate)
    if reg is None and not runtime.root.exists() and not any(
            t is not None and t.exists() for t in map(runtime.fhs_target, runtime.names)):
        raise ShipyardError(f"unknown service {coordinate}: not registered and no "
                            f"runtime dir at {runtime.root}")  # and no lock file made
    with ctx.lock(coordinate):
        if reg is not None:
            current = control.live_record(ctx, reg, adopt=False)
            if current is not None:
                raise ShipyardError(f"{coordinate} is running (pid {current.pid}); "
                                    "stop it before cleaning up")
        else:
            from shipyard.svc import procs

            record = state.load(ctx.state_path(coordinate))
            if record is not None and procs.is_running(record.pid, record.start):
                raise ShipyardError(f"{coordinate} is running (pid {record.pid}); "
                                    "stop it before cleaning up")
        targets = [runtime.fhs_target(n) for n in runtime.names]
        existing = runtime.root.exists() or any(t is not None and t.exists() for t in targets)
        if not existing:
            if reg is None:
                raise ShipyardError(f"unknown service {coordinate}: not registered and no "
                                    f"runtime dir at {runtime.root}")
            raise ShipyardError(f"{coordinate} has no runtime dir to clean up "
                                f"({runtime.root})")
        saved = archive(runtime, archive_dir) if archive_dir is not None else None
        removed: list[str] = []
        try:
            for target in targets:
                if target is not None:
                    _remove(target, removed)
            _remove(runtime.root, removed)
        except OSError as exc:
            raise ShipyardError(f"cannot remove runtime dir of {coordinate}: "
                                f"{exc.strerror or exc}") from None
        with contextlib.suppress(FileNotFoundError):
            state_path(settings, coordinate).unlink()
    return Cleaned(str(coordinate), removed, str(saved) if saved else None)
