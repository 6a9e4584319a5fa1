"""What one instance is doing, read-only: running, starting, stopped or dead.

Nothing is written or adopted here (``svc status`` may run as any user, any time); a
start or stop in progress is seen by its instance lock or its orphaned start script.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from pathlib import Path

from shipyard import procs
from shipyard.svc import state
from shipyard.svc.context import Context
from shipyard.svc.live import orphan_script
from shipyard.svc.pidfile import pid_file_check
from shipyard.svc.registry import Registration


@dataclass
class Status:
    coordinate: str
    package: str
    state: str            # running | stopped | dead | starting
    pid: int | None
    uptime: float | None
    boot: bool
    user: str
    detail: str = ""

    def to_dict(self) -> dict[str, object]:
        return {"service": self.coordinate, "package": self.package, "state": self.state,
                "pid": self.pid, "uptime": None if self.uptime is None else round(
                    self.uptime, 1), "boot": self.boot, "user": self.user,
                "detail": self.detail}


def _busy(path: Path) -> bool:
    """True while another command holds the instance lock (a start or stop in progress)."""
    import fcntl

    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    except OSError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except OSError:
        return True
    finally:
        os.close(fd)
    return False


def status(ctx: Context, reg: Registration) -> Status:
    """The truth about one instance, read-only (nothing is written or adopted)."""
    coordinate = reg.coordinate
    busy = _busy(ctx.lock_path(coordinate)) or orphan_script(ctx, coordinate) is not None
    user = ctx.known_user(reg.user)

    def made(now: str, pid: int | None, uptime: float | None, detail: str = "") -> Status:
        return Status(str(coordinate), str(reg.package), now, pid, uptime, reg.boot,
                      reg.user, detail)

    record = state.load(ctx.state_path(coordinate))
    if record is not None and not procs.same_boot(record.boot_id):
        record = None
    if record is not None and procs.is_running(record.pid, record.start):
        return made("running", record.pid, max(0.0, time.time() - record.create_time))
    ident, _why = pid_file_check(ctx.runtime(coordinate), user)
    if ident is not None:
        return made("starting" if busy else "running", ident.pid,
                    max(0.0, time.time() - ident.create_time),
                    "" if busy else "adopted from run/start.pid")
    if busy:
        return made("starting", None, None)
    if record is not None:
        return made("dead", record.pid, None, f"pid {record.pid} exited without svc stop")
    return made("stopped", None, None)


def may_be_active(ctx: Context, reg: Registration) -> bool:
    """Cheap pre-check for shutdown: anything recorded, a pid file, or a start under way.

    A cleanly stopped instance has neither a record nor a pid file, so hundreds of them
    cost two ``stat`` calls each; everything else goes through the full stop checks.
    """
    coordinate = reg.coordinate
    return (os.path.exists(ctx.state_path(coordinate))
            or os.path.lexists(ctx.runtime(coordinate).pid_file)
            or os.path.exists(ctx.intent_path(coordinate))
            or _busy(ctx.lock_path(coordinate)))


def is_active(ctx: Context, reg: Registration) -> bool:
    return status(ctx, reg).state in ("running", "starting")
