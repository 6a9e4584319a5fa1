"""Building blocks for link tests: installed fake packages, registrations, adapter scripts.

Packages are written straight into the software root and instances into the registry with
:func:`shipyard.svc.registry.save` (the contracts the link stage reads), so these tests
exercise the link engine through the real CLI without depending on how other stages fill
those places. The end-to-end test uses the real ``pkg``/``svc`` commands instead.
"""

from __future__ import annotations

import os
import pwd
from pathlib import Path

from helpers import wait_until  # noqa: F401  (re-exported to the tests)
from shipyard.config import Settings, load_settings
from shipyard.coords import PackageCoord, ServiceCoord
from shipyard.svc import registry
from shipyard.svc.registry import Registration

GROUP = "org.test.links"
INTERFACE = "chat"

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


def settings_for(home: Path) -> Settings:
    return load_settings(home=home, env={})


def me() -> str:
    return pwd.getpwuid(os.geteuid()).pw_name


def install_package(home: Path, ident: str, *, announce: str | None = None,
                    accept: str | None = None, interface: str = INTERFACE,
                    port: int = 4000, prefix: str | None = None, version: str = "1.0",
                    extra: dict[str, tuple[str, int]] | None = None,
                    announce_path: str = "link.d/announce",
                    accept_path: str = "link.d/accept") -> PackageCoord:
    """Write an installed package with the given adapter scripts (None: not declared)."""
    coord = PackageCoord(GROUP, ident, version)
    root = coord.install_path(settings_for(home).software_root)
    root.mkdir(parents=True)
    lines = [f'[package]\ngroup = "{GROUP}"\nid = "{ident}"\nversion = "{version}"\n']
    files: dict[str, tuple[str, int]] = dict(extra or {})
    if announce is not None:
        lines.append(
            f'[[link.announce]]\ninterface = "{interface}"\nadapter = "{announce_path}"\n'
            f'generate = {{ port = {port}, hostname_prefix = "{prefix or ident}", '
            'password = "random" }\n')
        files.setdefault(announce_path, (announce, 0o755))
    if accept is not None:
        lines.append(f'[[link.accept]]\ninterface = "{interface}"\nadapter = "{accept_path}"\n')
        files.setdefault(accept_path, (accept, 0o755))
    (root / "shipyard.toml").write_text("\n".join(lines))
    for rel, (content, mode) in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(content)
        os.chmod(path, mode)
    return coord


def register(home: Path, coordinate: str, package: PackageCoord,
             user: str | None = None) -> Registration:
    registration = Registration(ServiceCoord.parse(coordinate), package, user or me())
    registry.save(settings_for(home), registration)
    return registration


def unregister(home: Path, coordinate: str) -> None:
    assert registry.remove(settings_for(home), ServiceCoord.parse(coordinate))


def runtime(home: Path, coordinate: str) -> Path:
    return home / "runtime" / coordinate


def entries(home: Path, acceptor: str) -> dict[str, tuple[int, str]]:
    """What the test accept adapter holds for ``acceptor``: host -> (port, password)."""
    directory = runtime(home, acceptor) / "entries"
    out = {}
    if directory.is_dir():
        for path in directory.iterdir():
            if path.name.startswith("."):
                continue
            port, password = path.read_text().split("\n")[:2]
            out[path.name] = (int(port), password)
    return out


def generated(home: Path, announcer: str, interface: str = INTERFACE) -> dict[str, str]:
    import configparser

    parser = configparser.ConfigParser(interpolation=None)
    parser.read(runtime(home, announcer) / "etc" / f"link-{interface}.ini")
    return dict(parser["link"])


def calls(home: Path, kind: str) -> list[str]:
    path = home / f"{kind}-calls"
    return path.read_text().splitlines() if path.exists() else []
