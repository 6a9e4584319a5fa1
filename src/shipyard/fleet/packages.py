"""Checking that an assigned package exists: the coordinator reads the same signed
repository its nodes install from, so ``fleet assign`` refuses a coordinate the nodes
could never install, before anything is stored."""

from __future__ import annotations

from pathlib import Path

from shipyard.config import Settings
from shipyard.coords import PackageCoord
from shipyard.errors import ShipyardError
from shipyard.fleet.errors import FleetError, NotFound
from shipyard.formats import signing


def check_in_repository(settings: Settings, repo_dir: Path | None, coord: PackageCoord) -> None:
    """Raise :class:`NotFound` unless ``coord`` is in the configured channel (``repo.url``,
    else the repository this coordinator publishes to).

    The coordinator's own ``--repo`` is read with the public half of the key it signs
    with (unless ``repo.key`` names keys): it needs no ``repo.key`` to trust itself, and a
    repository someone else re-signed is still refused."""
    from shipyard.pkg.install import repository_client
    from shipyard.pkg.resolve import pick

    own_keys: list[signing.PublicKey] = []
    if not settings.repo.url.strip():
        if repo_dir is None:
            raise FleetError("the coordinator has no repository to check packages against "
                             "(set repo.url, or serve with --repo)")
        settings = settings.with_overrides({"repo.url": repo_dir.absolute().as_uri()},
                                           source="coordinator")
        if not settings.repo.key:
            own_keys = own_public_key(settings, repo_dir)
    try:
        with repository_client(settings) as client:
            if own_keys:
                client.keys = own_keys
            pick(client.index(), coord)
    except ShipyardError as exc:
        raise NotFound(f"--package {coord}: {exc.message}") from None


def own_public_key(settings: Settings, repo_dir: Path) -> list[signing.PublicKey]:
    """The public half of the key ``repo_dir`` is signed with, or none if it has none."""
    from shipyard.repo.keys import load_signing_key, signing_key_path

    path = signing_key_path(settings, repo_dir)
    if path is None or not path.is_file():
        return []
    try:
        return [load_signing_key(path).public]
    except ShipyardError:
        return []
