"""``svc init-system``: hand boot and shutdown to systemd or a SysV init.

systemd gets three things:

* ``shipyard.service``: oneshot with ``RemainAfterExit``; start runs ``svc boot``, stop
  runs ``svc shutdown``: the boot registry at machine start-up and shutdown.
* ``shipyard@.service``: one instance under systemd's own supervision
  (``Type=forking``, ``PIDFile=`` the instance's ``run/start.pid``,
  ``Restart=on-failure``). Use it for instances registered with ``--no-boot``; an
  instance should be managed by one of the two, not both.
* ``shipyard-rotate.service`` + ``.timer``: ``svc rotate`` every five minutes, which keeps
  console and log files bounded (see :mod:`shipyard.svc.logs`).

SysV gets one LSB script with ``start|stop|restart|force-reload|status`` (and ``rotate``
for cron). Both bake in the roots in effect (``SHIPYARD_HOME``/``SHIPYARD_CONFIG``) and the
interpreter that runs Shipyard now, so the init system manages the same registry.
"""

from __future__ import annotations

import os
import shlex
import sys
from dataclasses import dataclass
from pathlib import Path

from shipyard.config import Settings
from shipyard.errors import ShipyardError
from shipyard.fsutil import atomic_write
from shipyard.svc.runtime import FHS_PLACES, PID_FILE


@dataclass(frozen=True)
class UnitFile:
    name: str
    text: str
    mode: int = 0o644


def shipyard_command() -> list[str]:
    """How the init system should run this Shipyard (absolute paths only)."""
    script = Path(sys.executable).parent / "shipyard"
    if script.is_file() and os.access(script, os.X_OK):
        return [str(script)]
    return [sys.executable, "-m", "shipyard.cli.main"]


def unit_environment(settings: Settings) -> dict[str, str]:
    """The roots in effect now, so that a unit (here or the farm's) sees the same ones."""
    env = {}
    for name in ("SHIPYARD_HOME", "SHIPYARD_CONFIG"):
        if os.environ.get(name):
            env[name] = os.path.abspath(os.environ[name])
    if settings.home is not None:
        env["SHIPYARD_HOME"] = str(settings.home)
    if settings.config_file is not None:
        env["SHIPYARD_CONFIG"] = str(settings.config_file)
    return env


def systemd_quote(word: str) -> str:
    if word and all(c.isalnum() or c in "/._-=:@%+," for c in word):
        return word
    return '"' + word.replace("\\", "\\\\").replace('"', '\\"') + '"'


def exec_words(command: list[str], *args: str) -> str:
    """Words as one systemd command line (or path list), quoted where systemd needs it."""
    return " ".join(systemd_quote(w) for w in [*command, *args])


def env_lines(env: dict[str, str]) -> str:
    return "".join(f'Environment="{k}={v}"\n' for k, v in sorted(env.items()))


def pid_file_template(settings: Settings) -> str:
    layout = str(settings.get("svc.layout")).strip().lower()
    if layout == "fhs":
        root = Path(os.path.abspath(settings.path("svc.fhs_root")))
        return str(root / FHS_PLACES["run"] / "%i" / PID_FILE)
    return str(Path(os.path.abspath(settings.runtime_root)) / "%i" / "run" / PID_FILE)


# The node units start service instances as other users, create those users, chown their
# runtime directories and signal their processes, and every instance inherits the unit's
# sandbox. So they keep the capabilities that needs, a writable /etc (useradd), the
# namespaces and system calls a service may use, and the real /tmp (an instance started
# by systemd must see the same /tmp as one started from a shell); they lose the rest.
NODE_SANDBOX = """\
# Sandbox (systemd.exec(5)), limited by the job: this unit starts service instances as
# their own users (setuid/setgid, useradd, chown of runtime dirs, signals to them), and
# each instance inherits what is set here. Hence no NoNewPrivileges= (a service may rely
# on a set-uid helper), ProtectSystem=full rather than strict (/etc stays writable for
# useradd; services write where their packages say), no PrivateTmp= (instances started
# here and from a shell must share /tmp), no system-call or namespace filter. Root
# instances (--user root) get these capabilities only, and no exotic socket family.
CapabilityBoundingSet=CAP_CHOWN CAP_DAC_OVERRIDE CAP_DAC_READ_SEARCH CAP_FOWNER CAP_FSETID \
CAP_KILL CAP_SETGID CAP_SETUID CAP_NET_BIND_SERVICE CAP_AUDIT_WRITE
ProtectSystem=full
ProtectKernelModules=yes
ProtectKernelLogs=yes
ProtectClock=yes
ProtectControlGroups=yes
RestrictRealtime=yes
LockPersonality=yes
SystemCallArchitectures=native
RestrictAddressFamilies=AF_UNIX AF_INET AF_INET6 AF_NETLINK
"""


def systemd_units(settings: Settings, command: list[str] | None = None) -> list[UnitFile]:
    command = command or shipyard_command()
    env = env_lines(unit_environment(settings))
    start_timeout = float(settings.get("svc.start_timeout"))
    stop_timeout = float(settings.get("svc.stop_timeout"))
    instance_start = int(start_timeout + float(settings.get("svc.start_grace")) + 30)
    instance_stop = int(stop_timeout + 30)
    boot_unit = f"""\
# Written by `shipyard svc init-system --systemd`.
[Unit]
Description=Shipyard service instances registered to start at boot
Wants=network-online.target
After=network-online.target local-fs.target remote-fs.target

[Service]
Type=oneshot
RemainAfterExit=yes
{env}ExecStart={exec_words(command, "svc", "boot")}
ExecStop={exec_words(command, "svc", "shutdown")}
TimeoutStartSec=15min
TimeoutStopSec=15min

{NODE_SANDBOX}
[Install]
WantedBy=multi-user.target
"""
    instance_unit = f"""\
# Written by `shipyard svc init-system --systemd`.
[Unit]
Description=Shipyard service instance %i
Wants=network-online.target
After=network-online.target local-fs.target remote-fs.target

[Service]
Type=forking
PIDFile={pid_file_template(settings)}
{env}ExecStart={exec_words(command, "svc", "start", "%i")}
ExecStop={exec_words(command, "svc", "stop", "%i")}
Restart=on-failure
RestartSec=2
TimeoutStartSec={instance_start}
TimeoutStopSec={instance_stop}

{NODE_SANDBOX}
[Install]
WantedBy=multi-user.target
"""
    rotate_service = f"""\
# Written by `shipyard svc init-system --systemd`.
[Unit]
Description=Rotate Shipyard service instance logs

[Service]
Type=oneshot
{env}ExecStart={exec_words(command, "svc", "rotate")}

{NODE_SANDBOX}"""
    rotate_timer = """\
# Written by `shipyard svc init-system --systemd`.
[Unit]
Description=Rotate Shipyard service instance logs every five minutes

[Timer]
OnBootSec=5min
OnUnitActiveSec=5min

[Install]
WantedBy=timers.target
"""
    return [UnitFile("shipyard.service", boot_unit),
            UnitFile("shipyard@.service", instance_unit),
            UnitFile("shipyard-rotate.service", rotate_service),
            UnitFile("shipyard-rotate.timer", rotate_timer)]


def sysv_script(settings: Settings, command: list[str] | None = None) -> UnitFile:
    command = command or shipyard_command()
    exports = "".join(f"{k}={shlex.quote(v)}\nexport {k}\n"
                      for k, v in sorted(unit_environment(settings).items()))
    text = f"""\
#!/bin/sh
# Written by `shipyard svc init-system --sysv`.
### BEGIN INIT INFO
# Provides:          shipyard
# Required-Start:    $remote_fs $network $syslog
# Required-Stop:     $remote_fs $network $syslog
# Default-Start:     2 3 4 5
# Default-Stop:      0 1 6
# Short-Description: Shipyard service instances
# Description:       Starts the Shipyard service instances registered with boot = yes
#                    and stops every instance at shutdown.
### END INIT INFO

{exports}
shipyard() {{
    {' '.join(shlex.quote(w) for w in command)} "$@"
}}

case "$1" in
    start)
        shipyard svc boot
        ;;
    stop)
        shipyard svc shutdown
        ;;
    restart|force-reload)
        shipyard svc shutdown
        shipyard svc boot
        ;;
    status)
        shipyard svc status
        ;;
    rotate)
        shipyard svc rotate
        ;;
    *)
        echo "Usage: $0 {{start|stop|restart|force-reload|status|rotate}}" >&2
        exit 3
        ;;
esac
"""
    return UnitFile("shipyard", text, 0o755)


def write(files: list[UnitFile], directory: Path) -> list[Path]:
    directory = Path(directory)
    written = []
    for unit in files:
        path = directory / unit.name
        try:
            atomic_write(path, unit.text, mode=unit.mode)
        except OSError as exc:
            raise ShipyardError(f"cannot write {path}: {exc.strerror or exc}") from None
        written.append(path)
    return written
