"""A ``[service] exec`` program that daemonised itself: finding its daemon and stopping it.

Such a program forks, calls ``setsid`` and exits 0, so its daemon left the session and the
process group Shipyard knows. It is found by the instance's mark in its environment (or
its working directory in the runtime dir) and stopped: an untracked copy would hold the
port and the data. The start then fails with what the operator should change.
"""

from __future__ import annotations

import os
import signal
import time

from shipyard import procs
from shipyard.svc.runtime import Runtime
from shipyard.svc.spawn import SERVICE_MARK
from shipyard.svc.steps import backoff
from shipyard.svc.users import ServiceUser

HINT = "run it in the foreground (for redis: --daemonize no)"


def stop_escaped(runtime: Runtime, user: ServiceUser, since: float,
                 timeout: float) -> list[int]:
    """Stop the instance's processes that left its session, started from ``since`` (wall
    clock) on: TERM, up to ``timeout`` seconds, then KILL. Their pids (empty: none)."""
    escaped = procs.of_instance(f"{SERVICE_MARK}={runtime.coordinate}", str(runtime.root),
                                user.uid if os.geteuid() == 0 else os.geteuid(), since)
    if not escaped:
        return []
    procs.signal_handles(escaped, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    delay = 0.0
    while procs.alive(escaped) and time.monotonic() < deadline:
        delay = backoff(delay)
        time.sleep(delay)
    procs.signal_handles(escaped, signal.SIGKILL)
    return [h.pid for h in escaped]


def refusal(pids: list[int]) -> str:
    """Why the start failed, and what to change."""
    shown = ", ".join(str(pid) for pid in pids)
    return (f"the program daemonized itself (it exited 0 and left pid {shown} running, "
            f"which Shipyard stopped); [service] exec programs must stay in the "
            f"foreground: {HINT}")
