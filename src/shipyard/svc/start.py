"""Starting one instance: the package's start script, or ``[service] exec``.

The copkg way: run ``script.d/start*`` as the service user with ``--runtime-dir``,
``--coordinate`` and the registered parameters; it daemonises the service and writes
``run/start.pid``; Shipyard waits (bounded) for that file, checks the process is alive and
is the service user's, records its identity, and checks again after ``svc.start_grace``
that it did not die right away. Shipyard never waits on the service itself.

With ``[service] exec`` Shipyard does the script's four steps itself: check parameters,
make the directories, pick the platform binary, launch it detached (own session, stdout and
stderr appended to ``console/``). A two-line ``sh`` wrapper writes ``run/start.pid`` from
inside the new process before it becomes the service, so even a ``kill -9`` of Shipyard a
microsecond after the fork leaves a pid file behind and no untracked duplicate.
"""

from __future__ import annotations

import contextlib
import os
import signal
import time
from abc import abstractmethod
from contextlib import ExitStack
from pathlib import Path
from typing import TYPE_CHECKING

from shipyard import procs
from shipyard.coords import ServiceCoord
from shipyard.errors import ShipyardError
from shipyard.svc import daemonized, logs, state
from shipyard.svc import users as users_mod
from shipyard.svc.context import Context, require_registration
from shipyard.svc.live import live_record, record_for, settle_orphan_start
from shipyard.svc.pidfile import read_pid_file, unlink_pid_file, user_mismatch
from shipyard.svc.registry import Registration
from shipyard.svc.runtime import Runtime, check_reachable, ensure
from shipyard.svc.spawn import DEFAULT_PATH, spawn
from shipyard.svc.steps import KILL_WAIT, Outcome, Pending, Step, backoff, drive
from shipyard.svc.users import ServiceUser

if TYPE_CHECKING:
    import subprocess

    from shipyard.svc.package import ServicePackage

PID_WRAPPER = 'echo $$ > "$0" || exit 97; exec "$@"'


def begin_start(ctx: Context, coordinate: ServiceCoord,
                registration: Registration | None = None) -> Step:
    """Take the instance lock and launch; the returned step finishes the start."""
    # An unknown instance is refused before its lock file is created: a typo in a
    # coordinate must not leave run/svc/<typo>.lock behind.
    if registration is None:
        require_registration(ctx.settings, coordinate)
    stack = ExitStack()
    try:
        stack.enter_context(ctx.lock(coordinate))
        reg = registration or require_registration(ctx.settings, coordinate)
        known_user = ctx.known_user(reg.user)
        settle_orphan_start(ctx, coordinate)
        current = live_record(ctx, reg, adopt=True, user=known_user)
        if current is not None:
            stack.close()
            return Outcome(str(coordinate), "running", current.pid,
                           f"{coordinate} is already running (pid {current.pid})")
        pkg = ctx.package(reg.package)
        user = ctx.user(reg)
        runtime = ctx.runtime(coordinate)
        check_reachable(pkg.dir, user, "package dir")
        ensure(runtime, user)
        logs.rotate(runtime, ctx.log_max, ctx.log_keep)
        state.clear(ctx.state_path(coordinate))
        with contextlib.suppress(FileNotFoundError):
            os.unlink(runtime.pid_file)
        kind = _ExecStart if pkg.service.exec is not None else _ScriptStart
        return kind(stack, ctx, reg, pkg, user, runtime)
    except BaseException:
        stack.close()
        raise


def start(ctx: Context, coordinate: ServiceCoord) -> Outcome:
    return drive(begin_start(ctx, coordinate))


class _StartBase(Pending):
    def __init__(self, stack: ExitStack, ctx: Context, reg: Registration, pkg: ServicePackage,
                 user: ServiceUser, runtime: Runtime) -> None:
        self.stack = stack
        self.ctx = ctx
        self.reg = reg
        self.pkg = pkg
        self.user = user
        self.runtime = runtime
        self.name = str(reg.coordinate)
        self.started = time.monotonic()
        self.deadline = self.started + ctx.start_timeout
        self.delay = 0.0
        self.ready_at = self.started
        self.err_offset = logs.offset(runtime.stderr_log)
        self.out_offset = logs.offset(runtime.stdout_log)
        self.record: state.Record | None = None
        self.confirm_at = 0.0
        self.launch()

    @abstractmethod
    def launch(self) -> None:
        """Launch the process the step then watches (called by ``__init__``)."""

    def _spawn(self, argv: list[str]) -> subprocess.Popen[bytes]:
        try:
            return spawn(self.ctx, argv, self.user, self.runtime, self.pkg)
        except OSError as exc:
            raise ShipyardError(f"{self.name}: cannot run {argv[0]}: {exc.strerror}") from None

    def _said(self) -> str:
        line = logs.last_line(self.runtime.stderr_log, self.err_offset) or logs.last_line(
            self.runtime.stdout_log, self.out_offset)
        return f": {line}" if line else ""

    def _again(self, at: float | None = None) -> Pending:
        self.delay = backoff(self.delay)
        self.ready_at = at if at is not None else time.monotonic() + self.delay
        return self

    def _fail(self, message: str) -> ShipyardError:
        self.stack.close()
        return ShipyardError(f"{self.name}: {message}")

    def _recorded(self, ident: procs.Identity, mode: str) -> None:
        self.record = record_for(ident, str(self.reg.package), self.user.name, mode,
                                 self.pkg.service.stop or "")
        state.save(self.ctx.state_path(self.reg.coordinate), self.record)
        self.confirm_at = time.monotonic() + self.ctx.grace

    def _confirm(self, exit_code: int | None = None) -> Step:
        assert self.record is not None
        if time.monotonic() < self.confirm_at:
            return self._again(self.confirm_at)
        if exit_code is not None or not procs.is_running(self.record.pid, self.record.start):
            code = f" with code {exit_code}" if exit_code is not None else ""
            raise self._fail(f"the service (pid {self.record.pid}) exited{code} right after "
                             f"start{self._said()}")
        self.stack.close()
        return Outcome(self.name, "started", self.record.pid,
                       f"started {self.name} (pid {self.record.pid})")


class _ScriptStart(_StartBase):
    """copkg: the package's start script daemonises the service and writes the pid file."""

    def launch(self) -> None:
        from shipyard.svc.package import package_file
        from shipyard.svc.params import with_defaults

        assert self.pkg.service.start is not None
        self.script_rel = self.pkg.service.start
        script = package_file(self.pkg, self.script_rel, "start script")
        argv = [str(script), f"--runtime-dir={self.runtime.root}",
                f"--coordinate={self.reg.coordinate}",
                *with_defaults(self.pkg.service.params, self.reg.params)]
        self.proc = self._spawn(argv)
        self.phase = "script"
        ident = procs.identify(self.proc.pid)
        if ident is not None:
            intent = record_for(ident, str(self.reg.package), self.user.name, "start-script")
            state.save(self.ctx.intent_path(self.reg.coordinate), intent)

    def _script_over(self) -> None:
        state.clear(self.ctx.intent_path(self.reg.coordinate))

    def _kill_script(self) -> None:
        import subprocess

        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.proc.pid, signal.SIGKILL)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.proc.wait(timeout=KILL_WAIT)

    def poll(self) -> Step:
        now = time.monotonic()
        if self.phase == "script":
            code = self.proc.poll()
            if code is None:
                if now >= self.deadline:
                    self._kill_script()
                    self._script_over()
                    raise self._fail(f"start script {self.script_rel} did not finish within "
                                     f"{self.ctx.start_timeout:g}s (killed it)")
                return self._again()
            self._script_over()
            if code != 0:
                raise self._fail(f"start script {self.script_rel} exited with code "
                                 f"{code}{self._said()}")
            self.phase = "pidfile"
            self.delay = 0.0
        if self.phase == "pidfile":
            pid, raw, _mtime = read_pid_file(self.runtime.pid_file)
            if pid is None:
                if now < self.deadline:
                    return self._again()
                if raw:
                    shown = raw.strip()[:40]
                    raise self._fail(f"{self.runtime.pid_file} does not hold a pid: "
                                     f"{shown!r}")
                raise self._fail(f"start script {self.script_rel} wrote no "
                                 f"{self.runtime.pid_file} within "
                                 f"{self.ctx.start_timeout:g}s")
            ident = procs.identify(pid)
            if ident is None or not ident.alive:
                raise self._fail(f"the service (pid {pid} from {self.runtime.pid_file}) "
                                 f"exited right after start{self._said()}")
            if pid in (os.getpid(), 1) or user_mismatch(ident, self.user):
                raise self._fail(
                    f"{self.runtime.pid_file} names pid {pid} ({ident.name}), a process of "
                    f"{users_mod.owner_name(ident.uid)}, not of service user "
                    f"{self.user.name}; refusing to adopt it"
                )
            self._recorded(ident, "script")
            self.phase = "confirm"
        return self._confirm()


class _ExecStart(_StartBase):
    """``[service] exec``: Shipyard launches the platform binary itself."""

    def launch(self) -> None:
        from shipyard.svc.params import check_exec, expand, parse_params, with_defaults

        exec_line = self.pkg.service.exec
        assert exec_line is not None
        where = f"{self.name} ({self.pkg.coord})"
        params = parse_params(with_defaults(self.pkg.service.params, self.reg.params))
        check_exec(exec_line, params, where)
        values = {"platform": self.ctx.platform, "runtime_dir": str(self.runtime.root),
                  "package_dir": str(self.pkg.dir), "coordinate": self.name}
        argv = expand(exec_line, values, params)
        argv[0] = self._program(argv[0], exec_line[0])
        self.spawned_at = time.time()
        self.proc = self._spawn(["/bin/sh", "-c", PID_WRAPPER, str(self.runtime.pid_file),
                                 *argv])
        ident = procs.identify(self.proc.pid)
        if ident is None:
            # Already gone and reaped by nobody yet: record what we know for the message.
            code = self.proc.wait()
            raise self._fail(f"the service exited with code {code} right after start"
                             f"{self._said()}")
        self._recorded(ident, "exec")

    def _escaped(self) -> None:
        """The program exited 0 at once: did it daemonise itself (fork, setsid, exit)?"""
        pids = daemonized.stop_escaped(self.runtime, self.user, self.spawned_at,
                                       self.ctx.stop_timeout)
        if not pids:
            return
        state.clear(self.ctx.state_path(self.reg.coordinate))
        unlink_pid_file(self.runtime)
        raise self._fail(daemonized.refusal(pids))

    def _program(self, program: str, template: str) -> str:
        import shutil

        if "/" in program:
            path = Path(program) if os.path.isabs(program) else self.pkg.dir / program
            if not path.is_file():
                hint = f" (platform {self.ctx.platform})" if "{platform}" in template else ""
                raise ShipyardError(f"{self.name}: [service] exec program {program} is "
                                    f"missing from package {self.pkg.coord}{hint}")
            if not os.access(path, os.X_OK):
                raise ShipyardError(f"{self.name}: [service] exec program {program} in "
                                    f"package {self.pkg.coord} is not executable")
            return str(path)
        found = shutil.which(program, path=os.environ.get("PATH", DEFAULT_PATH))
        if found is None:
            raise ShipyardError(f"{self.name}: [service] exec program {program!r} is not "
                                "on PATH")
        return found

    def poll(self) -> Step:
        code = self.proc.poll()
        if code == 0:
            self._escaped()
        if code is not None:
            self.confirm_at = 0.0
            return self._confirm(code)
        if time.monotonic() < self.confirm_at:
            return self._again(self.confirm_at)
        pid, _raw, _mtime = read_pid_file(self.runtime.pid_file)
        if pid != self.proc.pid:
            if time.monotonic() < self.deadline:
                return self._again()
            raise self._fail(f"the service did not write {self.runtime.pid_file} within "
                             f"{self.ctx.start_timeout:g}s")
        return self._confirm()
