"""The installed package behind an instance: its directory and its ``[service]`` table.

Read through the published contract of the pkg stage: a package lives at
``PackageCoord.install_path(software_root)`` with its ``shipyard.toml`` at the top.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from shipyard.config import Settings
from shipyard.coords import PackageCoord
from shipyard.errors import ManifestError, ShipyardError
from shipyard.manifest import MANIFEST_NAME, Manifest, ServiceSpec, load_manifest


@dataclass(frozen=True)
class ServicePackage:
    coord: PackageCoord
    dir: Path
    manifest: Manifest

    @property
    def service(self) -> ServiceSpec:
        assert self.manifest.service is not None
        return self.manifest.service


def load_service_package(settings: Settings, coord: PackageCoord) -> ServicePackage:
    """The installed package ``coord``; refuses one that is missing or has no service."""
    directory = coord.install_path(settings.software_root)
    if not (directory / MANIFEST_NAME).is_file():
        raise ShipyardError(f"package {coord} is not installed (nothing at {directory})")
    try:
        manifest = load_manifest(directory)
    except ManifestError as exc:
        raise ShipyardError(f"installed package {coord} is broken: {exc.message}") from None
    if manifest.service is None:
        raise ShipyardError(
            f"package {coord} has no [service] table in its {MANIFEST_NAME}: "
            "it cannot run as an instance"
        )
    return ServicePackage(coord, directory, manifest)


def package_file(pkg: ServicePackage, relative: str, what: str) -> Path:
    """A file named by the manifest, which must exist inside the package and be executable."""
    import os

    path = pkg.dir / relative
    if not path.is_file():
        raise ShipyardError(f"{what} {relative} is missing from package {pkg.coord} ({path})")
    if not os.access(path, os.X_OK):
        raise ShipyardError(f"{what} {relative} in package {pkg.coord} is not executable")
    return path
