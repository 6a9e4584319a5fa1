"""Who announces and who accepts what: registered instances joined with their manifests.

The link stage only reads other stages' published contracts: the registry files (through
:mod:`shipyard.svc.registry`) and the installed package dirs (through
:meth:`PackageCoord.install_path` and :func:`load_manifest`). One broken registration or a
package that is not installed is recorded as that instance's problem; it never hides the
other instances, so one bad file cannot block every link on the host.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from shipyard.config import Settings
from shipyard.errors import ShipyardError
from shipyard.manifest import LinkAccept, LinkAnnounce, Manifest, load_manifest
from shipyard.svc import registry
from shipyard.svc.registry import Registration


@dataclass
class Instance:
    coordinate: str
    registration: Registration | None
    package_dir: Path | None = None
    runtime_dir: Path | None = None
    manifest: Manifest | None = None
    problem: str | None = None

    @property
    def user(self) -> str:
        return self.registration.user if self.registration else ""

    def params(self) -> dict[str, str | None]:
        """The registered parameters with the package's ``[service.params]`` defaults."""
        from shipyard.svc.params import parse_params, with_defaults

        if self.registration is None:
            return {}
        specs = self.manifest.service.params if (
            self.manifest is not None and self.manifest.service is not None) else ()
        try:
            return parse_params(with_defaults(specs, self.registration.params))
        except ShipyardError:
            return {}

    def announces(self) -> list[LinkAnnounce]:
        return list(self.manifest.announces) if self.manifest else []

    def accepts(self) -> list[LinkAccept]:
        return list(self.manifest.accepts) if self.manifest else []


@dataclass
class Inventory:
    instances: dict[str, Instance] = field(default_factory=dict)
    announcers: dict[str, list[tuple[Instance, LinkAnnounce]]] = field(default_factory=dict)
    acceptors: dict[str, list[tuple[Instance, LinkAccept]]] = field(default_factory=dict)

    def interfaces(self) -> list[str]:
        return sorted(set(self.announcers) | set(self.acceptors))

    def broken(self) -> dict[str, str]:
        return {c: i.problem for c, i in self.instances.items() if i.problem}


def instance_for(settings: Settings, registration: Registration,
                 manifests: dict[str, Manifest | str] | None = None) -> Instance:
    """One registered instance with its manifest loaded (or its problem recorded)."""
    coordinate = str(registration.coordinate)
    instance = Instance(coordinate, registration,
                        runtime_dir=registration.coordinate.runtime_path(settings.runtime_root))
    cache = manifests if manifests is not None else {}
    key = str(registration.package)
    if key not in cache:
        try:
            package_dir = registration.package.install_path(settings.software_root)
            if not package_dir.is_dir():
                cache[key] = f"package {registration.package} is not installed"
            else:
                cache[key] = load_manifest(package_dir)
        except ShipyardError as exc:
            cache[key] = exc.message
    found = cache[key]
    if isinstance(found, str):
        instance.problem = found
    else:
        instance.manifest = found
        instance.package_dir = registration.package.install_path(settings.software_root)
    return instance


def load_inventory(settings: Settings) -> Inventory:
    inventory = Inventory()
    directory = registry.registry_dir(settings)
    paths = sorted(directory.glob("*.ini")) if directory.is_dir() else []
    manifests: dict[str, Manifest | str] = {}
    for path in paths:
        if path.name.startswith("."):
            continue
        try:
            registration = registry.parse_registration(path)
        except ShipyardError as exc:
            name = path.name[: -len(".ini")]
            inventory.instances[name] = Instance(name, None, problem=exc.message)
            continue
        instance = instance_for(settings, registration, manifests)
        inventory.instances[instance.coordinate] = instance
        for announce in instance.announces():
            inventory.announcers.setdefault(announce.interface, []).append((instance, announce))
        for accept in instance.accepts():
            inventory.acceptors.setdefault(accept.interface, []).append((instance, accept))
    return inventory
