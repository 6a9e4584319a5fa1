"""``svc register`` and ``svc unregister``: the checks around a registry file.

A registration names an installed package that has a ``[service]`` table, a user (chosen
once, here, so root is never picked by accident later), parameters in ``--name=value``
form, and ``after`` instances that must not close a cycle. The file is written atomically
(temporary file, fsync, rename) under the registry lock, so a ``kill -9`` at any moment
leaves either the old file or the new one; temporary files an earlier crash left behind
are swept under the same lock.

Links follow every change, but not from here: the link stage sits above this one, so
:mod:`shipyard.node` runs the link hooks after :func:`register`/:func:`unregister` return.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from dataclasses import dataclass, field

from shipyard.config import Settings
from shipyard.coords import PackageCoord, ServiceCoord
from shipyard.errors import ShipyardError, UsageError
from shipyard.fsutil import file_lock
from shipyard.svc import boot, control, order, registry
from shipyard.svc import users as users_mod
from shipyard.svc.package import load_service_package
from shipyard.svc.params import check_declared, check_exec, parse_params, with_defaults
from shipyard.svc.registry import Registration


@dataclass
class Change:
    registration: Registration | None
    message: str
    warnings: list[str] = field(default_factory=list)


@contextlib.contextmanager
def registry_lock(settings: Settings) -> Iterator[None]:
    with file_lock(registry.registry_dir(settings) / ".lock", timeout=60,
                   what="the service registry"):
        sweep_temporaries(settings)
        yield


def sweep_temporaries(settings: Settings) -> list[str]:
    """Remove temporary files of writes that a crash interrupted (call under the lock)."""
    removed = []
    try:
        entries = list(os.scandir(registry.registry_dir(settings)))
    except OSError:
        return removed
    for entry in entries:
        if entry.name.startswith(".") and entry.name.endswith(".tmp"):
            with contextlib.suppress(OSError):
                os.unlink(entry.path)
                removed.append(entry.name)
    return removed


def register(settings: Settings, coordinate_text: str, package_text: str, *,
             boot_flag: bool = True, after: list[str] | None = None,
             user: str | None = None, params: list[str] | None = None) -> Change:
    coordinate = ServiceCoord.parse(coordinate_text)
    package = PackageCoord.parse(package_text, require_version=True, where="--package: ")
    after_coords = []
    for item in after or []:
        other = ServiceCoord.parse(item, where="--after: ")
        if other == coordinate:
            raise UsageError(f"--after: {coordinate} cannot come after itself")
        if str(other) not in after_coords:
            after_coords.append(str(other))
    params = list(params or [])
    parsed = parse_params(params)
    pkg = load_service_package(settings, package)
    where = f"{coordinate} ({package})"
    check_declared(pkg.service.params, parsed, where)
    if pkg.service.exec is not None:
        check_exec(pkg.service.exec, parse_params(with_defaults(pkg.service.params, params)),
                   where)
    chosen_user = users_mod.choose(settings, user, pkg.service.user, str(package))
    registration = Registration(coordinate=coordinate, package=package, user=chosen_user,
                                boot=boot_flag, after=after_coords, params=params)
    with registry_lock(settings):
        existing = registry.load(settings, coordinate)
        others = [r for r in registry.load_all(settings) if r.coordinate != coordinate]
        graph = boot.after_graph([*others, registration])
        cycle = order.find_cycle(graph)
        if cycle is not None:
            raise ShipyardError(f"{coordinate}: --after would close a cycle in 'after': "
                                f"{order.describe_cycle(cycle)}")
        registry.save(settings, registration)
    verb = "updated" if existing is not None else "registered"
    message = f"{verb} {coordinate} ({package}, user {chosen_user}, " \
              f"boot {'yes' if boot_flag else 'no'})"
    warnings = []
    unknown = [a for a in after_coords if all(str(r.coordinate) != a for r in others)]
    if unknown:
        warnings.append(f"--after names instances that are not registered (yet): "
                        f"{', '.join(unknown)}")
    return Change(registration, message, warnings)


def unregister(settings: Settings, coordinate_text: str, *, stop: bool = False) -> Change:
    coordinate = ServiceCoord.parse(coordinate_text)
    ctx = control.Context(settings)
    reg = control.require_registration(settings, coordinate)
    notes = []
    if control.is_active(ctx, reg):
        if not stop:
            raise ShipyardError(f"{coordinate} is running; stop it first or pass --stop")
        notes.append(control.stop(ctx, coordinate).message)
    with registry_lock(settings):
        removed = registry.remove(settings, coordinate)
    if not removed:
        raise ShipyardError(f"unknown service {coordinate}: not registered")
    message = "; ".join([*notes, f"unregistered {coordinate} (its runtime dir stays until "
                                  "svc cleanup)"])
    return Change(reg, message)
