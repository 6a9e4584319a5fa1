"""Launching a process of an instance: its service, or its start, stop or reload script.

Every such process is made the same way, and only here: as the service user, in the
runtime dir, in a session of its own (so its group can be signalled without touching
Shipyard), stdout and stderr appended to the instance's ``console/`` files, umask 027,
and a clean environment in which Shipyard's own variables never reach a service.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

from shipyard.svc.runtime import Runtime, open_console
from shipyard.svc.users import ServiceUser

# Imported where a process is launched: a shutdown that runs no stop script needs neither.
if TYPE_CHECKING:
    import subprocess

    from shipyard.svc.context import Context
    from shipyard.svc.package import ServicePackage

DEFAULT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
# Only the service (and its start/stop scripts) carry this: it finds a program that
# daemonised itself out of its session (see :mod:`shipyard.svc.daemonized`), and never
# an adapter, which gets the runtime dir too.
SERVICE_MARK = "SHIPYARD_SERVICE"


def service_env(platform: str, user: ServiceUser, runtime: Runtime,
                pkg: ServicePackage) -> dict[str, str]:
    """A clean environment: Shipyard's own variables never leak into services."""
    env = {k: v for k, v in os.environ.items()
           if k in ("PATH", "LANG", "LANGUAGE", "TZ") or k.startswith("LC_")}
    env.setdefault("PATH", DEFAULT_PATH)
    env.update(user.env())
    env.update({
        "SHIPYARD_PLATFORM": platform,
        "SHIPYARD_RUNTIME_DIR": str(runtime.root),
        "SHIPYARD_COORDINATE": str(runtime.coordinate),
        "SHIPYARD_PACKAGE_DIR": str(pkg.dir),
        SERVICE_MARK: str(runtime.coordinate),
    })
    return env


def spawn(ctx: Context, argv: list[str], user: ServiceUser, runtime: Runtime,
          pkg: ServicePackage) -> subprocess.Popen[bytes]:
    """Launch ``argv`` for the instance of ``runtime``, detached; ``OSError`` when it
    cannot be run (the caller says what it was trying to run)."""
    import subprocess

    command, switch = user.spawn(argv)
    out = open_console(runtime.stdout_log, user)
    try:
        err = open_console(runtime.stderr_log, user)
    except BaseException:
        os.close(out)
        raise
    try:
        return subprocess.Popen(
            command, stdin=subprocess.DEVNULL, stdout=out, stderr=err, cwd=runtime.root,
            env=service_env(ctx.platform, user, runtime, pkg),
            start_new_session=True, close_fds=True, umask=0o027, **switch,
        )
    finally:
        os.close(out)
        os.close(err)
