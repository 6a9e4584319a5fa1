"""``svc reload``: make a running instance re-read its configuration without a restart.

The package says how in ``[service] reload``: ``"signal:HUP"`` (any signal) sent to the
instance's process, or a script in the package, run like the stop script (as the service
user, with ``--runtime-dir``, ``--coordinate`` and the parameters) whose exit status says
whether the server took the change. Links use it after an accept adapter changed a
server's config (``[[link.accept]] on_change = "reload"``): the adapter runs as the service
user with a clean environment and cannot signal or restart anything itself.

An instance that is not running is left alone: it reads its config when it starts.
"""

from __future__ import annotations

import os
import signal
import subprocess

from shipyard.coords import ServiceCoord
from shipyard.errors import ShipyardError
from shipyard.svc import logs, procs
from shipyard.svc.control import Context, Outcome, live_record, require_registration
from shipyard.svc.package import ServicePackage
from shipyard.svc.registry import Registration
from shipyard.svc.runtime import open_console


def reload(ctx: Context, coordinate: ServiceCoord) -> Outcome:
    """Reload one instance; "reloaded", or "not-running" when there is nothing to do."""
    reg = require_registration(ctx.settings, coordinate)
    name = str(coordinate)
    pkg = ctx.package(reg.package)
    how = pkg.service.reload
    if how is None:
        raise ShipyardError(f"{name}: package {pkg.coord} says no [service] reload "
                            "(\"signal:HUP\" or a script); restart it instead")
    with ctx.lock(coordinate):
        record = live_record(ctx, reg, adopt=True, user=ctx.known_user(reg.user))
        if record is None:
            return Outcome(name, "not-running", None,
                           f"{name} is not running; it reads its config when it starts")
        if how.startswith("signal:"):
            sig = signal.Signals[f"SIG{how[len('signal:'):]}"]
            if not procs.is_running(record.pid, record.start):
                return Outcome(name, "not-running", None, f"{name} is not running")
            try:
                os.kill(record.pid, sig)
            except ProcessLookupError:
                return Outcome(name, "not-running", None, f"{name} is not running")
            except PermissionError as exc:
                raise ShipyardError(f"{name}: cannot send {sig.name} to pid {record.pid}: "
                                    f"{exc.strerror}") from None
            return Outcome(name, "reloaded", record.pid,
                           f"reloaded {name} ({sig.name} to pid {record.pid})")
        return _script(ctx, reg, pkg, how, record.pid)


def _script(ctx: Context, reg: Registration, pkg: ServicePackage, relative: str,
            pid: int) -> Outcome:
    from shipyard.svc.package import package_file
    from shipyard.svc.params import with_defaults

    name = str(reg.coordinate)
    script = package_file(pkg, relative, "reload script")
    user = ctx.user(reg)
    runtime = ctx.runtime(reg.coordinate)
    argv = [str(script), f"--runtime-dir={runtime.root}", f"--coordinate={name}",
            *with_defaults(pkg.service.params, reg.params)]
    command, switch = user.spawn(argv)
    offset = os.stat(runtime.stderr_log).st_size if runtime.stderr_log.exists() else 0
    out = open_console(runtime.stdout_log, user)
    try:
        err = open_console(runtime.stderr_log, user)
    except BaseException:
        os.close(out)
        raise
    try:
        proc = subprocess.Popen(  # type: ignore[call-overload]
            command, stdin=subprocess.DEVNULL, stdout=out, stderr=err, cwd=runtime.root,
            env=ctx.service_env(user, runtime, pkg), start_new_session=True, close_fds=True,
            umask=0o027, **switch)
    except OSError as exc:
        raise ShipyardError(f"{name}: cannot run reload script {relative}: "
                            f"{exc.strerror}") from None
    finally:
        os.close(out)
        os.close(err)
    try:
        code = proc.wait(timeout=ctx.start_timeout)
    except subprocess.TimeoutExpired:
        procs.signal_group(proc.pid, signal.SIGKILL)
        proc.wait()
        raise ShipyardError(f"{name}: reload script {relative} did not finish within "
                            f"{ctx.start_timeout:g}s (killed it)") from None
    if code != 0:
        line = logs.last_line(runtime.stderr_log, offset)
        raise ShipyardError(f"{name}: reload script {relative} exited with code {code}"
                            f"{': ' + line if line else ''}")
    return Outcome(name, "reloaded", pid, f"reloaded {name} ({relative})")
