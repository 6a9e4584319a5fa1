"""Runtime directories: ``<runtime>/<SVC>/{log,etc,console,data,run}``, flat or FHS.

The copkg convention: one directory per service coordinate, so a tool finds any instance's
logs, config, data and pid file from its name alone. With ``svc.layout = fhs`` the
directories an operator expects in FHS places (ALT Linux' per-service log, lib and spool
dirs) move there and the runtime dir links to them, so both conventions hold::

    <runtime>/<SVC>/log   -> <fhs_root>/var/log/<SVC>
    <runtime>/<SVC>/data  -> <fhs_root>/var/lib/<SVC>
    <runtime>/<SVC>/spool -> <fhs_root>/var/spool/<SVC>
    <runtime>/<SVC>/run   -> <fhs_root>/run/<SVC>

``etc/`` and ``console/`` always stay in the runtime dir. Directories are created mode
0750 and owned by the service user; an existing directory is never chowned behind the
operator's back: if the service user cannot write it, starting fails and says why.

Shipyard's own bookkeeping (the state file with the recorded process identity, the
per-instance lock) lives under ``<paths.run>/svc/``, not in the runtime dir, because the
service user can write its runtime dir and must not be able to steer what root signals.
"""

from __future__ import annotations

import errno
import os
import stat
from dataclasses import dataclass
from pathlib import Path

from shipyard.config import Settings
from shipyard.coords import ServiceCoord
from shipyard.errors import ConfigError, ShipyardError
from shipyard.svc.users import ServiceUser, owner_name

FLAT_DIRS = ("log", "etc", "console", "data", "run")
FHS_PLACES = {"log": "var/log", "data": "var/lib", "spool": "var/spool", "run": "run"}
DIR_MODE = 0o750
PID_FILE = "start.pid"


@dataclass(frozen=True)
class Runtime:
    """Where one instance's files are, in the configured layout."""

    coordinate: ServiceCoord
    root: Path
    layout: str
    fhs_root: Path

    @property
    def names(self) -> tuple[str, ...]:
        if self.layout == "fhs":
            return ("log", "etc", "console", "data", "spool", "run")
        return FLAT_DIRS

    def fhs_target(self, name: str) -> Path | None:
        if self.layout != "fhs" or name not in FHS_PLACES:
            return None
        return self.fhs_root / FHS_PLACES[name] / str(self.coordinate)

    def dir(self, name: str) -> Path:
        """The path inside the runtime dir (a link in the FHS layout)."""
        return self.root / name

    def real_dir(self, name: str) -> Path:
        return self.fhs_target(name) or self.root / name

    @property
    def pid_file(self) -> Path:
        return self.real_dir("run") / PID_FILE

    @property
    def console(self) -> Path:
        return self.root / "console"

    @property
    def stdout_log(self) -> Path:
        return self.console / "stdout.log"

    @property
    def stderr_log(self) -> Path:
        return self.console / "stderr.log"


def runtime_for(settings: Settings, coordinate: ServiceCoord) -> Runtime:
    layout = settings.svc.layout.strip().lower()
    if layout not in ("flat", "fhs"):
        raise ConfigError(f"svc.layout must be 'flat' or 'fhs', got {layout!r}")
    fhs_root = Path(os.path.abspath(settings.svc.fhs_root))
    return Runtime(coordinate, coordinate.runtime_path(settings.runtime_root), layout, fhs_root)


def state_dir(settings: Settings) -> Path:
    return settings.run_dir / "svc"


def state_path(settings: Settings, coordinate: ServiceCoord) -> Path:
    return state_dir(settings) / f"{coordinate}.state"


def lock_path(settings: Settings, coordinate: ServiceCoord) -> Path:
    return state_dir(settings) / f"{coordinate}.lock"


# ---------------------------------------------------------------------------------------
# Creating and checking


def _fail(path: Path, exc: OSError, what: str = "cannot create runtime dir") -> ShipyardError:
    reason = exc.strerror or str(exc)
    if exc.errno == errno.ENOTDIR:
        reason = "a path component is not a directory"
    return ShipyardError(f"{what} {path}: {reason}")


def _check_writable(path: Path, st: os.stat_result, user: ServiceUser) -> None:
    if not stat.S_ISDIR(st.st_mode):
        raise ShipyardError(f"runtime dir {path} is not a directory")
    try:
        read_only = bool(os.statvfs(path).f_flag & os.ST_RDONLY)
    except OSError:
        read_only = False
    if read_only:
        raise ShipyardError(f"runtime dir {path} is not writable: read-only file system")
    if not user.can_write(st):
        raise ShipyardError(
            f"runtime dir {path} is not writable by user {user.name} "
            f"(owner {owner_name(st.st_uid)}, mode {stat.S_IMODE(st.st_mode):04o})"
        )


def _make_dir(path: Path, user: ServiceUser) -> None:
    """Create ``path`` (mode 0750, owned by ``user``) or check an existing one."""
    try:
        os.mkdir(path, DIR_MODE)
    except FileExistsError:
        try:
            st = os.stat(path)
        except OSError as exc:
            raise _fail(path, exc) from None
        _check_writable(path, st, user)
        return
    except OSError as exc:
        raise _fail(path, exc) from None
    try:
        os.chmod(path, DIR_MODE)
        if os.geteuid() == 0 and user.uid != 0:
            os.chown(path, user.uid, user.gid)
    except OSError as exc:
        raise _fail(path, exc, "cannot set owner of runtime dir") from None


def _make_parents(path: Path) -> None:
    try:
        path.mkdir(mode=0o755, parents=True, exist_ok=True)
    except FileExistsError:
        raise ShipyardError(f"cannot create runtime dir {path}: it exists and is not a "
                            "directory") from None
    except OSError as exc:
        raise _fail(path, exc) from None


def _link(link: Path, target: Path) -> None:
    try:
        current = os.readlink(link)
    except FileNotFoundError:
        try:
            os.symlink(target, link)
        except OSError as exc:
            raise _fail(link, exc, "cannot link runtime dir") from None
        return
    except OSError as exc:
        if exc.errno == errno.EINVAL:
            raise ShipyardError(
                f"runtime dir {link} is a directory but svc.layout is fhs (expected a link "
                f"to {target}); move its content there or set svc.layout = flat"
            ) from None
        raise _fail(link, exc, "cannot read runtime link") from None
    if Path(current) != target:
        raise ShipyardError(f"runtime link {link} points to {current}, expected {target}")


_reachable: set[tuple[int, Path]] = set()


def check_reachable(path: Path, user: ServiceUser, what: str) -> None:
    """Every directory above ``path`` must let ``user`` through (a 0700 /tmp/x stops it).

    Checked up front because the service would otherwise fail later with a bare
    "Permission denied" from deep inside its start script.
    """
    if user.uid == 0 or (user.uid, path) in _reachable:
        return
    for parent in reversed(path.parents):
        try:
            st = os.stat(parent)
        except OSError:
            break
        if not user.can_traverse(st):
            raise ShipyardError(
                f"{what} {path} is not reachable by user {user.name}: {parent} is mode "
                f"{stat.S_IMODE(st.st_mode):04o} (owner {owner_name(st.st_uid)})"
            )
    _reachable.add((user.uid, path))


def ensure(runtime: Runtime, user: ServiceUser) -> None:
    """Create every directory of the instance for ``user``, or say why it cannot be used."""
    _make_parents(runtime.root.parent)
    check_reachable(runtime.root, user, "runtime dir")
    _make_dir(runtime.root, user)
    for name in runtime.names:
        target = runtime.fhs_target(name)
        if target is None:
            _make_dir(runtime.root / name, user)
            continue
        _make_parents(target.parent)
        check_reachable(target, user, "runtime dir")
        _make_dir(target, user)
        _link(runtime.root / name, target)


def open_console(path: Path, user: ServiceUser) -> int:
    """Open a console file for appending, owned by ``user``; never through a link."""
    flags = os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC
    try:
        fd = os.open(path, flags, 0o640)
    except OSError as exc:
        raise _fail(path, exc, "cannot open console file") from None
    if os.geteuid() == 0 and user.uid != 0:
        st = os.fstat(fd)
        if st.st_uid != user.uid:
            os.fchown(fd, user.uid, user.gid)
    return fd
