"""Stopping one instance: its package's stop script, or TERM, wait, KILL.

The stop script runs as the service user with ``--runtime-dir``, ``--coordinate`` and the
parameters; without one (or when the service outlives it) the default is TERM to the
process group (and to descendants that left it), wait ``svc.stop_timeout``, KILL.
Nothing is signalled unless the recorded identity still matches (see
:mod:`shipyard.procs`): a pid reused by another program is named, never killed.
"""

from __future__ import annotations

import contextlib
import os
import signal
import time
from contextlib import ExitStack
from pathlib import Path
from typing import TYPE_CHECKING

from shipyard import procs
from shipyard.coords import ServiceCoord
from shipyard.errors import ShipyardError
from shipyard.svc import logs, registry, state
from shipyard.svc.context import Context, require_registration
from shipyard.svc.live import live_record, record_for, settle_orphan_start
from shipyard.svc.pidfile import GARBAGE, STALE, pid_file_check, unlink_pid_file
from shipyard.svc.registry import Registration
from shipyard.svc.runtime import Runtime
from shipyard.svc.steps import KILL_WAIT, Outcome, Pending, Step, backoff, drive
from shipyard.svc.users import ServiceUser

# A shutdown signals hundreds of instances without reading a manifest or spawning a
# script, so what only stop scripts need is imported where they use it.
if TYPE_CHECKING:
    import subprocess

    from shipyard.svc.package import ServicePackage


def begin_stop(ctx: Context, coordinate: ServiceCoord, *, registered: bool = True,
               registration: Registration | None = None) -> Step:
    """Take the instance lock, verify the identity and signal; the step finishes the stop."""
    if registration is None and registered:
        require_registration(ctx.settings, coordinate)  # before the lock file exists
    stack = ExitStack()
    try:
        stack.enter_context(ctx.lock(coordinate))
        reg = registration or registry.load(ctx.settings, coordinate)
        if reg is None and registered:
            require_registration(ctx.settings, coordinate)
        settle_orphan_start(ctx, coordinate)
        runtime = ctx.runtime(coordinate)
        user = ctx.known_user(reg.user) if reg is not None else None
        name = str(coordinate)
        state_file = ctx.state_path(coordinate)
        record = live_record(ctx, reg, adopt=True, user=user, coordinate=coordinate)
        if record is None:
            record = state.load(state_file)
            if record is not None and not procs.same_boot(record.boot_id):
                state.clear(state_file)
                record = None
        if record is not None and not procs.is_running(record.pid, record.start):
            ident = procs.identify(record.pid)
            if ident is not None and ident.alive:
                state.clear(state_file)
                unlink_pid_file(runtime)
                raise ShipyardError(
                    f"{name}: not signalling pid {record.pid}: it is now {ident.name!r} "
                    f"(started {procs.format_time(ident.create_time)}), not the service "
                    f"started {procs.format_time(record.create_time)}; the pid was reused "
                    "and the service is not running"
                )
            # The service died; what it left in its process group is still its own (the
            # kernel hands out no pid, not even the group's, while the group has members).
            leftovers = procs.group_members(record.pgid) if (
                record.pgid > 1 and procs.group_exists(record.pgid)) else []
            if leftovers:
                step = _Stop(stack, ctx, coordinate, runtime, record, user, None)
                step.family = leftovers
                step.leftovers = len(leftovers)
                return step.begin()
            state.clear(state_file)
            unlink_pid_file(runtime)
            stack.close()
            return Outcome(name, "not-running", None,
                           f"{name} was not running (pid {record.pid} had exited)")
        if record is None:
            ident, why = pid_file_check(runtime, user)
            if ident is None:
                if why not in ("", GARBAGE, STALE):
                    unlink_pid_file(runtime)
                    raise ShipyardError(f"{name}: not signalling anything: {why}")
                note = ""
                if why == STALE:
                    unlink_pid_file(runtime)
                    note = " (removed a pid file left from an earlier boot)"
                stack.close()
                return Outcome(name, "not-running", None, f"{name} is not running{note}")
            record = record_for(ident, str(reg.package) if reg else "",
                                reg.user if reg else "", "adopted")
        stop_script = None
        if reg is not None and user is not None:
            ctx.learn_stop(record)
            stop_script = _stop_script(ctx, reg)
        step = _Stop(stack, ctx, coordinate, runtime, record, user, stop_script)
        if stop_script is not None and reg is not None:
            from shipyard.svc.params import with_defaults

            # The same form start gets: a stop script may need the port (redis-cli -p).
            step.arguments = [f"--coordinate={coordinate}",
                              *with_defaults(stop_script[0].service.params, reg.params)]
        return step.begin()
    except BaseException:
        stack.close()
        raise


def stop(ctx: Context, coordinate: ServiceCoord, *, registered: bool = True) -> Outcome:
    return drive(begin_stop(ctx, coordinate, registered=registered))


def _stop_script(ctx: Context, reg: Registration) -> tuple[ServicePackage, Path] | None:
    """The package's stop script, or None for the default stop (also when it is broken)."""
    if not ctx.has_stop_script(reg):
        return None
    from shipyard.svc.package import package_file

    try:
        pkg = ctx.package(reg.package)
        if not pkg.service.stop:
            return None
        return pkg, package_file(pkg, pkg.service.stop, "stop script")
    except ShipyardError:
        return None


class _Stop(Pending):
    def __init__(self, stack: ExitStack, ctx: Context, coordinate: ServiceCoord,
                 runtime: Runtime, record: state.Record, user: ServiceUser | None,
                 stop_script: tuple[ServicePackage, Path] | None) -> None:
        self.stack = stack
        self.ctx = ctx
        self.coordinate = coordinate
        self.name = str(coordinate)
        self.runtime = runtime
        self.record = record
        self.user = user
        self.stop_script = stop_script
        self.warnings: list[str] = []
        self.delay = 0.0
        self.killed = False
        self.script: subprocess.Popen[bytes] | None = None
        self.family = procs.descendants(record.pid)
        self.leftovers = 0
        self.arguments: list[str] = []  # for the stop script, after --runtime-dir
        pgid = procs.pgid_of(record.pid)
        self.group = record.pgid if record.pgid > 1 and pgid == record.pgid else None

    def _alive(self) -> bool:
        if procs.is_running(self.record.pid, self.record.start):
            return True
        if procs.alive(self.family):
            return True
        # The main process and its known children are gone: anything left in the group?
        # When the service leads its own group, its members are its descendants, which
        # were looked at above; otherwise (a start script's group) look the group up.
        if self.group is None or self.group == self.record.pid:
            return False
        if not procs.group_exists(self.group):
            return False
        stragglers = procs.group_members(self.group)
        self.family.extend(stragglers)
        return bool(stragglers)

    def _signal(self, sig: int) -> None:
        if procs.is_running(self.record.pid, self.record.start):
            if self.group is not None:
                procs.signal_group(self.group, sig)
            else:
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.kill(self.record.pid, sig)
        elif self.group is not None and sig == signal.SIGKILL:
            procs.signal_group(self.group, sig)
        procs.signal_handles(self.family, sig)

    def _again(self, at: float | None = None) -> Pending:
        self.delay = backoff(self.delay)
        self.ready_at = min(at if at is not None else time.monotonic() + self.delay,
                            self.deadline)
        return self

    def begin(self) -> Step:
        now = time.monotonic()
        self.deadline = now + self.ctx.stop_timeout
        if self.stop_script is not None:
            from shipyard.svc.spawn import spawn

            pkg, script = self.stop_script
            assert self.user is not None
            self.err_offset = logs.offset(self.runtime.stderr_log)
            self.script = spawn(self.ctx, [str(script), f"--runtime-dir={self.runtime.root}",
                                           *self.arguments], self.user, self.runtime, pkg)
            self.phase = "script"
        else:
            self._signal(signal.SIGTERM)
            self.phase = "term"
        # Nothing is done microseconds after its signal or its script's launch: look again
        # shortly (at a shutdown, once every other instance has been signalled).
        return self._again()

    def _script_done(self) -> bool:
        assert self.script is not None
        code = self.script.poll()
        if code is None:
            return False
        if code != 0:
            line = logs.last_line(self.runtime.stderr_log, self.err_offset)
            detail = f": {line}" if line else ""
            assert self.stop_script is not None
            self.warnings.append(f"stop script {self.stop_script[0].service.stop} exited "
                                 f"with code {code}{detail}")
        return True

    def poll(self) -> Step:
        now = time.monotonic()
        if self.phase == "script":
            assert self.script is not None
            if not self._script_done():
                if now < self.deadline:
                    return self._again()
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.killpg(self.script.pid, signal.SIGKILL)
                self.warnings.append(f"stop script did not finish within "
                                     f"{self.ctx.stop_timeout:g}s")
            if not self._alive():
                return self._done()
            # The script returned but the service lives on: the default way, from now.
            self._signal(signal.SIGTERM)
            self.deadline = max(self.deadline, now + min(self.ctx.stop_timeout, 2.0))
            self.phase = "term"
            return self._again()
        if self.phase == "term":
            if not self._alive():
                return self._done()
            if now < self.deadline:
                return self._again()
            if procs.is_running(self.record.pid, self.record.start):
                known = set(self.family)  # children forked since the TERM die too
                self.family.extend(h for h in procs.descendants(self.record.pid)
                                   if h not in known)
            self._signal(signal.SIGKILL)
            self.killed = True
            self.phase = "kill"
            self.deadline = now + KILL_WAIT
            self.delay = 0.0
            return self._again()
        # phase "kill"
        if not self._alive():
            return self._done()
        if now < self.deadline:
            self._signal(signal.SIGKILL)
            return self._again()
        self.stack.close()
        raise ShipyardError(f"{self.name}: pid {self.record.pid} is still alive "
                            f"{KILL_WAIT:g}s after SIGKILL")

    def _done(self) -> Outcome:
        state.clear(self.ctx.state_path(self.coordinate))
        unlink_pid_file(self.runtime)
        self.stack.close()
        how = f" (killed: it ignored SIGTERM for {self.ctx.stop_timeout:g}s)" \
            if self.killed else ""
        if self.leftovers:
            return Outcome(self.name, "stopped", self.record.pid,
                           f"{self.name} had exited (pid {self.record.pid}); stopped "
                           f"{self.leftovers} process(es) it left in its group{how}",
                           self.warnings)
        return Outcome(self.name, "stopped", self.record.pid,
                       f"stopped {self.name} (pid {self.record.pid}){how}", self.warnings)
