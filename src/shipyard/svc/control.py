"""Start, stop and inspect one instance.

Starting and stopping are small state machines (:class:`Pending`): each step either
finishes with an :class:`Outcome`, fails with a :class:`ShipyardError`, or says when it
wants to be looked at again. ``svc start`` drives one of them to the end; ``svc boot``
drives hundreds at once from one loop, so waiting for pid files, start grace periods and
stop timeouts costs no thread per instance.

Start, the copkg way: run ``script.d/start*`` as the service user with ``--runtime-dir``,
``--coordinate`` and the registered parameters; it daemonises the service and writes
``run/start.pid``; Shipyard waits (bounded) for that file, checks the process is alive and
is the service user's, records its identity, and checks again after ``svc.start_grace``
that it did not die right away. Shipyard never waits on the service itself.

With ``[service] exec`` Shipyard does the script's four steps itself: check parameters,
make the directories, pick the platform binary, launch it detached (own session, stdout and
stderr appended to ``console/``). A two-line ``sh`` wrapper writes ``run/start.pid`` from
inside the new process before it becomes the service, so even a ``kill -9`` of Shipyard a
microsecond after the fork leaves a pid file behind and no untracked duplicate.

Stop: the package's stop script, or TERM to the process group (and to descendants that
left it), wait ``svc.stop_timeout``, KILL. Nothing is signalled unless the recorded
identity still matches (see :mod:`shipyard.svc.procs`).
"""

from __future__ import annotations

import contextlib
import functools
import os
import signal
import time
from abc import ABC, abstractmethod
from collections.abc import Callable
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from shipyard.config import Settings
from shipyard.coords import PackageCoord, ServiceCoord
from shipyard.errors import ShipyardError
from shipyard.fsutil import file_lock
from shipyard.svc import logs, procs, registry, state
from shipyard.svc import users as users_mod
from shipyard.svc.registry import Registration
from shipyard.svc.runtime import (
    Runtime,
    check_reachable,
    ensure,
    open_console,
    runtime_for,
    state_dir,
)
from shipyard.svc.users import ServiceUser

# A shutdown signals hundreds of instances without reading a manifest or spawning a
# script, so what only starts and stop scripts need is imported where they use it.
if TYPE_CHECKING:
    import subprocess

    from shipyard.svc.package import ServicePackage

DEFAULT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
PID_WRAPPER = 'echo $$ > "$0" || exit 97; exec "$@"'
KILL_WAIT = 5.0
SERVICE_MARK = "SHIPYARD_SERVICE"
DAEMONIZED_HINT = "run it in the foreground (for redis: --daemonize no)"


@dataclass
class Outcome:
    """How an action on one instance ended."""

    coordinate: str
    action: str           # started | running | stopped | not-running
    pid: int | None = None
    message: str = ""
    warnings: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, object]:
        return {"service": self.coordinate, "result": self.action, "pid": self.pid,
                "message": self.message, "warnings": self.warnings}


class Pending(ABC):
    """A step that wants to run again at ``ready_at`` (monotonic seconds)."""

    ready_at: float = 0.0
    stack: ExitStack

    @abstractmethod
    def poll(self) -> Outcome | Pending:
        """Advance the step: its outcome, or itself again with a later ``ready_at``."""

    def abandon(self) -> None:
        self.stack.close()


Step = Outcome | Pending


def drive(step: Step) -> Outcome:
    """Run a step to its end in this thread."""
    while isinstance(step, Pending):
        delay = step.ready_at - time.monotonic()
        if delay > 0:
            time.sleep(delay)
        step = step.poll()
    return step


def _backoff(previous: float) -> float:
    return min(max(previous * 2, 0.002), 0.05)


# ---------------------------------------------------------------------------------------
# Context shared by many instances of one command (caches for boot)


class Context:
    """Settings plus caches, so a boot of hundreds of instances reads each package once."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.start_timeout = float(settings.get("svc.start_timeout"))
        self.stop_timeout = float(settings.get("svc.stop_timeout"))
        self.grace = max(0.0, float(settings.get("svc.start_grace")))
        self.log_max = int(settings.get("svc.log_max_bytes"))
        self.log_keep = max(0, int(settings.get("svc.log_keep")))
        self._packages: dict[PackageCoord, ServicePackage] = {}
        self._stops: dict[str, str] = {}
        self._users: dict[str, ServiceUser] = {}
        self._known_users: dict[str, ServiceUser | None] = {}
        probe = runtime_for(settings, ServiceCoord("x", "x", "x", "x"))
        self._runtime_root = probe.root.parent
        self._layout = probe.layout
        self._fhs_root = probe.fhs_root
        self._state_dir = state_dir(settings)

    @functools.cached_property
    def platform(self) -> str:
        from shipyard.svc.platform import platform_tag

        return platform_tag()

    @property
    def lock_timeout(self) -> float:
        return self.start_timeout + self.stop_timeout + self.grace + KILL_WAIT + 10

    def runtime(self, coordinate: ServiceCoord) -> Runtime:
        return Runtime(coordinate, self._runtime_root / str(coordinate), self._layout,
                       self._fhs_root)

    def state_path(self, coordinate: ServiceCoord) -> Path:
        return self._state_dir / f"{coordinate}.state"

    def lock_path(self, coordinate: ServiceCoord) -> Path:
        return self._state_dir / f"{coordinate}.lock"

    def intent_path(self, coordinate: ServiceCoord) -> Path:
        """Names a start script while it runs (see :func:`settle_orphan_start`)."""
        return self._state_dir / f"{coordinate}.starting"

    def known_user(self, name: str) -> ServiceUser | None:
        """Look a user up (no creation), once per command."""
        if not name:
            return None
        if name not in self._known_users:
            self._known_users[name] = users_mod.lookup(name)
        return self._known_users[name]

    def package(self, coord: PackageCoord) -> ServicePackage:
        pkg = self._packages.get(coord)
        if pkg is None:
            from shipyard.svc.package import load_service_package

            pkg = self._packages[coord] = load_service_package(self.settings, coord)
        return pkg

    def learn_stop(self, record: state.Record | None) -> None:
        """Take the package's stop script from a record: installed packages never change,
        and a shutdown of hundreds of instances then reads no manifest."""
        if record is not None and record.stop is not None and record.package:
            self._stops.setdefault(record.package, record.stop)

    def knows_stop(self, package: PackageCoord) -> bool:
        return str(package) in self._stops

    def has_stop_script(self, registration: Registration) -> bool:
        """Whether the registered package names a stop script (False when unreadable)."""
        known = self._stops.get(str(registration.package))
        if known is not None:
            return bool(known)
        try:
            return bool(self.package(registration.package).service.stop)
        except ShipyardError:
            return False

    def user(self, registration: Registration) -> ServiceUser:
        name = registration.user
        if not name:
            pkg = self.package(registration.package)
            name = users_mod.choose(self.settings, None, pkg.service.user,
                                    str(registration.package))
        if os.geteuid() != 0 and name != users_mod.current_user_name():
            raise ShipyardError(
                f"{registration.coordinate} is registered to run as {name}; only root "
                f"can start it (you are {users_mod.current_user_name()})"
            )
        user = self._users.get(name)
        if user is None:
            user = self._users[name] = users_mod.ensure(self.settings, name)
        return user

    def lock(self, coordinate: ServiceCoord) -> contextlib.AbstractContextManager[None]:
        return file_lock(self.lock_path(coordinate), timeout=self.lock_timeout,
                         what=f"instance {coordinate}")

    def service_env(self, user: ServiceUser, runtime: Runtime, pkg: ServicePackage
                    ) -> dict[str, str]:
        """A clean environment: Shipyard's own variables never leak into services."""
        env = {k: v for k, v in os.environ.items()
               if k in ("PATH", "LANG", "LANGUAGE", "TZ") or k.startswith("LC_")}
        env.setdefault("PATH", DEFAULT_PATH)
        env.update(user.env())
        env.update({
            "SHIPYARD_PLATFORM": self.platform,
            "SHIPYARD_RUNTIME_DIR": str(runtime.root),
            "SHIPYARD_COORDINATE": str(runtime.coordinate),
            "SHIPYARD_PACKAGE_DIR": str(pkg.dir),
            # Only the service (and its start/stop scripts) carry this: it finds a program
            # that daemonised itself out of its session (see _ExecStart), and never an
            # adapter, which gets the runtime dir too.
            SERVICE_MARK: str(runtime.coordinate),
        })
        return env


def require_registration(settings: Settings, coordinate: ServiceCoord) -> Registration:
    reg = registry.load(settings, coordinate)
    if reg is None:
        raise ShipyardError(
            f"unknown service {coordinate}: not registered "
            f"(no {registry.registration_path(settings, coordinate)})"
        )
    return reg


# ---------------------------------------------------------------------------------------
# What is running


def _read_pid_file(path: Path) -> tuple[int | None, str, float]:
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


def _record_for(ident: procs.Identity, package: str, user: str, mode: str,
                stop: str | None = None) -> state.Record:
    pgid = procs.pgid_of(ident.pid) or 0
    if pgid == os.getpgrp():
        pgid = 0  # never signal our own group
    return state.Record(pid=ident.pid, pgid=pgid, start=ident.start, boot_id=procs.boot_id(),
                        create_time=ident.create_time, started_at=state.now(),
                        package=package, user=user, mode=mode, stop=stop)


def _user_mismatch(ident: procs.Identity, user: ServiceUser | None) -> bool:
    return (user is not None and os.geteuid() == 0 and user.uid != 0
            and ident.uid not in (-1, user.uid))


GARBAGE = "garbage"
STALE = "stale"


def pid_file_check(runtime: Runtime, user: ServiceUser | None
                   ) -> tuple[procs.Identity | None, str]:
    """Whether ``run/start.pid`` names the instance's process; (identity, why not).

    "Why not" is empty (no file, or its process is gone), :data:`GARBAGE`, :data:`STALE`
    (written before this boot), or a sentence saying whose process the pid names now.
    """
    pid, raw, mtime = _read_pid_file(runtime.pid_file)
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
    if _user_mismatch(ident, user):
        assert user is not None
        return None, (
            f"{runtime.pid_file} names pid {pid} ({ident.name}), a process of "
            f"{users_mod.owner_name(ident.uid)}, not of service user {user.name}"
        )
    return ident, ""


def live_record(ctx: Context, reg: Registration | None, *, adopt: bool,
                user: ServiceUser | None = None,
                coordinate: ServiceCoord | None = None) -> state.Record | None:
    """The instance's live process: the one notion start, stop, status and cleanup share.

    The recorded process while it runs; otherwise the process ``run/start.pid`` names when
    it belongs to the instance (:func:`pid_file_check`: alive, not older than... the file,
    the service user's). That covers a service restarted outside Shipyard, which writes
    its new pid there: status shows it, stop stops it, start refuses to run a second copy.
    ``adopt`` records it, so later commands find it without the pid file.
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
    adopted = _record_for(ident, str(reg.package) if reg else "", reg.user if reg else "",
                          "adopted")
    if adopt:
        state.save(ctx.state_path(coordinate), adopted)
    return adopted


# ---------------------------------------------------------------------------------------
# Start


def _orphan_script(ctx: Context, coordinate: ServiceCoord) -> state.Record | None:
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
    record = _orphan_script(ctx, coordinate)
    deadline = time.monotonic() + ctx.start_timeout
    delay = 0.0
    while record is not None and procs.is_running(record.pid, record.start):
        if time.monotonic() >= deadline:
            if procs.pgid_of(record.pid) == record.pid:
                procs.signal_group(record.pid, signal.SIGKILL)
            break
        delay = _backoff(delay)
        time.sleep(delay)
    state.clear(intent)


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
        self.err_offset = _size(runtime.stderr_log)
        self.out_offset = _size(runtime.stdout_log)
        self.record: state.Record | None = None
        self.confirm_at = 0.0


    def _spawn(self, argv: list[str]) -> subprocess.Popen[bytes]:
        import subprocess

        out = open_console(self.runtime.stdout_log, self.user)
        try:
            err = open_console(self.runtime.stderr_log, self.user)
        except BaseException:
            os.close(out)
            raise
        command, switch = self.user.spawn(argv)
        try:
            return subprocess.Popen(
                command, stdin=subprocess.DEVNULL, stdout=out, stderr=err,
                cwd=self.runtime.root, env=self.ctx.service_env(self.user, self.runtime,
                                                                 self.pkg),
                start_new_session=True, close_fds=True, umask=0o027,
                **switch,  # type: ignore[arg-type]
            )
        except OSError as exc:
            raise ShipyardError(f"{self.name}: cannot run {argv[0]}: {exc.strerror}") from None
        finally:
            os.close(out)
            os.close(err)

    def _said(self) -> str:
        line = logs.last_line(self.runtime.stderr_log, self.err_offset) or logs.last_line(
            self.runtime.stdout_log, self.out_offset)
        return f": {line}" if line else ""

    def _again(self, at: float | None = None) -> Pending:
        self.delay = _backoff(self.delay)
        self.ready_at = at if at is not None else time.monotonic() + self.delay
        return self

    def _fail(self, message: str) -> ShipyardError:
        self.stack.close()
        return ShipyardError(f"{self.name}: {message}")

    def _recorded(self, ident: procs.Identity, mode: str) -> None:
        self.record = _record_for(ident, str(self.reg.package), self.user.name, mode,
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

    def __init__(self, *args: object) -> None:
        super().__init__(*args)  # type: ignore[arg-type]
        self.launch()

    def launch(self) -> None:
        from shipyard.svc.package import package_file
        from shipyard.svc.params import with_defaults

        assert self.pkg.service.start is not None
        self.script_rel = self.pkg.service.start
        script = package_file(self.pkg, self.script_rel, "start script")
        argv = [str(script), f"--runtime-dir={self.runtime.root}",
                f"--coordinate={self.reg.coordinate}",
                *with_defaults(self.pkg.service.params, self.reg.params)]
        self.proc: subprocess.Popen[bytes] | None = self._spawn(argv)
        self.phase = "script"
        ident = procs.identify(self.proc.pid)
        if ident is not None:
            intent = _record_for(ident, str(self.reg.package), self.user.name, "start-script")
            state.save(self.ctx.intent_path(self.reg.coordinate), intent)

    def _script_over(self) -> None:
        state.clear(self.ctx.intent_path(self.reg.coordinate))

    def _kill_script(self) -> None:
        import subprocess

        assert self.proc is not None
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.proc.pid, signal.SIGKILL)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.proc.wait(timeout=KILL_WAIT)

    def poll(self) -> Step:
        now = time.monotonic()
        if self.phase == "script":
            assert self.proc is not None
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
            pid, raw, _mtime = _read_pid_file(self.runtime.pid_file)
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
            if pid in (os.getpid(), 1) or _user_mismatch(ident, self.user):
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

    def __init__(self, *args: object) -> None:
        super().__init__(*args)  # type: ignore[arg-type]
        self.launch()

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
        """The program exited 0 at once: did it daemonise itself (fork, setsid, exit)?

        Its daemon left the session and group Shipyard knows, so it is found by the
        instance's mark in its environment, stopped (an untracked copy would hold the
        port and the data), and the operator told what to change.
        """
        escaped = procs.of_instance(f"{SERVICE_MARK}={self.name}", str(self.runtime.root),
                                    self.user.uid if os.geteuid() == 0 else os.geteuid(),
                                    self.spawned_at)
        if not escaped:
            return
        procs.signal_handles(escaped, signal.SIGTERM)
        deadline = time.monotonic() + self.ctx.stop_timeout
        delay = 0.0
        while procs.alive(escaped) and time.monotonic() < deadline:
            delay = _backoff(delay)
            time.sleep(delay)
        procs.signal_handles(escaped, signal.SIGKILL)
        pids = ", ".join(str(h.pid) for h in escaped)
        state.clear(self.ctx.state_path(self.reg.coordinate))
        _unlink_pid_file(self.runtime)
        raise self._fail(f"the program daemonized itself (it exited 0 and left pid {pids} "
                         f"running, which Shipyard stopped); [service] exec programs must "
                         f"stay in the foreground: {DAEMONIZED_HINT}")

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
        pid, _raw, _mtime = _read_pid_file(self.runtime.pid_file)
        if pid != self.proc.pid:
            if time.monotonic() < self.deadline:
                return self._again()
            raise self._fail(f"the service did not write {self.runtime.pid_file} within "
                             f"{self.ctx.start_timeout:g}s")
        return self._confirm()


def start(ctx: Context, coordinate: ServiceCoord) -> Outcome:
    return drive(begin_start(ctx, coordinate))


# ---------------------------------------------------------------------------------------
# Stop


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
                _unlink_pid_file(runtime)
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
            _unlink_pid_file(runtime)
            stack.close()
            return Outcome(name, "not-running", None,
                           f"{name} was not running (pid {record.pid} had exited)")
        if record is None:
            ident, why = pid_file_check(runtime, user)
            if ident is None:
                if why not in ("", GARBAGE, STALE):
                    _unlink_pid_file(runtime)
                    raise ShipyardError(f"{name}: not signalling anything: {why}")
                note = ""
                if why == STALE:
                    _unlink_pid_file(runtime)
                    note = " (removed a pid file left from an earlier boot)"
                stack.close()
                return Outcome(name, "not-running", None, f"{name} is not running{note}")
            record = _record_for(ident, str(reg.package) if reg else "",
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


def _size(path: Path) -> int:
    try:
        return os.stat(path).st_size
    except OSError:
        return 0


def _unlink_pid_file(runtime: Runtime) -> None:
    with contextlib.suppress(OSError):
        os.unlink(runtime.pid_file)


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
        self.delay = _backoff(self.delay)
        self.ready_at = min(at if at is not None else time.monotonic() + self.delay,
                            self.deadline)
        return self

    def begin(self) -> Step:
        now = time.monotonic()
        self.deadline = now + self.ctx.stop_timeout
        if self.stop_script is not None:
            import subprocess

            pkg, script = self.stop_script
            assert self.user is not None
            command, switch = self.user.spawn([str(script),
                                               f"--runtime-dir={self.runtime.root}",
                                               *self.arguments])
            self.err_offset = _size(self.runtime.stderr_log)
            out = open_console(self.runtime.stdout_log, self.user)
            try:
                err = open_console(self.runtime.stderr_log, self.user)
            except BaseException:
                os.close(out)
                raise
            try:
                self.script = subprocess.Popen(
                    command, stdin=subprocess.DEVNULL, stdout=out, stderr=err,
                    cwd=self.runtime.root,
                    env=self.ctx.service_env(self.user, self.runtime, pkg),
                    start_new_session=True, close_fds=True, umask=0o027,
                    **switch,  # type: ignore[arg-type]
                )
            finally:
                os.close(out)
                os.close(err)
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
        _unlink_pid_file(self.runtime)
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


def stop(ctx: Context, coordinate: ServiceCoord, *, registered: bool = True) -> Outcome:
    return drive(begin_stop(ctx, coordinate, registered=registered))


# ---------------------------------------------------------------------------------------
# Status


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
    base = dict(coordinate=str(coordinate), package=str(reg.package), boot=reg.boot,
                user=reg.user)
    busy = _busy(ctx.lock_path(coordinate)) or _orphan_script(ctx, coordinate) is not None
    user = ctx.known_user(reg.user)
    record = state.load(ctx.state_path(coordinate))
    if record is not None and not procs.same_boot(record.boot_id):
        record = None
    if record is not None and procs.is_running(record.pid, record.start):
        return Status(state="running", pid=record.pid,
                      uptime=max(0.0, time.time() - record.create_time), **base)
    ident, _why = pid_file_check(ctx.runtime(coordinate), user)
    if ident is not None:
        return Status(state="starting" if busy else "running", pid=ident.pid,
                      uptime=max(0.0, time.time() - ident.create_time),
                      detail="" if busy else "adopted from run/start.pid", **base)
    if busy:
        return Status(state="starting", pid=None, uptime=None, **base)
    if record is not None:
        return Status(state="dead", pid=record.pid, uptime=None,
                      detail=f"pid {record.pid} exited without svc stop", **base)
    return Status(state="stopped", pid=None, uptime=None, **base)


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


ActionFn = Callable[[Context, ServiceCoord], Step]
