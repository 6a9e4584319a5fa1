"""The link adapter scripts of the tests, written as packages declare them: the
announcer's prints the generated config's values; the acceptor's keeps one file per
linked host. Both log their calls to ``<home>/announce-calls`` and ``<home>/accept-calls``
(two levels above the instance's runtime dir)."""

from __future__ import annotations

import os
import pwd
from pathlib import Path
from typing import Any

from kit.manifest import write_manifest
from shipyard.config import Settings
from shipyard.coords import PackageCoord, ServiceCoord
from shipyard.svc import registry
from shipyard.svc.registry import Registration

# Prints the values of the generated config, pkg-config style; counts its calls.
ANNOUNCE = """#!/bin/sh
echo "$SHIPYARD_COORDINATE" >> "$SHIPYARD_RUNTIME_DIR/../../announce-calls"
for flag in "$@"; do
  key="${flag#--}"
  sed -n "s/^$key = //p" "$SHIPYARD_LINK_CONFIG"
done
"""

# Keeps one file per linked host under its runtime dir: entries/<host> = port, password.
# The password comes in the environment (the default), never on the command line.
ACCEPT = """#!/bin/sh
remove=no
password="$SHIPYARD_LINK_PASSWORD"
for arg in "$@"; do
  case "$arg" in
    --remove) remove=yes ;;
    --host=*) host="${arg#--host=}" ;;
    --port=*) port="${arg#--port=}" ;;
    --password=*) password="${arg#--password=}" ;;  # password_via = "argv" only
    *) echo "unknown argument $arg" >&2; exit 2 ;;
  esac
done
d="$SHIPYARD_RUNTIME_DIR/entries"
mkdir -p "$d"
echo "$SHIPYARD_COORDINATE $SHIPYARD_LINK_ANNOUNCER $remove $host" \\
  >> "$SHIPYARD_RUNTIME_DIR/../../accept-calls"
if [ "$remove" = yes ]; then
  rm -f "$d/$host"
else
  printf '%s\\n%s\\n' "$port" "$password" > "$d/.$host.tmp" && mv "$d/.$host.tmp" "$d/$host"
fi
"""


def me() -> str:
    """The user running the tests, whom registrations name when none is given."""
    return pwd.getpwuid(os.geteuid()).pw_name


def install_package(software_root: Path, coord: PackageCoord, *, announce: str | None = None,
                    accept: str | None = None, interface: str = "chat", port: int | str = 4000,
                    prefix: str | None = None,
                    extra: dict[str, tuple[str, int]] | None = None,
                    announce_path: str = "link.d/announce",
                    accept_path: str = "link.d/accept",
                    tables: dict[str, Any] | None = None) -> PackageCoord:
    """Write an installed package with the given adapter scripts (None: not declared),
    ``extra`` files (path: (text, mode)) and further manifest ``tables``; ``port`` may be
    a template ("{param.port}")."""
    root = coord.install_path(software_root)
    root.mkdir(parents=True)
    link: dict[str, list[dict[str, Any]]] = {}
    files: dict[str, tuple[str, int]] = dict(extra or {})
    if announce is not None:
        link["announce"] = [{"interface": interface, "adapter": announce_path, "generate": {
            "port": port, "hostname_prefix": prefix or coord.id, "password": "random"}}]
        files.setdefault(announce_path, (announce, 0o755))
    if accept is not None:
        link["accept"] = [{"interface": interface, "adapter": accept_path}]
        files.setdefault(accept_path, (accept, 0o755))
    write_manifest(root, coord.group, coord.id, coord.version,
                   tables={"link": link or None, **(tables or {})})
    for rel, (content, mode) in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(content)
        os.chmod(path, mode)
    return coord


def register(settings: Settings, coordinate: str, package: PackageCoord,
             user: str | None = None) -> Registration:
    registration = Registration(ServiceCoord.parse(coordinate), package, user or me())
    registry.save(settings, registration)
    return registration


def calls(home: Path, kind: str) -> list[str]:
    """The lines the ``kind`` ("announce" or "accept") adapters logged below ``home``."""
    path = home / f"{kind}-calls"
    return path.read_text().splitlines() if path.exists() else []
