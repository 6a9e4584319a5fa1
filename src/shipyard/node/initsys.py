"""``node init-system``: a systemd unit that runs the node agent, hardened.

The agent installs packages, registers instances and starts them as their users, so it
runs as root; the hardening therefore takes what it does not need (kernel tunables and
modules, new privileges through set-uid binaries, writes outside Shipyard's own roots).
``KillMode=process``: stopping or restarting the agent never stops the service instances
it started (they are the node's work, not the agent's children). Exit code 3 (the
coordinator refused this node's credential) is not restarted.
"""

from __future__ import annotations

import os
from pathlib import Path

from shipyard.config import Settings
from shipyard.svc.initsys import (
    UnitFile,
    exec_words,
    shipyard_command,
    systemd_quote,
    unit_environment,
)


def agent_unit(settings: Settings, command: list[str] | None = None) -> UnitFile:
    command = command or shipyard_command()
    env = "".join(f'Environment="{k}={v}"\n' for k, v in sorted(unit_environment(settings).items()))
    roots = sorted({str(Path(os.path.abspath(settings.path(key)))) for key in (
        "paths.config", "paths.software", "paths.runtime", "paths.state",
        "paths.run")})
    writable = " ".join(systemd_quote(f"-{root}") for root in roots)
    text = f"""\
# Written by `shipyard node init-system`.
[Unit]
Description=Shipyard node agent (fleet member: converges this host to its desired state)
Wants=network-online.target
After=network-online.target local-fs.target shipyard.service

[Service]
Type=simple
{env}ExecStart={exec_words(command, "node", "agent")}
Restart=on-failure
RestartSec=5
RestartPreventExitStatus=3
KillMode=process
TimeoutStopSec=90
UMask=0022
NoNewPrivileges=yes
ProtectSystem=full
ReadWritePaths={writable}
ProtectKernelTunables=yes
ProtectKernelModules=yes
ProtectKernelLogs=yes
ProtectControlGroups=yes
ProtectClock=yes
ProtectHostname=yes
RestrictSUIDSGID=yes
RestrictRealtime=yes
RestrictNamespaces=yes
LockPersonality=yes
SystemCallArchitectures=native

[Install]
WantedBy=multi-user.target
"""
    return UnitFile("shipyard-node.service", text)
