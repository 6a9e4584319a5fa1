"""Process identity: which process a pid names *now*, so a reused pid is never signalled.

A pid alone is not an identity: after a crash or a reboot the number in a pid file can
belong to any program (packetfence #3291, rsyslog #407). Shipyard identifies a process by
``(boot id, pid, start time)``. On Linux the start time is the exact clock-tick count from
``/proc/<pid>/stat`` and the boot id comes from ``/proc/sys/kernel/random/boot_id``; wall
clock "create times" drift with NTP and are kept only for display and for comparing with
file times. Elsewhere psutil stands in (imported only there: a shutdown of hundreds of
instances should not pay for it).

A zombie is dead here: in a container whose init does not reap, a stopped service stays a
zombie for a while and must not read as running.
"""

from __future__ import annotations

import contextlib
import os
import signal
import sys
import time
from collections.abc import Iterable
from dataclasses import dataclass

LINUX = sys.platform.startswith("linux") and os.path.isdir("/proc/self")
_DEAD_STATES = ("Z", "X", "x")
_BOOT_ID: str | None = None
_BOOT_TIME: float | None = None
_CLK_TCK = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


def boot_time() -> float:
    """When this machine booted (wall clock, seconds)."""
    global _BOOT_TIME
    if _BOOT_TIME is None:
        import psutil

        _BOOT_TIME = float(psutil.boot_time())
    return _BOOT_TIME


def boot_id() -> str:
    """A string that changes at every boot of this machine."""
    global _BOOT_ID
    if _BOOT_ID is None:
        try:
            with open("/proc/sys/kernel/random/boot_id", encoding="ascii") as handle:
                _BOOT_ID = handle.read().strip()
        except OSError:
            _BOOT_ID = f"btime-{int(boot_time())}"
    return _BOOT_ID


def same_boot(recorded: str) -> bool:
    current = boot_id()
    if recorded == current:
        return True
    if recorded.startswith("btime-") and current.startswith("btime-"):
        return abs(int(recorded[6:]) - int(current[6:])) <= 2
    return False


@dataclass(frozen=True)
class Identity:
    """What a pid names at the moment it was read."""

    pid: int
    start: str        # exact start ticks on Linux, else the create time as text
    create_time: float
    uid: int
    name: str
    zombie: bool

    @property
    def alive(self) -> bool:
        return not self.zombie


@dataclass(frozen=True)
class Handle:
    """A process we may signal later: only while it still has this start time."""

    pid: int
    start: str


def _linux_stat(pid: int) -> tuple[str, str, int, str] | None:
    """(state letter, start ticks, pgid, name) from /proc, or None when the pid is gone."""
    try:
        # Raw descriptors: a shutdown reads this a few times per instance, and a buffered
        # file object costs more than the system calls do.
        fd = os.open(f"/proc/{pid}/stat", os.O_RDONLY | os.O_CLOEXEC)
    except OSError:
        return None
    try:
        data = os.read(fd, 4096)  # one line, well under a page
    except OSError:
        return None
    finally:
        os.close(fd)
    close = data.rfind(b")")
    name = data[data.find(b"(") + 1:close].decode("utf-8", "replace")
    rest = data[close + 2:].split()
    # After "pid (comm) ": state is field 3 of proc(5), pgrp field 5, starttime field 22.
    return rest[0].decode(), rest[19].decode(), int(rest[2]), name


def _linux_uid(pid: int) -> int:
    try:
        with open(f"/proc/{pid}/status", "rb") as handle:
            for line in handle:
                if line.startswith(b"Uid:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return -1


def identify(pid: int) -> Identity | None:
    """The process ``pid`` names now, or None if there is none."""
    if pid <= 0:
        return None
    if LINUX:
        raw = _linux_stat(pid)
        if raw is None:
            return None
        state, ticks, _pgid, name = raw
        create_time = boot_time() + int(ticks) / _CLK_TCK
        return Identity(pid, ticks, create_time, _linux_uid(pid), name,
                        state in _DEAD_STATES)
    import psutil

    try:
        proc = psutil.Process(pid)
        with proc.oneshot():
            create_time = proc.create_time()
            zombie = proc.status() == psutil.STATUS_ZOMBIE
            name = proc.name()
            try:
                uid = proc.uids().real
            except psutil.AccessDenied:
                uid = -1
    except (psutil.NoSuchProcess, psutil.AccessDenied):
        return None
    return Identity(pid, f"{create_time:.3f}", create_time, uid, name, zombie)


def start_of(pid: int) -> str | None:
    """``identify(pid).start`` without the rest: on Linux one read of ``/proc/<pid>/stat``.

    For callers that record a child right after spawning it (link/running.py): anything
    slower (the uid read, psutil's import for the boot time) widens the window in which the
    child already acts but is not yet recorded, so a parent killed then leaves it unknown.
    """
    if LINUX:
        raw = _linux_stat(pid)
        return raw[1] if raw is not None else None
    found = identify(pid)
    return found.start if found is not None else None


def is_running(pid: int, start: str) -> bool:
    """True while ``pid`` is still the live process that had start time ``start``."""
    if LINUX:
        raw = _linux_stat(pid)
        return raw is not None and raw[1] == start and raw[0] not in _DEAD_STATES
    ident = identify(pid)
    return ident is not None and ident.alive and ident.start == start


def pgid_of(pid: int) -> int | None:
    try:
        return os.getpgid(pid)
    except (ProcessLookupError, PermissionError):
        return None


def handle(pid: int) -> Handle | None:
    ident = identify(pid)
    return Handle(pid, ident.start) if ident is not None and ident.alive else None


def _children_linux(pid: int) -> list[int] | None:
    """Direct children from /proc/<pid>/task/*/children, or None when unsupported."""
    try:
        tasks = os.listdir(f"/proc/{pid}/task")
    except OSError:
        return []
    children: list[int] = []
    for tid in tasks:
        try:
            with open(f"/proc/{pid}/task/{tid}/children", encoding="ascii") as handle_:
                children.extend(int(item) for item in handle_.read().split())
        except FileNotFoundError:
            continue
        except OSError:
            return None
    return children


def descendants(pid: int) -> list[Handle]:
    """Children of ``pid``, recursively, as handles (identity checked before signalling).

    Reads ``/proc/<pid>/task/*/children`` where the kernel has it, because the portable way
    reads every process on the machine, which a shutdown of hundreds of instances feels.
    """
    pids: list[int] = []
    if LINUX:
        queue = [pid]
        while queue:
            children = _children_linux(queue.pop())
            if children is None:
                pids = []
                break
            pids.extend(children)
            queue.extend(children)
        else:
            return [h for h in map(handle, pids) if h is not None]
    import psutil

    try:
        found = psutil.Process(pid).children(recursive=True)
    except (psutil.NoSuchProcess, psutil.AccessDenied):
        return []
    return [h for h in (handle(p.pid) for p in found) if h is not None]


def group_members(pgid: int) -> list[Handle]:
    """Live (non-zombie) processes in process group ``pgid``."""
    if LINUX:
        pids = [int(name) for name in os.listdir("/proc") if name.isdigit()]
    else:
        import psutil

        pids = psutil.pids()
    members = []
    for pid in pids:
        try:
            if os.getpgid(pid) != pgid:
                continue
        except (ProcessLookupError, PermissionError):
            continue
        found = handle(pid)
        if found is not None:
            members.append(found)
    return members


def of_instance(mark: str, root: str, uid: int | None, since: float) -> list[Handle]:
    """Live processes of one instance that may have left its session and process group.

    A program that daemonises itself forks and calls ``setsid``, so neither its group nor
    its session tells it is the instance's. What it keeps: the environment entry ``mark``
    (``NAME=value``), unless it rewrites its environ for a process title as redis does,
    or a working directory inside the instance's runtime dir ``root``, unless it moves to
    ``/``. Either one counts; ``uid`` (when given) must match too. Reads every process, so
    only failure paths use it; processes we may not read are not ours to find anyway.
    Only processes created from ``since`` (wall clock) on count: an operator's shell that
    sits in the runtime dir is older than the start that failed.
    """
    needle = mark.encode() + b"\0"
    inside = os.path.realpath(root)
    found = []
    pids = [int(n) for n in os.listdir("/proc") if n.isdigit()] if LINUX else []
    for pid in pids:
        if pid == os.getpid():
            continue
        if uid is not None and _linux_uid(pid) != uid:
            continue
        try:
            with open(f"/proc/{pid}/environ", "rb") as stream:
                environ = stream.read()
            cwd = os.readlink(f"/proc/{pid}/cwd")
        except OSError:
            continue
        ours = environ.startswith(needle) or b"\0" + needle in environ or \
            cwd == inside or cwd.startswith(inside + "/")
        ident = identify(pid) if ours else None
        if ident is not None and ident.alive and ident.create_time >= since - 1.0:
            found.append(Handle(pid, ident.start))
    return found


def group_exists(pgid: int) -> bool:
    """True while process group ``pgid`` has any member, zombies included."""
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def group_alive(pgid: int) -> bool:
    """True while process group ``pgid`` has a member that is not a zombie.

    Orphans are not always reaped (an init that does not reap, a leader we are not the
    parent of), so a group of zombies is a dead group for anyone waiting for it to end.
    """
    return group_exists(pgid) and bool(group_members(pgid))


def groups_working_in(root: str | os.PathLike[str]) -> set[int]:
    """Process groups of the processes whose working directory is inside ``root``.

    How a build's daemonised leftovers are found after their leader has exited: they left
    its group and session, but not its directory. Processes we may not read are skipped.
    """
    inside = os.path.realpath(root)
    groups: set[int] = set()
    pids = [int(n) for n in os.listdir("/proc") if n.isdigit()] if LINUX else []
    for pid in pids:
        try:
            cwd = os.readlink(f"/proc/{pid}/cwd")
            if cwd == inside or cwd.startswith(inside + os.sep):
                groups.add(os.getpgid(pid))
        except OSError:
            continue
    return groups


def signal_group(pgid: int, sig: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, sig)


def alive(handles: Iterable[Handle]) -> list[Handle]:
    return [h for h in handles if is_running(h.pid, h.start)]


def signal_handles(handles: Iterable[Handle], sig: int) -> None:
    for target in handles:
        if is_running(target.pid, target.start):
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(target.pid, sig)


def signal_name(sig: int) -> str:
    try:
        return signal.Signals(sig).name
    except ValueError:
        return str(sig)


def format_time(timestamp: float) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(timestamp))
