"""Adapters in flight, so a reconcile killed with ``kill -9`` leaves no adapter behind.

Adapters run in their own sessions (so a timeout can kill their whole group), which also
means they outlive a reconcile that is killed. An orphan finishing its edit *after* the next
reconcile repaired the same pair could undo the repair. So every adapter's process group
is recorded in ``<state>/links.running`` while it runs, and the next reconcile, holding the
link lock, kills whatever groups of that list are left before it looks at anything.

Killing a recorded group is safe against pid reuse: a process group id cannot be handed out
again while any member of the group lives, and a leader that still exists is checked
against its recorded start time. The record is written without fsync: it only needs to
survive the death of the process, not of the machine (after a reboot nothing is left).
"""

from __future__ import annotations

import contextlib
import os
import signal
import threading
import time
from pathlib import Path

from shipyard import procs
from shipyard.config import Settings

RUNNING_NAME = "links.running"


def running_path(settings: Settings) -> Path:
    return settings.state_dir / RUNNING_NAME


def _start_time(pid: int) -> str | None:
    """The process's start time (tells a reused pid apart), or None when it is gone.

    Cheap on purpose: it is read between spawning an adapter and recording it.
    """
    return procs.start_of(pid)


class Running:
    """The groups this reconcile has started and not yet reaped.

    Recorded as an append-only log of ``start PGID STARTTIME`` and ``end PGID`` lines, each
    one ``write()`` on an ``O_APPEND`` file: cheap enough to do for every adapter, and a
    killed process leaves whole lines behind.
    """

    def __init__(self, settings: Settings) -> None:
        self.path = running_path(settings)
        self.fd: int | None = None
        self.mutex = threading.Lock()

    def _append(self, line: str) -> None:
        with self.mutex:
            if self.fd is None:
                self.path.parent.mkdir(parents=True, exist_ok=True)
                self.fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
            os.write(self.fd, line.encode())

    def started(self, pid: int) -> None:
        self._append(f"start {pid} {_start_time(pid)}\n")

    def finished(self, pid: int) -> None:
        self._append(f"end {pid}\n")

    def close(self) -> None:
        """At the end of a reconcile that was not killed: nothing of ours runs any more."""
        with self.mutex:
            if self.fd is not None:
                os.close(self.fd)
                self.fd = None
            with contextlib.suppress(FileNotFoundError):
                self.path.unlink()


def _recorded(path: Path) -> dict[int, str | None]:
    """Groups started and not ended according to the log (malformed lines are skipped)."""
    groups: dict[int, str | None] = {}
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except FileNotFoundError:
        return groups
    for line in text.splitlines():
        parts = line.split()
        try:
            if len(parts) == 3 and parts[0] == "start":
                groups[int(parts[1])] = None if parts[2] == "None" else parts[2]
            elif len(parts) == 2 and parts[0] == "end":
                groups.pop(int(parts[1]), None)
        except ValueError:
            continue
    return groups


def kill_leftovers(settings: Settings, wait: float = 5.0) -> list[int]:
    """Kill adapter groups a killed reconcile left running; returns the groups killed."""
    path = running_path(settings)
    if not path.exists():
        return []
    killed = []
    for pgid, started in _recorded(path).items():
        now_started = _start_time(pgid)
        if now_started is not None and started is not None and now_started != started:
            continue  # the pid was reused by an unrelated process: its group is not ours
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(pgid, signal.SIGKILL)
            killed.append(pgid)
    deadline = time.monotonic() + wait
    while killed and any(procs.group_alive(g) for g in killed) and time.monotonic() < deadline:
        time.sleep(0.01)
    with contextlib.suppress(FileNotFoundError):
        path.unlink()
    return killed
