"""The instance's live process: the one notion start, stop, status, reload and cleanup share.

An instance runs when its recorded process (``<SVC>.state``: pid, start time, boot id)
still runs, or when ``run/start.pid`` names a process that belongs to it (see
:mod:`shipyard.svc.pidfile`). A start script whose ``shipyard`` was killed is still part
of the instance until it ends: :func:`settle_orphan_start` waits for it.
"""

from __future__ import annotations

import os
import signal
import time

from shipyard import procs
from shipyard.coords import ServiceCoord
from shipyard.svc import state
from shipyard.svc.context import Context
from shipyard.svc.pidfile import pid_file_check
from shipyard.svc.registry import Registration
from shipyard.svc.steps import backoff
from shipyard.svc.users import ServiceUser


def record_for(ident: procs.Identity, package: str, user: str, mode: str,
               stop: str | None = None) -> state.Record:
    """What is recorded about a process of the instance, so later commands know it."""
    pgid = procs.pgid_of(ident.pid) or 0
    if pgid == os.getpgrp():
        pgid = 0  # never signal our own group
    return state.Record(pid=ident.pid, pgid=pgid, start=ident.start, boot_id=procs.boot_id(),
                        create_time=ident.create_time, started_at=state.now(),
                        package=package, user=user, mode=mode, stop=stop)


def live_record(ctx: Context, reg: Registration | None, *, adopt: bool,
                user: ServiceUser | None = None,
                coordinate: ServiceCoord | None = None) -> state.Record | None:
    """The instance's live process, or None.

    The recorded process while it runs; otherwise the process ``run/start.pid`` names when
    it belongs to the instance (:func:`.pidfile.pid_file_check`: alive, not newer than the
    file, the service user's). That covers a service restarted outside Shipyard, which
    writes its new pid there: status shows it, stop stops it, start refuses to run a second
    copy. ``adopt`` records it, so later commands find it without the pid file.
    """
    if reg is not None:
        coordinate = reg.coordinate
    assert coordinate is not None
    record = state.load(ctx.state_path(coordinate))
    if record is not None:
        if not procs.same_boot(record.boot_id):
            if adopt:
                state.clear(ctx.state_path(coordinate))
            record = None
        elif procs.is_running(record.pid, record.start):
            return record
    runtime = ctx.runtime(coordinate)
    ident, _why = pid_file_check(runtime, user)
    if ident is None:
        return None
    adopted = record_for(ident, str(reg.package) if reg else "", reg.user if reg else "",
                         "adopted")
    if adopt:
        state.save(ctx.state_path(coordinate), adopted)
    return adopted


def orphan_script(ctx: Context, coordinate: ServiceCoord) -> state.Record | None:
    """The start script a killed ``shipyard`` left running, if it still runs."""
    record = state.load(ctx.intent_path(coordinate))
    if record is None:
        return None
    if procs.same_boot(record.boot_id) and procs.is_running(record.pid, record.start):
        return record
    return None


def settle_orphan_start(ctx: Context, coordinate: ServiceCoord) -> None:
    """Let a start script whose ``shipyard`` was killed finish before deciding anything.

    Without this, a second start right after a ``kill -9`` would run a second start
    script while the first is still about to write its pid file: two services. The lock
    cannot cover it (it died with its holder), so the script's identity is recorded in
    ``<SVC>.starting`` while it runs. A script still running after ``svc.start_timeout``
    is killed, as its own ``shipyard`` would have done.

    Called with the instance lock held, under which that file is written: when it is
    missing, no start script can be under way.
    """
    intent = ctx.intent_path(coordinate)
    if not os.path.lexists(intent):
        return
    record = orphan_script(ctx, coordinate)
    deadline = time.monotonic() + ctx.start_timeout
    delay = 0.0
    while record is not None and procs.is_running(record.pid, record.start):
        if time.monotonic() >= deadline:
            if procs.pgid_of(record.pid) == record.pid:
                procs.signal_group(record.pid, signal.SIGKILL)
            break
        delay = backoff(delay)
        time.sleep(delay)
    state.clear(intent)
