"""``farm init-system``: the coordinator's and a worker's systemd units, and their user.

Both run as an unprivileged system user (``shipyard-farm`` unless told otherwise) that this
module creates, and both are sandboxed by systemd as far as each process's job allows:

* the coordinator only serves HTTP and writes its state (the SQLite database when there is
  one, ``farm.artifacts``, the repository it publishes to), so it gets nearly everything
  systemd offers: read-only system, no capabilities, no namespaces, a system-call allow
  list, no writable-executable memory;
* a worker runs builds under bubblewrap (user, mount, pid, network, IPC and UTS
  namespaces), so its unit must leave bubblewrap what it needs; each exception is stated
  next to its line in the unit, where an operator will read it.

The worker's token never appears on a command line (``ps`` shows those to every user): it
lives in an environment file readable by root only, which systemd reads before it drops
to the service user. ``systemd-analyze security`` rates both units "OK" (tests check that
and ``systemd-analyze verify``).
"""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass
from pathlib import Path

from shipyard.config import Settings
from shipyard.errors import ShipyardError
from shipyard.fsutil import atomic_write
from shipyard.svc.initsys import (
    UnitFile,
    env_lines,
    exec_words,
    shipyard_command,
    unit_environment,
)

DEFAULT_USER = "shipyard-farm"
COORDINATOR_UNIT = "shipyard-coordinator.service"
WORKER_UNIT = "shipyard-worker.service"
# Directories systemd hides (ProtectHome=, PrivateTmp=): a path the service needs below one
# of them is bound into its namespace explicitly.
_HIDDEN = (Path("/home"), Path("/root"), Path("/run/user"), Path("/tmp"), Path("/var/tmp"))

# What every Shipyard farm process may do without: the kernel, devices, the clock,
# realtime, set-uid files, exotic sockets, capabilities of any kind.
_COMMON = """\
# Sandbox (systemd.exec(5)); what this process needs is made writable below.
NoNewPrivileges=yes
CapabilityBoundingSet=
AmbientCapabilities=
ProtectSystem=strict
PrivateTmp=yes
PrivateDevices=yes
DevicePolicy=closed
PrivateMounts=yes
ProtectKernelModules=yes
ProtectControlGroups=yes
ProtectClock=yes
ProtectHostname=yes
RestrictRealtime=yes
RestrictSUIDSGID=yes
LockPersonality=yes
RemoveIPC=yes
KeyringMode=private
SystemCallArchitectures=native
UMask=0027
"""

_COORDINATOR_SANDBOX = """\
# The coordinator serves HTTP, talks to PostgreSQL and SMTP and writes files: no other
# socket family, namespace, kernel interface or process view is needed.
RestrictAddressFamilies=AF_INET AF_INET6 AF_UNIX
RestrictNamespaces=yes
PrivateUsers=yes
ProtectKernelTunables=yes
ProtectKernelLogs=yes
ProtectProc=invisible
ProcSubset=pid
MemoryDenyWriteExecute=yes
SystemCallFilter=@system-service
SystemCallFilter=~@privileged @resources
"""

_WORKER_SANDBOX = """\
# Builds run under bubblewrap, which needs what the coordinator goes without:
# - user, mount, pid, network, IPC, UTS and cgroup namespaces (RestrictNamespaces lists
#   them instead of forbidding all) and the mount system calls (@mount);
# - netlink (AF_NETLINK), to bring up loopback in a build's own network namespace;
# - a /proc it may mount again: ProtectKernelTunables=, ProtectKernelLogs= and
#   ProtectProc= put locked mounts over parts of /proc, and the kernel then refuses
#   bubblewrap's `--proc` ("Can't mount proc ... Operation not permitted");
# - no PrivateUsers= (bubblewrap maps the worker's own user into each build) and no
#   MemoryDenyWriteExecute= (it would be inherited by every build: JIT compilers such as
#   the JVM's or V8's would fail).
# The system-call filter is inherited by builds too: @resources stays allowed (a build's
# time and memory limits are rlimits; `ulimit` and `nice` in build scripts) and so does
# @debug (ptrace: test suites under a debugger or a leak sanitizer).
# bubblewrap needs no capability and works under NoNewPrivileges (it is not set-uid here).
RestrictAddressFamilies=AF_INET AF_INET6 AF_UNIX AF_NETLINK
RestrictNamespaces=user mnt pid net ipc uts cgroup
SystemCallFilter=@system-service @mount @debug
"""


@dataclass(frozen=True)
class FarmUnits:
    """What ``farm init-system`` writes and prepares."""

    units: list[UnitFile]
    writable: list[Path]  # directories the service user must own
    env_files: list[Path]  # root-only environment files (created empty when missing)


def _below(path: Path, parent: Path) -> bool:
    return path == parent or parent in path.parents


def _paths_section(writable: list[Path], readable: list[Path]) -> str:
    """ReadWritePaths= for the state, bind mounts for what a hiding option would hide."""
    lines = []
    hides_home = any(_below(p, h) for p in [*writable, *readable] for h in _HIDDEN[:3])
    lines.append("ProtectHome=tmpfs\n" if hides_home else "ProtectHome=yes\n")
    for path in writable:
        hidden = any(_below(path, h) for h in _HIDDEN)
        lines.append(f"{'BindPaths' if hidden else 'ReadWritePaths'}={exec_words([str(path)])}\n")
    for path in readable:
        if any(_below(path, h) for h in _HIDDEN):
            lines.append(f"BindReadOnlyPaths={exec_words([str(path)])}\n")
    return "".join(lines)


def _program_paths(command: list[str]) -> list[Path]:
    """Where the interpreter and Shipyard live, so that a hidden home can still run them."""
    places = {Path(sys.prefix), Path(sys.base_prefix), Path(os.path.realpath(command[0])).parent}
    for path in sys.path:
        if path and os.path.isdir(path) and "site-packages" not in path:
            places.add(Path(path))
    found = sorted({Path(os.path.realpath(p)) for p in places})
    # Bind the outermost ones only.
    return [p for p in found if not any(q != p and _below(p, q) for q in found)]


def _coordinator_writable(settings: Settings, repo: Path | None) -> list[Path]:
    from shipyard.farm.db import default_db_url

    paths = [Path(settings.farm.artifacts).absolute()]
    url = default_db_url(settings)
    if url.startswith("sqlite"):
        # SQLite writes its journal beside the database file.
        paths.append(Path(url.split(":///", 1)[1]).absolute().parent)
    if repo is not None:
        paths.append(repo.absolute())
    return sorted(set(paths))


def farm_units(settings: Settings, *, user: str = DEFAULT_USER, coordinator: bool = True,
               worker: bool = True, repo: Path | None = None, worker_url: str = "",
               capacity: int = 1, command: list[str] | None = None) -> FarmUnits:
    command = command or shipyard_command()
    env = env_lines(unit_environment(settings))
    readable = _program_paths(command)
    config_dir = Path(settings.config_dir).absolute()
    units: list[UnitFile] = []
    writable: list[Path] = []
    env_files: list[Path] = []
    if coordinator:
        paths = _coordinator_writable(settings, repo)
        serve = ["farm", "serve"] + (["--repo", str(repo.absolute())] if repo else [])
        env_file = config_dir / "coordinator.env"
        units.append(UnitFile(COORDINATOR_UNIT, f"""\
# Written by `shipyard farm init-system`.
[Unit]
Description=Shipyard farm coordinator
Wants=network-online.target
After=network-online.target postgresql.service

[Service]
Type=exec
User={user}
{env}# Secrets (SHIPYARD_SMTP_PASSWORD, a farm.db URL with a password): root-only file.
EnvironmentFile=-{env_file}
ExecStart={exec_words(command, *serve)}
Restart=on-failure
RestartSec=2

{_COMMON}{_paths_section(paths, readable)}{_COORDINATOR_SANDBOX}
[Install]
WantedBy=multi-user.target
"""))
        writable += paths
        env_files.append(env_file)
    if worker:
        base = (Path(settings.state_dir) / "farm-worker").absolute()
        args = ["farm", "worker", "--capacity", str(capacity)]
        if worker_url:
            args += ["--coordinator", worker_url]
        env_file = config_dir / "worker.env"
        units.append(UnitFile(WORKER_UNIT, f"""\
# Written by `shipyard farm init-system`.
[Unit]
Description=Shipyard farm worker
Wants=network-online.target
After=network-online.target

[Service]
Type=exec
User={user}
{env}# SHIPYARD_FARM_TOKEN=... lives here (root only, 0600): never on the command line,
# and builds never see it (they get a scrubbed environment).
EnvironmentFile={env_file}
ExecStart={exec_words(command, *args)}
Restart=always
RestartSec=5
# Builds are killed with the worker.
KillMode=control-group

{_COMMON}{_paths_section([base], readable)}{_WORKER_SANDBOX}
[Install]
WantedBy=multi-user.target
"""))
        writable.append(base)
        env_files.append(env_file)
    return FarmUnits(units, writable, env_files)


ENV_TEMPLATE = """\
# Environment of a Shipyard farm unit, read by systemd as root (keep it 0600).
# Written by `shipyard farm init-system`; it never overwrites this file.
"""


def prepare(settings: Settings, plan: FarmUnits, user: str) -> list[str]:
    """Create the service user, its directories and the root-only environment files.

    Directories that exist and belong to someone else are left alone (a shared state
    directory is not taken over): the returned notes say what to change by hand.
    """
    from shipyard.svc.users import ensure

    account = ensure(settings, user)
    notes = []
    for path in plan.writable:
        if not path.exists():
            try:
                path.mkdir(parents=True, mode=0o750)
                os.chown(path, account.uid, account.gid)
            except OSError as exc:
                raise ShipyardError(f"cannot create {path}: {exc.strerror or exc}") from None
        elif path.stat().st_uid != account.uid:
            notes.append(f"{path} belongs to another user: the unit needs it writable by "
                         f"{user} (e.g. chown -R {user}: {path})")
    for env_file in plan.env_files:
        if not env_file.exists():
            try:
                env_file.parent.mkdir(parents=True, exist_ok=True)
                text = ENV_TEMPLATE
                if env_file.name == "worker.env":
                    text += "SHIPYARD_FARM_TOKEN=\n"
                atomic_write(env_file, text, mode=0o600)
            except OSError as exc:
                raise ShipyardError(f"cannot write {env_file}: {exc.strerror or exc}") from None
        elif env_file.stat().st_mode & 0o077:
            notes.append(f"{env_file} is readable by others: chmod 600 {env_file}")
    return notes
