"""Building blocks for link tests: installed fake packages, registrations, adapter scripts.

Packages are written straight into the software root and instances into the registry with
:func:`shipyard.svc.registry.save` (the contracts the link stage reads), so these tests
exercise the link engine through the real CLI without depending on how other stages fill
those places. The end-to-end test uses the real ``pkg``/``svc`` commands instead.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from kit import links
from kit.links import ACCEPT, ANNOUNCE, calls, me  # noqa: F401  (re-exported to the tests)
from kit.wait import wait_until  # noqa: F401  (re-exported to the tests)
from shipyard.config import Settings, load_settings
from shipyard.coords import PackageCoord, ServiceCoord
from shipyard.svc import registry
from shipyard.svc.registry import Registration

GROUP = "org.test.links"
INTERFACE = "chat"


def settings_for(home: Path) -> Settings:
    return load_settings(home=home, env={})


def install_package(home: Path, ident: str, *, version: str = "1.0",
                    interface: str = INTERFACE, **kwargs: Any) -> PackageCoord:
    """Write an installed package with the given adapter scripts (None: not declared)."""
    return links.install_package(settings_for(home).software_root,
                                 PackageCoord(GROUP, ident, version), interface=interface,
                                 **kwargs)


def register(home: Path, coordinate: str, package: PackageCoord,
             user: str | None = None) -> Registration:
    return links.register(settings_for(home), coordinate, package, user)


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
