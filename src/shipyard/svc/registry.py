"""The boot registry: one ini file per service instance under ``<config>/services/``.

Like skytools' ``/etc/skytools.ini`` plus ``config_list``, but one file per instance so
registering and unregistering are single atomic renames and two operators never edit the
same file. Other stages read it through :func:`load_all` and :func:`instances_using`
(``pkg uninstall`` refuses to remove a package a registered instance uses).

File format::

    [instance]
    coordinate = 1.idee.prod.trd
    package = org.example:idee:1.0
    user = shipyard
    boot = yes
    after = 1.db.prod.trd 2.db.prod.trd
    params = --port=8080 '--motd=hello world'
"""

from __future__ import annotations

import configparser
import re
import shlex
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from shipyard.config import Settings
from shipyard.coords import PackageCoord, ServiceCoord
from shipyard.errors import CoordinateError, ShipyardError
from shipyard.fsutil import atomic_write

SECTION = "instance"


@dataclass
class Registration:
    coordinate: ServiceCoord
    package: PackageCoord
    user: str
    boot: bool = True
    after: list[str] = field(default_factory=list)
    params: list[str] = field(default_factory=list)

    def to_ini(self) -> str:
        lines = [
            f"[{SECTION}]",
            f"coordinate = {self.coordinate}",
            f"package = {self.package}",
            f"user = {self.user}",
            f"boot = {'yes' if self.boot else 'no'}",
            f"after = {' '.join(self.after)}",
            f"params = {shlex.join(self.params)}",
        ]
        return "\n".join(lines) + "\n"


def registry_dir(settings: Settings) -> Path:
    return settings.services_dir


def registration_path(settings: Settings, coordinate: ServiceCoord) -> Path:
    return registry_dir(settings) / f"{coordinate}.ini"


_CANONICAL_LINE = re.compile(r"([a-z_]+) = (.*)")


def _canonical_fields(text: str) -> dict[str, str] | None:
    """The fields of a file exactly as :meth:`Registration.to_ini` writes it, else None.

    ``svc boot`` reads every registration; configparser costs a quarter of a millisecond
    per file, this a fraction of it. Anything unusual (comments, continuation lines, other
    sections, duplicate keys) returns None and goes through configparser, so both paths
    accept and mean the same.
    """
    lines = text.split("\n")
    if lines[0] != f"[{SECTION}]":
        return None
    fields: dict[str, str] = {}
    for line in lines[1:]:
        if not line:
            continue
        match = _CANONICAL_LINE.fullmatch(line)
        if match is None or match.group(1) in fields:
            return None
        fields[match.group(1)] = match.group(2).strip()
    return fields


def parse_registration(path: Path) -> Registration:
    try:
        with open(path, encoding="utf-8") as handle:
            text = handle.read()
        fields = _canonical_fields(text)
        section: Mapping[str, str]
        if fields is not None:
            section = fields
        else:
            parser = configparser.ConfigParser(interpolation=None)
            parser.read_string(text, source=str(path))
            section = parser[SECTION]
        where = f"{path}: "
        coordinate = ServiceCoord.parse(section["coordinate"], where=where)
        if f"{coordinate}.ini" != path.name:
            raise ShipyardError(f"{path}: coordinate {coordinate} does not match the file name")
        package = PackageCoord.parse(section["package"], require_version=True, where=where)
        boot_text = section.get("boot", "yes").strip().lower()
        if boot_text not in ("yes", "no"):
            raise ShipyardError(f"{path}: boot must be yes or no, got {boot_text!r}")
        after = section.get("after", "").split()
        for name in after:
            ServiceCoord.parse(name, where=f"{path}: after: ")
        return Registration(
            coordinate=coordinate,
            package=package,
            user=section.get("user", "").strip(),
            boot=boot_text == "yes",
            after=after,
            params=shlex.split(params_text) if (params_text := section.get("params", "")) else [],
        )
    except (configparser.Error, KeyError, ValueError, UnicodeDecodeError) as exc:
        raise ShipyardError(f"{path}: malformed registration ({exc})") from None
    except CoordinateError as exc:
        raise ShipyardError(exc.message) from None


def load(settings: Settings, coordinate: ServiceCoord) -> Registration | None:
    path = registration_path(settings, coordinate)
    if not path.exists():
        return None
    return parse_registration(path)


def load_all(settings: Settings) -> list[Registration]:
    """Every registered instance, sorted by coordinate."""
    directory = registry_dir(settings)
    if not directory.is_dir():
        return []
    return [parse_registration(p) for p in sorted(directory.glob("*.ini"))
            if not p.name.startswith(".")]


def save(settings: Settings, registration: Registration) -> Path:
    path = registration_path(settings, registration.coordinate)
    atomic_write(path, registration.to_ini(), mode=0o644)
    return path


def remove(settings: Settings, coordinate: ServiceCoord) -> bool:
    from shipyard.fsutil import fsync_dir

    path = registration_path(settings, coordinate)
    try:
        path.unlink()
    except FileNotFoundError:
        return False
    fsync_dir(path.parent)
    return True


def instances_using(settings: Settings, package: PackageCoord) -> list[ServiceCoord]:
    """Registered instances whose package is exactly ``package``."""
    return [r.coordinate for r in load_all(settings) if r.package == package]
