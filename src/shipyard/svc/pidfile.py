"""``run/start.pid``: reading it, and judging whether the pid it names is the instance's.

A start script (or the ``[service] exec`` wrapper) writes the pid; a service restarted
outside Shipyard writes its new one there too. A pid is only believed when its process
is alive, is not newer than the file, belongs to the service user, and the file was
written during this boot: otherwise it may name a stranger that got the pid later.
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path

from shipyard import procs
from shipyard.svc import users as users_mod
from shipyard.svc.runtime import Runtime
from shipyard.svc.users import ServiceUser

GARBAGE = "garbage"
STALE = "stale"


def read_pid_file(path: Path) -> tuple[int | None, str, float]:
    """(pid or None, raw text, mtime); raw is '' when the file is missing."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
    except OSError:
        return None, "", 0.0
    try:
        raw = os.read(fd, 64).decode("ascii", "replace")
        mtime = os.fstat(fd).st_mtime
    finally:
        os.close(fd)
    text = raw.strip()
    if text.isdigit() and 1 < int(text) < 1 << 31:
        return int(text), raw, mtime
    return None, raw if raw else " ", mtime


def user_mismatch(ident: procs.Identity, user: ServiceUser | None) -> bool:
    """Whether the process runs as someone other than the service user (as root only)."""
    return (user is not None and os.geteuid() == 0 and user.uid != 0
            and ident.uid not in (-1, user.uid))


def pid_file_check(runtime: Runtime, user: ServiceUser | None
                   ) -> tuple[procs.Identity | None, str]:
    """Whether ``run/start.pid`` names the instance's process; (identity, why not).

    "Why not" is empty (no file, or its process is gone), :data:`GARBAGE`, :data:`STALE`
    (written before this boot), or a sentence saying whose process the pid names now.
    """
    pid, raw, mtime = read_pid_file(runtime.pid_file)
    if pid is None:
        return None, "" if not raw else GARBAGE
    ident = procs.identify(pid)
    if ident is None or not ident.alive:
        return None, ""
    if mtime < procs.boot_time() - 2:
        return None, STALE
    if ident.create_time > mtime + 1.0:
        return None, (
            f"{runtime.pid_file} names pid {pid}, but that process ({ident.name}, started "
            f"{procs.format_time(ident.create_time)}) is newer than the file (written "
            f"{procs.format_time(mtime)}): the pid was reused by another program"
        )
    if user is not None and user_mismatch(ident, user):
        return None, (
            f"{runtime.pid_file} names pid {pid} ({ident.name}), a process of "
            f"{users_mod.owner_name(ident.uid)}, not of service user {user.name}"
        )
    return ident, ""


def unlink_pid_file(runtime: Runtime) -> None:
    with contextlib.suppress(OSError):
        os.unlink(runtime.pid_file)
