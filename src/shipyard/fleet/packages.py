"""Checking that an assigned package exists: the coordinator reads the same signed
repository its nodes install from, so ``fleet assign`` refuses a coordinate the nodes
could never install, before anything is stored."""

from __future__ import annotations

from pathlib import Path

from shipyard.config import Settings
from shipyard.coords import PackageCoord
from shipyard.errors import ShipyardError
from shipyard.fleet.errors import FleetError, NotFound


def check_in_repository(settings: Settings, repo_dir: Path | None, coord: PackageCoord) -> None:
    """Raise :class:`NotFound` unless ``coord`` is in the configured channel (``repo.url``,
    else the repository this coordinator publishes to)."""
    from shipyard.pkg.install import repository_client
    from shipyard.pkg.resolve import pick

    if not str(settings.get("repo.url") or "").strip():
        if repo_dir is None:
            raise FleetError("the coordinator has no repository to check packages against "
                             "(set repo.url, or serve with --repo)")
        settings = settings.with_overrides({"repo.url": repo_dir.absolute().as_uri()},
                                           source="coordinator")
    try:
        with repository_client(settings) as client:
            pick(client.index(), coord)
    except ShipyardError as exc:
        raise NotFound(f"--package {coord}: {exc.message}") from None
